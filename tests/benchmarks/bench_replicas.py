"""Scale-out on PostgreSQL: two signoff replicas against one, and long-poll wake-ups across them.

Run it with `uv run python tests/benchmarks/bench_replicas.py [--seconds 12] [--json PATH]`
(or `uv run nox -s bench -- replicas`).

Two server processes (`python bench_replicas.py --serve …`, each `create_app` under uvicorn on a
free loopback port, one worker) share one PostgreSQL database created for the run (trust auth,
user `postgres` on 127.0.0.1:5432 unless `--pg-admin` or `SIGNOFF_TEST_PG` says otherwise) and
always dropped. Both run all the time; what changes is where the load goes:

* **1 replica**: 16 concurrent clients run create → decide → wait cycles against replica A
  (`POST /v1/requests`, `POST …/decisions`, `GET …/wait`, which answers at once);
* **2 replicas**: the same clients, every HTTP request sent to the next replica in turn, as a
  round-robin load balancer would (a request is created on one replica and decided on the other).

After a warm-up, the measured seconds are split into alternating slices (1, 2, 2, 1, …) so
background load on a shared machine falls on both alike. Figures: HTTP requests per second, the
ratio 2 replicas / 1 replica (target ≥ 1.5x), and where the machine's CPU went during each
configuration: the replicas' processes, this database's PostgreSQL backends, the load generator
(this process), and everything else on the machine, from /proc. A ratio under target comes with
that breakdown, which says whether the replicas ran out of CPU to scale into.

Before that, on the fresh cluster, the **wake-up across replicas**: agents long-poll
`GET …/wait` on replica A for requests a reviewer decides on replica B (LISTEN/NOTIFY carries the
news); latency = from sending the decision to B until A's answer arrives (the decision's own
processing included), over `--wakeups` requests, 20 waiting at a time, one decision at a time,
with no other load from this script. Target: p99 < 100 ms (the periodic re-check would take up
to 5 s). It is also shown from B's answer to the decision, i.e. the hop from B to A alone.

Exit status 1 when a target is missed, 2 when the benchmark could not run. Results are printed as
a markdown table, recorded for the shared report (tests/benchmarks/_report.py) and, with
`--json PATH`, written as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from _report import Figure, record
from bench_server import DECISION, PAYLOAD, ROLE, free_port  # the same request, the same way
from psycopg import sql

TARGET_RATIO = 1.5
TARGET_WAKEUP_P99_MS = 100.0
CLIENTS = 16
REQUESTS_PER_CYCLE = 3
SLICE_WARMUP = 0.5
WAITING_AT_ONCE = 20
DEFAULT_PG_ADMIN = os.environ.get(
    "SIGNOFF_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- the server process --------------------------------------------------------------------------


def serve(argv: list[str]) -> None:
    """Server-process entry point: `bench_replicas.py --serve --url U --port N --dir D`."""
    import uvicorn

    from signoff_server.app import create_app
    from signoff_server.settings import Settings

    parser = argparse.ArgumentParser(prog="bench_replicas.py --serve")
    parser.add_argument("--serve", action="store_true", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args(argv)
    workdir = Path(args.dir)
    os.chdir(workdir)  # files with default paths land here, never in the repository
    settings = Settings(
        database_url=args.url,
        webhook_keys_path=str(workdir / "webhook-keys.json"),
        audit_key_file=str(workdir / "audit.key"),
        secret_key_file=str(workdir / "secret.key"),
    )
    uvicorn.run(create_app(settings), host="127.0.0.1", port=args.port, log_level="warning")


@dataclass
class Server:
    """A replica process and where it listens."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path


