"""Fault suite: the callback receiver misbehaves, PostgreSQL connections are terminated
mid-transaction, SQLite's disk fills up. Servers are real processes (tests/reliability/serve.py).

- Receiver down, then slow (beyond the sender's timeout), then answering 5xx, then healthy:
  every callback is delivered later, under its one webhook-id, and never again once a 2xx
  reached the sender.
- `pg_terminate_backend` on every connection of the servers, repeatedly, while agents create and
  reviewers decide on two replicas (and once while every writer is held mid-transaction, so the
  kill lands inside open transactions): each affected call fails cleanly (503 with a JSON error,
  never a 500) or succeeds on retry; nothing acknowledged is lost or doubled; the servers recover
  without a restart (the same processes serve, cross-replica long-poll wake-ups work again).
- SQLite's disk full (a tiny tmpfs when this process may mount one; else SQLite's
  `max_page_count` as a stand-in): a 503 `disk_full` with a JSON error and one log line naming
  the full disk; nothing acknowledged is lost; once space is freed the same server works again
  and the audit log verifies.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from signoff_server.db import migrate

from .cluster import (
    PG_ADMIN,
    Ledger,
    Phases,
    Receiver,
    Workload,
    audit_verify,
    check_store,
    pg_reachable,
    pinned_verifier,
    postgres_database,
    prepare,
    record_summary,
    request_body,
    servers,
    settled,
    terminate_backends,
    wait_until,
)

# --- the receiver ---------------------------------------------------------------------------------


class Phased:
    """The receiver's behaviour over time: down → slow → failing → healthy."""

    def __init__(self, receiver: Receiver, *, slow: float, phase: float) -> None:
        self.receiver = receiver
        self.slow = slow
        self.phase = phase
        self.state = "down"
        self.changes: dict[str, float] = {}

    def run(self) -> None:
        """Walk through the phases (blocking), ending healthy."""
        self.changes["down"] = time.time()
        time.sleep(self.phase)
        self.receiver.delay = self.slow
        self.receiver.start()
        self._enter("slow")
        time.sleep(self.phase)
        self.receiver.delay = 0.0
        self.receiver.failing = lambda n: 503 if n % 2 else 500
        self._enter("failing")
        time.sleep(self.phase)
        self.receiver.failing = lambda _n: None
        self._enter("healthy")

    def _enter(self, state: str) -> None:
        self.state = state
        self.changes[state] = time.time()


def test_receiver_down_slow_failing_then_delivered_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'signoff.db'}"
    migrate(url)
    identities = prepare(url, 1)
    agent = {"authorization": f"Bearer {identities.agent_keys[0]}"}
    reviewer = {"authorization": f"Bearer {identities.reviewer_tokens[0]}"}
    with servers(1, url, tmp_path, callback_timeout=1.0) as (server,):
        verifier, audit_key = pinned_verifier(server.url)
        receiver = Receiver(verifier, sender_timeout=1.0)  # not started: down
        phased = Phased(receiver, slow=1.6, phase=1.5)
        try:
            ids: list[str] = []
            with httpx.Client(base_url=server.url, timeout=10) as http:
                for n in range(8):
                    body = request_body(f"rx-{n}", callback=receiver.url, sla="PT1H", thread=0, n=n)
                    created = http.post("/v1/requests", json=body, headers=agent)
                    assert created.status_code == 201, created.text
                    request_id = created.json()["id"]
                    decided = http.post(
                        f"/v1/requests/{request_id}/decisions",
                        json={"verdict": "approve"},
                        headers=reviewer,
                    )
                    assert decided.status_code == 200, decided.text
                    ids.append(request_id)
                phased.run()
                wait_until("every callback delivered", lambda: settled(url, Ledger()), 40, 0.3)
                timelines = {
                    i: http.get(f"/v1/requests/{i}/timeline", headers=agent).json() for i in ids
                }
        finally:
            receiver.stop()
    report = check_store(url, Ledger(), receiver)
    assert report.problems == [], report.problems
    errors: list[str] = []
    for request_id, events in timelines.items():
        attempts = [e["data"] for e in events if e["type"] == "callback.attempted"]
        queued = [e["data"]["event_id"] for e in events if e["type"] == "callback.queued"]
        results = [a["result"] for a in attempts]
        assert results[-1] == "delivered", (request_id, attempts)
        assert results.count("delivered") == 1, attempts  # nothing sent after the 2xx
        assert len(results) >= 3, attempts  # it failed while the receiver was down/slow/5xx
        errors += [str(a["error"] or a["status_code"]) for a in attempts[:-1]]
        seen = receiver.of_request(request_id)
        assert {d.webhook_id for d in seen} == set(queued), seen  # one stable id
        on_time = [d for d in seen if d.acknowledged]
        assert len(on_time) == 1, seen  # delivered (acknowledged in time) exactly once
        assert on_time[0].at >= phased.changes["healthy"] - 0.5
        assert all(d.at <= on_time[0].at for d in seen)  # never again after that
    assert any("ConnectError" in e for e in errors), errors  # down
    assert any("timeout" in e for e in errors), errors  # slow beyond the sender's timeout
    assert any(e in ("HTTP 500", "HTTP 503") for e in errors), errors  # 5xx
    audit = audit_verify(url, tmp_path, audit_key)
    assert audit.ok, audit.output
    record_summary(
        "faults-receiver",
        {
            "callbacks": len(ids),
            "attempts": len(errors) + len(ids),
            "posts_seen": len(receiver.snapshot()),
            "delivered_once": len(ids),
            "audit_verify": "pass",
        },
    )


