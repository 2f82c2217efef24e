"""The retry schedule, with an injectable clock instead of three days of sleeping.

The lifecycle, the scheduler and the delivery worker all read one fake clock; the receiver is
real (HTTP on a loopback port). Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import func, select

from signoff import DecisionCreate, RequestCreate, Verdict, Verifier
from signoff.models import CallbackStatus
from signoff_server import audit
from signoff_server.callbacks import (
    DELIVER_TIMER,
    Callbacks,
    CallbackTargets,
    RetrySchedule,
    callback_outbox,
)
from signoff_server.callbacks.outbox import replay
from signoff_server.db import Database
from signoff_server.identity import (
    Principal,
    authenticate,
    create_agent_key,
    create_token,
    set_user,
)
from signoff_server.lifecycle import Lifecycle
from signoff_server.settings import CALLBACK_RETRY_DELAYS, Settings
from signoff_server.timers import Scheduler, timers
from signoff_server.views import load_request

from .callback_support import Receiver, invoice

START = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


class FakeClock:
    """An aware UTC clock that moves only when told to."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Rig:
    """The callback machinery on one store, driven by hand."""

    db: Database
    clock: FakeClock
    registry: CollectorRegistry
    callbacks: Callbacks
    lifecycle: Lifecycle
    scheduler: Scheduler
    agent: Principal
    reviewer: Principal

    def close_with_callback(self, url: str) -> str:
        """Create a request with a callback URL and approve it; its id."""
        created = self.lifecycle.create(self.agent, RequestCreate.model_validate(invoice(url)))
        self.lifecycle.decide(
            self.reviewer, created.request.id, DecisionCreate(verdict=Verdict.APPROVE)
        )
        return created.request.id

    def next_due(self) -> datetime | None:
        """When the next callback attempt is due."""
        with self.db.read() as conn:
            return conn.execute(
                select(func.min(timers.c.due_at)).where(timers.c.kind == DELIVER_TIMER)
            ).scalar()

    def run(self, max_steps: int = 50) -> None:
        """Fire due attempts, jump the clock to the next one, until none is left."""
        for _ in range(max_steps):
            self.scheduler.tick()
            assert self.callbacks.delivery.drain(30)
            due = self.next_due()
            if due is None:
                return
            self.clock.now = max(self.clock.now, due)
        raise AssertionError("attempts kept coming")


@pytest.fixture
def rig(store_url: str, tmp_path: Path) -> Iterator[Rig]:
    clock = FakeClock(START)
    db = Database(store_url)
    registry = CollectorRegistry()
    settings = Settings(database_url=store_url, webhook_keys_path=str(tmp_path / "keys.json"))
    callbacks = Callbacks(db, settings, registry=registry, clock=clock, rng=random.Random(7))
    lifecycle = Lifecycle(
        db, on_closed=lambda _r: None, close_hooks=[callbacks.close_hook], clock=clock
    )
    scheduler = Scheduler(db, callbacks.timer_handlers, clock=clock)
    callbacks.attach(scheduler)
    callbacks.start()
    try:
        with db.write() as conn:
            key = create_agent_key(conn, "finance-agent")
            set_user(conn, "alice@example.com", ["finance-approver"])
            token = create_token(conn, "alice@example.com")
        with db.read() as conn:
            agent, reviewer = authenticate(conn, key), authenticate(conn, token)
        assert agent is not None
        assert reviewer is not None
        yield Rig(db, clock, registry, callbacks, lifecycle, scheduler, agent, reviewer)
    finally:
        callbacks.stop()
        db.dispose()


def test_a_receiver_failing_for_ever_is_failed_after_about_three_days(rig: Rig) -> None:
    schedule = RetrySchedule(CALLBACK_RETRY_DELAYS)
    assert schedule.attempts == 13
    assert timedelta(days=2.9) < schedule.total < timedelta(days=3)

    with Receiver(answer=lambda _n: 500) as receiver:
        request_id = rig.close_with_callback(receiver.url)
        rig.run()

    deliveries = receiver.deliveries
    assert len(deliveries) == schedule.attempts
    assert len({d.webhook_id for d in deliveries}) == 1
    # Each attempt is stamped with the (fake) time it was made and verifies at that time.
    (public,) = [k.public for k in rig.callbacks.keyring.signing_keys(START)]
    stamps = [int(d.headers["webhook-timestamp"]) for d in deliveries]
    assert stamps[0] == int(START.timestamp())  # the first attempt at once
    for delivery, stamp in zip(deliveries, stamps, strict=True):
        Verifier([public], clock=lambda s=stamp: float(s)).verify(delivery.body, delivery.headers)
    # The pauses follow the schedule, each within its ±20% jitter, and are not all exact.
    pauses = [later - earlier for earlier, later in itertools.pairwise(stamps)]
    for pause, base in zip(pauses, CALLBACK_RETRY_DELAYS, strict=True):
        assert base * 0.8 - 1 <= pause <= base * 1.2 + 1, (pause, base)
    assert any(abs(p - b) > 1 for p, b in zip(pauses, CALLBACK_RETRY_DELAYS, strict=True))
    span = timedelta(seconds=stamps[-1] - stamps[0])
    assert timedelta(days=2.3) < span < timedelta(days=3.6)

    with rig.db.read() as conn:
        request = load_request(conn, None, request_id)[1]
        outbox = conn.execute(select(callback_outbox)).one()
        left = conn.execute(select(func.count()).select_from(timers)).scalar()
    assert request.callback_status is CallbackStatus.FAILED
    assert (outbox.state, outbox.attempts, outbox.last_status_code) == ("failed", 13, 500)
    assert left == 0
    with rig.db.read() as conn:
        events = audit.timeline(conn, request_id)
    attempted = [e for e in events if e.type == "callback.attempted"]
    assert [e.data["attempt"] for e in attempted] == list(range(1, 14))
    assert all(e.data["status_code"] == 500 for e in attempted)
    assert attempted[-1].data["next_attempt_at"] is None
    assert events[-1].type == "callback.failed"
    assert events[-1].data["reason"] == "retries_exhausted"
    assert events[-1].data["attempts"] == 13
    assert rig.registry.get_sample_value("signoff_callbacks_failed_total") == 1
    assert (
        rig.registry.get_sample_value("signoff_callback_attempts_total", {"result": "retry"}) == 13
    )
    assert rig.registry.get_sample_value("signoff_callbacks", {"state": "failed"}) == 1


