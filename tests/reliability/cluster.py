"""Support for the reliability suite: real server processes, a real receiver, and the checks.

- `ServerProcess`: `serve.py` (the app `signoff serve` runs) in a process group of its own, on a
  fixed free port, so it can be SIGKILLed and restarted where clients expect it.
- `Receiver`: a callback receiver (uvicorn in a thread) that verifies every signature and records
  each delivery's `webhook-id`; it can be down, slow, or answer 5xx for a while.
- `postgres_database()`: a database of the run's own on 127.0.0.1:5432, always dropped.
- `Ledger` and `Workload`: agents that create (some with short deadlines that must expire) and
  reviewers that decide, each retrying across the servers until acknowledged, recording exactly
  what was acknowledged.
- `check_store()`: what the database says about the acknowledged work (nothing lost, nothing
  twice, every timer fired once, every callback delivered under one stable id), and
  `audit_verify()`: `signoff audit export` + `signoff audit verify` as an operator runs them.

Nothing here imports another test directory's conftest.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import uvicorn
from psycopg import sql
from sqlalchemy import func, select

from signoff import CallbackEvent, SignatureError, Verifier
from signoff_server.audit import log_size
from signoff_server.audit_cli import export_log
from signoff_server.callbacks.outbox import DELIVER_TIMER, callback_outbox
from signoff_server.checkpoints import Checkpointer, load_or_create_key
from signoff_server.db import Database, migrate
from signoff_server.identity import create_agent_key, create_token, set_user
from signoff_server.lifecycle import DEADLINE_TIMER
from signoff_server.schema import audit_events, decisions, requests
from signoff_server.timers import timers

PG_ADMIN = os.environ.get("SIGNOFF_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
SERVE = Path(__file__).with_name("serve.py")
ROLE = "ops-approver"
TERMINAL = ("approved", "rejected", "responded", "expired", "cancelled")


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(what: str, predicate: Callable[[], bool], timeout: float, step: float = 0.1) -> None:
    """Poll `predicate` until it holds; AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(step)


class Phases:
    """Wall-clock seconds per phase of a test, for its report."""

    def __init__(self) -> None:
        self._last = time.monotonic()
        self.seconds: dict[str, float] = {}

    def mark(self, name: str) -> None:
        """Close the phase that ran since the last mark, naming it."""
        now = time.monotonic()
        self.seconds[name] = round(now - self._last, 1)
        self._last = now

    def __str__(self) -> str:
        return "phases: " + ", ".join(f"{k} {v:g} s" for k, v in self.seconds.items())


# --- PostgreSQL ----------------------------------------------------------------------------------


def pg_reachable() -> str | None:
    """None if the PostgreSQL server answers; else why not."""
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3):
            return None
    except psycopg.OperationalError as exc:
        return f"PostgreSQL is not reachable at {PG_ADMIN}: {exc}"


