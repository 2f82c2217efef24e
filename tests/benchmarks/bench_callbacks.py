"""Callback delivery: decision committed → callback received and verified, on loopback.

Run it with `uv run python tests/benchmarks/bench_callbacks.py [--backend sqlite|postgres|both]
[--requests 300] [--seconds 10] [--backlog 1600] [--json PATH]`.

Three processes, so that no two of them share a GIL: `signoff serve` (the real CLI), a process
hosting RECEIVERS receivers (one uvicorn server per port, each the core `CallbackReceiver` with a
`Verifier` pinned to the key from `GET /v1/keys`), and this one, the load generator.

* **latency at rest**: one request at a time is created and decided (approve), its callback
  going to receiver `i % RECEIVERS`. Latency is from the decision's commit (the event's
  `timestamp`, taken inside the closing transaction, so slightly *before* the commit) to the
  moment the receiver has verified the callback. Same machine, same wall clock.
* **sustained**: RECEIVERS threads each create and decide requests back to back for `--seconds`,
  each against its own receiver: verified callbacks per second, and their latency under load.
* **backlog**: `--backlog` closed requests have their callbacks re-queued at once (a replay, in
  one transaction): how fast the delivery worker drains them to the RECEIVERS receivers.

The target is a p99 latency at rest under 50 ms with no retries (every callback verified on its
first attempt, none twice); the script exits 1 if it is missed on any backend (2 if it could not
run). The PostgreSQL database is created fresh (`--pg-admin` or `SIGNOFF_TEST_PG`) and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from _report import Figure, record

RECEIVERS = 16
TARGET_P99_MS = 50.0
ROLE = "bench-approver"
DEFAULT_PG_ADMIN = os.environ.get(
    "SIGNOFF_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
)
PAYLOAD: dict[str, Any] = {
    "action": {
        "name": "payments.release",
        "arguments": {
            "invoice_id": "INV-1042",
            "amount": "12500.00",
            "currency": "EUR",
            "vendor_account": "DE89370400440532013000",
        },
    },
    "business_object": {
        "type": "invoice",
        "id": "INV-1042",
        "attributes": {"amount": "12500.00", "currency": "EUR", "vendor": "Acme GmbH"},
    },
    "summary": "Release EUR 12,500.00 to Acme GmbH",
    "route": {"role": ROLE},
}


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the receivers process ---------------------------------------------------------------------


def receivers_main(argv: list[str]) -> None:
    """`bench_callbacks.py --receivers PORTS --keys KEYS`: serve a verifying receiver per port.

    Every POST is verified and recorded; `GET /records` on any port returns (and clears) what
    was recorded: [event_id, request_id, event_time, verified_time, status, duplicate].
    """
    import uvicorn

    from signoff import CallbackReceiver, Verifier

    parser = argparse.ArgumentParser(prog="bench_callbacks.py --receivers")
    parser.add_argument("--receivers", required=True)
    parser.add_argument("--keys", required=True)
    args = parser.parse_args(argv)
    ports = [int(p) for p in args.receivers.split(",")]
    verifier = Verifier(args.keys.split(","))
    records: list[list[Any]] = []

    def make_app(receiver: CallbackReceiver) -> Callable[..., Any]:
        async def app(
            scope: MutableMapping[str, Any],
            receive: Callable[[], Any],
            send: Callable[[MutableMapping[str, Any]], Any],
        ) -> None:
            if scope["type"] != "http":
                return
            if scope["method"] == "GET":
                body = json.dumps(records).encode()
                records.clear()
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": body})
                return
            chunks, more = [], True
            while more:
                message = await receive()
                chunks.append(message.get("body", b""))
                more = bool(message.get("more_body", False))
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            receipt = await receiver.ahandle(b"".join(chunks), headers)
            verified = time.time()
            event = receipt.event
            records.append(
                [
                    event.id if event else None,
                    event.data.request.id if event else None,
                    event.timestamp.timestamp() if event else None,
                    verified,
                    receipt.status_code,
                    receipt.duplicate,
                ]
            )
            await send(
                {"type": "http.response.start", "status": receipt.status_code, "headers": []}
            )
            await send({"type": "http.response.body", "body": receipt.body()})

        return app

    async def serve_all() -> None:
        servers = [
            uvicorn.Server(
                uvicorn.Config(
                    make_app(CallbackReceiver(verifier, handler=lambda _e: None)),
                    host="127.0.0.1",
                    port=port,
                    log_level="warning",
                    access_log=False,
                    lifespan="off",
                    interface="asgi3",
                )
            )
            for port in ports
        ]
        await asyncio.gather(*(s.serve() for s in servers))

    asyncio.run(serve_all())


# --- processes ----------------------------------------------------------------------------------


@contextmanager
def process(
    command: list[str], log: Path, ready: Callable[[], bool]
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command` until the block ends; wait for `ready()` first."""
    with log.open("wb") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not ready():
            if proc.poll() is not None:
                raise RuntimeError(f"{command[1:4]} exited:\n{log.read_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command[1:4]} did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of a process (Linux), or None where /proc is not available."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def answers(url: str) -> bool:
    """True if `url` answers 200."""
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


# --- measuring ----------------------------------------------------------------------------------


@dataclass
class Figures:
    """What one backend measured."""

    backend: str
    at_rest_callbacks: int = 0
    at_rest_p50_ms: float = 0.0
    at_rest_p99_ms: float = 0.0
    at_rest_max_ms: float = 0.0
    sustained_seconds: float = 0.0
    sustained_callbacks_per_s: float = 0.0
    sustained_p50_ms: float = 0.0
    sustained_p99_ms: float = 0.0
    backlog_callbacks: int = 0
    backlog_callbacks_per_s: float = 0.0
    backlog_server_cpu_ms_per_callback: float | None = None
    retries: int = 0
    problems: list[str] = field(default_factory=list[str])


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest-rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


class Bench:
    """One backend: a server, the receivers, credentials, and the three measurements."""

    def __init__(
        self, server: str, server_pid: int, receiver_ports: list[int], agent_key: str, token: str
    ) -> None:
        self.server = server
        self.server_pid = server_pid
        self.receivers = [f"http://127.0.0.1:{p}/cb" for p in receiver_ports]
        self.records_url = f"http://127.0.0.1:{receiver_ports[0]}/records"
        self.agent = {"Authorization": f"Bearer {agent_key}"}
        self.reviewer = {"Authorization": f"Bearer {token}"}

    def records(self, expected: int, timeout: float = 60) -> list[list[Any]]:
        """Collect receiver records until `expected` verified deliveries arrived."""
        found: list[list[Any]] = []
        deadline = time.monotonic() + timeout
        while sum(1 for r in found if r[4] == 200) < expected and time.monotonic() < deadline:
            time.sleep(0.2)
            found += httpx.get(self.records_url, timeout=10).json()
        return found

    def close_one(self, http: httpx.Client, receiver: str) -> str:
        """Create a request whose callback goes to `receiver`, approve it; its id."""
        created = http.post(
            "/v1/requests", json={**PAYLOAD, "callback": {"url": receiver}}, headers=self.agent
        )
        if created.status_code != 201:
            raise RuntimeError(f"create answered {created.status_code}: {created.text[:300]}")
        request_id: str = created.json()["id"]
        decided = http.post(
            f"/v1/requests/{request_id}/decisions",
            json={"verdict": "approve"},
            headers=self.reviewer,
        )
        if decided.status_code != 200:
            raise RuntimeError(f"decide answered {decided.status_code}: {decided.text[:300]}")
        return request_id

    def at_rest(self, figures: Figures, count: int) -> list[str]:
        """One request at a time; latency from commit to verified."""
        ids = []
        with httpx.Client(base_url=self.server, timeout=30) as http:
            for _ in range(10):  # warm-up: connections, caches
                self.close_one(http, self.receivers[0])
            self.records(10)
            for i in range(count):
                ids.append(self.close_one(http, self.receivers[i % RECEIVERS]))
                time.sleep(0.02)  # at rest: let each callback land before the next decision
        records = self.records(count)
        latencies = [(r[3] - r[2]) * 1000 for r in records if r[4] == 200 and not r[5]]
        figures.at_rest_callbacks = len(latencies)
        figures.at_rest_p50_ms = percentile(latencies, 50)
        figures.at_rest_p99_ms = percentile(latencies, 99)
        figures.at_rest_max_ms = max(latencies, default=float("nan"))
        self.check(figures, records, set(ids), "at rest")
        return ids

    def sustained(self, figures: Figures, seconds: float) -> list[str]:
        """RECEIVERS clients close requests back to back, each to its own receiver."""
        stop = threading.Event()
        ids: list[list[str]] = [[] for _ in range(RECEIVERS)]
        errors: list[str] = []

        def client(index: int) -> None:
            try:
                with httpx.Client(base_url=self.server, timeout=30) as http:
                    while not stop.is_set():
                        ids[index].append(self.close_one(http, self.receivers[index]))
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                stop.set()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(RECEIVERS)]
        started = time.time()
        for thread in threads:
            thread.start()
        stop.wait(seconds)
        stop.set()
        for thread in threads:
            thread.join()
        if errors:
            raise RuntimeError(errors[0])
        every = {i for chunk in ids for i in chunk}
        records = self.records(len(every))
        verified = [r for r in records if r[4] == 200 and not r[5]]
        last = max((r[3] for r in verified), default=started)
        figures.sustained_seconds = round(last - started, 2)
        figures.sustained_callbacks_per_s = round(len(verified) / (last - started), 1)
        latencies = [(r[3] - r[2]) * 1000 for r in verified]
        figures.sustained_p50_ms = percentile(latencies, 50)
        figures.sustained_p99_ms = percentile(latencies, 99)
        self.check(figures, records, every, "sustained")
        return sorted(every)

    def backlog(self, figures: Figures, db_url: str, request_ids: list[str]) -> None:
        """Re-queue `request_ids`' callbacks at once; how fast they drain to the receivers."""
        from signoff_server.callbacks.outbox import replay
        from signoff_server.db import Database

        db = Database(db_url)
        cpu_before = cpu_seconds(self.server_pid)
        try:
            with db.write() as conn:
                for request_id in request_ids:
                    replay(conn, request_id, datetime.now(UTC), actor="bench")
        finally:
            db.dispose()
        records = self.records(len(request_ids), timeout=120)
        cpu_after = cpu_seconds(self.server_pid)
        verified = [r for r in records if r[4] == 200]
        if cpu_before is not None and cpu_after is not None and verified:
            figures.backlog_server_cpu_ms_per_callback = round(
                (cpu_after - cpu_before) * 1000 / len(verified), 2
            )
        if len(verified) < len(request_ids):
            figures.problems.append(f"backlog: {len(verified)} of {len(request_ids)} delivered")
        times = sorted(r[3] for r in verified)
        figures.backlog_callbacks = len(verified)
        if len(times) > 1:
            figures.backlog_callbacks_per_s = round((len(times) - 1) / (times[-1] - times[0]), 1)

    @staticmethod
    def check(figures: Figures, records: list[list[Any]], expected: set[str], phase: str) -> None:
        """Every expected callback verified exactly once (a second delivery means a retry)."""
        verified = [r[1] for r in records if r[4] == 200]
        refused = [r for r in records if r[4] != 200]
        if refused:
            figures.problems.append(f"{phase}: {len(refused)} deliveries did not verify")
        missing = expected - set(verified)
        if missing:
            figures.problems.append(f"{phase}: {len(missing)} callbacks never arrived")
        figures.retries += len(verified) - len(set(verified))


