"""Delivering queued callbacks: claim → sign and POST → record, at least once.

Each attempt is a durable timer (`callback.deliver`). The scheduler claims it with a lease and
hands it to `CallbackDelivery.handle`, which passes it to a bounded pool of worker threads so a
slow receiver never holds up SLA deadlines or other callbacks. A worker:

1. reads the outbox row (a short read transaction);
2. signs the frozen body with a fresh `webhook-timestamp` and every active key, and POSTs it,
   outside any transaction, without following redirects;
3. records the result in one write transaction that also completes the timer (so the result is
   recorded at most once) and, after a failure, arms the next attempt's timer.

2xx is delivered; 401, 404, 409 and 410 end the chain as refused: the receiver will not take
this callback, and sending it again cannot change that (n8n answers 404/409 when the execution is
not waiting any more and 401 to a bad resume token; signoff's receivers answer 401 to a callback
they cannot verify). Anything else (other statuses, timeouts, connection errors) retries on the
schedule with ±20% jitter, and after the last attempt the callback is `failed`, with a
`callback.failed` timeline event, an error log line and the `signoff_callbacks_failed_total`
metric. A refused callback can still be re-sent with `signoff webhooks replay`.

A crash at any point loses nothing: an unrecorded attempt's timer is claimed again when its
lease runs out, and the receiver sees the same `webhook-id` again (it deduplicates).
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Row, func, select, update

from signoff.models import CallbackStatus
from signoff.webhooks import Signer
from signoff_server import audit, timers
from signoff_server.callbacks.keys import KeyRing, hmac_secrets_for
from signoff_server.callbacks.outbox import (
    DELIVER_TIMER,
    DeliveryState,
    callback_outbox,
    set_request_status,
)
from signoff_server.callbacks.targets import CallbackTargets, TargetRefused, origin
from signoff_server.db import Database
from signoff_server.errors import Conflict, Unavailable
from signoff_server.timers import Scheduler, Timer, TimerHandler

__all__ = [
    "REFUSING_STATUSES",
    "AttemptResult",
    "CallbackDelivery",
    "CallbackMetrics",
    "Result",
    "RetrySchedule",
]

log = logging.getLogger("signoff.callbacks")

REFUSING_STATUSES = frozenset({401, 404, 409, 410})
"""Answers that end the retries: the receiver will not take this callback, whatever we resend."""
_REFUSALS = {
    401: "unauthorized: the receiver did not accept the signature or the URL's token",
    404: "not found: nothing waits for this callback at the URL (any more)",
    409: "conflict: the receiver is no longer waiting for this callback",
    410: "gone: the receiver no longer wants this callback",
}
USER_AGENT = "signoff-webhooks/0.1"
_RESPONSE_LIMIT = 64 * 1024  # read at most this much of an answer (keeps the connection reusable)
_LEASE_MARGIN = timedelta(seconds=5)
_BUSY_DELAY = timedelta(seconds=1)
_SLOT_WAIT = 0.5  # seconds the scheduler may wait for a free worker before handing back


class Result(StrEnum):
    """What one attempt came to."""

    DELIVERED = "delivered"
    REFUSED = "refused"
    RETRY = "retry"
    BLOCKED = "blocked"
    """The URL is no longer allowed (the allow-list changed): fail closed, never send."""


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """One POST: its result, the receiver's status code (if it answered), an error, the time."""

    result: Result
    status_code: int | None
    error: str | None
    seconds: float


class RetrySchedule:
    """Pauses between attempts: `delays[i]` seconds (±`jitter`) after failed attempt i + 1."""

    def __init__(self, delays: Sequence[float], *, jitter: float = 0.2) -> None:
        if any(d <= 0 for d in delays):
            raise ValueError("callback retry delays must be positive")
        if not 0 <= jitter < 1:
            raise ValueError("jitter is a fraction in [0, 1)")
        self.delays = tuple(float(d) for d in delays)
        self.jitter = jitter

    @property
    def attempts(self) -> int:
        """How many attempts a callback gets in all."""
        return len(self.delays) + 1

    @property
    def total(self) -> timedelta:
        """How long the retries last without jitter, from the first attempt to the last."""
        return timedelta(seconds=sum(self.delays))

    def next_delay(self, attempt: int, rng: random.Random) -> timedelta | None:
        """The pause after failed attempt number `attempt` (1-based); None after the last."""
        if attempt > len(self.delays):
            return None
        base = self.delays[attempt - 1]
        return timedelta(seconds=base * rng.uniform(1 - self.jitter, 1 + self.jitter))


