"""Helpers for the callback tests: a real receiver on a loopback port, and the test request."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from signoff import CallbackEvent, CallbackReceiver, Client, Verifier
from signoff_server.db import Database
from signoff_server.settings import Settings

from .conftest import ServerThread, World, free_port

INVOICE: dict[str, Any] = {
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
    "route": {"role": "finance-approver"},
}


def invoice(callback: str | None, **overrides: Any) -> dict[str, Any]:
    """The reference scenario's request with a callback URL, and overrides."""
    body = {**INVOICE, **overrides}
    if callback is not None:
        body["callback"] = {"url": callback}
    return body


def pinned_verifier(client: Client, **kwargs: Any) -> Verifier:
    """A Verifier pinned to the public keys the server publishes on GET /v1/keys."""
    return Verifier([k["public_key"] for k in client.keys()["webhook_keys"]], **kwargs)


def wait_for(what: str, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll `predicate` until it holds; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@dataclass(frozen=True)
class Delivery:
    """One POST as the receiver saw it."""

    body: bytes
    headers: dict[str, str]
    answered: int
    at: float

    @property
    def webhook_id(self) -> str:
        """The `webhook-id` header."""
        return self.headers["webhook-id"]

    @property
    def signatures(self) -> list[str]:
        """The entries of the `webhook-signature` header."""
        return self.headers["webhook-signature"].split()


@dataclass
class Receiver:
    """A callback receiver served by uvicorn on a loopback port, in a thread.

    Every POST is recorded raw. With a `verifier`, deliveries go through the core
    `CallbackReceiver` (verify, deduplicate, dispatch to `events`); `answer(n)` returns the
    status to send for the n-th delivery (0-based) instead, when it returns a number, with a
    `location` header if one is set.
    """

    verifier: Verifier | None = None
    port: int = field(default_factory=free_port)
    answer: Callable[[int], int | None] = lambda _n: None
    delay: float = 0.0
    location: str | None = None
    deliveries: list[Delivery] = field(default_factory=list[Delivery])
    events: list[CallbackEvent] = field(default_factory=list[CallbackEvent])

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._inner = (
            CallbackReceiver(self.verifier, handler=self.events.append) if self.verifier else None
        )

    @property
    def url(self) -> str:
        """Where to send callbacks (any path works)."""
        return f"http://127.0.0.1:{self.port}/signoff/callback"

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
        if self.delay:
            await asyncio.sleep(self.delay)
        with self._lock:
            index = len(self.deliveries)
        status = self.answer(index)
        if status is None and self._inner is not None:
            receipt = await self._inner.ahandle(body, headers)
            status, payload = receipt.status_code, receipt.body()
        else:
            status, payload = status or 200, b"{}"
        with self._lock:
            self.deliveries.append(Delivery(body, headers, status, time.time()))
        extra = [(b"location", self.location.encode())] if self.location else []
        await send({"type": "http.response.start", "status": status, "headers": extra})
        await send({"type": "http.response.body", "body": payload})

    def start(self) -> Receiver:
        """Start serving; returns once the port accepts connections."""
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
        wait_for("the receiver to start", lambda: self._server is not None and self._server.started)
        return self

    def stop(self) -> None:
        """Stop serving (the port then refuses connections)."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=15)
        self._server = self._thread = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def of(self, webhook_id: str) -> list[Delivery]:
        """Every delivery under one webhook-id."""
        with self._lock:
            return [d for d in self.deliveries if d.webhook_id == webhook_id]


def timeline_types(client: Client, request_id: str) -> list[str]:
    """The request's timeline event types, in order."""
    return [e.type for e in client.timeline(request_id)]


def events_of(client: Client, request_id: str, kind: str) -> list[Mapping[str, Any]]:
    """The data of every timeline event of one type."""
    return [e.data for e in client.timeline(request_id) if e.type == kind]


@contextmanager
def callback_world(store_url: str, tmp_path: Path, **settings: Any) -> Iterator[World]:
    """A real server on `store_url` with callback settings of the test's choosing (fast retries
    by default), its key file in `tmp_path`."""
    options: dict[str, Any] = {
        "database_url": store_url,
        "timer_interval": 0.05,
        "webhook_keys_path": str(tmp_path / "webhook-keys.json"),
        "callback_retry_delays": (0.3, 0.3, 0.3),
        "callback_timeout": 5.0,
        **settings,
    }
    db = Database(store_url)
    try:
        with ServerThread(Settings(**options)) as server:
            world = World(server.url, db)
            try:
                yield world
            finally:
                world.close()
    finally:
        db.dispose()
