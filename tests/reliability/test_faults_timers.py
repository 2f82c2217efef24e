"""A store fault while a timer fires, or while a callback attempt is recorded, costs a second,
not a lease (a minute) or the timer's backoff, and never the rest of the batch.

When the database connection drops, a timer's handler fails with `Unavailable` (503 material,
not the timer's fault): the timer is handed back due a second later with its attempt count (which
drives the exponential backoff) unchanged. If even the hand-back cannot be written, the other
timers claimed in the same tick still fire; the failed one is claimed again when its lease ends.
A callback whose POST went out but whose result could not be recorded is sent again a second
later under the same webhook-id, not a minute later when its lease runs out.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection, select
from tests.support.server import ServerThread

from signoff_server.callbacks.delivery import CallbackDelivery
from signoff_server.db import Database, migrate
from signoff_server.errors import Unavailable
from signoff_server.settings import Settings
from signoff_server.timers import Scheduler, Timer, arm, complete, timers

from .cluster import Receiver, pinned_verifier, prepare, request_body, wait_until

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class FlakyDatabase(Database):
    """A Database whose next `fail_writes` write transactions fail as a lost connection."""

    fail_writes = 0

    @contextmanager
    def write(self) -> Generator[Connection]:
        if self.fail_writes > 0:
            self.fail_writes -= 1
            raise Unavailable("the database connection was lost", code="database_unavailable")
        with super().write() as conn:
            yield conn


def _world(tmp_path: Path) -> FlakyDatabase:
    url = f"sqlite:///{tmp_path / 'signoff.db'}"
    migrate(url)
    db = FlakyDatabase(url)
    with db.write() as conn:
        for n in (1, 2):
            arm(conn, kind="test.tick", due_at=NOW, now=NOW, payload={"n": n})
    return db


def _rows(db: Database) -> dict[int, tuple[datetime, int, str | None]]:
    with db.read() as conn:
        return {
            int(r.payload["n"]): (r.due_at, r.attempts, r.lease_token)
            for r in conn.execute(select(timers))
        }


def test_a_store_fault_hands_the_timer_back_for_a_second_without_backoff(
    tmp_path: Path,
) -> None:
    db = _world(tmp_path)
    fired: list[int] = []

    def handler(timer: Timer, now: datetime) -> None:
        if timer.payload["n"] == 1:
            raise Unavailable("the database connection was lost", code="database_unavailable")
        with db.write() as conn:
            complete(conn, timer)
        fired.append(int(timer.payload["n"]))

    try:
        scheduler = Scheduler(db, {"test.tick": handler}, clock=lambda: NOW)
        assert scheduler.tick() == 1
        left = _rows(db)
    finally:
        db.dispose()
    assert fired == [2]
    due_at, attempts, lease = left[1]
    assert due_at == NOW + timedelta(seconds=1)
    assert attempts == 0  # not the timer's fault: its backoff does not grow
    assert lease is None  # free to be claimed again by any replica
    assert 2 not in left


def test_when_even_the_hand_back_fails_the_rest_of_the_batch_still_fires(tmp_path: Path) -> None:
    db = _world(tmp_path)
    fired: list[int] = []

    def handler(timer: Timer, now: datetime) -> None:
        if timer.payload["n"] == 1:
            db.fail_writes = 1  # the hand-back write fails too
            raise Unavailable("the database connection was lost", code="database_unavailable")
        with db.write() as conn:
            complete(conn, timer)
        fired.append(int(timer.payload["n"]))

    try:
        scheduler = Scheduler(db, {"test.tick": handler}, clock=lambda: NOW)
        assert scheduler.tick() == 1
        left = _rows(db)
        # Timer 1 keeps its claim until the lease runs out; then any replica claims it again.
        later = Scheduler(db, {"test.tick": handler}, clock=lambda: NOW + scheduler.lease * 2)
        db.fail_writes = 0
        assert [t.payload["n"] for t in later.claim()] == [1]
    finally:
        db.dispose()
    assert fired == [2]
    assert left[1][2] is not None


def test_a_callback_attempt_that_cannot_be_recorded_is_retried_in_a_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_record = CallbackDelivery._record  # pyright: ignore[reportPrivateUsage]
    failures = {"left": 1}

    def record(self: CallbackDelivery, conn: Connection, *args: Any) -> Any:
        if failures["left"]:
            failures["left"] -= 1  # the first result is lost with the connection
            raise Unavailable("the database connection was lost", code="database_unavailable")
        return real_record(self, conn, *args)

    monkeypatch.setattr(CallbackDelivery, "_record", record)
    url = f"sqlite:///{tmp_path / 'signoff.db'}"
    migrate(url)
    people = prepare(url, 1)
    settings = Settings(
        database_url=url,
        timer_interval=0.05,
        callback_retry_delays=(30.0,),  # a retry from the schedule would come far too late
        webhook_keys_path=str(tmp_path / "webhook-keys.json"),
        audit_key_file=str(tmp_path / "audit.key"),
        secret_key_file=str(tmp_path / "secret.key"),
    )
    with ServerThread(settings) as server, Receiver() as receiver:
        receiver.verifier, _ = pinned_verifier(server.url)
        with httpx.Client(base_url=server.url, timeout=10) as http:
            body = request_body("rec-1", callback=receiver.url, sla="PT1H", thread=0, n=1)
            agent = {"authorization": f"Bearer {people.agent_keys[0]}"}
            request_id = http.post("/v1/requests", json=body, headers=agent).json()["id"]
            decided = http.post(
                f"/v1/requests/{request_id}/decisions",
                json={"verdict": "approve"},
                headers={"authorization": f"Bearer {people.reviewer_tokens[0]}"},
            )
            assert decided.status_code == 200, decided.text
            started = time.monotonic()

            def delivered() -> bool:
                got = http.get(f"/v1/requests/{request_id}", headers=agent).json()
                return got["callback_status"] == "delivered"

            wait_until("the callback to be delivered", delivered, 15, 0.05)
            took = time.monotonic() - started
    posts = receiver.of_request(request_id)
    assert failures["left"] == 0
    assert len(posts) == 2, posts  # the unrecorded POST, then the one recorded
    assert len({p.webhook_id for p in posts}) == 1  # under one webhook-id
    assert took < 5.0, f"delivered {took:.1f} s after the decision"  # not at the lease (60 s)