@contextmanager
def postgres_database(prefix: str = "signoff_rel", *, migrated: bool = True) -> Iterator[str]:
    """A fresh database of this run's own (a `postgresql://` URL), migrated unless told
    otherwise; always dropped."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"
        if migrated:
            migrate(url)
        yield url
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def terminate_backends(url: str, *, application: str | None = None) -> int:
    """`pg_terminate_backend` on the connections to `url`'s database (only those with this
    `application_name` if given: `signoff` for the servers' pools, `signoff-listen` for their
    LISTEN connections, also recognised by their last query). Returns how many were
    terminated."""
    database = url.rsplit("/", 1)[1]
    query = (
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = %s AND pid <> pg_backend_pid()"
        " AND (%s::text IS NULL OR application_name = %s::text"
        " OR (%s::text = 'signoff-listen' AND query ILIKE 'LISTEN%%'))"
    )
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as admin:
        rows = admin.execute(query, (database, application, application, application)).fetchall()
    return sum(1 for (done,) in rows if done)


# --- identities ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identities:
    """Agent keys and reviewer tokens (index i belongs to load thread i)."""

    agent_keys: list[str]
    reviewer_tokens: list[str]
    reviewers: list[str]


def prepare(url: str, count: int) -> Identities:
    """Mint `count` agent keys and `count` reviewers (each holding ROLE) with their tokens."""
    db = Database(url)
    try:
        with db.write() as conn:
            keys = [create_agent_key(conn, f"agent-{i}") for i in range(count)]
            emails = [f"reviewer-{i}@example.com" for i in range(count)]
            for email in emails:
                set_user(conn, email, [ROLE])
            tokens = [create_token(conn, email) for email in emails]
    finally:
        db.dispose()
    return Identities(keys, tokens, emails)


# --- server processes ----------------------------------------------------------------------------


def suite_settings(url: str, workdir: Path, **overrides: Any) -> dict[str, Any]:
    """Settings for serve.py: shared key files in `workdir`, fast ticks, short retries."""
    return {
        "database_url": url,
        "webhook_keys_path": str(workdir / "webhook-keys.json"),
        "audit_key_file": str(workdir / "audit.key"),
        "secret_key_file": str(workdir / "secret.key"),
        "timer_interval": 0.1,
        "wait_recheck": 5.0,
        "callback_timeout": 1.0,
        "callback_retry_delays": [0.3, 0.6, 1.0, 1.5, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0],
        "audit_checkpoint_seconds": 2.0,
        "timer_lease": 8.0,
        **overrides,
    }


class Zygote:
    """`serve.py zygote`: forks server and CLI processes from one process that imported the
    server once. Started on first use, for the whole test session; stopping it (or this process
    dying) ends every child."""

    _instance: Zygote | None = None
    _guard = threading.Lock()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process = subprocess.Popen(
            [sys.executable, str(SERVE), "zygote"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    @classmethod
    def get(cls) -> Zygote:
        """The session's zygote (started now if need be)."""
        with cls._guard:
            if cls._instance is None or cls._instance._process.poll() is not None:
                cls._instance = Zygote()
                atexit.register(cls._instance.close)
            return cls._instance

    def _ask(self, command: dict[str, Any]) -> dict[str, Any]:
        process = self._process
        assert process.stdin is not None
        assert process.stdout is not None
        with self._lock:
            process.stdin.write(json.dumps(command) + "\n")
            process.stdin.flush()
            line = process.stdout.readline()
        if not line:
            raise RuntimeError("the zygote process died")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def spawn(self, argv: list[str]) -> int:
        """Fork `serve.py ARGV`; its process id."""
        return int(self._ask({"argv": argv})["pid"])

    def wait(self, pid: int, timeout: float) -> int | None:
        """The child's exit status, or None if it still runs after `timeout` seconds."""
        status = self._ask({"wait": pid, "timeout": timeout})["exit"]
        return None if status is None else int(status)

    def close(self) -> None:
        """End the zygote; its children die with it."""
        process = self._process
        if process.poll() is None:
            if process.stdin is not None:
                with contextlib.suppress(OSError):
                    process.stdin.close()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def run_cli(args: list[str], log: Path, timeout: float = 300) -> tuple[int, str]:
    """Run the `signoff` command line in a process of its own; (exit status, its output)."""
    log.write_text("")
    zygote = Zygote.get()
    pid = zygote.spawn(["--log", str(log), "cli", *args])
    status = zygote.wait(pid, timeout)
    if status is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        zygote.wait(pid, 15)
        return -1, f"timed out after {timeout} s\n{log.read_text()}"
    return status, log.read_text()