# --- PostgreSQL connections terminated -----------------------------------------------------------


@contextlib.contextmanager
def writers_held(url: str) -> Iterator[None]:
    """Hold the audit log's row lock: every server write transaction blocks mid-way (the audit
    append just before COMMIT), with its statements already run."""
    with psycopg.connect(url, autocommit=False) as holder:
        holder.execute("SELECT size FROM audit_log WHERE id = 1 FOR UPDATE")
        try:
            yield
        finally:
            holder.rollback()


def _blocked_writers(url: str) -> int:
    database = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = "
            "'Lock' AND state = 'active'",
            (database,),
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.postgres
def test_pg_backends_terminated_mid_transaction(tmp_path: Path) -> None:
    reason = pg_reachable()
    if reason is not None:
        pytest.skip(reason)
    phases = Phases()
    with postgres_database() as url:
        identities = prepare(url, 6)
        with servers(2, url, tmp_path) as started, Receiver() as receiver:
            phases.mark("start")
            verifier, audit_key = pinned_verifier(started[0].url)
            receiver.verifier = verifier
            pids = [s.pid for s in started]
            workload = Workload(
                [s.url for s in started],
                identities,
                callback=receiver.url,
                threads=6,
                patience=30,
            ).start()
            terminated = 0
            try:
                time.sleep(1.0)
                # 1. Every writer held inside its transaction, then its connection terminated.
                with writers_held(url):
                    wait_until(
                        "writers blocked mid-transaction",
                        lambda: _blocked_writers(url) > 2,
                        10,
                        0.05,
                    )
                    held = _blocked_writers(url)
                    terminated += terminate_backends(url, application="signoff")
                # 2. Then terminations at random moments under load, the listeners' included.
                stop = time.monotonic() + 2.0
                while time.monotonic() < stop:
                    time.sleep(0.4)
                    terminated += terminate_backends(url)
            finally:
                phases.mark("faults")
                workload.stop()
                phases.mark("workload-stop")
            ledger = workload.ledger
            wait_until("the load to settle", lambda: settled(url, ledger), 60, 0.5)
            phases.mark("settle")
            # The same processes recovered: they serve, and a decision taken on replica 1 wakes
            # a long-poll waiting on replica 0 promptly (the listener re-established LISTEN).
            assert [s.pid for s in started] == pids
            assert all(s.alive for s in started)
            latency = _cross_replica_wakeup(started[0].url, started[1].url, identities)
            assert latency < 2.0, f"the long-poll answered {latency:.2f} s after the decision"
            phases.mark("wakeup")
            for server in started:
                server.stop()
            records = [r for s in started for r in s.log_records()]
            report = check_store(url, ledger, receiver)
            phases.mark("stop+check")
        audit = audit_verify(url, tmp_path, audit_key)
        phases.mark("audit")
    print(phases, flush=True)
    summary = ledger.summary()
    record_summary(
        "faults-pg-terminate",
        {
            "terminated_backends": terminated,
            "held_mid_transaction": held,
            **summary,
            "http_503": dict(ledger.unavailable),
            "lost": report.lost,
            "duplicated_decisions": report.duplicated_decisions,
            "audit_verify": "pass" if audit.ok else "FAIL",
        },
    )
    assert not ledger.unexpected, ledger.unexpected[:10]  # no 500, no surprise 4xx
    assert report.problems == [], report.problems
    assert audit.ok, audit.output
    assert held > 2
    assert summary["http_5xx"] > 0, "no call ever saw a terminated connection"
    assert all(k.startswith("503 database_unavailable") for k in ledger.unavailable), ledger
    unhandled = [r for r in records if r.get("message", "").startswith("unhandled error")]
    assert unhandled == [], unhandled[:3]