@contextmanager
def running_replica(name: str, db_url: str, workdir: Path) -> Iterator[Server]:
    """Start one replica in its own process group; wait for /healthz; always stop it."""
    port = free_port()
    log = workdir / f"{name}.log"
    command = [
        sys.executable, str(Path(__file__).resolve()), "--serve", "--url", db_url,
        "--port", str(port), "--dir", str(workdir),
    ]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(name, f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"replica {name} exited at start:\n{log.read_text()}")
            try:
                if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"replica {name} did not start:\n{log.read_text()}")
            time.sleep(0.05)
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=15)


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh, migrated database for this run (a `postgresql://` URL), dropped afterwards."""
    from signoff_server.db import migrate

    name = f"signoff_bench_replicas_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = f"{admin_url.rsplit('/', 1)[0]}/{name}"
        migrate(url)
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@dataclass
class Credentials:
    """One agent key and one reviewer token per client."""

    agent_keys: list[str]
    reviewer_tokens: list[str]


def prepare(url: str) -> Credentials:
    """Mint one agent key and one reviewer token per client."""
    from signoff_server.db import Database
    from signoff_server.identity import create_agent_key, create_token, set_user

    db = Database(url)
    try:
        with db.write() as conn:
            set_user(conn, "reviewer@example.com", [ROLE])
            keys = [create_agent_key(conn, f"bench-agent-{i}") for i in range(CLIENTS)]
            tokens = [create_token(conn, "reviewer@example.com") for _ in range(CLIENTS)]
    finally:
        db.dispose()
    return Credentials(keys, tokens)


# --- CPU accounting ------------------------------------------------------------------------------


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of one process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # without guest time, which is counted in user already
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


class CpuMeter:
    """CPU seconds spent by the replicas, this database's backends, this process and the
    machine as a whole, between `start()` and `stop()`."""

    def __init__(self, servers: list[Server], admin_url: str, database: str) -> None:
        self.servers = servers
        self.admin_url = admin_url
        self.database = database

    def _backends(self) -> list[int]:
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as admin:
            rows = admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.database,)
            ).fetchall()
        return [int(pid) for (pid,) in rows]

    def snapshot(self) -> dict[str, Any]:
        """The counters now."""
        backends = self._backends()
        busy, total = machine_cpu()
        return {
            "servers": sum(process_cpu(s.process.pid) for s in self.servers),
            "backends": {pid: process_cpu(pid) for pid in backends},
            "client": time.process_time(),
            "busy": busy,
            "total": total,
        }

    @staticmethod
    def delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
        """CPU seconds per part between two snapshots (backends present at both ends)."""
        backends = sum(
            after["backends"][pid] - before["backends"].get(pid, after["backends"][pid])
            for pid in after["backends"]
        )
        servers = after["servers"] - before["servers"]
        client = after["client"] - before["client"]
        busy = after["busy"] - before["busy"]
        return {
            "servers": servers,
            "postgres": backends,
            "client": client,
            "other": max(busy - servers - backends - client, 0.0),
            "busy": busy,
            "capacity": after["total"] - before["total"],
        }


# --- load ----------------------------------------------------------------------------------------


def _expect(response: httpx.Response, status: int) -> dict[str, Any]:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url} answered "
            f"{response.status_code} (expected {status}): {response.text[:300]}"
        )
    body: dict[str, Any] = response.json()
    return body


@dataclass
class Sample:
    """What the measured slices of one configuration saw."""

    requests: int = 0
    seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict[str, float])
    latencies: list[float] = field(default_factory=list[float])

    def add(self, requests: int, seconds: float, cpu: dict[str, float], lat: list[float]) -> None:
        """Accumulate one slice."""
        self.requests += requests
        self.seconds += seconds
        for key, value in cpu.items():
            self.cpu[key] = self.cpu.get(key, 0.0) + value
        self.latencies += lat


class LoadGenerator:
    """CLIENTS threads running cycles; each HTTP request goes to the next of `servers`."""

    def __init__(self, servers: list[Server], credentials: Credentials) -> None:
        self.servers = servers
        self.credentials = credentials
        self._stop = threading.Event()
        self._measuring = False
        self._counts = [0] * CLIENTS
        self._latencies: list[list[float]] = [[] for _ in range(CLIENTS)]
        self._errors: list[str] = []

    def _client(self, index: int) -> None:
        agent = {"Authorization": f"Bearer {self.credentials.agent_keys[index]}"}
        reviewer = {"Authorization": f"Bearer {self.credentials.reviewer_tokens[index]}"}
        urls = [s.url for s in self.servers]
        turn = index  # spread the clients' starting replicas
        counts, latencies, clock = self._counts, self._latencies[index], time.perf_counter
        try:
            with httpx.Client(timeout=30) as http:
                while not self._stop.is_set():
                    started = clock()
                    base = urls[turn % len(urls)]
                    turn += 1
                    created = _expect(
                        http.post(f"{base}/v1/requests", json=PAYLOAD, headers=agent), 201
                    )
                    counts[index] += 1
                    path = f"/v1/requests/{created['id']}"
                    base = urls[turn % len(urls)]
                    turn += 1
                    _expect(
                        http.post(f"{base}{path}/decisions", json=DECISION, headers=reviewer), 200
                    )
                    counts[index] += 1
                    base = urls[turn % len(urls)]
                    turn += 1
                    waited = _expect(
                        http.get(f"{base}{path}/wait", params={"timeout": 5}, headers=agent), 200
                    )
                    counts[index] += 1
                    if waited["status"] != "approved":
                        raise RuntimeError(f"{path} is {waited['status']!r} after the decision")
                    if self._measuring:
                        latencies.append(clock() - started)
        except Exception as exc:
            self._errors.append(f"{type(exc).__name__}: {exc}")
            self._stop.set()

    def run(self, warmup: float, seconds: float, meter: CpuMeter | None) -> Sample:
        """Load for `warmup` + `seconds`; what the last `seconds` saw."""
        threads = [threading.Thread(target=self._client, args=(i,)) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        sample = Sample()
        try:
            self._stop.wait(warmup)
            self._measuring = True
            before = meter.snapshot() if meter else None
            requests, start = sum(self._counts), time.perf_counter()
            self._stop.wait(seconds)
            requests, elapsed = sum(self._counts) - requests, time.perf_counter() - start
            cpu = CpuMeter.delta(before, meter.snapshot()) if meter and before else {}
            self._measuring = False
            lat = [x for per_thread in self._latencies for x in per_thread]
            sample.add(requests, elapsed, cpu, lat)
        finally:
            self._stop.set()
            for thread in threads:
                thread.join()
        if self._errors:
            tails = []
            for server in self.servers:
                tail = server.log.read_text(errors="replace").splitlines()[-20:]
                tails += [f"last lines of {server.name}'s log:", *tail]
            raise RuntimeError("\n".join([self._errors[0], *tails]))
        return sample


@dataclass
class Throughput:
    """One configuration's figures."""

    replicas: int
    requests_per_second: float
    requests: int
    seconds: float
    cycle_p50_ms: float
    cycle_p95_ms: float
    cpu_percent: dict[str, float]
    """Share of one CPU (100 = one core busy) per part: servers, postgres, client, other, busy,
    capacity (100 x CPUs)."""
    server_cpu_ms_per_request: float
    cpu_seconds: dict[str, float]

    @classmethod
    def of(cls, replicas: int, sample: Sample) -> Throughput:
        """The figures of the accumulated slices."""
        latencies = sorted(sample.latencies) or [0.0]
        seconds = sample.seconds or 1.0
        return cls(
            replicas=replicas,
            requests_per_second=sample.requests / seconds,
            requests=sample.requests,
            seconds=sample.seconds,
            cycle_p50_ms=1000 * statistics.median(latencies),
            cycle_p95_ms=1000 * latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))],
            cpu_percent={k: 100 * v / seconds for k, v in sample.cpu.items()},
            server_cpu_ms_per_request=1000
            * sample.cpu.get("servers", 0.0)
            / max(sample.requests, 1),
            cpu_seconds=dict(sample.cpu),
        )


