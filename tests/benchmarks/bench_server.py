"""Throughput of the signoff server against the floor under any design, on SQLite and PostgreSQL.

Run it with `uv run python tests/benchmarks/bench_server.py [--seconds 10] [--json PATH]`.

For each backend it measures, side by side and with the same load:

* **signoff**: 16 concurrent clients each run create → decide → wait cycles, i.e.
  `POST /v1/requests` (agent key), `POST /v1/requests/{id}/decisions` (reviewer token,
  approve), `GET /v1/requests/{id}/wait?timeout=5` (answers at once: the request is closed).
* **floor**: a minimal Starlette app on the same stack (uvicorn with the httptools parser and the
  uvloop loop it picks itself, as `signoff serve` does; one worker; SQLAlchemy with the
  same driver and the same durability settings; database work where signoff's
  `Database.run` puts it: on the event loop for SQLite, in a threadpool of the same size as
  signoff's, `DEFAULT_DATABASE_THREADS`, for PostgreSQL) that
  serves the same three paths with the least work one can do for them: insert one row, update
  one row by primary key, read one row by primary key. No auth, no validation, no audit log.
* **fastapi-floor**: the same floor on FastAPI, the framework signoff's API is built on, with
  what any FastAPI design of these paths pays at least (FastAPI parses and validates the JSON
  body, a dependency reads the bearer header). It splits the gap in two: what the framework
  costs, and what signoff's own work costs. The target is measured against the Starlette
  floor; the share of the FastAPI floor is reported beside it.

Each server is a separate process (`python bench_server.py --serve …`) on a free loopback port,
so the load generator (16 threads with httpx clients, in this process) and the server do not
share a GIL. The servers of a backend run at once but are loaded in turn: after a warm-up, the
measured seconds are split into alternating slices, so background load on a shared machine falls
on all alike. Figures are HTTP requests per second, plus the server's CPU time per request
(which, unlike rates, hardly depends on how busy the machine is). The target is that signoff
reaches at least half of the floor's rate; the script exits 1 if it does not on either backend
(2 if the benchmark itself could not run).

The PostgreSQL database is created fresh for the run (trust auth, user `postgres` on
127.0.0.1:5432 unless `--pg-admin` or `SIGNOFF_TEST_PG` says otherwise) and always dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import psycopg
from _report import Figure, record
from anyio import to_thread
from fastapi import Body, Depends, FastAPI, Header
from fastapi.responses import JSONResponse as FastAPIJSONResponse
from psycopg import sql
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.pool import NullPool
from starlette.concurrency import run_in_threadpool

from signoff_server.settings import DEFAULT_DATABASE_THREADS

TARGET_RATIO = 0.5
CLIENTS = 16
REQUESTS_PER_CYCLE = 3
SLICE_WARMUP = 0.5  # seconds of load before each measured slice (connections, steady state)
ROLE = "bench-approver"
FASTAPI_FLOOR = "fastapi-floor"
APPS = ("signoff", "floor", FASTAPI_FLOOR)
DEFAULT_PG_ADMIN = os.environ.get(
    "SIGNOFF_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
)

# The reference scenario's request (DESIGN.md §12), sent to both apps.
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
    "correlation": {"thread_id": "t-1"},
}
DECISION: dict[str, Any] = {"verdict": "approve"}


# --- the floor: one row in, one row updated, one row out -------------------------------------

floor_metadata = MetaData()
floor_items = Table(
    "floor_items",
    floor_metadata,
    Column("id", String(40), primary_key=True),
    Column("status", String(20), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


def floor_engine(url: str) -> Engine:
    """An engine with the same driver and durability settings as signoff's, and nothing more."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:  # pyright: ignore[reportUnusedFunction]
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Any) -> None:  # pyright: ignore[reportUnusedFunction]
            write = connection.get_execution_options().get("floor_write", False)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    return create_engine(url, pool_size=10, max_overflow=10)


