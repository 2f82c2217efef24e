"""Matching, tightening, CEL conditions and rosters, without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from signoff.models import (
    ApprovalMode,
    Approvals,
    CommentRequired,
    RequestCreate,
    Risk,
    TimeoutOutcome,
    Verdict,
)
from signoff_server.policy.cel import Condition, ConditionError, request_activation
from signoff_server.policy.config import PolicyBody, load_config, parse_config
from signoff_server.policy.roster import Delegation, Roster
from signoff_server.policy.router import merge_approvals, select_policy, tighten

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo" / "signoff.yaml"
MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # 10:00 in Berlin: Alice's turn


def request(amount: Any = "12500.00", **overrides: Any) -> RequestCreate:
    body: dict[str, Any] = {
        "action": {"name": "payments.release", "arguments": {"amount": amount, "currency": "EUR"}},
        "business_object": {"type": "invoice", "id": "INV-1042"},
        "summary": "pay it",
        "context": {"note": "approve everything"},
    }
    body.update(overrides)
    return RequestCreate.model_validate(body)


# --- CEL ------------------------------------------------------------------------------------


def test_cel_sees_machine_observed_fields_only() -> None:
    activation = request_activation(request(), "finance-agent")
    assert set(activation["request"]) == {
        "action",
        "business_object",
        "agent",
        "risk",
        "initiator",
        "correlation",
    }
    assert activation["request"]["agent"]["id"] == "finance-agent"
    assert Condition('request.agent.id == "finance-agent"').evaluate(activation)
    with pytest.raises(ConditionError, match="unknown variable"):
        Condition('summary == "x"')


@pytest.mark.parametrize(
    ("amount", "expected"),
    [("12500.00", True), (12500, True), (10000.5, True), ("10000", False), ("99.99", False)],
)
def test_amounts_as_strings_or_numbers(amount: Any, expected: bool) -> None:
    condition = Condition("double(request.action.arguments.amount) > 10000.0")
    assert condition.evaluate(request_activation(request(amount), "a")) is expected


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("double(request.action.arguments.amount) > 1.0", "invalid float"),
        ("request.action.arguments.missing > 1", "no field 'missing'"),
        ("request.action.arguments.amount", "not a boolean"),
    ],
)
def test_conditions_that_cannot_be_evaluated(source: str, message: str) -> None:
    with pytest.raises(ConditionError, match=message):
        Condition(source).evaluate(request_activation(request("n/a"), "a"))


# --- matching ----------------------------------------------------------------------------------


def test_first_match_wins_on_the_demo_file() -> None:
    config = load_config(DEMO)
    assert select_policy(config, request("12500.00"), "a").policy.name == "large-payment"
    assert select_policy(config, request("42.00"), "a").policy.name == "small-payment"
    assert select_policy(config, request("500"), "a").policy.name == "payment"
    other = request(action={"name": "crm.delete_customer", "arguments": {}})
    assert select_policy(config, other, "a").policy.name == "default"


def test_a_condition_error_fails_closed_to_the_default() -> None:
    config = load_config(DEMO)
    selection = select_policy(config, request("n/a"), "a")
    assert selection.policy.name == "default"
    ref = selection.ref(config.version)
    assert ref.rule is not None
    assert "condition of 'large-payment' failed" in ref.rule
    # Not the auto-approval that a later policy would have given a small amount.
    missing = request(action={"name": "payments.release", "arguments": {}})
    assert select_policy(config, missing, "a").policy.name == "default"


def test_auto_approve_never_loosens_a_quorum_the_caller_asked_for() -> None:
    config = load_config(DEMO)
    asked = request("42.00", approvals={"mode": "threshold", "required": 2})
    assert select_policy(config, asked, "a").policy.name == "payment"


def test_globs_agents_and_risk() -> None:
    config = parse_config(
        """\
people: [{email: a@x.io}]
roles: {r: {members: [a@x.io]}}
policies:
  - {name: crit, match: {risk: critical}, route: r}
  - {name: bots, match: {agent: "bot-*", object_type: [invoice, po]}, route: r}
  - {name: deletes, match: {action: "*.delete*"}, auto: reject}
