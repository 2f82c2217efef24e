# pyright: strict
"""examples/n8n/invoice-payment.json is the reference scenario (DESIGN §12) wired the way the docs
say: checked here without n8n; the end-to-end tests import and run it in a real n8n."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

from tests.integrations.conformance.suite import ARGS

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "n8n" / "invoice-payment.json"


def _workflow() -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(EXAMPLE.read_text()))


def _nodes() -> dict[str, dict[str, Any]]:
    return {str(n["name"]): n for n in cast(list[dict[str, Any]], _workflow()["nodes"])}


def _targets(source: str) -> list[list[str]]:
    outputs = cast(list[list[dict[str, Any]]], _workflow()["connections"][source]["main"])
    return [[str(link["node"]) for link in output] for output in outputs]


def test_it_is_an_importable_workflow() -> None:
    workflow = _workflow()
    nodes = _nodes()
    assert workflow["name"]
    assert len(nodes) == len(workflow["nodes"]), "node names are unique"
    ids = [n["id"] for n in workflow["nodes"]]
    assert len(set(ids)) == len(ids)
    for source, links in workflow["connections"].items():
        assert source in nodes
        for output in links["main"]:
            assert all(link["node"] in nodes for link in output)
    types = {n["type"] for n in nodes.values()}
    assert types == {
        "n8n-nodes-base.stickyNote",
        "n8n-nodes-base.webhook",
        "n8n-nodes-base.set",
        "n8n-nodes-signoff.signoffApproval",
        "n8n-nodes-signoff.signoffOutcome",
    }


def test_the_approval_gates_payments_release_with_the_reference_arguments() -> None:
    approval = _nodes()["Ask finance to approve"]
    parameters = approval["parameters"]
    assert parameters["actionName"] == "payments.release"
    for key in ARGS:
        assert f"{key}: $json.{key}" in parameters["actionArguments"]
    assert parameters["businessObjectType"] == "invoice"
    assert parameters["options"]["routeRole"] == "finance-approver"
    assert parameters["options"]["timeout"] == "PT2H"
    assert approval["credentials"] == {"signoffApi": {"id": "signoff-api", "name": "Signoff API"}}


def test_outputs_timed_out_approved_rejected_each_report_an_outcome() -> None:
    assert _targets("Ask finance to approve") == [
        ["Do not pay"],
        ["Release payment"],
        ["Draft reply to vendor"],
    ]
    reports = {
        "Do not pay": ("Report: timed out", "skipped"),
        "Release payment": ("Report: paid", "executed"),
        "Draft reply to vendor": ("Report: not paid", "skipped"),
    }
    nodes = _nodes()
    for branch, (report, status) in reports.items():
        assert _targets(branch) == [[report]]
        assert nodes[report]["parameters"]["status"] == status
    paid = nodes["Release payment"]["parameters"]["assignments"]["assignments"]
    payment = next(a for a in paid if a["name"] == "payment")
    assert payment["value"] == "={{ $json.signoff.effectiveArguments }}", "run what was approved"