class FloorStore:
    """The floor's database work: one primary-key statement per path, where signoff's
    `Database.run` puts it (on the event loop for SQLite, in the thread pool for PostgreSQL)."""

    def __init__(self, url: str) -> None:
        self.engine = floor_engine(url)
        self.on_loop = url.startswith("sqlite")

    async def run(self, work: Callable[..., Any], *args: Any) -> Any:
        """As signoff's `Database.run` does: SQLite's statements take microseconds, less than
        the trip to a worker thread and back; PostgreSQL's wait for a round trip."""
        return work(*args) if self.on_loop else await run_in_threadpool(work, *args)

    def insert_item(self, payload: dict[str, Any]) -> str:
        """Insert one row; its id."""
        item_id = uuid.uuid4().hex
        with self.engine.connect().execution_options(floor_write=True) as conn, conn.begin():
            conn.execute(
                insert(floor_items).values(
                    id=item_id, status="pending", payload=payload, created_at=datetime.now(UTC)
                )
            )
        return item_id

    def update_item(self, item_id: str, status: str) -> bool:
        """Update one row by primary key; whether it existed."""
        with self.engine.connect().execution_options(floor_write=True) as conn, conn.begin():
            result = conn.execute(
                update(floor_items).where(floor_items.c.id == item_id).values(status=status)
            )
        return result.rowcount == 1

    def read_item(self, item_id: str) -> dict[str, Any] | None:
        """Read one row by primary key."""
        with self.engine.connect() as conn, conn.begin():
            row = conn.execute(select(floor_items).where(floor_items.c.id == item_id)).first()
        if row is None:
            return None
        return {
            "id": row.id,
            "status": row.status,
            **row.payload,
            "created_at": row.created_at.isoformat(),
        }


@asynccontextmanager
async def _floor_lifespan(_: object) -> AsyncIterator[None]:
    # The same pool size as signoff's (`Settings.database_threads`): a smaller pool than
    # anyio's default of 40 wastes less CPU on handing the GIL over, for either app.
    to_thread.current_default_thread_limiter().total_tokens = DEFAULT_DATABASE_THREADS
    yield


def _bearer(authorization: Annotated[str, Header()] = "") -> str:
    return authorization.removeprefix("Bearer ")


def create_fastapi_floor_app(url: str) -> Any:
    """The floor on FastAPI, the framework signoff is built on: the same three paths and
    statements as `create_floor_app`, with what any FastAPI design of them pays at least (a
    JSON body parsed and validated by FastAPI, a bearer header read by a dependency, path
    parameters), and no more: no auth lookup, no response model."""
    store = FloorStore(url)

    app = FastAPI(lifespan=_floor_lifespan, openapi_url=None)

    @app.post("/v1/requests", status_code=201)
    async def create(  # pyright: ignore[reportUnusedFunction]
        payload: Annotated[dict[str, Any], Body()], _key: Annotated[str, Depends(_bearer)]
    ) -> FastAPIJSONResponse:
        item_id = await store.run(store.insert_item, payload)
        return FastAPIJSONResponse({"id": item_id, "status": "pending"}, status_code=201)

    @app.post("/v1/requests/{request_id}/decisions")
    async def decide(  # pyright: ignore[reportUnusedFunction]
        request_id: str,
        body: Annotated[dict[str, Any], Body()],
        _key: Annotated[str, Depends(_bearer)],
    ) -> FastAPIJSONResponse:
        status = "approved" if body.get("verdict") == "approve" else "rejected"
        if not await store.run(store.update_item, request_id, status):
            return FastAPIJSONResponse({"error": "not found"}, status_code=404)
        return FastAPIJSONResponse({"id": request_id, "status": status})

    @app.get("/v1/requests/{request_id}/wait")
    async def read(  # pyright: ignore[reportUnusedFunction]
        request_id: str,
        _key: Annotated[str, Depends(_bearer)],
        timeout: float = 30.0,  # noqa: ASYNC109 - parsed like signoff's; the row is closed
    ) -> FastAPIJSONResponse:
        item = await store.run(store.read_item, request_id)
        if item is None:
            return FastAPIJSONResponse({"error": "not found"}, status_code=404)
        return FastAPIJSONResponse(item)

    @app.get("/healthz")
    async def healthz() -> FastAPIJSONResponse:  # pyright: ignore[reportUnusedFunction]
        return FastAPIJSONResponse({"status": "ok"})

    return app