def _cross_replica_wakeup(a: str, b: str, identities: Any) -> float:
    """Seconds from a decision on `b` to the answer of a long-poll on `a`."""
    agent = {"authorization": f"Bearer {identities.agent_keys[0]}"}
    reviewer = {"authorization": f"Bearer {identities.reviewer_tokens[0]}"}
    body = request_body(f"wake-{uuid.uuid4().hex[:6]}", callback=None, sla="PT1H", thread=0, n=0)
    with httpx.Client(timeout=30) as http:
        request_id = http.post(f"{a}/v1/requests", json=body, headers=agent).json()["id"]
        answered: list[float] = []

        def wait() -> None:
            got = http.get(f"{a}/v1/requests/{request_id}/wait?timeout=20", headers=agent)
            answered.append(time.monotonic())
            assert got.json()["status"] == "approved"

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.5)  # the long-poll is parked
        decided_at = time.monotonic()
        decided = http.post(
            f"{b}/v1/requests/{request_id}/decisions", json={"verdict": "approve"}, headers=reviewer
        )
        assert decided.status_code == 200, decided.text
        waiter.join(30)
    return answered[0] - decided_at


# --- SQLite disk full ---------------------------------------------------------------------------


class TmpfsDisk:
    """A tmpfs of a few MB (needs CAP_SYS_ADMIN); `grow()` remounts it larger."""

    def __init__(self, path: Path, size_kb: int) -> None:
        self.path = path
        self.size_kb = size_kb

    @staticmethod
    def available(where: Path) -> str | None:
        probe = where / "probe"
        probe.mkdir()
        try:
            done = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
        except OSError as exc:
            return str(exc)
        if done.returncode != 0:
            return done.stderr.strip() or "mount failed"
        subprocess.run(["umount", str(probe)], check=True)
        return None

    def __enter__(self) -> TmpfsDisk:
        self.path.mkdir()
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={self.size_kb}k", "tmpfs", str(self.path)],
            check=True,
        )
        return self

    def grow(self, size_kb: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size_kb}k", str(self.path)], check=True)

    def __exit__(self, *exc_info: object) -> None:
        done = subprocess.run(["umount", str(self.path)], capture_output=True, check=False)
        if done.returncode != 0:  # still busy: detach now, freed when the last file closes
            subprocess.run(["umount", "-l", str(self.path)], check=False)


class PageLimit:
    """The stand-in: SQLite's `max_page_count`, read by the server on every checkout."""

    def __init__(self, path: Path, db_file: Path) -> None:
        self.path = path
        self.db_file = db_file

    def fill(self, spare_pages: int) -> None:
        with contextlib.closing(sqlite3.connect(self.db_file)) as conn:
            pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
        self.path.write_text(str(pages + spare_pages))

    def free(self) -> None:
        self.path.write_text(str(2**30))


def _big_request(n: int) -> dict[str, Any]:
    body = request_body(f"disk-{n}", callback=None, sla="PT1H", thread=0, n=n)
    body["context"] = {"document": f"{n:06d}" + "x" * 30_000}  # fills a small disk quickly
    return body


