"""The request lifecycle end to end, through real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

import signoff
from signoff import OutcomeStatus, Status, Verdict

from .conftest import World

INVOICE: dict[str, Any] = {
    "action": {
        "name": "payments.release",
        "arguments": {
            "invoice_id": "INV-1042",
            "amount": "12500.00",
            "currency": "EUR",
            "vendor_account": "DE89370400440532013000",
        },
    },
    "business_object": {
        "type": "invoice",
        "id": "INV-1042",
        "attributes": {"amount": "12500.00", "currency": "EUR", "vendor": "Acme GmbH"},
    },
    "summary": "Release EUR 12,500.00 to Acme GmbH",
    "route": {"role": "finance-approver"},
    "correlation": {"thread_id": "t-1"},
}


def invoice(**overrides: Any) -> dict[str, Any]:
    """The reference scenario's request, with overrides."""
    return {**INVOICE, **overrides}


def test_create_list_decide_wait_outcome_timeline(world: World) -> None:
    agent = world.client(world.agent_key("finance-agent"))
    reviewer = world.client(world.reviewer_token("finance-approver", email="alice@example.com"))

    created = agent.create_request(invoice(idempotency_key="inv-1042"))
    assert created.status is Status.PENDING
    assert created.agent.id == "finance-agent"
    assert created.route.role == "finance-approver"
    assert created.assignees == ["alice@example.com"]

    listed = reviewer.list_requests(status="pending")
    assert [r.id for r in listed.items] == [created.id]

    # A waiter blocked on the long-poll is woken by the decision, not by its timeout.
    woken: dict[str, Any] = {}

    def wait() -> None:
        started = time.monotonic()
        woken["request"] = agent.wait(created.id, timeout=20)
        woken["after"] = time.monotonic() - started

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.3)
    decided = reviewer.decide(created.id, Verdict.APPROVE, comment="matches PO-7781")
    waiter.join(timeout=20)
    assert decided.status is Status.APPROVED
    assert woken["request"].status is Status.APPROVED
    assert woken["after"] < 4.0  # woken by the decision: the re-check interval is 5 s

    final = woken["request"].final_decision
    assert final is not None
    assert final.decided_by.user == "alice@example.com"
    assert final.decided_by.role == "finance-approver"

    reported = agent.report_outcome(created.id, OutcomeStatus.EXECUTED, detail="paid")
    assert reported.outcome is not None
    assert reported.outcome.status is OutcomeStatus.EXECUTED

    events = agent.timeline(created.id)
    assert [e.type for e in events] == [
        "request.created",
        "request.routed",
        "request.decided",
        "request.outcome_reported",
    ]
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    assert events[2].actor == "user:alice@example.com"


def test_idempotent_create(world: World) -> None:
    agent = world.client(world.agent_key())
    first = agent.create_request(invoice(idempotency_key="k-1"))
    again = agent.create_request(invoice(idempotency_key="k-1"))
    assert again.id == first.id
    with pytest.raises(signoff.Conflict) as info:
        agent.create_request(invoice(idempotency_key="k-1", summary="something else"))
    assert info.value.code == "idempotency_key_reused"
    assert len(agent.list_requests().items) == 1


def test_edit_respond_reject_and_closed_request(world: World) -> None:
    agent = world.client(world.agent_key())
    reviewer = world.client(world.reviewer_token("finance-approver"))

    edited = agent.create_request(invoice())
    corrected = {**INVOICE["action"]["arguments"], "amount": "12250.00"}
    result = reviewer.decide(edited.id, "edit", arguments=corrected)
    assert result.status is Status.APPROVED
    assert result.effective_arguments["amount"] == "12250.00"

    responded = agent.create_request(invoice())
    text = "ask for the 2% early-payment discount first"
    result = reviewer.decide(responded.id, "respond", comment=text)
    assert result.status is Status.RESPONDED
    assert result.decisions[-1].comment == text

    rejected = agent.create_request(invoice())
    result = reviewer.decide(rejected.id, "reject", comment="duplicate invoice")
    assert result.status is Status.REJECTED
    with pytest.raises(signoff.Conflict) as info:
        reviewer.decide(rejected.id, "approve")
    assert info.value.code == "request_closed"
    assert len(world.client(world.reviewer_token("admin")).get_request(rejected.id).decisions) == 1


def test_policy_fields_from_the_request_are_enforced(world: World) -> None:
    agent = world.client(world.agent_key())
    reviewer = world.client(world.reviewer_token("finance-approver"))
    request = agent.create_request(
        invoice(allowed=["approve", "reject"], comment_required="on_reject")
    )
    with pytest.raises(signoff.ValidationFailed) as info:
        reviewer.decide(request.id, "respond", comment="try again")
    assert info.value.code == "verdict_not_allowed"
    with pytest.raises(signoff.ValidationFailed) as info:
        reviewer.decide(request.id, "reject")
    assert info.value.code == "comment_required"
    assert agent.get_request(request.id).status is Status.PENDING


