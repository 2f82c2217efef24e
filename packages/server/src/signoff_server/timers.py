"""Durable timers: SLA deadlines, escalation steps and callback retries are rows in `timers`.

A timer is an absolute instant in the database, so a crash loses nothing. The scheduler claims
due timers with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so replicas share the work; a
write transaction on SQLite) and hands each to the handler registered for its kind. A handler
makes its effect and calls `complete(conn, timer)` in the same transaction: `complete` deletes
the row only if this claim's lease token still holds it, so an effect commits at most once even
when a lease ran out and another replica re-claimed the timer. A crashed claim simply expires and
the timer is claimed again.

Each tick costs in proportion to the timers that are due, not the ones pending: the claim query
walks the `due_at` index.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    String,
    Table,
    bindparam,
    delete,
    exists,
    insert,
    or_,
    select,
    update,
)
from starlette.concurrency import run_in_threadpool

from signoff_server.db import Database
from signoff_server.errors import Conflict, Unavailable
from signoff_server.schema import AutoId, UTCDateTime, metadata

__all__ = ["Scheduler", "Timer", "TimerHandler", "arm", "complete", "release", "timers"]

log = logging.getLogger("signoff.timers")

_FAULT_DELAY = timedelta(seconds=1)

timers = Table(
    "timers",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("kind", String(64), nullable=False),
    Column("request_id", String(40), index=True),
    Column("due_at", UTCDateTime(), nullable=False),
    # What the handler checks before acting, e.g. the escalation step it was armed for.
    Column("fence", BigInteger, nullable=False, default=0),
    Column("payload", JSON, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("lease_until", UTCDateTime()),
    Column("lease_token", String(32)),
    Column("created_at", UTCDateTime(), nullable=False),
    Index(None, "due_at"),
)


@dataclass(frozen=True, slots=True)
class Timer:
    """A claimed timer, as handed to its handler."""

    id: int
    kind: str
    request_id: str | None
    due_at: datetime
    fence: int
    payload: dict[str, Any]
    attempts: int
    lease_token: str


class TimerHandler(Protocol):
    """Acts on one claimed timer. Must call `complete(conn, timer)` in its effect's transaction."""

    def __call__(self, timer: Timer, now: datetime) -> None: ...


def arm(
    conn: Connection,
    *,
    kind: str,
    due_at: datetime,
    now: datetime,
    request_id: str | None = None,
    fence: int = 0,
    payload: Mapping[str, Any] | None = None,
) -> None:
    """Schedule a timer, in the caller's transaction (so it exists iff the change commits)."""
    conn.execute(
        insert(timers).values(
            kind=kind,
            request_id=request_id,
            due_at=due_at,
            fence=fence,
            payload=dict(payload or {}),
            attempts=0,
            created_at=now,
        )
    )


def complete(conn: Connection, timer: Timer) -> None:
    """Delete the timer if this claim still holds it; else raise Conflict (roll the effect back)."""
    result = conn.execute(
        delete(timers).where(timers.c.id == timer.id, timers.c.lease_token == timer.lease_token)
    )
    if result.rowcount != 1:
        raise Conflict(f"timer {timer.id} was re-claimed elsewhere", code="timer_reclaimed")


def release(conn: Connection, timer: Timer, *, due_at: datetime) -> None:
    """Give a claimed timer back unfired, due again at `due_at` (e.g. its handler is busy).

    A no-op if this claim no longer holds the timer.
    """
    conn.execute(
        update(timers)
        .where(timers.c.id == timer.id, timers.c.lease_token == timer.lease_token)
        .values(due_at=due_at, lease_until=None, lease_token=None)
    )


# A request's timers fire in due order, even across replicas: a timer is claimable only once no
# timer of its request is due earlier (claimed elsewhere, or not yet fired). Otherwise, when an
# escalation and a deadline fall due together, one replica could expire the request while
# another still held its escalation.
_EARLIER = timers.alias("earlier")
_EARLIER_DUE = exists().where(
    _EARLIER.c.request_id == timers.c.request_id, _EARLIER.c.due_at < timers.c.due_at
)

_ANY_DUE = (
    select(timers.c.id)
    .where(
        timers.c.due_at <= bindparam("now"),
        or_(timers.c.lease_until.is_(None), timers.c.lease_until < bindparam("now")),
    )
    .limit(1)
)