class _OutboxCollector(Collector):
    """`signoff_callbacks{state=…}`: counted in the database at scrape time."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "signoff_callbacks", "Callbacks in the outbox, by delivery state", labels=["state"]
        )
        with self._db.read() as conn:
            counts = {
                row.state: row.n
                for row in conn.execute(
                    select(callback_outbox.c.state, func.count().label("n")).group_by(
                        callback_outbox.c.state
                    )
                )
            }
        for state in DeliveryState:
            family.add_metric([state.value], counts.get(state.value, 0))
        yield family


class CallbackMetrics:
    """Delivery metrics, on the app's registry."""

    def __init__(self, registry: CollectorRegistry, db: Database) -> None:
        self.attempts = Counter(
            "signoff_callback_attempts",
            "Callback delivery attempts, by result (delivered, refused, retry, blocked)",
            ["result"],
            registry=registry,
        )
        self.failed = Counter(
            "signoff_callbacks_failed",
            "Callbacks given up on after their last attempt (alert on any increase)",
            registry=registry,
        )
        self.attempt_seconds = Histogram(
            "signoff_callback_attempt_seconds",
            "How long one delivery attempt took (POST and answer)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.delivery_seconds = Histogram(
            "signoff_callback_delivery_seconds",
            "From the request closing to its callback being delivered",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 1, 10, 60, 600, 3600, 21600, 86400, 259200),
            registry=registry,
        )
        registry.register(_OutboxCollector(db))


@functools.lru_cache(maxsize=32)
def _signer(keys: tuple[str, ...]) -> Signer:
    """A Signer for this exact set of keys, parsed once (keys change only on rotation)."""
    return Signer(keys)


def _drain(response: httpx.Response) -> None:
    """Read (and drop) up to a small limit of the answer, so the connection can be reused."""
    size = 0
    for chunk in response.iter_raw():
        size += len(chunk)
        if size > _RESPONSE_LIMIT:
            break


def _describe(exc: Exception, url: str) -> str:
    """An error for the timeline: its kind and message, never the URL's path or query."""
    if isinstance(exc, httpx.TimeoutException):
        text = f"timeout ({type(exc).__name__})"
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text.replace(url, origin(url))[:300]