def test_threshold_quorum_needs_distinct_approvers(world: World) -> None:
    agent = world.client(world.agent_key())
    alice = world.client(world.reviewer_token("finance-approver"))
    bob = world.client(world.reviewer_token("finance-approver"))
    request = agent.create_request(invoice(approvals={"mode": "threshold", "required": 2}))

    after_one = alice.decide(request.id, "approve")
    assert after_one.status is Status.PENDING
    assert agent.get_request(request.id) == after_one, "a decision answers what a read gives"
    with pytest.raises(signoff.Conflict):
        alice.decide(request.id, "approve")
    after_two = bob.decide(request.id, "approve")
    assert after_two.status is Status.APPROVED
    # Reads (one statement aggregating decisions and roles) give what the decide returned,
    # decisions in order with their instants, to the agent and to a reviewer of the role.
    assert [d.decided_by.user for d in after_two.decisions] == [
        after_one.decisions[0].decided_by.user,
        after_two.decisions[1].decided_by.user,
    ]
    assert after_two.decisions[0].at <= after_two.decisions[1].at
    assert agent.get_request(request.id) == after_two
    assert agent.wait(request.id, timeout=1) == after_two
    assert alice.get_request(request.id) == after_two
    types = [e.type for e in agent.timeline(request.id)]
    assert types.count("request.approval_recorded") == 1
    assert types[-1] == "request.decided"


def test_initiator_cannot_approve(world: World) -> None:
    agent = world.client(world.agent_key())
    initiator = world.client(world.reviewer_token("finance-approver", email="ivan@example.com"))
    request = agent.create_request(invoice(initiator="ivan@example.com"))
    with pytest.raises(signoff.Forbidden) as info:
        initiator.decide(request.id, "approve")
    assert info.value.code == "separation_of_duties"
    # ...but may still reject: refusing one's own run never loosens anything.
    assert initiator.decide(request.id, "reject").status is Status.REJECTED


def test_timeout_fails_closed(world: World) -> None:
    agent = world.client(world.agent_key())
    request = agent.create_request(invoice(sla="PT1S"))
    closed = agent.wait(request.id, timeout=15)
    assert closed.status is Status.EXPIRED
    final = closed.final_decision
    assert final is not None
    assert final.verdict is Verdict.REJECT
    assert final.via.value == "timeout"
    assert agent.timeline(request.id)[-1].type == "request.expired"


def test_cancel_and_wait_timeout(world: World) -> None:
    agent = world.client(world.agent_key())
    request = agent.create_request(invoice())
    with pytest.raises(signoff.TimeoutError):
        agent.wait(request.id, timeout=0.5)
    cancelled = agent.cancel(request.id, reason="invoice withdrawn")
    assert cancelled.status is Status.CANCELLED
    with pytest.raises(signoff.Conflict):
        agent.cancel(request.id)
    with pytest.raises(signoff.NotFound):
        world.client(world.agent_key()).report_outcome(request.id, "skipped")
    reported = agent.report_outcome(request.id, "skipped", detail="nothing was paid")
    assert reported.outcome is not None
    with pytest.raises(signoff.Conflict) as info:
        agent.report_outcome(request.id, "executed")
    assert info.value.code == "outcome_reported"


def test_list_filters_and_cursor_pages(world: World) -> None:
    agent = world.client(world.agent_key())
    made = [
        agent.create_request(invoice(business_object={"type": "invoice", "id": f"INV-{n}"})).id
        for n in range(7)
    ]
    page = agent.list_requests(limit=3)
    assert len(page.items) == 3
    assert page.next_cursor is not None
    every = [r.id for r in agent.iter_requests(page_size=3)]
    assert every == list(reversed(made))
    only = agent.list_requests(object_type="invoice", object_id="INV-4")
    assert [r.id for r in only.items] == [made[4]]


def test_an_outcome_asked_for_with_prefer_minimal_is_an_empty_204(world: World) -> None:
    """`Prefer: return=minimal` (RFC 7240): the same checks and record, no body; the core
    client's background reports ask for it."""
    key = world.agent_key()
    agent = world.client(key)
    reviewer = world.client(world.reviewer_token("finance-approver"))
    minimal = {"Authorization": f"Bearer {key}", "Prefer": "respond-async, return=minimal"}
    first, second = agent.create_request(invoice()), agent.create_request(invoice())
    with httpx.Client(base_url=world.url, timeout=30) as http:
        early = http.post(
            f"/v1/requests/{first.id}/outcome", json={"status": "executed"}, headers=minimal
        )
        assert early.status_code == 409, early.text
        assert early.json()["error"]["code"] == "request_pending"

        reviewer.decide(first.id, Verdict.APPROVE)
        reported = http.post(
            f"/v1/requests/{first.id}/outcome",
            json={"status": "executed", "detail": "paid"},
            headers=minimal,
        )
        assert reported.status_code == 204, reported.text
        assert reported.content == b""
        assert reported.headers["preference-applied"] == "return=minimal"

        again = http.post(
            f"/v1/requests/{first.id}/outcome", json={"status": "failed"}, headers=minimal
        )
        assert again.status_code == 409, again.text
        assert again.json()["error"]["code"] == "outcome_reported"
    outcome = agent.get_request(first.id).outcome
    assert outcome is not None
    assert (outcome.status, outcome.detail) == (OutcomeStatus.EXECUTED, "paid")
    assert [e.type for e in agent.timeline(first.id)][-1] == "request.outcome_reported"

    reviewer.decide(second.id, Verdict.REJECT)
    agent.report_outcome_in_background(second.id, OutcomeStatus.SKIPPED, detail="rejected")
    assert agent.flush(timeout=30)
    skipped = agent.get_request(second.id).outcome
    assert skipped is not None
    assert skipped.status is OutcomeStatus.SKIPPED
