# pyright: strict
"""The example workflow in a real n8n, resumed by the real signoff server's signed callbacks.

Here signoff itself delivers every callback to n8n (through the relay, which forwards it
unchanged unless a test tampers with it), so these tests also show what signoff records about
each delivery. Test names start with the conformance scenario they cover
(tests/integrations/conformance/suite.py); test_conformance.py runs the suite itself.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import httpx
import pytest
from tests.integrations.conformance.suite import ARGS, EDITED, INSTRUCTION
from tests.integrations.n8n.conftest import (
    CREDENTIAL_ID,
    CREDENTIAL_NAME,
    E2E,
    WORKFLOW_ID,
    approval_node_id,
)
from tests.integrations.n8n.n8n_process import ran_nodes

from signoff import Client, Request

INVOICE = {**ARGS, "vendor": "Acme GmbH", "purchase_order": "PO-7781"}
BRANCHES = ("Do not pay", "Release payment", "Draft reply to vendor")


@pytest.fixture(autouse=True)
def _relay_forwards(e2e: E2E) -> Iterator[None]:
    """Every test starts with the relay forwarding callbacks to n8n unchanged."""
    e2e.relay.inbox_url = None
    e2e.relay.tamper = None
    yield
    e2e.relay.tamper = None


@dataclass
class Run:
    """One workflow execution paused at the approval, and the agent its request belongs to."""

    agent: Client
    request: Request
    execution_id: str
    started: float


def _pause(e2e: E2E, **body: Any) -> Run:
    """Run the workflow for a fresh agent until it waits for the decision."""
    _, agent = e2e.use_agent()
    started = time.monotonic()
    e2e.trigger({**INVOICE, **body})
    request = e2e.await_request(agent)
    execution_id = request.correlation["n8n_execution_id"]
    assert request.correlation["n8n_node_id"] == approval_node_id()
    assert request.correlation["n8n_workflow_id"] == WORKFLOW_ID
    e2e.n8n.wait_for_status(execution_id, ["waiting"])
    return Run(agent, request, execution_id, started)


def _events(agent: Client, request_id: str) -> list[tuple[str, dict[str, Any]]]:
    return [(e.type, dict(e.data)) for e in agent.timeline(request_id)]


def _wait_for_event(
    agent: Client, request_id: str, kind: str, timeout: float = 30
) -> list[tuple[str, dict[str, Any]]]:
    """The request's timeline once it holds an event of `kind`."""
    deadline = time.monotonic() + timeout
    while True:
        events = _events(agent, request_id)
        if any(k == kind for k, _ in events):
            return events
        if time.monotonic() > deadline:
            raise AssertionError(f"no {kind} in the timeline of {request_id}: {events}")
        time.sleep(0.1)


def _settled(
    agent: Client, request_id: str, *, outcome: bool = True, timeout: float = 30
) -> Request:
    """The request once its callback is settled (and, by default, its outcome reported)."""
    deadline = time.monotonic() + timeout
    while True:
        request = agent.get_request(request_id)
        delivery = request.callback_status.value if request.callback_status else None
        if delivery not in (None, "pending") and (request.outcome is not None or not outcome):
            return request
        if time.monotonic() > deadline:
            raise AssertionError(f"{request_id}: callback {delivery}, outcome {request.outcome}")
        time.sleep(0.1)


def _delivery(request: Request) -> str | None:
    return request.callback_status.value if request.callback_status else None


def _outcome(request: Request) -> str | None:
    return request.outcome.status.value if request.outcome else None


def _branches(e2e: E2E, execution_id: str) -> dict[str, list[Any]]:
    ran = ran_nodes(e2e.n8n.execution(execution_id))
    return {name: items for name, items in ran.items() if name in BRANCHES}


def _timing(e2e: E2E, name: str, run: Run) -> None:
    e2e.timings[name] = time.monotonic() - run.started


def test_approve_server_delivers_and_the_approved_branch_runs(e2e: E2E) -> None:
    run = _pause(e2e)
    request = run.request
    assert dict(request.action.arguments) == ARGS
    assert request.business_object.id == "INV-1042"
    assert request.context["items"] == [
        {**{k: INVOICE[k] for k in ("invoice_id", "vendor", "vendor_account", "amount")},
         "currency": "EUR", "purchase_order": "PO-7781"}
    ]  # fmt: skip
    assert request.callback is not None
    callback_url = str(request.callback.url)
    assert callback_url.startswith(f"{e2e.relay_url}/webhook-waiting/{run.execution_id}?signature=")
    assert callback_url.endswith(f"/{approval_node_id()}")

    e2e.reviewer.decide(request.id, "approve", comment="matches PO-7781")

    (delivery,) = e2e.relay.wait_for(request.id)
    assert delivery.status == 200, delivery.answer
    e2e.n8n.wait_for_status(run.execution_id, ["success"])
    branches = _branches(e2e, run.execution_id)
    assert list(branches) == ["Release payment"]
    assert [item["payment"] for item in branches["Release payment"]] == [ARGS]
    closed = _settled(run.agent, request.id)
    assert (_delivery(closed), _outcome(closed)) == ("delivered", "executed")
    assert closed.outcome is not None
    assert closed.outcome.detail == "payment released: EUR 12500.00 for INV-1042"
    _timing(e2e, "approve", run)