class CallbackDelivery:
    """The delivery worker: a timer handler plus a bounded pool of threads that POST.

    `clock` (aware UTC datetimes) and `rng` (jitter) are the seams for tests; `bind()` connects
    it to the scheduler (its lease bounds how long a claimed attempt may wait to start).
    """

    def __init__(
        self,
        db: Database,
        keyring: KeyRing,
        targets: CallbackTargets,
        *,
        schedule: RetrySchedule,
        timeout: float,
        workers: int,
        metrics: CallbackMetrics,
        clock: Callable[[], datetime],
        rng: random.Random | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("callback_workers must be at least 1")
        if timeout <= 0:
            raise ValueError("callback_timeout must be positive")
        self.db = db
        self.keyring = keyring
        self.targets = targets
        self.schedule = schedule
        self.timeout = timeout
        self.workers = workers
        self.metrics = metrics
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self.lease = timedelta(seconds=60)
        self._wake: Callable[[], None] = lambda: None
        self._http: httpx.Client | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._slots = threading.BoundedSemaphore(workers * 4)  # running + queued attempts
        self._saturated_until = 0.0  # monotonic; while saturated, hand back without waiting
        self._idle = threading.Condition()
        self._in_flight: dict[Future[None], Timer] = {}
        self._abandoned: list[Timer] = []

    @property
    def handlers(self) -> Mapping[str, TimerHandler]:
        """The timer handlers to register with the scheduler."""
        return {DELIVER_TIMER: self.handle}

    def bind(self, scheduler: Scheduler) -> None:
        """Take the scheduler's lease length, and its wake-up for `kick()`."""
        if timedelta(seconds=self.timeout) + _LEASE_MARGIN * 2 > scheduler.lease:
            raise ValueError(
                f"callback_timeout ({self.timeout} s) must be well under the timer lease "
                f"({scheduler.lease.total_seconds()} s)"
            )
        self.lease = scheduler.lease
        self._wake = scheduler.wake

    def kick(self) -> None:
        """Have the scheduler look for due attempts now (after a commit that queued one)."""
        self._wake()

    # lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        """Open the HTTP client and the worker pool."""
        if self._pool is not None:
            return
        self._http = httpx.Client(
            timeout=self.timeout,
            follow_redirects=False,
            trust_env=False,  # callbacks go direct: no proxy from the environment
            limits=httpx.Limits(
                max_connections=self.workers * 2, max_keepalive_connections=self.workers
            ),
        )
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="signoff-callback")

    def stop(self) -> None:
        """Finish attempts in flight, hand back the queued ones, close the HTTP client."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        with self._idle:
            abandoned, self._abandoned = self._abandoned, []
        for timer in abandoned:
            self._release(timer, self.clock())
        if self._http is not None:
            self._http.close()
            self._http = None

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until no attempt is queued or running; False on timeout. For tests and tools."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    # the timer handler ------------------------------------------------------------------------

    def handle(self, timer: Timer, now: datetime) -> None:
        """Timer handler: queue the attempt on a worker, or give the timer back if all are busy.

        With healthy receivers slots free up within milliseconds, so waiting briefly for one
        paces the scheduler to the receivers (no churn on a backlog). If none frees up within
        `_SLOT_WAIT` (receivers hanging until their timeout), further attempts are handed back
        at once for a while, so the scheduler is never held up for long.
        """
        pool = self._pool
        if pool is None or not self._acquire_slot():
            self._release(timer, now + _BUSY_DELAY)
            return
        with self._idle:
            try:
                future = pool.submit(self._attempt, timer, now)
            except RuntimeError:  # shutting down
                self._slots.release()
                self._release(timer, now)
                return
            self._in_flight[future] = timer
            future.add_done_callback(self._done)

    def _acquire_slot(self) -> bool:
        if self._slots.acquire(blocking=False):
            return True
        if time.monotonic() < self._saturated_until:
            return False
        if self._slots.acquire(timeout=_SLOT_WAIT):
            return True
        self._saturated_until = time.monotonic() + _BUSY_DELAY.total_seconds()
        return False

    def _done(self, future: Future[None]) -> None:
        with self._idle:
            timer = self._in_flight.pop(future, None)
            if timer is not None:
                self._slots.release()
                if future.cancelled():  # queued when the pool shut down: hand it back
                    self._abandoned.append(timer)
            self._idle.notify_all()

    def _release(self, timer: Timer, due_at: datetime) -> None:
        try:
            with self.db.write() as conn:
                timers.release(conn, timer, due_at=due_at)
        except Exception:
            log.exception("could not hand back callback timer %s; its lease will run out", timer.id)

    def _attempt(self, timer: Timer, claimed_at: datetime) -> None:
        try:
            self._run(timer, claimed_at)
        except Conflict:
            pass  # the timer was re-claimed elsewhere: that claim records its own attempt
        except Unavailable as exc:
            # The database dropped the connection (or filled up) while reading or recording the
            # attempt: try again in a second rather than when the lease runs out (a minute).
            # If the POST went out, the receiver sees the same webhook-id again; if the record
            # did commit after all, the timer is gone and this hand-back does nothing.
            log.warning(
                "callback attempt for %s hit a database fault (%s); retrying", timer.request_id, exc
            )
            self._release(timer, self.clock() + _BUSY_DELAY)
        except Exception:
            log.exception(
                "callback attempt for %s failed unexpectedly; retried when its lease runs out",
                timer.request_id,
            )

    def _run(self, timer: Timer, claimed_at: datetime) -> None:
        if self.clock() > claimed_at + self.lease - timedelta(seconds=self.timeout) - _LEASE_MARGIN:
            # Waited too long for a worker: the lease could run out mid-attempt and another
            # claim would post in parallel. Leave it; it is claimed again when the lease ends.
            log.warning("callback attempt for %s waited out its lease", timer.request_id)
            return
        event_id = str(timer.payload.get("event_id", ""))
        with self.db.read() as conn:
            row = conn.execute(
                select(callback_outbox).where(callback_outbox.c.event_id == event_id)
            ).first()
            secrets = hmac_secrets_for(conn, row.agent_id) if row is not None else []
        if row is None or row.generation != timer.fence or row.state != DeliveryState.PENDING:
            with self.db.write() as conn:
                timers.complete(conn, timer)  # a stale chain (replayed, or already settled)
            return
        outcome = self._post(row, secrets)
        now = self.clock()
        with self.db.write() as conn:
            timers.complete(conn, timer)
            settled, attempt = self._record(conn, row, timer, outcome, now)
        self.metrics.attempts.labels(result=outcome.result.value).inc()
        self.metrics.attempt_seconds.observe(outcome.seconds)
        if settled is DeliveryState.DELIVERED:
            self.metrics.delivery_seconds.observe(max((now - row.created_at).total_seconds(), 0))
        elif settled is DeliveryState.FAILED:
            self.metrics.failed.inc()
            log.error(
                "callback %s for %s failed after %d attempts; last: %s",
                row.event_id,
                row.request_id,
                attempt,
                outcome.error or f"HTTP {outcome.status_code}",
                extra={"alert": "callback.failed", "target": origin(row.url)},
            )

    def _post(self, row: Row[Any], secrets: list[str]) -> AttemptResult:
        now = self.clock()
        try:
            destination = self.targets.destination(row.url)
        except TargetRefused as exc:
            return AttemptResult(Result.BLOCKED, None, f"callback.url {exc}", 0.0)
        signing = self.keyring.signing_keys(now)
        if not signing:
            log.error("no active webhook signing key in %s: callbacks wait", self.keyring.path)
            return AttemptResult(Result.RETRY, None, "no active webhook signing key", 0.0)
        body = row.body.encode()
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            **destination.headers,
            **_signer((*(k.secret for k in signing), *secrets)).headers(
                body, msg_id=row.event_id, timestamp=int(now.timestamp())
            ),
        }
        http = self._http
        if http is None:
            return AttemptResult(Result.RETRY, None, "delivery worker stopped", 0.0)
        started = time.perf_counter()
        try:
            with http.stream(
                "POST",
                destination.url,
                content=body,
                headers=headers,
                extensions=destination.extensions,
            ) as response:
                _drain(response)
                status = response.status_code
        except httpx.HTTPError as exc:
            return AttemptResult(
                Result.RETRY, None, _describe(exc, row.url), time.perf_counter() - started
            )
        seconds = time.perf_counter() - started
        if 200 <= status < 300:
            return AttemptResult(Result.DELIVERED, status, None, seconds)
        if status in REFUSING_STATUSES:
            return AttemptResult(
                Result.REFUSED, status, f"HTTP {status} {_REFUSALS[status]}", seconds
            )
        return AttemptResult(Result.RETRY, status, f"HTTP {status}", seconds)

    def _record(
        self, conn: Connection, row: Row[Any], timer: Timer, outcome: AttemptResult, now: datetime
    ) -> tuple[DeliveryState | None, int]:
        """Record one attempt; settle the callback or arm the next attempt. Returns the state
        the callback settled in (None: still pending) and the attempt's number."""
        current = conn.execute(
            select(callback_outbox)
            .where(callback_outbox.c.event_id == row.event_id)
            .with_for_update()
        ).first()
        if current is None or current.generation != timer.fence:
            return None, 0  # replayed meanwhile: the new chain owns the state
        attempt = current.attempts + 1
        values: dict[str, Any] = {
            "attempts": attempt,
            "last_attempt_at": now,
            "last_status_code": outcome.status_code,
            "last_error": outcome.error,
            "next_attempt_at": None,
        }
        state: DeliveryState | None = None
        next_at: datetime | None = None
        if outcome.result is Result.DELIVERED:
            state = DeliveryState.DELIVERED
            values["delivered_at"] = now
        elif outcome.result is Result.REFUSED:
            state = DeliveryState.REFUSED
        elif outcome.result is Result.BLOCKED:
            state = DeliveryState.FAILED
        else:
            delay = self.schedule.next_delay(attempt, self.rng)
            if delay is None:
                state = DeliveryState.FAILED
            else:
                next_at = now + delay
                values["next_attempt_at"] = next_at
                timers.arm(
                    conn,
                    kind=DELIVER_TIMER,
                    due_at=next_at,
                    now=now,
                    request_id=row.request_id,
                    fence=timer.fence,
                    payload={"event_id": row.event_id},
                )
        if state is not None:
            values["state"] = state.value
        conn.execute(
            update(callback_outbox)
            .where(callback_outbox.c.event_id == row.event_id)
            .values(**values)
        )
        audit.append(
            conn,
            type="callback.attempted",
            actor="system",
            at=now,
            request_id=row.request_id,
            data={
                "event_id": row.event_id,
                "attempt": attempt,
                "target": origin(row.url),
                "status_code": outcome.status_code,
                "latency_ms": round(outcome.seconds * 1000, 1),
                "error": outcome.error,
                "result": outcome.result.value,
                "next_attempt_at": next_at.isoformat() if next_at else None,
            },
        )
        if state is None:
            return None, attempt
        final = {"event_id": row.event_id, "attempts": attempt}
        if state is DeliveryState.DELIVERED:
            set_request_status(conn, row.request_id, CallbackStatus.DELIVERED)
            audit.append(
                conn,
                type="callback.delivered",
                actor="system",
                at=now,
                request_id=row.request_id,
                data={**final, "status_code": outcome.status_code},
            )
        elif state is DeliveryState.REFUSED:
            # Not delivered, and never retried: the receiver said it does not want it.
            set_request_status(conn, row.request_id, CallbackStatus.FAILED)
            audit.append(
                conn,
                type="callback.refused",
                actor="system",
                at=now,
                request_id=row.request_id,
                data={**final, "status_code": outcome.status_code, "reason": outcome.error},
            )
        else:
            set_request_status(conn, row.request_id, CallbackStatus.FAILED)
            audit.append(
                conn,
                type="callback.failed",
                actor="system",
                at=now,
                request_id=row.request_id,
                data={
                    **final,
                    "last_status_code": outcome.status_code,
                    "last_error": outcome.error,
                    "reason": "blocked"
                    if outcome.result is Result.BLOCKED
                    else "retries_exhausted",
                },
            )
        return state, attempt