def run_backend(backend: str, db_url: str, args: argparse.Namespace, workdir: Path) -> Figures:
    """Provision, start the server and the receivers, measure."""
    from signoff_server.db import Database, migrate
    from signoff_server.identity import create_agent_key, create_token, set_user

    migrate(db_url)
    db = Database(db_url)
    with db.write() as conn:
        agent_key = create_agent_key(conn, "bench-agent")
        set_user(conn, "bench@example.com", [ROLE])
        token = create_token(conn, "bench@example.com")
    db.dispose()

    figures = Figures(backend)
    port = free_port()
    server = f"http://127.0.0.1:{port}"
    serve = [
        sys.executable, "-m", "signoff_server", "serve", "--db", db_url, "--port", str(port),
        "--webhook-keys", str(workdir / f"{backend}-keys.json"), "--log-level", "warning",
    ]  # fmt: skip
    with process(
        serve, workdir / f"{backend}-server.log", lambda: answers(f"{server}/healthz")
    ) as server_process:
        keys = [k["public_key"] for k in httpx.get(f"{server}/v1/keys").json()["webhook_keys"]]
        ports = [free_port() for _ in range(RECEIVERS)]
        receivers = [
            sys.executable, str(Path(__file__).resolve()),
            "--receivers", ",".join(map(str, ports)), "--keys", ",".join(keys),
        ]  # fmt: skip
        ready = lambda: all(answers(f"http://127.0.0.1:{p}/records") for p in ports)  # noqa: E731
        with process(receivers, workdir / f"{backend}-receivers.log", ready):
            bench = Bench(server, server_process.pid, ports, agent_key, token)
            bench.at_rest(figures, args.requests)
            closed = bench.sustained(figures, args.seconds)
            bench.backlog(figures, db_url, closed[: args.backlog])
    return figures


