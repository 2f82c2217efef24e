"""Crash suite: agents create and reviewers decide at load while server processes are SIGKILLed
and restarted at random moments; afterwards the database, the receiver and an offline audit
verification must show that nothing acknowledged was lost or applied twice.

Two set-ups: SQLite with one server process (clients see it down until it is back), and
PostgreSQL with two replicas (clients fail over to the other one, like behind a load balancer;
sometimes both die at once). Every request carries a callback URL; a fifth of them get a short
deadline and no decision, so their timers must fire, once, across the kills.

Checked after the load stops and the system settles:
- every acknowledged create exists, under its idempotency key (retries after a lost answer
  return the same request);
- every acknowledged decision is recorded exactly once, with its verdict; no request has more
  than one closing decision or more than one decision per reviewer;
- every request that had to expire did, with exactly one `request.expired` event, and its timer
  is gone;
- every closed request's callback reached the receiver, signature verified, always under the one
  `webhook-id` it was queued with;
- `signoff audit export` + `signoff audit verify` (offline, with the published key) pass.

The default run loads for about 6 s per set-up (longer if 3 kills have not happened by then);
`nox -s soak` sets SIGNOFF_SOAK_SECONDS for a long run. Each test prints one `SOAK …` summary
line (runs, kills, requests, decisions, callbacks, lost, duplicated decisions, audit verify).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from .cluster import (
    Identities,
    Killer,
    Ledger,
    Phases,
    Receiver,
    ServerProcess,
    StoreReport,
    Workload,
    audit_verify,
    check_store,
    pg_reachable,
    pinned_verifier,
    postgres_database,
    prepare,
    record_summary,
    run_chaos,
    servers,
    settled,
    soak_seconds,
    wait_until,
)

THREADS = 6
MIN_KILLS = 3
CALLBACK_WORKERS = 16  # Settings.callback_workers: attempts in flight per process


def _crash_run(
    label: str,
    url: str,
    workdir: Path,
    *,
    replicas: int,
    seconds: float,
    between: tuple[float, float],
) -> None:
    seed = random.randrange(10_000)  # in the summary: the load shape and the kill choices
    phases = Phases()
    identities: Identities = prepare(url, THREADS)
    with servers(replicas, url, workdir) as started:
        phases.mark("start")
        verifier, audit_key = pinned_verifier(started[0].url)
        with Receiver(verifier) as receiver:
            workload = Workload(
                [s.url for s in started],
                identities,
                callback=receiver.url,
                threads=THREADS,
                seed=seed,
            ).start()
            killer = Killer(started, between=between, seed=seed)
            try:
                seconds = run_chaos(
                    killer, seconds=seconds, min_kills=MIN_KILLS, max_seconds=seconds + 60
                )
            finally:
                phases.mark("chaos")
                killer.stop()
                phases.mark("restarts")
                workload.stop()
                phases.mark("workload-stop")
            ledger = workload.ledger
            wait_until(
                "every short deadline to fire and every callback to be delivered",
                lambda: settled(url, ledger),
                timeout=90,
                step=0.5,
            )
            phases.mark("settle")
            for server in started:
                server.stop()
            phases.mark("stop")
            report = check_store(url, ledger, receiver)
            phases.mark("check")
    audit = audit_verify(url, workdir, audit_key)
    phases.mark("audit")
    print(phases, flush=True)
    _report(label, seed, seconds, started, killer, ledger, report, audit.ok)
    assert not killer.errors, killer.errors
    assert not ledger.unexpected, ledger.unexpected[:10]
    assert report.problems == [], report.problems
    assert audit.ok, audit.output
    assert killer.kills >= MIN_KILLS, "the run was too short to kill anything"
    # At least once, never a storm: a callback is sent again only if a kill struck between its
    # POST and the record of the answer.
    assert report.max_deliveries_per_id <= 1 + killer.kills, report.max_deliveries_per_id
    assert report.duplicate_deliveries <= killer.kills * CALLBACK_WORKERS
    assert len(ledger.decided) > 10, ledger.summary()
    assert len(ledger.expiring) > 3, ledger.summary()


def _report(
    label: str,
    seed: int,
    seconds: float,
    started: list[ServerProcess],
    killer: Killer,
    ledger: Ledger,
    report: StoreReport,
    audit_ok: bool,
) -> None:
    figures: dict[str, Any] = {
        "runs": 1,
        "seed": seed,
        "seconds": round(seconds, 1),
        "processes": len(started),
        "kills": killer.kills,
        "starts": sum(s.starts for s in started),
        **ledger.summary(),
        "expired": report.expired,
        "closed": report.closed,
        "callbacks": report.callbacks,
        "deliveries": report.deliveries,
        "duplicate_deliveries": report.duplicate_deliveries,
        "max_deliveries_per_id": report.max_deliveries_per_id,
        "lost": report.lost,
        "duplicated_decisions": report.duplicated_decisions,
        "timers_fired_twice": report.timers_fired_twice,
        "audit_entries": report.audit_entries,
        "audit_verify": "pass" if audit_ok else "FAIL",
        "problems": len(report.problems),
    }
    record_summary(label, figures)


@pytest.mark.slow
def test_sigkill_sqlite_single_node(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'signoff.db'}"
    from signoff_server.db import migrate

    migrate(url)
    _crash_run(
        "crash-sqlite-1-node",
        url,
        tmp_path,
        replicas=1,
        seconds=soak_seconds(6.0),
        between=(1.0, 3.0),
    )


@pytest.mark.slow
@pytest.mark.postgres
def test_sigkill_postgres_two_replicas(tmp_path: Path) -> None:
    reason = pg_reachable()
    if reason is not None:
        pytest.skip(reason)
    with postgres_database() as url:
        _crash_run(
            "crash-postgres-2-replicas",
            url,
            tmp_path,
            replicas=2,
            seconds=soak_seconds(6.0),
            between=(0.7, 2.0),
        )