def create_floor_app(url: str) -> Any:
    """The floor: the same paths as signoff, each doing one primary-key statement."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    store = FloorStore(url)

    async def create(request: Request) -> Response:
        item_id = await store.run(store.insert_item, await request.json())
        return JSONResponse({"id": item_id, "status": "pending"}, status_code=201)

    async def decide(request: Request) -> Response:
        body = await request.json()
        status = "approved" if body.get("verdict") == "approve" else "rejected"
        item_id = request.path_params["request_id"]
        if not await store.run(store.update_item, item_id, status):
            return JSONResponse({"error": "not found"}, status_code=404)
        return JSONResponse({"id": item_id, "status": status})

    async def read(request: Request) -> Response:
        item = await store.run(store.read_item, request.path_params["request_id"])
        if item is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return JSONResponse(item)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        lifespan=_floor_lifespan,
        routes=[
            Route("/v1/requests", create, methods=["POST"]),
            Route("/v1/requests/{request_id}/decisions", decide, methods=["POST"]),
            Route("/v1/requests/{request_id}/wait", read, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
    )


def serve(argv: list[str]) -> None:
    """Server-process entry point: `bench_server.py --serve APP --url U --port N`."""
    import uvicorn

    parser = argparse.ArgumentParser(prog="bench_server.py --serve")
    parser.add_argument("--serve", choices=APPS, required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--keys", type=Path, required=True, help="where signoff's key files go")
    args = parser.parse_args(argv)
    if args.serve == "signoff":
        from signoff_server.app import create_app
        from signoff_server.settings import Settings

        # On PostgreSQL the key files' default place is the working directory.
        keys: Path = args.keys
        settings = Settings(
            database_url=args.url,
            audit_key_file=str(keys / "audit.key"),
            webhook_keys_path=str(keys / "webhook-keys.json"),
            secret_key_file=str(keys / "secret.key"),
        )
        app = create_app(settings)
    elif args.serve == FASTAPI_FLOOR:
        app = create_fastapi_floor_app(args.url)
    else:
        app = create_floor_app(args.url)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


# --- running servers ---------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of a process (Linux), or None where /proc is not available."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    """A server process and where it listens."""

    app: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path


@contextmanager
def running_server(app: str, db_url: str, workdir: Path) -> Iterator[Server]:
    """Start `app` on `db_url` in its own process; wait for /healthz; always stop it."""
    port = free_port()
    log = workdir / f"{app}-{port}.log"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--serve",
        app,
        "--url",
        db_url,
        "--port",
        str(port),
        "--keys",
        str(workdir),
    ]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    server = Server(app, f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the {app} server exited at start:\n{log.read_text()}")
            try:
                if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {app} server did not start:\n{log.read_text()}")
            time.sleep(0.05)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


# --- load ----------------------------------------------------------------------------------------


@dataclass
class Credentials:
    """One agent key and one reviewer token per client (the floor ignores them)."""

    agent_keys: list[str]
    reviewer_tokens: list[str]


def _expect(response: httpx.Response, status: int) -> dict[str, Any]:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code} (expected {status}): {response.text[:300]}"
        )
    body: dict[str, Any] = response.json()
    return body


@dataclass
class Sample:
    """What one measured slice saw."""

    requests: int = 0
    seconds: float = 0.0
    server_cpu: float | None = 0.0
    client_cpu: float = 0.0
    latencies: list[float] = field(default_factory=list[float])

    def add(self, other: Sample) -> None:
        """Accumulate another slice of the same configuration."""
        self.requests += other.requests
        self.seconds += other.seconds
        self.client_cpu += other.client_cpu
        self.latencies += other.latencies
        if self.server_cpu is None or other.server_cpu is None:
            self.server_cpu = None
        else:
            self.server_cpu += other.server_cpu


class LoadGenerator:
    """CLIENTS threads, each with its own httpx client, running cycles back to back.

    Threads, not asyncio: httpx's sync client costs the load generator about a third less CPU
    per request, and on a small machine that CPU is taken from the servers under test.
    """

    def __init__(self, server: Server, credentials: Credentials) -> None:
        self.server = server
        self.credentials = credentials
        self._stop = threading.Event()
        self._measuring = False
        self._counts = [0] * CLIENTS  # one slot per thread: no lost updates between threads
        self._latencies: list[list[float]] = [[] for _ in range(CLIENTS)]
        self._errors: list[str] = []

    def _client(self, index: int) -> None:
        agent = {"Authorization": f"Bearer {self.credentials.agent_keys[index]}"}
        reviewer = {"Authorization": f"Bearer {self.credentials.reviewer_tokens[index]}"}
        counts, latencies, clock = self._counts, self._latencies[index], time.perf_counter
        try:
            with httpx.Client(base_url=self.server.url, timeout=30) as http:
                while not self._stop.is_set():
                    started = clock()
                    created = _expect(http.post("/v1/requests", json=PAYLOAD, headers=agent), 201)
                    counts[index] += 1
                    path = f"/v1/requests/{created['id']}"
                    _expect(http.post(f"{path}/decisions", json=DECISION, headers=reviewer), 200)
                    counts[index] += 1
                    response = http.get(f"{path}/wait", params={"timeout": 5}, headers=agent)
                    waited = _expect(response, 200)
                    counts[index] += 1
                    if waited["status"] != "approved":
                        raise RuntimeError(f"{path} is {waited['status']!r} after the decision")
                    if self._measuring:
                        latencies.append(clock() - started)
        except Exception as exc:
            self._errors.append(f"{type(exc).__name__}: {exc}")
            self._stop.set()

    def run(self, warmup: float, seconds: float) -> Sample:
        """Load the server for `warmup` + `seconds`; what the last `seconds` saw."""
        threads = [threading.Thread(target=self._client, args=(i,)) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        try:
            self._stop.wait(warmup)
            self._measuring = True
            pid = self.server.process.pid
            requests, start = sum(self._counts), time.perf_counter()
            server_start, client_start = cpu_seconds(pid), time.process_time()
            self._stop.wait(seconds)
            requests, elapsed = sum(self._counts) - requests, time.perf_counter() - start
            server_end, client_end = cpu_seconds(pid), time.process_time()
            server_cpu = (
                None if server_start is None or server_end is None else server_end - server_start
            )
            self._measuring = False
        finally:
            self._stop.set()
            for thread in threads:
                thread.join()
        if self._errors:
            tail = self.server.log.read_text(errors="replace").splitlines()[-30:]
            log = "\n".join(["", f"last lines of the {self.server.app} server's log:", *tail])
            raise RuntimeError(f"{self.server.app}: {self._errors[0]}{log if tail else ''}")
        return Sample(
            requests=requests,
            seconds=elapsed,
            server_cpu=server_cpu,
            client_cpu=client_end - client_start,
            latencies=[x for per_thread in self._latencies for x in per_thread],
        )


@dataclass
class Result:
    """One configuration's figures."""

    app: str
    backend: str
    requests_per_second: float
    cycles_per_second: float
    requests: int
    seconds: float
    cycle_p50_ms: float
    cycle_p95_ms: float
    server_cpu_percent: float | None
    server_cpu_ms_per_request: float | None
    """CPU the server process spent per HTTP request: robust to a busy machine, unlike rates."""
    client_cpu_percent: float

    @classmethod
    def of(cls, app: str, backend: str, sample: Sample) -> Result:
        """The figures of the accumulated slices of one configuration."""
        latencies = sorted(sample.latencies) or [0.0]
        rate = sample.requests / sample.seconds
        return cls(
            app=app,
            backend=backend,
            requests_per_second=rate,
            cycles_per_second=rate / REQUESTS_PER_CYCLE,
            requests=sample.requests,
            seconds=sample.seconds,
            cycle_p50_ms=1000 * statistics.median(latencies),
            cycle_p95_ms=1000 * latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))],
            server_cpu_percent=None
            if sample.server_cpu is None
            else 100 * sample.server_cpu / sample.seconds,
            server_cpu_ms_per_request=None
            if sample.server_cpu is None or not sample.requests
            else 1000 * sample.server_cpu / sample.requests,
            client_cpu_percent=100 * sample.client_cpu / sample.seconds,
        )