@contextmanager
def postgres_database(admin: str) -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards."""
    import psycopg
    from psycopg import sql

    name = f"signoff_bench_cb_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{admin.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def main(argv: list[str]) -> int:
    """Benchmark entry point; the exit status says whether the target was met."""
    if argv[:1] == ["--receivers"]:
        receivers_main(argv)
        return 0
    parser = argparse.ArgumentParser(
        description="Callback delivery latency and throughput on loopback (see the module doc)."
    )
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--requests", type=int, default=300, help="callbacks measured at rest")
    parser.add_argument("--seconds", type=float, default=10.0, help="sustained load duration")
    parser.add_argument("--backlog", type=int, default=1600, help="callbacks replayed at once")
    parser.add_argument("--pg-admin", default=DEFAULT_PG_ADMIN)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results: list[Figures] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-callbacks-") as tmp:
            workdir = Path(tmp)
            for backend in backends:
                if backend == "sqlite":
                    results.append(
                        run_backend(backend, f"sqlite:///{workdir}/bench.db", args, workdir)
                    )
                else:
                    with postgres_database(args.pg_admin) as url:
                        results.append(run_backend(backend, url, args, workdir))
    except Exception as exc:
        print(f"benchmark could not run: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(f"callbacks on loopback, {RECEIVERS} receivers; {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    ok = True
    figures: list[Figure] = []
    for f in results:
        print(
            f"{f.backend:9} at rest ({f.at_rest_callbacks} callbacks): commit → verified "
            f"p50 {f.at_rest_p50_ms:.1f} ms, p99 {f.at_rest_p99_ms:.1f} ms, max "
            f"{f.at_rest_max_ms:.1f} ms\n"
            f"{'':9} sustained ({RECEIVERS} clients, {f.sustained_seconds} s): "
            f"{f.sustained_callbacks_per_s} callbacks/s verified, p50 {f.sustained_p50_ms:.1f} ms,"
            f" p99 {f.sustained_p99_ms:.1f} ms\n"
            f"{'':9} backlog ({f.backlog_callbacks} replayed at once): "
            f"{f.backlog_callbacks_per_s} callbacks/s, server CPU "
            f"{f.backlog_server_cpu_ms_per_callback} ms per callback; retries seen: {f.retries}"
        )
        for problem in f.problems:
            print(f"{'':9} PROBLEM: {problem}")
        met = f.at_rest_p99_ms < TARGET_P99_MS and f.retries == 0 and not f.problems
        ok = ok and met
        verdict = "met" if met else "MISSED"
        print(f"{'':9} target (p99 < {TARGET_P99_MS:.0f} ms, no retries): {verdict}")
        figures += [
            Figure(
                figure=f"{f.backend}: commit → verified callback at rest, p99",
                value=f.at_rest_p99_ms,
                unit="ms",
                target=f"< {TARGET_P99_MS:.0f} ms, no retries",
                passed=met,
                note="; ".join(
                    [
                        f"{f.at_rest_callbacks} callbacks, p50 {f.at_rest_p50_ms:.1f} ms",
                        f"retries {f.retries}",
                        *f.problems,
                    ]
                ),
            ),
            Figure(
                figure=f"{f.backend}: verified callbacks/s, {RECEIVERS} clients (p99 "
                f"{f.sustained_p99_ms:.0f} ms)",
                value=f.sustained_callbacks_per_s,
                unit="callbacks/s",
            ),
            Figure(
                figure=f"{f.backend}: backlog of {f.backlog_callbacks} replayed callbacks drained",
                value=f.backlog_callbacks_per_s,
                unit="callbacks/s",
            ),
        ]
    record(figures)
    if args.json:
        args.json.write_text(json.dumps([asdict(f) for f in results], indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