class Scheduler:
    """Claims due timers and runs their handlers; `run()` loops until cancelled.

    `wake()` makes a running loop tick at once instead of after its pause, e.g. right after a
    commit that armed a timer due now.
    """

    def __init__(
        self,
        db: Database,
        handlers: Mapping[str, TimerHandler],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        batch: int = 100,
        lease: timedelta = timedelta(seconds=60),
        interval: float = 0.25,
    ) -> None:
        self.db = db
        self.handlers = dict(handlers)
        self.clock = clock
        self.batch = batch
        self.lease = lease
        self.interval = interval
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None

    def claim(self) -> list[Timer]:
        """Lease up to `batch` due timers to this process."""
        now = self.clock()
        token = secrets.token_hex(16)
        # Most ticks find nothing due: ask with a plain read first, which (unlike the claiming
        # write transaction) takes no write lock that request handlers would have to wait for.
        with self.db.read() as conn:
            if conn.execute(_ANY_DUE, {"now": now}).first() is None:
                return []
        with self.db.write() as conn:
            query = (
                select(timers)
                .where(
                    timers.c.due_at <= now,
                    or_(timers.c.lease_until.is_(None), timers.c.lease_until < now),
                    ~_EARLIER_DUE,
                )
                .order_by(timers.c.due_at)
                .limit(self.batch)
            )
            if not self.db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            rows = list(conn.execute(query))
            if not rows:
                return []
            conn.execute(
                update(timers)
                .where(timers.c.id.in_([r.id for r in rows]))
                .values(lease_until=now + self.lease, lease_token=token)
            )
        return [
            Timer(r.id, r.kind, r.request_id, r.due_at, r.fence, r.payload, r.attempts, token)
            for r in rows
        ]

    def tick(self) -> int:
        """Fire every timer due now; returns how many fired.

        A handler that fails hands its timer back: after a store fault (`Unavailable`: the
        connection dropped, the disk is full) due again in a second, its backoff untouched (the
        timer is not at fault); after any other error with exponential backoff. If even that
        hand-back fails, the claim's lease runs out and the timer is claimed again; the other
        timers of the batch are still tried.
        """
        fired = 0
        for timer in self.claim():
            handler = self.handlers.get(timer.kind)
            try:
                if handler is None:
                    raise LookupError(f"no handler for timer kind {timer.kind!r}")
                handler(timer, self.clock())
            except Conflict:
                continue  # already done elsewhere, or re-claimed: nothing to retry
            except Unavailable as exc:
                log.warning("timer %s (%s) not fired: %s; retrying", timer.id, timer.kind, exc)
                self._hand_back(timer, _FAULT_DELAY, count=False)
                continue
            except Exception:
                log.exception("timer %s (%s) failed; retrying later", timer.id, timer.kind)
                delay = timedelta(seconds=min(2 ** min(timer.attempts, 10), 600))
                self._hand_back(timer, delay, count=True)
                continue
            fired += 1
        return fired

    def _hand_back(self, timer: Timer, delay: timedelta, *, count: bool) -> None:
        values: dict[str, Any] = {
            "due_at": self.clock() + delay,
            "lease_until": None,
            "lease_token": None,
        }
        if count:
            values["attempts"] = timer.attempts + 1
        try:
            with self.db.write() as conn:
                conn.execute(
                    update(timers)
                    .where(timers.c.id == timer.id, timers.c.lease_token == timer.lease_token)
                    .values(**values)
                )
        except Exception as exc:
            log.warning(
                "could not hand back timer %s (%s): %s; claimed again when its lease runs out",
                timer.id,
                timer.kind,
                exc,
            )

    def wake(self) -> None:
        """Have the running loop tick now rather than after its pause; safe from any thread."""
        loop, wakeup = self._loop, self._wakeup
        if loop is None or wakeup is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closing: nothing left to wake
            loop.call_soon_threadsafe(wakeup.set)

    async def run(self) -> None:
        """Tick forever (in a worker thread), pausing `interval` seconds when nothing is due
        unless `wake()` is called."""
        wakeup = asyncio.Event()
        self._loop, self._wakeup = asyncio.get_running_loop(), wakeup
        try:
            while True:
                wakeup.clear()
                try:
                    fired = await run_in_threadpool(self.tick)
                except Unavailable as exc:  # the claim itself failed; db.py logged the fault
                    log.debug("scheduler tick failed: %s; retrying", exc)
                    fired = 0
                except Exception:
                    log.exception("scheduler tick failed; retrying")
                    fired = 0
                if fired < self.batch:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wakeup.wait(), self.interval)
        finally:
            self._loop = self._wakeup = None