def measure(
    servers: dict[str, Server],
    credentials: dict[str, Credentials],
    *,
    backend: str,
    warmup: float,
    seconds: float,
    rounds: int,
) -> dict[str, Result]:
    """Warm every server up, then drive them in alternating slices so that background load on
    the machine falls on all alike; `seconds` of measurement per server in all."""
    for app, server in servers.items():
        LoadGenerator(server, credentials[app]).run(warmup, 0.0)
    totals = {app: Sample() for app in servers}
    order = list(servers)
    for round_ in range(rounds):
        for app in order if round_ % 2 == 0 else reversed(order):
            generator = LoadGenerator(servers[app], credentials[app])
            totals[app].add(generator.run(SLICE_WARMUP, seconds / rounds))
    return {app: Result.of(app, backend, sample) for app, sample in totals.items()}


# --- stores ---------------------------------------------------------------------------------------


def prepare_signoff(url: str) -> Credentials:
    """Migrate the store and mint one agent key and one reviewer token per client."""
    from signoff_server.db import Database, migrate
    from signoff_server.identity import create_agent_key, create_token, set_user

    migrate(url)
    db = Database(url)
    try:
        with db.write() as conn:
            set_user(conn, "reviewer@example.com", [ROLE])
            keys = [create_agent_key(conn, f"bench-agent-{i}") for i in range(CLIENTS)]
            tokens = [create_token(conn, "reviewer@example.com") for _ in range(CLIENTS)]
    finally:
        db.dispose()
    return Credentials(keys, tokens)


