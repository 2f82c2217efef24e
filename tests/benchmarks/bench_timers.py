"""Durable timers under load: lag from due time to effect, and the cost of one scheduler tick.

Run it with `uv run python tests/benchmarks/bench_timers.py [--backends sqlite,postgres]
[--sizes 1000,100000] [--json PATH]`.

For each backend and each size N it builds a fresh, migrated store holding N pending requests,
each with a `request.deadline` timer due a day later (inserted in bulk with SQLAlchemy), then:

* **idle tick**: `Scheduler.tick()` with nothing due, repeated (median and p99, ms);
* **busy tick**: one tick that finds 100 timers due (a full batch) and fires them all: the real
  deadline handler expires 100 requests (row update, decision, audit events), ms per tick;
* **lag**: the real scheduler loop (`Scheduler.run`, 0.25 s pause when idle, the server's default)
  against the wall clock, with 200 more timers due at staggered instants over 10 s (20 a second;
  100,000 requests with a 2-hour SLA come due at about 14 a second) — half SLA deadlines (effect:
  the request's `closed_at`), half escalation steps of the demo policy file (effect: the
  `request.escalated` audit event). Lag = effect time - due time, p50/p99/max.

The claim query walks the `due_at` index, so a tick costs in proportion to the timers that are
due, not the ones pending: the idle tick must cost about the same at N = 100,000 as at N = 1,000
(the script fails when it is more than 3x), and the lag's p99 must stay under 1 s. Exit status 1
when a target is missed, 2 when the benchmark could not run.

PostgreSQL: a database created for the run (trust auth, user `postgres` on 127.0.0.1:5432 unless
`--pg-admin` or `SIGNOFF_TEST_PG` says otherwise) and always dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from _report import Figure, record
from psycopg import sql
from sqlalchemy import insert, select

from signoff.models import RequestCreate, Status
from signoff_server.db import Database, migrate
from signoff_server.lifecycle import DEADLINE_TIMER, Lifecycle
from signoff_server.policy.engine import PolicyEngine
from signoff_server.policy.escalation import ESCALATION_TIMER
from signoff_server.policy.tables import escalations
from signoff_server.schema import agents, audit_events, request_roles, requests
from signoff_server.timers import Scheduler, timers

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "demo" / "signoff.yaml"
DEFAULT_PG_ADMIN = os.environ.get(
    "SIGNOFF_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
)
AGENT = "bench-agent"
CHUNK = 5_000
LAG_TIMERS = 200
LAG_SPREAD = 10.0  # seconds over which the measured timers fall due: 20 a second
BUSY = 100  # timers due for the busy tick: one full claim batch
TARGET_P99_LAG = 1.0
TARGET_IDLE_RATIO = 3.0

PAYLOAD = RequestCreate.model_validate(
    {
        "action": {
            "name": "payments.release",
            "arguments": {"invoice_id": "INV-1042", "amount": "12500.00", "currency": "EUR"},
        },
        "business_object": {"type": "invoice", "id": "INV-1042"},
        "approvals": {"mode": "threshold", "required": 2},
        "sla": "PT2H",
    }
).model_dump(mode="json", exclude={"idempotency_key", "route", "risk"})
PAYLOAD["agent"]["id"] = AGENT


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


# --- stores ---------------------------------------------------------------------------------------


@contextmanager
def sqlite_store() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="bench-timers-") as folder:
        url = f"sqlite:///{Path(folder) / 'signoff.db'}"
        migrate(url)
        yield url


@contextmanager
def postgres_store(admin: str) -> Iterator[str]:
    name = f"bench_timers_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = f"{admin.rsplit('/', 1)[0]}/{name}"
    try:
        migrate(url)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def bulk_requests(
    db: Database, count: int, due_at: datetime, *, kind: str = DEADLINE_TIMER, prefix: str
) -> list[str]:
    """`count` pending requests, each with one timer of `kind` due at `due_at`."""
    now = datetime.now(UTC)
    ids = [f"req_{prefix}{n:012d}" for n in range(count)]
    for start in range(0, count, CHUNK):
        chunk = ids[start : start + CHUNK]
        with db.write() as conn:
            conn.execute(
                insert(requests),
                [
                    {
                        "id": rid,
                        "agent_id": AGENT,
                        "status": Status.PENDING.value,
                        "version": 1,
                        "route_role": "finance-approver",
                        "risk": "high",
                        "object_type": "invoice",
                        "object_id": "INV-1042",
                        "idempotency_key": None,
                        "body_hash": "0" * 64,
                        "payload": PAYLOAD,
                        "policy": None,
                        "assignees": ["alice@example.com"],
                        "escalation_level": 0,
                        "callback_status": None,
                        "outcome": None,
                        "created_at": now,
                        "due_at": due_at if kind == DEADLINE_TIMER else due_at + timedelta(days=1),
                        "closed_at": None,
                    }
                    for rid in chunk
                ],
            )
            conn.execute(
                insert(request_roles),
                [{"request_id": r, "role": "finance-approver"} for r in chunk],
            )
            if kind == ESCALATION_TIMER:
                conn.execute(
                    insert(escalations),
                    [
                        {
                            "request_id": r,
                            "chain": "payments",
                            "steps": [{"wait": "PT30M"}, {"escalate_to": "finance-manager"}],
                            "next_step": 1,
                            "updated_at": now,
                        }
                        for r in chunk
                    ],
                )
            conn.execute(
                insert(timers),
                [
                    {
                        "kind": kind,
                        "request_id": r,
                        "due_at": due_at,
                        "fence": 1 if kind == ESCALATION_TIMER else 0,
                        "payload": {},
                        "attempts": 0,
                        "created_at": now,
                    }
                    for r in chunk
                ],
            )
    return ids


# --- measurements -------------------------------------------------------------------------------


@dataclass
class Result:
    backend: str
    pending: int
    setup_s: float
    idle_tick_ms_p50: float
    idle_tick_ms_p99: float
    busy_tick_ms: float
    busy_fired: int
    lag_ms_p50: float
    lag_ms_p99: float
    lag_ms_max: float
    lag_deadline_ms_p99: float
    lag_escalation_ms_p99: float
    measured: int


def settle(db: Database) -> None:
    """Flush the bulk insert to disk and refresh planner statistics."""
    if db.is_sqlite:
        with db.write() as conn:
            conn.exec_driver_sql("ANALYZE")
        with db.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return
    url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def run_loop(scheduler: Scheduler) -> tuple[threading.Thread, Any]:
    """Run `scheduler.run()` on an event loop in a thread; returns the thread and a stopper."""
    ready = threading.Event()
    holder: dict[str, Any] = {}

    def main() -> None:
        async def body() -> None:
            holder["loop"] = asyncio.get_running_loop()
            holder["task"] = asyncio.current_task()
            ready.set()
            with suppress(asyncio.CancelledError):
                await scheduler.run()

        asyncio.run(body())

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    ready.wait(10)

    def stop() -> None:
        holder["loop"].call_soon_threadsafe(holder["task"].cancel)
        thread.join(30)

    return thread, stop


def measure(backend: str, url: str, pending: int) -> Result:
    db = Database(url)
    try:
        engine = PolicyEngine.load(DEMO, db)
        lifecycle = Lifecycle(db, on_closed=lambda _: None)
        handlers = {DEADLINE_TIMER: lifecycle.fire_deadline, **engine.timer_handlers}
        started = time.perf_counter()
        with db.write() as conn:
            conn.execute(insert(agents).values(id=AGENT, created_at=datetime.now(UTC)))
        engine.sync_people(datetime.now(UTC))
        far = datetime.now(UTC) + timedelta(days=1)
        bulk_requests(db, pending, far, prefix="p")
        setup = time.perf_counter() - started
        settle(db)  # measure the steady state, not the bulk insert's checkpoint I/O

        # Idle ticks: nothing due among `pending` timers.
        clock = FixedClock(datetime.now(UTC))
        scheduler = Scheduler(db, handlers, clock=clock)
        idle: list[float] = []
        for _ in range(200):
            t0 = time.perf_counter()
            fired = scheduler.tick()
            idle.append((time.perf_counter() - t0) * 1000)
            assert fired == 0
        # One busy tick: a full batch due now.
        bulk_requests(db, BUSY, clock.now - timedelta(seconds=1), prefix="b")
        t0 = time.perf_counter()
        busy_fired = scheduler.tick()
        busy_ms = (time.perf_counter() - t0) * 1000

        # Lag: the real loop against the wall clock.
        base = datetime.now(UTC) + timedelta(seconds=2)
        step = timedelta(seconds=LAG_SPREAD / LAG_TIMERS)
        half = LAG_TIMERS // 2
        deadline_ids: list[str] = []
        escalation_ids: list[str] = []
        for n in range(half):
            deadline_ids += bulk_requests(db, 1, base + step * (2 * n), prefix=f"d{n:05d}")
            escalation_ids += bulk_requests(
                db, 1, base + step * (2 * n + 1), kind=ESCALATION_TIMER, prefix=f"e{n:05d}"
            )
        live = Scheduler(db, handlers)  # real clock, 0.25 s pause: the server's defaults
        _, stop = run_loop(live)
        try:
            end = time.monotonic() + LAG_SPREAD + 60
            measured = set(deadline_ids) | set(escalation_ids)
            while time.monotonic() < end:
                with db.read() as conn:
                    left = conn.execute(
                        select(timers.c.id).where(timers.c.request_id.in_(measured)).limit(1)
                    ).first()
                if left is None:
                    break
                time.sleep(0.2)
        finally:
            stop()
        with db.read() as conn:
            deadline_lag = [
                (row.closed_at - row.due_at).total_seconds() * 1000
                for row in conn.execute(
                    select(requests.c.closed_at, requests.c.due_at).where(
                        requests.c.id.in_(deadline_ids)
                    )
                )
                if row.closed_at is not None
            ]
            events = conn.execute(
                select(audit_events.c.request_id, audit_events.c.at).where(
                    audit_events.c.request_id.in_(escalation_ids),
                    audit_events.c.type == "request.escalated",
                )
            ).all()
        planned = {rid: base + step * (2 * n + 1) for n, rid in enumerate(escalation_ids)}
        escalation_lag = [(e.at - planned[e.request_id]).total_seconds() * 1000 for e in events]
        lags = deadline_lag + escalation_lag
        if len(lags) != LAG_TIMERS:
            raise RuntimeError(f"only {len(lags)} of {LAG_TIMERS} measured timers took effect")
        return Result(
            backend=backend,
            pending=pending,
            setup_s=round(setup, 1),
            idle_tick_ms_p50=round(statistics.median(idle), 3),
            idle_tick_ms_p99=round(percentile(idle, 0.99), 3),
            busy_tick_ms=round(busy_ms, 1),
            busy_fired=busy_fired,
            lag_ms_p50=round(percentile(lags, 0.5), 1),
            lag_ms_p99=round(percentile(lags, 0.99), 1),
            lag_ms_max=round(max(lags), 1),
            lag_deadline_ms_p99=round(percentile(deadline_lag, 0.99), 1),
            lag_escalation_ms_p99=round(percentile(escalation_lag, 0.99), 1),
            measured=len(lags),
        )
    finally:
        db.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--pg-admin", default=DEFAULT_PG_ADMIN)
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results: list[Result] = []
    try:
        for backend in args.backends.split(","):
            for size in sizes:
                store = sqlite_store() if backend == "sqlite" else postgres_store(args.pg_admin)
                with store as url:
                    print(f"{backend}: {size:,} pending ...", file=sys.stderr, flush=True)
                    results.append(measure(backend, url, size))
    except (psycopg.OperationalError, RuntimeError) as exc:
        print(f"benchmark could not run: {exc}", file=sys.stderr)
        return 2
    header = (
        f"{'backend':<9}{'pending':>9}{'idle tick p50':>15}{'p99':>8}{'busy tick':>11}"
        f"{'lag p50':>9}{'p99':>8}{'max':>8}   (ms; busy = {BUSY} due)"
    )
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(header)
    for r in results:
        print(
            f"{r.backend:<9}{r.pending:>9,}{r.idle_tick_ms_p50:>15.2f}{r.idle_tick_ms_p99:>8.2f}"
            f"{r.busy_tick_ms:>11.1f}{r.lag_ms_p50:>9.1f}{r.lag_ms_p99:>8.1f}{r.lag_ms_max:>8.1f}"
        )
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    failed = False
    figures: list[Figure] = []
    for backend in args.backends.split(","):
        rows = sorted((r for r in results if r.backend == backend), key=lambda r: r.pending)
        if len(rows) >= 2:
            ratio = rows[-1].idle_tick_ms_p50 / max(rows[0].idle_tick_ms_p50, 1e-6)
            figures.append(
                Figure(
                    figure=f"{backend}: idle scheduler tick at {rows[-1].pending:,} pending, p50",
                    value=rows[-1].idle_tick_ms_p50,
                    unit="ms",
                    target=f"≤ {TARGET_IDLE_RATIO:.0f}x",
                    passed=ratio <= TARGET_IDLE_RATIO,
                    compared_with=f"the same at {rows[0].pending:,} pending",
                    compared_value=rows[0].idle_tick_ms_p50,
                    ratio=ratio,
                )
            )
            print(
                f"{backend}: idle tick at {rows[-1].pending:,} / {rows[0].pending:,} = {ratio:.2f}x"
            )
            failed |= ratio > TARGET_IDLE_RATIO
        for r in rows:
            figures.append(
                Figure(
                    figure=f"{backend}, {r.pending:,} pending: timer lag p99",
                    value=r.lag_ms_p99,
                    unit="ms",
                    target=f"< {TARGET_P99_LAG * 1000:.0f} ms",
                    passed=r.lag_ms_p99 / 1000 < TARGET_P99_LAG,
                    note=f"busy tick ({r.busy_fired} due) {r.busy_tick_ms:.1f} ms",
                )
            )
            if r.lag_ms_p99 / 1000 >= TARGET_P99_LAG:
                print(f"{backend} {r.pending:,}: p99 lag {r.lag_ms_p99} ms misses the 1 s target")
                failed = True
    record(figures)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
