"""Flow pause/resume details the conformance suite does not pin down: what the flow is resumed
with, racing callbacks, callbacks for another step, and feedback that is not signoff's."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from crewai.flow.async_feedback import HumanFeedbackPending
from crewai.flow.persistence import SQLiteFlowPersistence
from tests.integrations.conformance.harness import Harness
from tests.integrations.crewai.fakes import INVOICE, ledger_entries
from tests.integrations.crewai.flow_app import build_flow

from signoff import CallbackEvent, CallbackRefused, Client, Verifier
from signoff.receiver import SqliteDedupeStore
from signoff_crewai import FlowDecision, NotASignoffDecision, resume


@pytest.fixture
def persistence(tmp_path: Path) -> SQLiteFlowPersistence:
    return SQLiteFlowPersistence(str(tmp_path / "flows.db"))


@pytest.fixture
def markers(tmp_path: Path) -> SqliteDedupeStore:
    return SqliteDedupeStore(tmp_path / "markers.db")


@pytest.fixture
def paused(
    harness: Harness, client: Client, persistence: SQLiteFlowPersistence, ledger: Path
) -> tuple[type[Any], str, str]:
    """The invoice flow paused at its review: (flow class, flow id, request id)."""
    flow = build_flow(persistence, client=client, callback_url=harness.inbox_url)
    result = flow(persistence=persistence).kickoff(inputs={"payment": INVOICE, "call_id": "c1"})
    assert isinstance(result, HumanFeedbackPending)
    (request,) = client.list_requests().items
    assert request.correlation["flow_id"] == result.context.flow_id
    assert request.correlation["step"] == "flow"
    return flow, result.context.flow_id, request.id


def event(harness: Harness, request_id: str, *, fresh: bool = False) -> CallbackEvent:
    return Verifier(harness.verifier_keys).verify(*harness.delivery(request_id, fresh=fresh))


def test_the_flow_is_resumed_with_the_decision_as_structured_feedback(
    harness: Harness,
    client: Client,
    persistence: SQLiteFlowPersistence,
    markers: SqliteDedupeStore,
    paused: tuple[type[Any], str, str],
) -> None:
    flow, flow_id, request_id = paused
    harness.decide(request_id, "respond", comment="ask for the 2% discount first")
    done = resume(event(harness, request_id), flow, persistence, markers=markers, client=client)
    assert (done.flow_id, done.request_id, done.paused_again) == (flow_id, request_id, False)
    assert done.decision.route == "responded"
    assert not done.decision.approved
    assert "ask for the 2% discount first" in done.decision.message
    assert FlowDecision.from_feedback(done.decision.to_feedback()) == done.decision
    state = persistence.load_state(flow_id) or {}
    assert "ask for the 2% discount first" in state["told"]
    outcome = client.get_request(request_id).outcome
    assert outcome is not None
    assert outcome.status.value == "skipped", "resume reports a step that will not act"


def test_racing_callbacks_resume_the_flow_once(
    harness: Harness,
    client: Client,
    persistence: SQLiteFlowPersistence,
    markers: SqliteDedupeStore,
    paused: tuple[type[Any], str, str],
    ledger: Path,
) -> None:
    flow, _, request_id = paused
    harness.decide(request_id, "approve")
    events = [event(harness, request_id), event(harness, request_id, fresh=True)]
    outcomes: list[str] = []

    def deliver(e: CallbackEvent) -> None:
        try:
            resume(e, flow, persistence, markers=markers, client=client)
            outcomes.append("resumed")
        except CallbackRefused:
            outcomes.append("refused")

    threads = [threading.Thread(target=deliver, args=(e,)) for e in events]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(outcomes) == ["refused", "resumed"]
    assert ledger_entries(ledger) == [INVOICE]


def test_a_callback_for_another_request_is_refused_and_the_flow_keeps_waiting(
    harness: Harness,
    client: Client,
    persistence: SQLiteFlowPersistence,
    markers: SqliteDedupeStore,
    paused: tuple[type[Any], str, str],
    ledger: Path,
) -> None:
    flow, flow_id, request_id = paused
    # Another request made for the same flow (an earlier round of its review, say).
    other = client.create_request(
        {
            "action": {"name": "payments.release", "arguments": {"invoice_id": "INV-1"}},
            "business_object": {"type": "invoice", "id": "INV-1"},
            "route": {"role": "finance-approver"},
            "correlation": {"framework": "crewai", "flow_id": flow_id, "step": "flow"},
            "callback": {"url": harness.inbox_url},
        }
    )
    harness.decide(other.id, "approve")
    with pytest.raises(CallbackRefused, match="waits for"):
        resume(event(harness, other.id), flow, persistence, markers=markers, client=client)
    assert persistence.load_pending_feedback(flow_id) is not None
    assert ledger_entries(ledger) == []
    harness.decide(request_id, "reject", comment="no")
    resume(event(harness, request_id), flow, persistence, markers=markers, client=client)
    assert ledger_entries(ledger) == []


def test_requests_not_made_by_a_flow_are_refused(
    harness: Harness, client: Client, persistence: SQLiteFlowPersistence
) -> None:
    request = client.create_request(
        {
            "action": {"name": "payments.release", "arguments": {}},
            "business_object": {"type": "invoice", "id": "INV-2"},
            "route": {"role": "finance-approver"},
            "correlation": {"framework": "langgraph", "thread_id": "t"},
            "callback": {"url": harness.inbox_url},
        }
    )
    harness.decide(request.id, "approve")
    flow = build_flow(persistence, client=client)
    with pytest.raises(CallbackRefused, match="not made by a CrewAI flow"):
        resume(event(harness, request.id), flow, persistence)


def test_feedback_that_is_not_a_signoff_decision_fails_closed() -> None:
    with pytest.raises(NotASignoffDecision):
        FlowDecision.from_feedback("approved")  # a human typing "approved" is not a decision