def prepare_floor(url: str) -> Credentials:
    """Create the floor's one table; it needs no credentials."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        floor_metadata.create_all(engine)
    finally:
        engine.dispose()
    return Credentials(["none"] * CLIENTS, ["none"] * CLIENTS)


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh database for this run (a `postgresql+psycopg://` URL), dropped afterwards."""
    name = f"signoff_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def stores(backend: str, workdir: Path, stack: ExitStack, pg_admin: str) -> dict[str, str]:
    """The database URL of each app for `backend`."""
    if backend == "sqlite":
        return {app: f"sqlite:///{workdir / f'{app}.db'}" for app in APPS}
    url = stack.enter_context(postgres_database(pg_admin))
    return dict.fromkeys(APPS, url)  # one database; the floors' table is their own


# --- report ---------------------------------------------------------------------------------------


def table(results: dict[str, dict[str, Result]]) -> str:
    """The figures as a markdown table: each app's rate as a share of each floor's."""

    def cpu(value: float | None, unit: str, digits: int) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}{unit}"

    lines = [
        "| backend | app | HTTP req/s | cycles/s | cycle p50 | cycle p95 | server CPU "
        "| server CPU per req | client CPU | / floor | / FastAPI floor |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for backend, by_app in results.items():
        for app in APPS:
            r = by_app[app]
            shares = [r.requests_per_second / by_app[f].requests_per_second for f in APPS[1:]]
            cells = [
                f"**{x:.2f}**" if app == "signoff" and f == "floor" else f"{x:.2f}"
                for x, f in zip(shares, APPS[1:], strict=True)
            ]
            lines.append(
                f"| {backend} | {app} | {r.requests_per_second:.0f} | {r.cycles_per_second:.0f} "
                f"| {r.cycle_p50_ms:.1f} ms | {r.cycle_p95_ms:.1f} ms "
                f"| {cpu(r.server_cpu_percent, '%', 0)} "
                f"| {cpu(r.server_cpu_ms_per_request, ' ms', 2)} "
                f"| {cpu(r.client_cpu_percent, '%', 0)} | {' | '.join(cells)} |"
            )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Measure every configuration, print the table, write the JSON; the exit status."""
    results: dict[str, dict[str, Result]] = {}
    load_before = os.getloadavg()[0]
    prepare: dict[str, Callable[[str], Credentials]] = {
        "signoff": prepare_signoff,
        "floor": prepare_floor,
        FASTAPI_FLOOR: prepare_floor,
    }
    with tempfile.TemporaryDirectory(prefix="signoff-bench-") as tmp:
        for backend in args.backends:
            with ExitStack() as stack:
                workdir = Path(tmp) / backend
                workdir.mkdir()
                urls = stores(backend, workdir, stack, args.pg_admin)
                credentials = {app: prepare[app](url) for app, url in urls.items()}
                servers = {
                    app: stack.enter_context(running_server(app, url, workdir))
                    for app, url in urls.items()
                }
                results[backend] = measure(
                    servers,
                    credentials,
                    backend=backend,
                    warmup=args.warmup,
                    seconds=args.seconds,
                    rounds=args.rounds,
                )
            for app, result in results[backend].items():
                print(
                    f"{backend:>8} {app:>13}: {result.requests_per_second:7.0f} HTTP req/s",
                    file=sys.stderr,
                    flush=True,
                )
    load_after = os.getloadavg()[0]
    ratios = {
        backend: by_app["signoff"].requests_per_second / by_app["floor"].requests_per_second
        for backend, by_app in results.items()
    }
    framework_ratios = {
        backend: by_app["signoff"].requests_per_second / by_app[FASTAPI_FLOOR].requests_per_second
        for backend, by_app in results.items()
    }
    passed = all(ratio >= TARGET_RATIO for ratio in ratios.values())
    print()
    print(
        f"signoff vs floor: {CLIENTS} clients, create+decide+wait cycles "
        f"({REQUESTS_PER_CYCLE} HTTP requests each); {args.seconds:g} s measured per "
        f"configuration in {args.rounds} alternating slices after {args.warmup:g} s warm-up; "
        f"{os.cpu_count()} CPUs, load average {load_before:.1f} before and {load_after:.1f} after"
    )
    print()
    print(table(results))
    print()
    verdict = "meets" if passed else "MISSES"
    print(f"target: signoff at least {TARGET_RATIO:.0%} of the floor on every backend: {verdict}")
    if args.json is not None:
        report = {
            "benchmark": "bench_server",
            "when": datetime.now(UTC).isoformat(),
            "clients": CLIENTS,
            "requests_per_cycle": REQUESTS_PER_CYCLE,
            "seconds": args.seconds,
            "warmup": args.warmup,
            "rounds": args.rounds,
            "cpus": os.cpu_count(),
            "load_average": {"before": load_before, "after": load_after},
            "python": platform.python_version(),
            "target_ratio": TARGET_RATIO,
            "passed": passed,
            "backends": {
                backend: {
                    **{app: asdict(result) for app, result in by_app.items()},
                    "ratio": ratios[backend],
                    "ratio_to_fastapi_floor": framework_ratios[backend],
                }
                for backend, by_app in results.items()
            },
        }
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    record(
        Figure(
            figure=f"{backend}: create+decide+wait cycles, {CLIENTS} clients",
            value=by_app["signoff"].requests_per_second,
            unit="HTTP req/s",
            target=f"≥ {TARGET_RATIO:.2f}x floor",
            passed=ratios[backend] >= TARGET_RATIO,
            compared_with="floor: minimal Starlette app, same stack",
            compared_value=by_app["floor"].requests_per_second,
            ratio=ratios[backend],
            note=f"{framework_ratios[backend]:.2f}x the same floor on FastAPI "
            f"({by_app[FASTAPI_FLOOR].requests_per_second:.0f} HTTP req/s)",
        )
        for backend, by_app in results.items()
    )
    return 0 if passed else 1


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwind, so servers stop and the database is dropped


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the benchmark."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve"]:
        serve(argv)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument(
        "--rounds", type=int, default=4, help="alternating slices the seconds are split into"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the figures here as JSON")
    parser.add_argument(
        "--backends",
        type=lambda value: [b.strip() for b in value.split(",") if b.strip()],
        default=["sqlite", "postgres"],
        help="comma-separated: sqlite,postgres (default both)",
    )
    parser.add_argument("--pg-admin", default=DEFAULT_PG_ADMIN, help="PostgreSQL admin URL")
    args = parser.parse_args(argv)
    unknown = set(args.backends) - {"sqlite", "postgres"}
    if args.rounds < 1 or args.seconds <= 0:
        parser.error("--rounds must be at least 1 and --seconds positive")
    if unknown or not args.backends:
        parser.error(f"--backends takes sqlite and/or postgres, not {sorted(unknown)}")
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return run(args)
    except (RuntimeError, psycopg.OperationalError) as exc:
        print(f"bench_server: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
