"""A request's timers fire in due order, even when several schedulers claim at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from signoff import RequestCreate
from signoff_server.db import Database
from signoff_server.identity import authenticate, create_agent_key
from signoff_server.lifecycle import Lifecycle
from signoff_server.timers import Scheduler, Timer, arm, complete

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def test_a_later_timer_waits_while_an_earlier_one_of_its_request_is_claimed(
    store_url: str,
) -> None:
    db = Database(store_url)
    try:
        with db.write() as conn:
            key = create_agent_key(conn, "agent")
        with db.read() as conn:
            agent = authenticate(conn, key)
        assert agent is not None
        lifecycle = Lifecycle(db, on_closed=lambda _r: None, clock=lambda: NOW)
        body = {
            "action": {"name": "payments.release", "arguments": {"amount": "10"}},
            "business_object": {"type": "invoice", "id": "INV-1"},
        }
        first, second = (
            lifecycle.create(agent, RequestCreate.model_validate(body)).request.id for _ in range(2)
        )
        with db.write() as conn:
            arm(conn, kind="escalate", due_at=NOW - timedelta(hours=2), now=NOW, request_id=first)
            arm(conn, kind="expire", due_at=NOW - timedelta(hours=1), now=NOW, request_id=first)
            arm(conn, kind="expire", due_at=NOW - timedelta(hours=1), now=NOW, request_id=second)

        def scheduler() -> Scheduler:
            return Scheduler(db, {}, clock=lambda: NOW, batch=1)

        one = scheduler().claim()  # the earliest due: the first request's escalation
        assert [(t.kind, t.request_id) for t in one] == [("escalate", first)]
        # Another replica claims while that one is in flight: it gets the other request's
        # timer, never the first request's deadline, which must wait for the escalation.
        other = scheduler().claim()
        assert [(t.kind, t.request_id) for t in other] == [("expire", second)]
        assert scheduler().claim() == []
        with db.write() as conn:
            done: Timer = one[0]
            complete(conn, done)
        assert [(t.kind, t.request_id) for t in scheduler().claim()] == [("expire", first)]
    finally:
        db.dispose()