@pytest.mark.parametrize("disk", ["tmpfs", "max_page_count"])
def test_sqlite_disk_full_is_reported_and_loses_nothing(tmp_path: Path, disk: str) -> None:
    with contextlib.ExitStack() as stack:
        if disk == "tmpfs":
            reason = TmpfsDisk.available(tmp_path)
            if reason is not None:
                pytest.skip(f"cannot mount a tmpfs here ({reason}); max_page_count stands in")
            tmpfs = stack.enter_context(TmpfsDisk(tmp_path / "disk", size_kb=3072))
            db_file = tmpfs.path / "signoff.db"
            limit: PageLimit | None = None
            overrides: dict[str, Any] = {}
        else:
            db_file = tmp_path / "signoff.db"
            limit = PageLimit(tmp_path / "max-pages", db_file)
            limit.free()
            overrides = {"sqlite_page_limit_file": str(limit.path)}
            tmpfs = None
        url = f"sqlite:///{db_file}"
        migrate(url)
        identities = prepare(url, 1)
        agent = {"authorization": f"Bearer {identities.agent_keys[0]}"}
        reviewer = {"authorization": f"Bearer {identities.reviewer_tokens[0]}"}
        ledger = Ledger()
        full: list[dict[str, Any]] = []
        with servers(1, url, tmp_path, **overrides) as (server,):
            _, audit_key = pinned_verifier(server.url)
            pid = server.pid
            if limit is not None:
                limit.fill(spare_pages=120)
            with httpx.Client(base_url=server.url, timeout=30) as http:
                n = 0
                while len(full) < 5 and n < 400:
                    n += 1
                    answer = http.post("/v1/requests", json=_big_request(n), headers=agent)
                    if answer.status_code == 201:
                        ledger.created[f"disk-{n}"] = answer.json()["id"]
                        continue
                    assert answer.status_code == 503, answer.text  # never a 500
                    full.append(answer.json())
                    # Reads still work, and a decision is either recorded or refused cleanly.
                    some = next(iter(ledger.created.values()))
                    assert http.get(f"/v1/requests/{some}", headers=agent).status_code == 200
                    decided = http.post(
                        f"/v1/requests/{some}/decisions",
                        json={"verdict": "approve"},
                        headers=reviewer,
                    )
                    if decided.status_code == 200:
                        ledger.decided[some] = ("reviewer-0@example.com", "approve")
                    elif decided.status_code != 409:
                        assert decided.status_code == 503, decided.text
                        full.append(decided.json())
                assert full, f"the disk never filled after {n} requests"
                assert http.get("/healthz").status_code == 200
                # Space freed: the same process takes writes again, no restart.
                if tmpfs is not None:
                    tmpfs.grow(65536)
                if limit is not None:
                    limit.free()
                after = http.post("/v1/requests", json=_big_request(10_000), headers=agent)
                assert after.status_code == 201, after.text
                ledger.created["disk-10000"] = after.json()["id"]
                decided = http.post(
                    f"/v1/requests/{after.json()['id']}/decisions",
                    json={"verdict": "reject"},
                    headers=reviewer,
                )
                assert decided.status_code == 200, decided.text
                ledger.decided[after.json()["id"]] = ("reviewer-0@example.com", "reject")
            assert server.pid == pid
            records = server.log_records()
        report = check_store(url, ledger, None)
        audit = audit_verify(url, tmp_path, audit_key)
    record_summary(
        f"faults-disk-full-{disk}",
        {
            "acknowledged_creates": len(ledger.created),
            "refused_503": len(full),
            "lost": report.lost,
            "duplicated_decisions": report.duplicated_decisions,
            "audit_verify": "pass" if audit.ok else "FAIL",
        },
    )
    assert {e["error"]["code"] for e in full} == {"disk_full"}, full
    assert all("disk is full" in e["error"]["message"] for e in full), full
    named = [r for r in records if r.get("alert") == "disk_full" and "disk full" in r["message"]]
    assert named, [r.get("message") for r in records]
    unhandled = [r for r in records if r.get("message", "").startswith("unhandled error")]
    assert unhandled == [], unhandled[:2]
    assert report.problems == [], report.problems
    assert audit.ok, audit.output