def measure_throughput(
    servers: list[Server], credentials: Credentials, meter: CpuMeter, args: argparse.Namespace
) -> dict[int, Throughput]:
    """Warm both configurations up, then alternate 1-replica and 2-replica slices."""
    configs = {1: servers[:1], 2: servers}
    for chosen in configs.values():
        LoadGenerator(chosen, credentials).run(args.warmup, 0.0, None)
    totals = {n: Sample() for n in configs}
    for round_ in range(args.rounds):
        for n in (1, 2) if round_ % 2 == 0 else (2, 1):
            got = LoadGenerator(configs[n], credentials).run(
                SLICE_WARMUP, args.seconds / args.rounds, meter
            )
            totals[n].add(got.requests, got.seconds, got.cpu, got.latencies)
    return {n: Throughput.of(n, sample) for n, sample in totals.items()}


# --- wake-ups across replicas ------------------------------------------------------------------


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pct(p: float) -> float:
        return 1000 * ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    return {
        "p50_ms": 1000 * statistics.median(ordered),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "max_ms": 1000 * ordered[-1],
    }


@dataclass
class Wakeups:
    """Decision on replica B → answer of the long-poll on replica A.

    `p*_ms`: from sending the decision to B (its processing included: what an agent waits);
    `after_ack`: from B's answer to the decision (the recorded decision travelling to A).
    """

    samples: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    decision_p50_ms: float
    decision_p99_ms: float
    after_ack: dict[str, float]