def test_recovery_late_in_the_schedule_still_delivers(rig: Rig) -> None:
    """Down for two days: delivered on the first attempt after it is back, never `failed`."""
    back_at = START + timedelta(days=2)
    with Receiver(answer=lambda _n: 500 if rig.clock() < back_at else 204) as receiver:
        request_id = rig.close_with_callback(receiver.url)
        rig.run()
    assert [d.answered for d in receiver.deliveries][-1] == 204
    assert all(d.answered == 500 for d in receiver.deliveries[:-1])
    with rig.db.read() as conn:
        assert load_request(conn, None, request_id)[1].callback_status is CallbackStatus.DELIVERED
    assert rig.registry.get_sample_value("signoff_callbacks_failed_total") == 0


def test_a_replay_supersedes_the_chain_in_progress(rig: Rig) -> None:
    with Receiver(answer=lambda n: 500 if n == 0 else 200) as receiver:
        request_id = rig.close_with_callback(receiver.url)
        rig.scheduler.tick()
        assert rig.callbacks.delivery.drain(30)
        assert len(receiver.deliveries) == 1  # failed; the retry waits ~5 s
        with rig.db.write() as conn:
            replay(conn, request_id, rig.clock(), actor="test")
        rig.run()  # the replayed chain delivers; the old chain's timer fires and sends nothing
    assert [d.answered for d in receiver.deliveries] == [500, 200]
    with rig.db.read() as conn:
        outbox = conn.execute(select(callback_outbox)).one()
        assert (outbox.state, outbox.generation, outbox.attempts) == ("delivered", 2, 1)
        assert conn.execute(select(func.count()).select_from(timers)).scalar() == 0


def test_retry_schedule_bounds() -> None:
    schedule = RetrySchedule([5, 60], jitter=0.2)
    rng = random.Random(1)
    assert schedule.attempts == 3
    for _ in range(200):
        first = schedule.next_delay(1, rng)
        second = schedule.next_delay(2, rng)
        assert first is not None
        assert second is not None
        assert timedelta(seconds=4) <= first <= timedelta(seconds=6)
        assert timedelta(seconds=48) <= second <= timedelta(seconds=72)
    assert schedule.next_delay(3, rng) is None
    with pytest.raises(ValueError, match="positive"):
        RetrySchedule([5, 0])


def test_a_url_no_longer_allowed_is_never_sent(rig: Rig) -> None:
    """The allow-list is checked again at delivery: tightened since creation, it fails closed."""
    with Receiver(answer=lambda _n: 200) as receiver:
        request_id = rig.close_with_callback(receiver.url)
        rig.callbacks.delivery.targets = CallbackTargets(["hooks.example.com"])
        rig.run()
    assert receiver.deliveries == []
    with rig.db.read() as conn:
        events = audit.timeline(conn, request_id)
        assert load_request(conn, None, request_id)[1].callback_status is CallbackStatus.FAILED
    assert events[-1].type == "callback.failed"
    assert events[-1].data["reason"] == "blocked"
    assert "not in the callback allow-list" in str(events[-2].data["error"])
    assert rig.registry.get_sample_value("signoff_callbacks_failed_total") == 1


def test_a_stopped_worker_hands_the_attempt_back(rig: Rig) -> None:
    with Receiver(answer=lambda _n: 200) as receiver:
        rig.close_with_callback(receiver.url)
        rig.callbacks.delivery.stop()
        assert rig.scheduler.tick() == 1  # claimed, and handed back unfired
        assert receiver.deliveries == []
        assert rig.next_due() == START + timedelta(seconds=1)
        rig.callbacks.delivery.start()
        rig.run()
    assert len(receiver.deliveries) == 1