def test_edit_the_edited_amount_is_paid(e2e: E2E) -> None:
    run = _pause(e2e)
    e2e.reviewer.decide(run.request.id, "edit", arguments=EDITED, comment="credit note CN-88")
    e2e.n8n.wait_for_status(run.execution_id, ["success"])
    branches = _branches(e2e, run.execution_id)
    assert [item["payment"] for item in branches["Release payment"]] == [EDITED]
    closed = _settled(run.agent, run.request.id)
    assert _outcome(closed) == "executed"
    assert closed.outcome is not None
    assert closed.outcome.detail == "payment released: EUR 12250.00 for INV-1042"
    _timing(e2e, "edit", run)


def test_reject_server_delivers_and_the_rejected_branch_runs(e2e: E2E) -> None:
    run = _pause(e2e)
    e2e.reviewer.decide(run.request.id, "reject", comment="duplicate of INV-1007")
    e2e.n8n.wait_for_status(run.execution_id, ["success"])
    branches = _branches(e2e, run.execution_id)
    assert list(branches) == ["Draft reply to vendor"]
    (reply,) = branches["Draft reply to vendor"]
    assert reply["reply"] == "Invoice INV-1042 is not paid yet: duplicate of INV-1007"
    closed = _settled(run.agent, run.request.id)
    assert _delivery(closed) == "delivered"
    assert _outcome(closed) == "skipped"
    _timing(e2e, "reject", run)


def test_respond_the_instruction_reaches_the_rejected_branch(e2e: E2E) -> None:
    run = _pause(e2e)
    e2e.reviewer.decide(run.request.id, "respond", comment=INSTRUCTION)
    e2e.n8n.wait_for_status(run.execution_id, ["success"])
    (reply,) = _branches(e2e, run.execution_id)["Draft reply to vendor"]
    assert INSTRUCTION in reply["reply"]
    assert reply["status"] == "responded"
    closed = _settled(run.agent, run.request.id)
    assert _outcome(closed) == "skipped"
    _timing(e2e, "respond", run)


def test_server_side_timeout_continues_on_timed_out(e2e: E2E) -> None:
    run = _pause(e2e, sla="PT2S")
    assert run.request.due_at is not None
    e2e.n8n.wait_for_status(run.execution_id, ["success"], timeout=60)
    branches = _branches(e2e, run.execution_id)
    assert list(branches) == ["Do not pay"]
    (item,) = branches["Do not pay"]
    assert item["reason"] == "No decision on invoice INV-1042 in time: not paid"
    assert item["timed_out_in"] == "signoff (deadline passed)"
    closed = _settled(run.agent, run.request.id)
    assert closed.status.value == "expired"
    assert _outcome(closed) == "skipped"
    _timing(e2e, "server_side_timeout", run)