def _long_poll(
    a: Server, request_id: str, agent: dict[str, str], answered: dict[str, float], errors: list[str]
) -> None:
    """Long-poll `request_id` on `a`; note when the answer arrived (or what went wrong)."""
    try:
        with httpx.Client(timeout=40) as http:
            got = http.get(
                f"{a.url}/v1/requests/{request_id}/wait", params={"timeout": 30}, headers=agent
            )
            answered[request_id] = time.perf_counter()
        if got.json().get("status") != "approved":
            errors.append(f"{request_id}: {got.text[:200]}")
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")


def measure_wakeups(a: Server, b: Server, credentials: Credentials, count: int) -> Wakeups:
    """`count` long-polls parked on A, `WAITING_AT_ONCE` at a time, each woken by a decision
    sent to B, one decision at a time."""
    agent = {"Authorization": f"Bearer {credentials.agent_keys[0]}"}
    reviewer = {"Authorization": f"Bearer {credentials.reviewer_tokens[0]}"}
    latencies: list[float] = []
    after_ack: list[float] = []
    decisions: list[float] = []
    with httpx.Client(timeout=30) as http:
        for _ in range(0, count, WAITING_AT_ONCE):
            ids = [
                _expect(http.post(f"{a.url}/v1/requests", json=PAYLOAD, headers=agent), 201)["id"]
                for _ in range(WAITING_AT_ONCE)
            ]
            answered: dict[str, float] = {}
            errors: list[str] = []
            threads = [
                threading.Thread(target=_long_poll, args=(a, i, agent, answered, errors))
                for i in ids
            ]
            for thread in threads:
                thread.start()
            time.sleep(0.5)  # every long-poll is parked on A
            sent: dict[str, float] = {}
            acked: dict[str, float] = {}
            for request_id in ids:
                sent[request_id] = time.perf_counter()
                _expect(
                    http.post(
                        f"{b.url}/v1/requests/{request_id}/decisions",
                        json=DECISION,
                        headers=reviewer,
                    ),
                    200,
                )
                acked[request_id] = time.perf_counter()
                decisions.append(acked[request_id] - sent[request_id])
                time.sleep(0.02)  # one decision at a time, as reviewers make them
            for thread in threads:
                thread.join(60)
            if errors or len(answered) != len(ids):
                raise RuntimeError(f"long-polls failed: {errors[:3]}")
            latencies += [answered[i] - sent[i] for i in ids]
            after_ack += [max(answered[i] - acked[i], 0.0) for i in ids]
    overall = _percentiles(latencies)
    calls = _percentiles(decisions)
    return Wakeups(
        samples=len(latencies),
        p50_ms=overall["p50_ms"],
        p95_ms=overall["p95_ms"],
        p99_ms=overall["p99_ms"],
        max_ms=overall["max_ms"],
        decision_p50_ms=calls["p50_ms"],
        decision_p99_ms=calls["p99_ms"],
        after_ack=_percentiles(after_ack),
    )


def ceiling(one: Throughput, two: Throughput, cpus: int) -> tuple[float, dict[str, float]]:
    """The best 2-replica / 1-replica ratio this machine allows, from the CPU each HTTP request
    cost (ms, averaged over both configurations): a replica is one Python process, so it can
    use at most one core; everything together (replicas, PostgreSQL, load generator) at most
    `cpus` cores, with nothing else running."""
    total = one.requests + two.requests
    per: dict[str, float] = {}
    for part in ("servers", "postgres", "client"):
        spent = one.cpu_seconds.get(part, 0.0) + two.cpu_seconds.get(part, 0.0)
        per[part] = 1000 * spent / max(total, 1)
    whole = sum(per.values()) / 1000
    server = per["servers"] / 1000 or 1e-9
    best_one = min(1 / server, cpus / whole)
    best_two = min(2 / server, cpus / whole)
    return best_two / best_one, per