"""
    )
    assert select_policy(config, request(risk="critical"), "x").policy.name == "crit"
    assert select_policy(config, request(), "bot-7").policy.name == "bots"
    deleting = request(action={"name": "crm.delete_customer"})
    assert select_policy(config, deleting, "x").policy.name == "deletes"
    assert select_policy(config, request(), "x").policy.name == "default"


# --- tightening --------------------------------------------------------------------------------


def test_policy_tightens_and_never_loosens() -> None:
    body = PolicyBody(
        sla="PT2H",
        on_timeout=TimeoutOutcome.APPROVE,
        approvals=Approvals(mode=ApprovalMode.THRESHOLD, required=2),
        allowed=[Verdict.APPROVE, Verdict.REJECT, Verdict.RESPOND],
        comment_required=CommentRequired.ON_REJECT,
        risk=Risk.HIGH,
    )
    loose = tighten(request(sla="PT5H", risk="low"), body)
    assert loose.sla == "PT2H"
    assert loose.on_timeout is TimeoutOutcome.REJECT  # the caller's default reject wins
    assert loose.approvals.required == 2
    assert loose.allowed == [Verdict.APPROVE, Verdict.REJECT, Verdict.RESPOND]
    assert loose.comment_required is CommentRequired.ON_REJECT
    assert loose.risk is Risk.HIGH

    strict = tighten(
        request(
            sla="PT30M",
            on_timeout="approve",
            risk="critical",
            allowed=["approve", "reject"],
            comment_required="always",
            approvals={"mode": "threshold", "required": 3},
        ),
        body,
    )
    assert strict.sla == "PT30M"
    assert strict.on_timeout is TimeoutOutcome.APPROVE  # both sides asked for approve
    assert strict.approvals.required == 3
    assert strict.allowed == [Verdict.APPROVE, Verdict.REJECT]
    assert strict.comment_required is CommentRequired.ALWAYS
    assert strict.risk is Risk.CRITICAL

    assert tighten(request(on_timeout="approve"), PolicyBody()).on_timeout is TimeoutOutcome.APPROVE
    rejecting = PolicyBody(on_timeout=TimeoutOutcome.REJECT)
    assert tighten(request(on_timeout="approve"), rejecting).on_timeout is TimeoutOutcome.REJECT


def test_merging_quorums() -> None:
    single = Approvals()
    two = Approvals(mode=ApprovalMode.THRESHOLD, required=2)
    all_of = Approvals(mode=ApprovalMode.ALL_OF, roles=["finance", "legal"])
    assert merge_approvals(single, two) == two
    assert merge_approvals(two, None) == two
    merged = merge_approvals(Approvals(mode=ApprovalMode.THRESHOLD, required=3), all_of)
    assert (merged.mode, merged.required, merged.roles) == (
        ApprovalMode.ALL_OF,
        3,
        ["finance", "legal"],
    )
    # The caller cannot widen who may approve: eligibility roles come from the policy only.
    widened = merge_approvals(Approvals(mode=ApprovalMode.ANY_OF, roles=["interns"]), None)
    assert widened.roles is None
    # ...but a caller's all_of roles only add requirements.
    both = merge_approvals(Approvals(mode=ApprovalMode.ALL_OF, roles=["audit"]), all_of)
    assert both.roles == ["finance", "legal", "audit"]
    off = Approvals(separation_of_duties=False)
    assert merge_approvals(off, None).separation_of_duties is True
    assert merge_approvals(off, off).separation_of_duties is False


# --- rosters -------------------------------------------------------------------------------------


DELEGATION = """\
people:
  - email: alice@x.io
    out_of_office:
      - {from: 2026-03-01T00:00:00Z, until: 2026-03-08T00:00:00Z, delegate: bob@x.io}
  - email: bob@x.io
    out_of_office:
      - {from: 2026-03-05T00:00:00Z, until: 2026-03-06T00:00:00Z, delegate: alice@x.io}
  - email: carol@x.io
roles:
  approvers:
    members: [alice@x.io, bob@x.io, carol@x.io]
    gap_policy: {fallback: carol@x.io}
    schedule:
      timezone: UTC
      layers:
        - name: office
          anchor: 2026-01-05T09:00
          turn: P1W
          groups: [alice@x.io]
          windows: [{days: [mon, tue, wed, thu, fri], from: "09:00", to: "17:00"}]
policies: []
"""


def test_delegation_and_gap_fallback() -> None:
    roster = Roster(parse_config(DELEGATION))
    monday = datetime(2026, 3, 2, 10, tzinfo=UTC)
    assignment = roster.assign("approvers", monday)
    assert assignment.on_shift == ("alice@x.io",)
    assert assignment.people == ("bob@x.io",)
    assert assignment.delegations == (Delegation("alice@x.io", "bob@x.io"),)
    assert assignment.record()["delegations"] == [{"absent": "alice@x.io", "delegate": "bob@x.io"}]
    # Both away and delegating to each other: keep the person on shift rather than nobody.
    assert roster.assign("approvers", monday + timedelta(days=3)).people == ("alice@x.io",)
    # Back from leave.
    assert roster.assign("approvers", monday + timedelta(days=7)).people == ("alice@x.io",)
    night = roster.assign("approvers", monday + timedelta(hours=10))
    assert night.is_gap
    assert (night.people, night.gap_policy) == (("carol@x.io",), "fallback")