def _tamper_verdict(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """What an attacker on the path would do: turn the rejection into an approval."""
    assert b'"status":"rejected"' in body
    return body.replace(b'"status":"rejected"', b'"status":"approved"'), headers


def _replay(e2e: E2E, request_id: str) -> None:
    """`signoff webhooks replay`: the operator re-sends the callback (same webhook-id)."""
    settings = e2e.world.settings
    assert settings is not None
    subprocess.run(
        [sys.executable, "-m", "signoff_server", "webhooks", "replay", request_id,
         "--db", settings.database_url],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip


def test_forged_signature_tampered_callback_keeps_waiting_and_is_recorded(e2e: E2E) -> None:
    run = _pause(e2e)
    e2e.relay.tamper = _tamper_verdict
    e2e.reviewer.decide(run.request.id, "reject", comment="not this vendor")
    (delivery,) = e2e.relay.wait_for(run.request.id)
    assert delivery.tampered
    assert delivery.status == 401, delivery.answer  # the node did not verify it
    e2e.relay.tamper = None

    # n8n: still waiting, no branch ran.
    execution = e2e.n8n.execution(run.execution_id)
    assert execution["status"] == "waiting"
    assert _branches(e2e, run.execution_id) == {}
    # signoff: the failed attempt is on record, and a 401 is final (no retries for days).
    refused = _settled(run.agent, run.request.id, outcome=False)
    assert _delivery(refused) == "failed"
    events = _events(run.agent, run.request.id)
    attempts = [data for kind, data in events if kind == "callback.attempted"]
    assert [(a["status_code"], a["result"], a["next_attempt_at"]) for a in attempts] == [
        (401, "refused", None)
    ]
    assert ("callback.refused", 401) in [(k, d.get("status_code")) for k, d in events]

    # The run was not harmed: the operator replays the genuine callback and it resumes, rejected.
    _replay(e2e, run.request.id)
    second = e2e.relay.wait_for(run.request.id, count=2)[-1]
    assert (second.status, second.tampered) == (200, False)
    e2e.n8n.wait_for_status(run.execution_id, ["success"])
    assert list(_branches(e2e, run.execution_id)) == ["Draft reply to vendor"]
    closed = _settled(run.agent, run.request.id)
    assert _delivery(closed) == "delivered"
    assert _outcome(closed) == "skipped"
    _timing(e2e, "tampered_callback", run)


def test_duplicate_callback_n8n_refuses_it_and_signoff_does_not_retry(e2e: E2E) -> None:
    run = _pause(e2e)
    e2e.reviewer.decide(run.request.id, "approve")
    (first,) = e2e.relay.wait_for(run.request.id)
    assert first.status == 200
    e2e.n8n.wait_for_status(run.execution_id, ["success"])
    _settled(run.agent, run.request.id)

    # The same delivery again, straight to n8n: the execution is not waiting any more, so n8n
    # itself answers 409 and never calls the node; the payment was released once.
    again = httpx.post(
        f"{e2e.n8n.url}{first.path}", content=first.body, headers=first.headers, timeout=30
    )
    assert again.status_code == 409, again.text
    # signoff re-sending it (a replay) gets the same 409, and ends the chain: refused.
    _replay(e2e, run.request.id)
    replayed = e2e.relay.wait_for(run.request.id, count=2)[-1]
    assert replayed.status == 409
    events = _wait_for_event(run.agent, run.request.id, "callback.refused")
    assert [d["status_code"] for k, d in events if k == "callback.refused"] == [409]
    time.sleep(1)
    assert len(e2e.relay.seen(run.request.id)) == 2, "a 409 is final: no retry"
    ran = ran_nodes(e2e.n8n.execution(run.execution_id))
    assert (len(ran["Release payment"]), len(ran["Report: paid"])) == (1, 1), "paid once"
    _timing(e2e, "duplicate_callback", run)


def test_step_not_pending_n8n_stops_waiting_and_the_late_callback_is_refused(e2e: E2E) -> None:
    """n8n's own wait limit fires first (here: a 1 s maximum wait; n8n checks once a minute):
    the original input goes to Timed out, the workflow withdraws the request, and the callback
    that follows finds no waiting execution: n8n answers 409 and signoff does not retry."""
    run = _pause(e2e, max_wait_seconds=1)
    execution = e2e.n8n.wait_for_status(run.execution_id, ["success"], timeout=90)
    branches = _branches(e2e, run.execution_id)
    assert list(branches) == ["Do not pay"]
    (item,) = branches["Do not pay"]
    assert item["timed_out_in"] == "n8n (stopped waiting)"
    assert "signoff" not in ran_nodes(execution)["Ask finance to approve"][0]  # original input
    closed = _settled(run.agent, run.request.id, outcome=False)
    assert closed.status.value == "cancelled"
    assert _outcome(closed) == "skipped"
    (delivery,) = e2e.relay.wait_for(run.request.id)
    assert delivery.status == 409, delivery.answer
    assert _delivery(closed) == "failed"
    events = _events(run.agent, run.request.id)
    assert [(k, d.get("status_code")) for k, d in events if k.startswith("callback.")][-1] == (
        "callback.refused",
        409,
    )
    _timing(e2e, "step_not_pending", run)


def _credential_test(e2e: E2E, api_key: str) -> dict[str, Any]:
    """n8n's own credential test (the editor's "Retest") for a Signoff API credential."""
    credentials = {
        "id": CREDENTIAL_ID,
        "name": CREDENTIAL_NAME,
        "type": "signoffApi",
        "data": {
            "serverUrl": e2e.world.url,
            "apiKey": api_key,
            "webhookSecret": e2e.server_keys[0],
        },
    }
    answer = e2e.n8n.rest.post("/credentials/test", json={"credentials": credentials})
    assert answer.status_code == 200, answer.text
    return cast(dict[str, Any], answer.json()["data"])


def test_the_credential_test_checks_the_agent_key_against_the_server(e2e: E2E) -> None:
    key, _ = e2e.use_agent()
    assert _credential_test(e2e, key)["status"] == "OK"
    assert _credential_test(e2e, "sk_not_a_key") == {"status": "Error", "message": "Unauthorized"}
