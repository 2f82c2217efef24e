"""Scale-out on PostgreSQL: several `signoff serve` processes (one port each) on one database.

The replicas are started exactly as an operator starts them, `signoff serve --db postgresql://…`
with shared key files, all at once on a fresh database (so their start-up migrations race), and
with the server's production timings (timer tick, long-poll re-check). Then:

- a deadline timer fires exactly once although both replicas tick, and both share the work;
- every callback is delivered exactly once (healthy receiver, no crash: no duplicates at all)
  under its stable webhook-id, whichever replica closed the request;
- a long-poll on replica A answers as soon as replica B records the decision (LISTEN/NOTIFY),
  not at the periodic re-check;
- when the listening connections are cut and cannot come back for a while, a decision taken in
  that gap still wakes the long-poll as soon as LISTEN is re-established (two replicas of their
  own for this one, with the periodic re-check 30 s away, so only the catch-up can answer).
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql
from sqlalchemy import func, select

from signoff_server.db import Database
from signoff_server.lifecycle import DEADLINE_TIMER
from signoff_server.schema import audit_events, decisions, requests
from signoff_server.timers import timers

from .cluster import (
    PG_ADMIN,
    Identities,
    Ledger,
    Receiver,
    ServerProcess,
    check_store,
    pg_reachable,
    pinned_verifier,
    postgres_database,
    prepare,
    request_body,
    servers,
    settled,
    terminate_backends,
    wait_until,
)

pytestmark = pytest.mark.postgres

WAIT_RECHECK = 5.0  # Settings.wait_recheck, what `signoff serve` runs with


@contextmanager
def replicas(count: int, url: str, workdir: Path) -> Iterator[list[ServerProcess]]:
    """`count` `signoff serve` processes started at the same time; always stopped."""
    cli = [
        "--db", url,
        "--webhook-keys", str(workdir / "webhook-keys.json"),
        "--audit-key", str(workdir / "audit.key"),
        "--log-level", "warning",
    ]  # fmt: skip
    started = [ServerProcess(f"replica-{n}", {}, workdir, cli=cli) for n in range(count)]
    errors: list[BaseException] = []

    def start(server: ServerProcess) -> None:
        try:
            server.start()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in started]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        if errors:
            raise errors[0]
        yield started
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[ServerProcess]]]:
    """Two replicas that started together on a fresh, unmigrated database."""
    reason = pg_reachable()
    if reason is not None:
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("replicas")
    with ExitStack() as stack:
        url = stack.enter_context(postgres_database(migrated=False))
        started = stack.enter_context(replicas(2, url, workdir))
        yield url, started


@pytest.fixture(scope="module")
def people(cluster: tuple[str, list[ServerProcess]]) -> Identities:
    """Agent keys and reviewer tokens in the cluster's database."""
    return prepare(cluster[0], 2)