# --- report --------------------------------------------------------------------------------------


def explain(one: Throughput, two: Throughput, cpus: int) -> str:
    """Why two replicas scale as they do: where the CPU went, and the ceiling it sets."""
    c1, c2 = one.cpu_percent, two.cpu_percent
    best, per = ceiling(one, two, cpus)
    return (
        f"machine busy {c1.get('busy', 0):.0f}% → {c2.get('busy', 0):.0f}% of {100 * cpus}% "
        f"(1 → 2 replicas); replicas {c1.get('servers', 0):.0f}% → {c2.get('servers', 0):.0f}%, "
        f"PostgreSQL backends {c1.get('postgres', 0):.0f}% → {c2.get('postgres', 0):.0f}%, "
        f"load generator {c1.get('client', 0):.0f}% → {c2.get('client', 0):.0f}%, "
        f"other processes {c1.get('other', 0):.0f}% → {c2.get('other', 0):.0f}%. "
        f"CPU per HTTP request: replica {per['servers']:.2f} ms, PostgreSQL "
        f"{per['postgres']:.2f} ms, load generator {per['client']:.2f} ms; with one core per "
        f"replica and {cpus} cores for everything, 2 replicas can reach at most {best:.2f}x "
        f"1 replica on this machine even with nothing else running"
    )


