"""Reading signoff.yaml: tolerant of shapes, strict about telling where a file is broken."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from signoff_agent_kit.policy import PolicyFile, PolicyFileError, coverage, load_policies

DEMO = Path(__file__).parents[2] / "examples" / "demo" / "signoff.yaml"


def _load(tmp_path: Path, text: str) -> PolicyFile:
    path = tmp_path / "signoff.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_policies(path)


def test_first_match_wins_and_conditions_fall_through_to_the_next_policy(tmp_path: Path) -> None:
    policies = _load(
        tmp_path,
        """
        escalations: {finance: [{wait: PT30M}, {escalate_to: boss}]}
        policies:
          - name: big
            match: {action: payments.*, condition: "double(request.action.arguments.amount) > 10"}
            route: finance-approver
            sla: PT2H
            escalation: finance
          - name: small
            match: {action: payments.*, condition: "double(request.action.arguments.amount) < 1"}
            auto: approve
          - name: any-payment
            match: {action: [payments.*, refunds.*]}
            route: finance-approver
            sla: PT8H
            on_timeout: reject
          - name: never-reached
            match: {action: payments.release}
            route: nobody
        """,
    )
    cov = coverage(policies, ["payments.release", "release_payment"])
    assert cov.policies == ["big", "small", "any-payment"]
    assert cov.owner == "finance-approver"
    assert cov.sla == "PT2H / PT8H"
    assert cov.escalation == "finance"
    assert cov.on_timeout == "reject"
    assert cov.auto is None  # only conditionally auto-approved
    assert any("auto approve when" in n for n in cov.notes)
    assert coverage(policies, ["refunds.create"]).policies == ["any-payment"]


def test_only_the_default_is_not_an_owner(tmp_path: Path) -> None:
    policies = _load(
        tmp_path,
        """
        policies: [{name: p, match: {action: payments.*}, route: finance}]
        default: {route: admin, sla: P1D, on_timeout: reject}
        """,
    )
    cov = coverage(policies, ["deploy"])
    assert cov.policies == ["default"]
    assert cov.owner == "admin"
    assert not cov.owned
    assert cov.sla == "P1D"
    assert coverage(policies, ["payments.x"]).owned


def test_an_unconditional_auto_approve_is_reported(tmp_path: Path) -> None:
    policies = _load(tmp_path, "policies: [{name: yolo, match: {action: '*'}, auto: approve}]")
    cov = coverage(policies, ["anything"])
    assert cov.auto == "approve"
    assert not cov.conditional


def test_older_and_looser_shapes_are_read(tmp_path: Path) -> None:
    policies = _load(
        tmp_path,
        """
        roles: [{name: ops}, sre]
        policies:
          - name: loose
            action: deploy*
            when: request.agent.id == "x"
            route: {role: ops}
            escalation: [{wait: PT5M}, {escalate_to: sre}]
          - action: deploy*
            route: sre
            sla: PT1H
        """,
    )
    cov = coverage(policies, ["deploy_service"])
    assert cov.policies == ["loose", "policies[1]"]
    assert cov.owner == "ops / sre"
    assert cov.escalation == "2 inline steps"
    assert policies.roles == {"ops", "sre"}


def test_dangling_references_are_noted(tmp_path: Path) -> None:
    policies = _load(
        tmp_path,
        """
        roles: {finance: {}}
        policies: [{name: p, match: {action: x}, route: treasury, escalation: nope}]
        """,
    )
    notes = coverage(policies, ["x"]).notes
    assert "policy 'p' routes to undeclared role 'treasury'" in notes
    assert "policy 'p': no escalation chain 'nope'" in notes


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("policies:\n  - name: a\n    match: {action: [x\n", "signoff.yaml:4: "),
        ("- just\n- a list\n", "signoff.yaml:1: a policy file is a mapping"),
        ("policies: {a: 1}\n", "'policies' must be a list"),
        ("policies:\n  - name: ok\n  - 42\n", "signoff.yaml:3: policies[1] must be a mapping"),
    ],
)
def test_unusable_files_are_named_with_their_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(PolicyFileError, match=message.replace("[", r"\[").replace("]", r"\]")):
        _load(tmp_path, text)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError, match="cannot read the policy file"):
        load_policies(tmp_path / "nope.yaml")


@pytest.mark.skipif(not DEMO.exists(), reason="examples/demo/signoff.yaml is not there yet")
def test_the_demo_policy_file() -> None:
    policies = load_policies(DEMO)
    cov = coverage(policies, ["payments.release"])
    assert cov.owned
    assert cov.owner == "finance-approver"
    assert cov.on_timeout == "reject"
    assert cov.escalation is not None