def _headers(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


def test_replicas_started_together_share_one_schema_and_one_set_of_keys(
    cluster: tuple[str, list[ServerProcess]],
) -> None:
    _, (a, b) = cluster
    keys = [httpx.get(f"{s.url}/v1/keys", timeout=10).json() for s in (a, b)]
    assert keys[0] == keys[1]  # one webhook key file, one audit key: receivers pin one set
    for server in (a, b):
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
        assert "signoff_requests" in metrics


def test_deadline_timers_fire_once_and_both_replicas_share_them(
    cluster: tuple[str, list[ServerProcess]], people: Identities
) -> None:
    url, (a, b) = cluster
    before = [_expired_count(s.url) for s in (a, b)]
    made: list[str] = []
    with httpx.Client(timeout=10) as http:
        for n in range(30):  # deadlines spread over about 3 s, created on both replicas
            server = (a, b)[n % 2]
            body = request_body(
                f"timer-{uuid.uuid4().hex[:8]}", callback=None, sla="PT1S", thread=0, n=n
            )
            answer = http.post(
                f"{server.url}/v1/requests", json=body, headers=_headers(people.agent_keys[0])
            )
            assert answer.status_code == 201, answer.text
            made.append(answer.json()["id"])
            time.sleep(0.1)
    db = Database(url)
    try:

        def all_expired() -> bool:
            with db.read() as conn:
                return conn.execute(
                    select(func.count())
                    .select_from(requests)
                    .where(requests.c.id.in_(made), requests.c.status == "expired")
                ).scalar_one() == len(made)

        wait_until("every deadline to fire", all_expired, 30, 0.2)
        time.sleep(1.0)  # a second firing, if any, would land by now
        with db.read() as conn:
            expired_events = conn.execute(
                select(audit_events.c.request_id, func.count())
                .where(
                    audit_events.c.request_id.in_(made), audit_events.c.type == "request.expired"
                )
                .group_by(audit_events.c.request_id)
            ).all()
            timeouts = conn.execute(
                select(decisions.c.request_id, func.count())
                .where(decisions.c.request_id.in_(made), decisions.c.via == "timeout")
                .group_by(decisions.c.request_id)
            ).all()
            left = conn.execute(
                select(func.count())
                .select_from(timers)
                .where(timers.c.request_id.in_(made), timers.c.kind == DEADLINE_TIMER)
            ).scalar_one()
    finally:
        db.dispose()
    assert sorted(r for r, _ in expired_events) == sorted(made)
    assert {n for _, n in expired_events} == {1}  # exactly once each
    assert {n for _, n in timeouts} == {1}
    assert len(timeouts) == len(made)
    assert left == 0
    fired = [_expired_count(s.url) - was for s, was in zip((a, b), before, strict=True)]
    assert sum(fired) == len(made), fired  # each fired by exactly one replica
    assert min(fired) > 0, f"one replica fired every timer: {fired}"


def _expired_count(base: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    found = re.search(r'^signoff_requests_closed_total\{status="expired"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def test_callbacks_delivered_exactly_once_across_replicas(
    cluster: tuple[str, list[ServerProcess]], people: Identities
) -> None:
    url, (a, b) = cluster
    verifier, _ = pinned_verifier(a.url)
    ledger = Ledger()
    with Receiver(verifier) as receiver, httpx.Client(timeout=10) as http:
        for n in range(24):
            create_on, decide_on = (a, b) if n % 2 else (b, a)
            key = f"cb-{uuid.uuid4().hex[:8]}"
            body = request_body(key, callback=receiver.url, sla="PT1H", thread=1, n=n)
            created = http.post(
                f"{create_on.url}/v1/requests", json=body, headers=_headers(people.agent_keys[1])
            )
            assert created.status_code == 201, created.text
            request_id = created.json()["id"]
            ledger.created[key] = request_id
            decided = http.post(
                f"{decide_on.url}/v1/requests/{request_id}/decisions",
                json={"verdict": "approve"},
                headers=_headers(people.reviewer_tokens[1]),
            )
            assert decided.status_code == 200, decided.text
            ledger.decided[request_id] = (people.reviewers[1], "approve")
        wait_until("every callback delivered", lambda: settled(url, ledger), 30, 0.2)
        time.sleep(1.0)  # a duplicate, if any, would arrive by now
        report = check_store(url, ledger, receiver)
        mine = [d for d in receiver.snapshot() if d.request_id in ledger.decided]
    assert report.problems == [], report.problems
    assert len(mine) == len(ledger.decided)  # one POST per callback: no duplicates at all
    assert all(d.acknowledged for d in mine)
    assert len({d.webhook_id for d in mine}) == len(mine)


def _long_poll(base: str, request_id: str, secret: str, timeout: float) -> tuple[float, str]:
    with httpx.Client(timeout=timeout + 10) as http:
        answer = http.get(
            f"{base}/v1/requests/{request_id}/wait",
            params={"timeout": timeout},
            headers=_headers(secret),
        )
    return time.monotonic(), str(answer.json()["status"])


def _waiting(
    a: ServerProcess, request_id: str, secret: str, timeout: float = 30
) -> tuple[threading.Thread, list[tuple[float, str]]]:
    result: list[tuple[float, str]] = []
    thread = threading.Thread(
        target=lambda: result.append(_long_poll(a.url, request_id, secret, timeout))
    )
    thread.start()
    return thread, result


def _create(base: str, secret: str) -> str:
    body = request_body(f"lp-{uuid.uuid4().hex[:8]}", callback=None, sla="PT1H", thread=0, n=0)
    answer = httpx.post(f"{base}/v1/requests", json=body, headers=_headers(secret), timeout=10)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _decide(base: str, request_id: str, secret: str) -> float:
    deadline = time.monotonic() + 20
    while True:
        started = time.monotonic()
        answer = httpx.post(
            f"{base}/v1/requests/{request_id}/decisions",
            json={"verdict": "approve"},
            headers=_headers(secret),
            timeout=10,
        )
        if answer.status_code != 503 or time.monotonic() > deadline:
            assert answer.status_code == 200, answer.text
            return started
        time.sleep(0.05)


def test_long_poll_on_one_replica_wakes_on_a_decision_on_the_other(
    cluster: tuple[str, list[ServerProcess]], people: Identities
) -> None:
    _, (a, b) = cluster
    agent, reviewer = people.agent_keys[0], people.reviewer_tokens[0]
    latencies: list[float] = []
    for _ in range(10):
        request_id = _create(a.url, agent)
        thread, result = _waiting(a, request_id, agent)
        time.sleep(0.3)  # the long-poll is parked on replica A
        decided = _decide(b.url, request_id, reviewer)
        thread.join(40)
        answered, status = result[0]
        assert status == "approved"
        latencies.append(answered - decided)
    # The NOTIFY path answers in milliseconds; the re-check would take up to 5 s.
    assert max(latencies) < 2.0, latencies


@contextmanager
def connections_refused(url: str) -> Iterator[None]:
    """The database takes no new connections (superusers included) until the block ends."""
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(
            sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(sql.Identifier(name))
        )
        try:
            yield
        finally:
            admin.execute(
                sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(
                    sql.Identifier(name)
                )
            )


def test_decision_while_listeners_are_cut_still_wakes_the_long_poll(tmp_path: Path) -> None:
    reason = pg_reachable()
    if reason is not None:
        pytest.skip(reason)
    # A re-check far away (30 s), so only the listener's catch-up can answer in time.
    with postgres_database() as url:
        people = prepare(url, 1)
        agent, reviewer = people.agent_keys[0], people.reviewer_tokens[0]
        with servers(2, url, tmp_path, wait_recheck=30.0) as (a, b):
            request_id = _create(a.url, agent)
            _create(b.url, agent)  # replica B's pool holds a live connection for the decision
            thread, result = _waiting(a, request_id, agent, timeout=50)
            time.sleep(0.3)
            with connections_refused(url):
                assert terminate_backends(url, application="signoff-listen") >= 2
                # Nobody listens now, and nobody can LISTEN again: this NOTIFY is lost.
                decided = _decide(b.url, request_id, reviewer)
                time.sleep(0.5)
                assert not result, "answered while no replica could listen"
                reopened = time.monotonic()
            thread.join(60)
    answered, status = result[0]
    assert status == "approved"
    # LISTEN is back within its reconnect backoff (at most 2 s) and wakes every waiter to
    # re-read; without that the answer would wait for the periodic re-check, 30 s away.
    assert answered - reopened < 5.0, (answered - decided, answered - reopened)