def table(one: Throughput, two: Throughput, ratio: float, wake: Wakeups) -> str:
    """The figures as markdown."""

    def pct(t: Throughput, key: str) -> str:
        return f"{t.cpu_percent.get(key, 0.0):.0f}%"

    lines = [
        "| replicas | HTTP req/s | cycle p50 | cycle p95 | server CPU per req | machine busy "
        "| replicas CPU | PostgreSQL CPU | load gen CPU | other CPU | 2/1 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in (one, two):
        lines.append(
            f"| {t.replicas} | {t.requests_per_second:.0f} | {t.cycle_p50_ms:.1f} ms "
            f"| {t.cycle_p95_ms:.1f} ms | {t.server_cpu_ms_per_request:.2f} ms "
            f"| {pct(t, 'busy')} | {pct(t, 'servers')} | {pct(t, 'postgres')} "
            f"| {pct(t, 'client')} | {pct(t, 'other')} "
            f"| {f'**{ratio:.2f}x**' if t.replicas == 2 else ''} |"
        )
    ack = wake.after_ack
    lines += [
        "",
        "| long-poll wake-up across replicas | samples | p50 | p95 | p99 | max |",
        "|---|---:|---:|---:|---:|---:|",
        f"| decision sent to B → answer on A | {wake.samples} | {wake.p50_ms:.1f} ms "
        f"| {wake.p95_ms:.1f} ms | **{wake.p99_ms:.1f} ms** | {wake.max_ms:.1f} ms |",
        f"| decision answered by B → answer on A | {wake.samples} | {ack['p50_ms']:.1f} ms "
        f"| {ack['p95_ms']:.1f} ms | {ack['p99_ms']:.1f} ms | {ack['max_ms']:.1f} ms |",
        f"| (the decision call itself) | {wake.samples} | {wake.decision_p50_ms:.1f} ms | "
        f"| {wake.decision_p99_ms:.1f} ms | |",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Measure, print, record; the exit status."""
    cpus = os.cpu_count() or 1
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="signoff-bench-replicas-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        url = stack.enter_context(postgres_database(args.pg_admin))
        credentials = prepare(url)
        servers = [stack.enter_context(running_replica(name, url, workdir)) for name in ("A", "B")]
        meter = CpuMeter(servers, args.pg_admin, url.rsplit("/", 1)[1])
        # Wake-ups first, on the fresh cluster: after the throughput phase PostgreSQL is busy
        # for a while (autovacuum of the rows just written), which measures that, not the path.
        measure_wakeups(servers[0], servers[1], credentials, WAITING_AT_ONCE)  # warm-up
        wake = measure_wakeups(servers[0], servers[1], credentials, args.wakeups)
        results = measure_throughput(servers, credentials, meter, args)
    load_after = os.getloadavg()[0]
    one, two = results[1], results[2]
    ratio = two.requests_per_second / one.requests_per_second
    scaled = ratio >= TARGET_RATIO
    woke = wake.p99_ms < TARGET_WAKEUP_P99_MS
    why = explain(one, two, cpus)
    print()
    print(
        f"PostgreSQL, 1 vs 2 replicas: {CLIENTS} clients, create+decide+wait cycles "
        f"({REQUESTS_PER_CYCLE} HTTP requests each, round-robin over the replicas); "
        f"{args.seconds:g} s measured per configuration in {args.rounds} alternating slices "
        f"after {args.warmup:g} s warm-up; {cpus} CPUs, load average {load_before:.1f} before "
        f"and {load_after:.1f} after"
    )
    print()
    print(table(one, two, ratio, wake))
    print()
    print(f"where the CPU went: {why}")
    verdict = "meets" if scaled else "MISSES"
    print(f"target: 2 replicas at least {TARGET_RATIO:.1f}x 1 replica: {verdict} ({ratio:.2f}x)")
    verdict = "meets" if woke else "MISSES"
    print(
        f"target: long-poll wake-up across replicas p99 < {TARGET_WAKEUP_P99_MS:.0f} ms: "
        f"{verdict} ({wake.p99_ms:.1f} ms)"
    )
    note = f"{cpus} CPUs, load {load_before:.1f}→{load_after:.1f}; {why}"
    record(
        [
            Figure(
                figure=f"PostgreSQL: 2 replicas vs 1, create+decide+wait, {CLIENTS} clients",
                value=two.requests_per_second,
                unit="HTTP req/s",
                target=f"≥ {TARGET_RATIO:.1f}x 1 replica",
                passed=scaled,
                compared_with="1 replica, same database and load",
                compared_value=one.requests_per_second,
                ratio=ratio,
                note=note,
            ),
            Figure(
                figure="PostgreSQL: long-poll wake-up across replicas, p99",
                value=wake.p99_ms,
                unit="ms",
                target=f"< {TARGET_WAKEUP_P99_MS:.0f} ms",
                passed=woke,
                note=f"from sending the decision to replica B to the answer on replica A, "
                f"{wake.samples} samples, p50 {wake.p50_ms:.1f} ms; from B's answer: p99 "
                f"{wake.after_ack['p99_ms']:.1f} ms; load {load_before:.1f}→{load_after:.1f}",
            ),
        ]
    )
    if args.json is not None:
        report = {
            "benchmark": "bench_replicas",
            "when": datetime.now(UTC).isoformat(),
            "clients": CLIENTS,
            "seconds": args.seconds,
            "warmup": args.warmup,
            "rounds": args.rounds,
            "cpus": cpus,
            "load_average": {"before": load_before, "after": load_after},
            "python": platform.python_version(),
            "throughput": {"1": asdict(one), "2": asdict(two), "ratio": ratio},
            "target_ratio": TARGET_RATIO,
            "wakeup": asdict(wake),
            "target_wakeup_p99_ms": TARGET_WAKEUP_P99_MS,
            "passed": scaled and woke,
            "why": why,
        }
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0 if scaled and woke else 1


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwind, so the replicas stop and the database is dropped


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the benchmark."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve"]:
        serve(argv)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=12.0, help="measured seconds per config")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument("--rounds", type=int, default=4, help="alternating slices")
    parser.add_argument("--wakeups", type=int, default=200, help="long-poll wake-ups to time")
    parser.add_argument("--json", metavar="PATH", help="also write the figures here as JSON")
    parser.add_argument("--pg-admin", default=DEFAULT_PG_ADMIN, help="PostgreSQL admin URL")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.seconds <= 0 or args.wakeups < 1:
        parser.error("--rounds and --wakeups must be at least 1 and --seconds positive")
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return run(args)
    except (RuntimeError, psycopg.OperationalError) as exc:
        print(f"bench_replicas: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