class ServerProcess:
    """One server process on a fixed port; `kill()` SIGKILLs it, `start()` (re)starts it.

    It runs serve.py's `serve` with `settings`, or, given `cli`, the command line
    `signoff serve --port N CLI...` exactly as an operator starts it (migrations included).
    """

    def __init__(
        self,
        name: str,
        settings: dict[str, Any],
        workdir: Path,
        *,
        cli: list[str] | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.cli = cli
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"{name}.log"
        self.pid: int | None = None
        self.starts = 0
        self.kills = 0

    def start(self, timeout: float = 60.0) -> None:
        """Start the process and return once `GET /healthz` answers."""
        argv = ["--log", str(self.log), "serve", json.dumps(self.settings), str(self.port)]
        if self.cli is not None:
            argv = ["--log", str(self.log), "cli", "serve", "--port", str(self.port), *self.cli]
        zygote = Zygote.get()
        self.pid = pid = zygote.spawn(argv)
        self.starts += 1
        deadline = time.monotonic() + timeout
        while True:
            if zygote.wait(pid, 0) is not None:
                self.pid = None
                raise AssertionError(f"{self.name} exited at start:\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"{self.name} did not start:\n{self.tail()}")
            time.sleep(0.02)

    @property
    def alive(self) -> bool:
        """Whether the process runs."""
        return self.pid is not None and Zygote.get().wait(self.pid, 0) is None

    def _end(self, sig: signal.Signals, timeout: float) -> bool:
        pid = self.pid
        if pid is None:
            return True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        if Zygote.get().wait(pid, timeout) is None:
            return False
        self.pid = None
        return True

    def kill(self) -> None:
        """SIGKILL the process (its session): no shutdown code runs, nothing is flushed."""
        if self.alive:
            self.kills += 1
        self._end(signal.SIGKILL, 15)

    def stop(self) -> None:
        """SIGTERM (a graceful stop), SIGKILL if it does not end within 15 s."""
        if not self._end(signal.SIGTERM, 15):
            self._end(signal.SIGKILL, 15)

    def tail(self, lines: int = 40) -> str:
        """The end of the process's log."""
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON log lines the process wrote (other lines skipped)."""
        records: list[dict[str, Any]] = []
        if not self.log.exists():
            return records
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue
        return records


@contextmanager
def servers(count: int, url: str, workdir: Path, **overrides: Any) -> Iterator[list[ServerProcess]]:
    """`count` server processes on one database, started one after the other; always stopped."""
    settings = suite_settings(url, workdir, **overrides)
    started: list[ServerProcess] = []
    try:
        for n in range(count):
            server = ServerProcess(f"replica-{n}", settings, workdir)
            started.append(server)
            server.start()
        yield started
    finally:
        for server in started:
            server.stop()


# --- the callback receiver -----------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """One POST the receiver saw: its webhook-id, the request it is about, what it answered."""

    webhook_id: str
    request_id: str | None
    event_type: str | None
    status: int
    verified: bool
    at: float
    acknowledged: bool
    """Verified, answered 2xx, and within the sender's timeout: the sender saw it delivered."""


@dataclass
class Receiver:
    """A callback receiver on a loopback port, in a thread.

    `failing(n)` decides the status of the n-th POST (None: verify and answer 200, or 400 if the
    signature does not verify); `delay` seconds pass before it answers. A delay at or beyond
    `sender_timeout` means the sender gave up first: the POST is recorded, not acknowledged.
    """

    verifier: Verifier | None = None
    port: int = field(default_factory=free_port)
    sender_timeout: float = 1.0
    delay: float = 0.0
    failing: Callable[[int], int | None] = lambda _n: None
    deliveries: list[Delivery] = field(default_factory=list[Delivery])

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Where callbacks go."""
        return f"http://127.0.0.1:{self.port}/hooks/signoff"

    async def _app(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Any],
        send: Callable[[MutableMapping[str, Any]], Any],
    ) -> None:
        if scope["type"] != "http":
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        with self._lock:
            index = len(self.deliveries)
        forced = self.failing(index)
        verified, request_id, kind = False, None, None
        if self.verifier is not None:
            try:
                self.verifier.verify(body, headers)
                verified = True
            except SignatureError:
                verified = False
        try:
            event = CallbackEvent.model_validate_json(body)
            request_id, kind = event.data.request.id, event.type
        except ValueError:
            pass
        status = forced if forced is not None else (200 if verified else 400)
        delay = self.delay
        if delay:
            await asyncio.sleep(delay)
        acknowledged = verified and 200 <= status < 300 and delay < self.sender_timeout
        with self._lock:
            self.deliveries.append(
                Delivery(
                    headers.get("webhook-id", ""),
                    request_id,
                    kind,
                    status,
                    verified,
                    time.time(),
                    acknowledged,
                )
            )
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    def start(self) -> Receiver:
        """Serve; returns once the port accepts connections."""
        config = uvicorn.Config(
            self._app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            interface="asgi3",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        wait_until("the receiver to start", lambda: bool(self._server and self._server.started), 15)
        return self

    def stop(self) -> None:
        """Stop serving: the port refuses connections."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=15)
        self._server = self._thread = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def snapshot(self) -> list[Delivery]:
        """The deliveries so far."""
        with self._lock:
            return list(self.deliveries)

    def of_request(self, request_id: str) -> list[Delivery]:
        """Every POST about one request, in order."""
        return [d for d in self.snapshot() if d.request_id == request_id]


def pinned_verifier(server_url: str) -> tuple[Verifier, str]:
    """A Verifier for the webhook keys `GET /v1/keys` publishes, and the audit verifier key."""
    keys = httpx.get(f"{server_url}/v1/keys", timeout=10).json()
    return Verifier([k["public_key"] for k in keys["webhook_keys"]]), str(keys["audit_key"])


# --- load ----------------------------------------------------------------------------------------


def request_body(
    key: str, *, callback: str | None, sla: str, thread: int, n: int
) -> dict[str, Any]:
    """A request in the shape of the reference scenario, with a unique idempotency key."""
    body: dict[str, Any] = {
        "action": {
            "name": "payments.release",
            "arguments": {"invoice_id": f"INV-{thread}-{n}", "amount": "125.00", "currency": "EUR"},
        },
        "business_object": {"type": "invoice", "id": f"INV-{thread}-{n}"},
        "summary": "release a payment",
        "route": {"role": ROLE},
        "sla": sla,
        "correlation": {"thread_id": f"t-{thread}", "step": str(n)},
        "idempotency_key": key,
    }
    if callback is not None:
        body["callback"] = {"url": callback}
    return body


@dataclass
class Ledger:
    """What the load generator was told, and what it saw. Guarded by `lock`."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    created: dict[str, str] = field(default_factory=dict[str, str])
    """idempotency key -> request id, for every acknowledged create (201, or 200 on a retry)."""
    replays: int = 0
    """Creates acknowledged with 200 after an attempt without an answer (idempotent retry)."""
    expiring: set[str] = field(default_factory=set[str])
    """Acknowledged requests with a short deadline and no decision: they must expire."""
    decided: dict[str, tuple[str, str]] = field(default_factory=dict[str, tuple[str, str]])
    """request id -> (reviewer, verdict) for every acknowledged decision (200)."""
    unsure: set[str] = field(default_factory=set[str])
    """Decisions sent without an answer, then refused as already decided: committed or not."""
    unacknowledged: int = 0
    """Operations given up on without any answer (counted, not checked)."""
    unavailable: Counter[str] = field(default_factory=Counter[str])
    """5xx answers seen (a 503 names a fault; a 500 is a bug), by status and error code."""
    unexpected: list[str] = field(default_factory=list[str])
    """Answers no fault explains: the test fails on any."""

    def summary(self) -> dict[str, int]:
        """Counts for the report."""
        with self.lock:
            return {
                "requests": len(self.created),
                "decisions": len(self.decided),
                "expiring": len(self.expiring),
                "replayed_creates": self.replays,
                "unsure_decisions": len(self.unsure),
                "unacknowledged": self.unacknowledged,
                "http_5xx": sum(self.unavailable.values()),
            }


class Workload:
    """`threads` agent/reviewer pairs against `urls` (tried in turn, like a load balancer with
    health checks), each looping create → (decide | let expire) until `stop()`.

    A call is retried on a transport error or a 502/503 on the next URL until `patience`
    seconds have passed; any other answer ends it. `expire_share` of the requests get `sla`
    `short_sla` and no decision.
    """

    def __init__(
        self,
        urls: Sequence[str],
        identities: Identities,
        *,
        callback: str | None,
        threads: int,
        expire_share: float = 0.2,
        short_sla: str = "PT1.5S",
        patience: float = 40.0,
        pause: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.urls = list(urls)
        self.identities = identities
        self.callback = callback
        self.threads = threads
        self.expire_share = expire_share
        self.short_sla = short_sla
        self.patience = patience
        self.pause = pause
        self.seed = seed
        self.ledger = Ledger()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._run = uuid.uuid4().hex[:6]

    def start(self) -> Workload:
        """Start the threads."""
        for i in range(self.threads):
            thread = threading.Thread(target=self._loop, args=(i,), daemon=True)
            self._workers.append(thread)
            thread.start()
        return self

    def stop(self) -> None:
        """Stop starting new work; wait for every operation in progress to settle."""
        self._stop.set()
        for thread in self._workers:
            thread.join(timeout=self.patience + 30)

    def _call(
        self, http: httpx.Client, rng: random.Random, method: str, path: str, **kwargs: Any
    ) -> tuple[httpx.Response | None, bool]:
        """(the first answer that is not a fault, whether an earlier attempt may have landed)."""
        deadline = time.monotonic() + self.patience
        uncertain = False
        start = rng.randrange(len(self.urls))
        attempt = 0
        while time.monotonic() < deadline:
            base = self.urls[(start + attempt) % len(self.urls)]
            attempt += 1
            try:
                response = http.request(method, base + path, **kwargs)
            except httpx.ConnectError:
                time.sleep(0.05)  # refused: nothing was sent
                continue
            except httpx.TransportError:
                uncertain = True  # sent, but no answer: it may have committed
                time.sleep(0.05)
                continue
            if response.status_code in (502, 503) or response.status_code >= 500:
                code = _error_code(response)
                with self.ledger.lock:
                    self.ledger.unavailable[f"{response.status_code} {code}"] += 1
                    if response.status_code != 503:
                        self.ledger.unexpected.append(
                            f"{method} {path}: {response.status_code} {response.text[:200]}"
                        )
                uncertain = True  # a failed commit may still have landed
                time.sleep(0.05)
                continue
            return response, uncertain
        return None, uncertain

    def _loop(self, index: int) -> None:
        rng = random.Random(self.seed * 1000 + index)
        agent = {"authorization": f"Bearer {self.identities.agent_keys[index]}"}
        reviewer_email = self.identities.reviewers[index]
        reviewer = {"authorization": f"Bearer {self.identities.reviewer_tokens[index]}"}
        ledger = self.ledger
        n = 0
        with httpx.Client(timeout=httpx.Timeout(10.0, connect=2.0)) as http:
            while not self._stop.is_set():
                n += 1
                key = f"{self._run}-{index}-{n}"
                expire = rng.random() < self.expire_share
                body = request_body(
                    key,
                    callback=self.callback,
                    sla=self.short_sla if expire else "PT1H",
                    thread=index,
                    n=n,
                )
                response, uncertain = self._call(
                    http, rng, "POST", "/v1/requests", json=body, headers=agent
                )
                if response is None:
                    with ledger.lock:
                        ledger.unacknowledged += 1
                    continue
                if response.status_code not in (200, 201) or (
                    response.status_code == 200 and not uncertain
                ):
                    with ledger.lock:
                        ledger.unexpected.append(
                            f"create {key}: {response.status_code} {response.text[:200]}"
                        )
                    continue
                request_id = str(response.json()["id"])
                with ledger.lock:
                    ledger.created[key] = request_id
                    ledger.replays += response.status_code == 200
                    if expire:
                        ledger.expiring.add(request_id)
                if expire:
                    continue
                verdict = rng.choice(["approve", "reject"])
                decision = {"verdict": verdict, "comment": f"load {key}"}
                response, uncertain = self._call(
                    http,
                    rng,
                    "POST",
                    f"/v1/requests/{request_id}/decisions",
                    json=decision,
                    headers=reviewer,
                )
                with ledger.lock:
                    if response is None:
                        ledger.unacknowledged += 1
                    elif response.status_code == 200:
                        ledger.decided[request_id] = (reviewer_email, verdict)
                    elif response.status_code == 409 and uncertain:
                        ledger.unsure.add(request_id)
                    else:
                        ledger.unexpected.append(
                            f"decide {request_id}: {response.status_code} {response.text[:200]}"
                        )
                if self.pause:
                    time.sleep(self.pause)


def _error_code(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "not-json"


class Killer:
    """SIGKILLs server processes at random moments and restarts each at once, until stopped.

    Every `between` seconds (uniform) one running server is killed (with several, sometimes
    every running one); a restart runs in the background, so with two replicas the other one
    may die while the first is still coming back (clients then wait, as behind a load balancer
    with no healthy backend).
    """

    def __init__(
        self,
        targets: Sequence[ServerProcess],
        *,
        between: tuple[float, float] = (0.5, 2.5),
        all_share: float = 0.2,
        seed: int = 0,
    ) -> None:
        self.targets = list(targets)
        self.between = between
        self.all_share = all_share
        self.rng = random.Random(seed)
        self.kills = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._restarts: dict[str, threading.Thread] = {}

    def start(self) -> Killer:
        """Start killing."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop; every server is running again when this returns."""
        self._stop.set()
        self._thread.join(timeout=120)
        for restart in list(self._restarts.values()):
            restart.join(timeout=120)
        for target in self.targets:
            if not target.alive:
                target.start()

    def _restart(self, target: ServerProcess) -> None:
        try:
            target.start()
        except Exception as exc:  # reported by the test, never swallowed
            self.errors.append(f"restart of {target.name}: {type(exc).__name__}: {exc}")

    def _loop(self) -> None:
        try:
            while not self._stop.wait(self.rng.uniform(*self.between)):
                running = [
                    t
                    for t in self.targets
                    if t.alive and not self._restarts.get(t.name, _DONE).is_alive()
                ]
                if not running:
                    continue
                if len(running) > 1 and self.rng.random() < self.all_share:
                    victims = running
                else:
                    victims = [self.rng.choice(running)]
                for victim in victims:
                    victim.kill()
                    self.kills += 1
                for victim in victims:
                    restart = threading.Thread(target=self._restart, args=(victim,), daemon=True)
                    self._restarts[victim.name] = restart
                    restart.start()
        except Exception as exc:  # reported by the test, never swallowed
            self.errors.append(f"{type(exc).__name__}: {exc}")


_DONE = threading.Thread()  # a thread never started: is_alive() is False


def run_chaos(killer: Killer, *, seconds: float, min_kills: int, max_seconds: float) -> float:
    """Let the load and the kills run for `seconds`, longer if fewer than `min_kills` kills
    happened by then (a slow machine restarts slowly), never beyond `max_seconds`. Returns how
    long it ran."""
    started = time.monotonic()
    killer.start()
    while True:
        elapsed = time.monotonic() - started
        if elapsed >= max_seconds or (elapsed >= seconds and killer.kills >= min_kills):
            return elapsed
        time.sleep(0.2)


# --- checks --------------------------------------------------------------------------------------


@dataclass
class StoreReport:
    """What the database and the receiver say after a run; `problems` lists every violation."""

    requests: int = 0
    closed: int = 0
    decisions: int = 0
    expired: int = 0
    callbacks: int = 0
    deliveries: int = 0
    duplicate_deliveries: int = 0
    max_deliveries_per_id: int = 0
    lost: int = 0
    duplicated_decisions: int = 0
    timers_fired_twice: int = 0
    audit_entries: int = 0
    problems: list[str] = field(default_factory=list[str])

    def fail(self, message: str) -> None:
        """Record a violation (the first 20 are kept verbatim)."""
        if len(self.problems) < 20:
            self.problems.append(message)
        else:
            self.problems[-1] = f"... and more ({message})"


def settled(url: str, ledger: Ledger) -> bool:
    """Whether every request that must expire did and no callback is still pending."""
    db = Database(url)
    try:
        with db.read() as conn:
            expiring = list(ledger.expiring)
            open_ = 0
            for i in range(0, len(expiring), 500):
                chunk = expiring[i : i + 500]
                open_ += conn.execute(
                    select(func.count())
                    .select_from(requests)
                    .where(requests.c.id.in_(chunk), requests.c.status == "pending")
                ).scalar_one()
            pending = conn.execute(
                select(func.count())
                .select_from(callback_outbox)
                .where(callback_outbox.c.state == "pending")
            ).scalar_one()
    finally:
        db.dispose()
    return open_ == 0 and pending == 0


def check_store(url: str, ledger: Ledger, receiver: Receiver | None) -> StoreReport:
    """Check the database (and the receiver) against what the load generator was told."""
    report = StoreReport()
    db = Database(url)
    try:
        with db.read() as conn:
            rows = {r.id: r for r in conn.execute(select(requests))}
            by_request: defaultdict[str, list[Any]] = defaultdict(list)
            for d in conn.execute(select(decisions)):
                by_request[d.request_id].append(d)
            events: defaultdict[str, Counter[str]] = defaultdict(Counter)
            for e in conn.execute(select(audit_events.c.request_id, audit_events.c.type)):
                if e.request_id is not None:
                    events[e.request_id][e.type] += 1
            outbox = {r.request_id: r for r in conn.execute(select(callback_outbox))}
            armed: Counter[str] = Counter(
                r.request_id
                for r in conn.execute(
                    select(timers.c.request_id).where(timers.c.kind == DEADLINE_TIMER)
                )
            )
            delivering = conn.execute(
                select(func.count()).select_from(timers).where(timers.c.kind == DELIVER_TIMER)
            ).scalar_one()
            report.audit_entries = log_size(conn)
    finally:
        db.dispose()
    keys = {r.idempotency_key: r.id for r in rows.values() if r.idempotency_key}
    report.requests = len(ledger.created)
    report.decisions = len(ledger.decided)
    for key, request_id in ledger.created.items():
        if request_id not in rows:
            report.lost += 1
            report.fail(f"acknowledged request {request_id} ({key}) is not in the database")
        elif keys.get(key) != request_id:
            report.fail(f"idempotency key {key} maps to {keys.get(key)}, acknowledged {request_id}")
    for request_id, (reviewer, verdict) in ledger.decided.items():
        mine = [d for d in by_request.get(request_id, []) if d.decided_by == reviewer]
        if not mine:
            report.lost += 1
            report.fail(f"acknowledged decision on {request_id} by {reviewer} is not recorded")
        elif len(mine) > 1:
            report.duplicated_decisions += len(mine) - 1
            report.fail(f"{request_id}: {len(mine)} decisions by {reviewer}")
        elif mine[0].verdict != verdict:
            report.fail(f"{request_id}: recorded {mine[0].verdict}, acknowledged {verdict}")
        expected = "approved" if verdict == "approve" else "rejected"
        row = rows.get(request_id)
        if row is not None and row.status != expected:
            report.fail(f"{request_id} is {row.status} after an acknowledged {verdict}")
    for request_id in ledger.unsure:
        if len(by_request.get(request_id, [])) != 1:
            report.fail(f"{request_id} (decision unanswered, then 409) has no single decision")
    for request_id in ledger.expiring:
        row = rows.get(request_id)
        if row is None:
            continue
        fired = events[request_id]["request.expired"]
        report.expired += row.status == "expired"
        if row.status != "expired" or fired != 1:
            report.fail(f"{request_id} must have expired once: {row.status}, {fired} events")
        if fired > 1:
            report.timers_fired_twice += 1
        if armed[request_id]:
            report.fail(f"{request_id}: its deadline timer is still armed after it fired")
    for request_id, row in rows.items():
        mine = by_request.get(request_id, [])
        closing = sum(1 for d in mine if d.closing)
        closed_events = sum(events[request_id][t] for t in ("request.decided", "request.expired"))
        if closing > 1 or closed_events > 1:
            report.duplicated_decisions += max(closing, closed_events) - 1
            report.fail(f"{request_id}: {closing} closing decisions, {closed_events} events")
        if len({d.decided_by for d in mine}) != len(mine):
            report.duplicated_decisions += len(mine) - len({d.decided_by for d in mine})
            report.fail(f"{request_id}: one reviewer decided twice")
        if row.status not in TERMINAL:
            continue
        report.closed += 1
        if row.status != "cancelled" and closing != 1:
            report.fail(f"{request_id} is {row.status} with {closing} closing decisions")
        if receiver is None or not (row.payload or {}).get("callback"):
            continue
        queued = outbox.get(request_id)
        if queued is None:
            report.fail(f"closed request {request_id} has no callback queued")
            continue
        report.callbacks += 1
        if queued.state != "delivered":
            report.fail(f"{request_id}: callback {queued.event_id} is {queued.state}")
    if receiver is not None:
        ids: defaultdict[str, set[str]] = defaultdict(set)
        per_id: Counter[str] = Counter()
        for d in receiver.snapshot():
            if d.request_id is not None:
                ids[d.request_id].add(d.webhook_id)
            if d.acknowledged:
                per_id[d.webhook_id] += 1
        report.deliveries = sum(per_id.values())
        report.duplicate_deliveries = sum(n - 1 for n in per_id.values())
        report.max_deliveries_per_id = max(per_id.values(), default=0)
        for request_id, queued in outbox.items():
            if ids.get(request_id, set()) - {queued.event_id}:
                report.fail(f"{request_id}: delivered under other ids {ids[request_id]}")
            if queued.state == "delivered" and per_id[queued.event_id] == 0:
                report.fail(f"{request_id}: marked delivered, the receiver never accepted it")
            closed = request_id in rows and rows[request_id].status in TERMINAL
            if closed and per_id[queued.event_id] == 0:
                report.fail(f"{request_id}: callback {queued.event_id} never delivered")
        if delivering:
            report.fail(f"{delivering} callback attempts still armed after delivery")
    return report


@dataclass(frozen=True)
class AuditResult:
    """`signoff audit verify`'s verdict on an export of the log."""

    ok: bool
    output: str


def audit_verify(url: str, workdir: Path, verifier_key: str) -> AuditResult:
    """Export the log as `signoff audit export` does (in this process: it signs a checkpoint
    over everything first), then verify the export offline with `signoff audit verify` and the
    key the server published."""
    export = workdir / f"audit-export-{uuid.uuid4().hex[:6]}"
    db = Database(url)
    try:
        checkpointer = Checkpointer(db, load_or_create_key(workdir / "audit.key"))
        export_log(checkpointer, export)
    except Exception as exc:
        return AuditResult(False, f"export failed: {type(exc).__name__}: {exc}")
    finally:
        db.dispose()
    status, output = run_cli(
        ["audit", "verify", str(export), "--key", verifier_key], workdir / "audit-verify.log"
    )
    return AuditResult(status == 0, output.strip())


def summary_line(label: str, figures: dict[str, Any]) -> str:
    """One line for the closing note: `SOAK <label>: key=value ...`."""
    return f"SOAK {label}: " + " ".join(f"{k}={v}" for k, v in figures.items())


def record_summary(label: str, figures: dict[str, Any]) -> None:
    """Print the summary line, and append it as JSON to $SIGNOFF_SOAK_REPORT if set."""
    print(summary_line(label, figures), flush=True)
    path = os.environ.get("SIGNOFF_SOAK_REPORT")
    if path:
        with Path(path).open("a") as sink:
            sink.write(json.dumps({"label": label, **figures}) + "\n")


def soak_seconds(default: float) -> float:
    """How long the load runs: $SIGNOFF_SOAK_SECONDS (the nox soak session), else `default`."""
    return float(os.environ.get("SIGNOFF_SOAK_SECONDS", default))
