"""A framework-free receiver for signed callbacks: verify, deduplicate, dispatch.

    receiver = CallbackReceiver(Verifier(["whpk_..."]), handler=on_decision)
    status, body = receiver.handle(raw_body, headers)   # from any web framework
    app = receiver.asgi_app()                           # or mount it as an ASGI app
    app = receiver.wsgi_app()                           # or a WSGI app

Deliveries are at-least-once, so the same `webhook-id` can arrive twice; the dedupe store makes
the handler run once per id. If the handler raises, the id is released and the receiver answers
500, so signoff retries the delivery later. A handler that raises `CallbackRefused` (the step is
no longer pending) gets 409, which ends signoff's retries; a handler that returns a 2xx status
code (e.g. 202) has it answered instead of 200. Forged, stale or altered callbacks get
401 and never reach the handler.
"""

from __future__ import annotations

import inspect
import json
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from signoff.errors import CallbackRefused, SignatureError
from signoff.models import CallbackEvent
from signoff.webhooks import Verifier

__all__ = [
    "CallbackReceiver",
    "DedupeStore",
    "MemoryDedupeStore",
    "Receipt",
    "SqliteDedupeStore",
]

Handler = Callable[[CallbackEvent], object]
_MAX_BODY = 4 * 1024 * 1024


class DedupeStore(Protocol):
    """Remembers which webhook ids were handled. `claim` must be atomic."""

    def claim(self, webhook_id: str) -> bool:
        """Mark `webhook_id` as taken; False if it already was."""
        ...

    def release(self, webhook_id: str) -> None:
        """Forget `webhook_id`, so a redelivery is handled again (after a handler failure)."""
        ...


class MemoryDedupeStore:
    """In-process dedupe store, bounded to the newest `max_entries` ids. Thread-safe."""

    def __init__(self, *, max_entries: int = 100_000) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_entries

    def claim(self, webhook_id: str) -> bool:
        """Mark `webhook_id` as taken; False if it already was."""
        with self._lock:
            if webhook_id in self._seen:
                return False
            self._seen[webhook_id] = None
            if len(self._seen) > self._max:
                self._seen.popitem(last=False)
            return True

    def release(self, webhook_id: str) -> None:
        """Forget `webhook_id`."""
        with self._lock:
            self._seen.pop(webhook_id, None)


class SqliteDedupeStore:
    """Dedupe store in a SQLite file, shared by processes on one machine and kept over restarts."""

    def __init__(self, path: str | Path) -> None:
        self._path = str(path)
        with closing(self._connect()) as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS signoff_webhook_ids "
                "(id TEXT PRIMARY KEY, claimed_at REAL NOT NULL)"
            )

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self._path, timeout=30, isolation_level=None)

    def claim(self, webhook_id: str) -> bool:
        """Mark `webhook_id` as taken; False if it already was."""
        with closing(self._connect()) as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO signoff_webhook_ids (id, claimed_at) VALUES (?, ?)",
                (webhook_id, time.time()),
            )
            return cursor.rowcount == 1

    def release(self, webhook_id: str) -> None:
        """Forget `webhook_id`."""
        with closing(self._connect()) as db:
            db.execute("DELETE FROM signoff_webhook_ids WHERE id = ?", (webhook_id,))


@dataclass(frozen=True, slots=True)
class Receipt:
    """What became of one delivery: the HTTP status to answer, and the event if it verified."""

    status_code: int
    event: CallbackEvent | None = None
    duplicate: bool = False
    error: str | None = None

    def body(self) -> bytes:
        """A small JSON body for the HTTP answer."""
        payload: dict[str, Any] = {"ok": self.status_code < 300, "duplicate": self.duplicate}
        if self.error:
            payload["error"] = self.error
        return json.dumps(payload).encode()


class CallbackReceiver:
    """Verifies, deduplicates and dispatches signed callbacks to `handler`.

    `handler` may be a plain or an async function; `handle()` supports only plain ones,
    `ahandle()` and the ASGI app both.
    """

    def __init__(
        self,
        verifier: Verifier,
        handler: Handler | Callable[[CallbackEvent], Awaitable[object]],
        *,
        store: DedupeStore | None = None,
    ) -> None:
        self.verifier = verifier
        self.handler = handler
        self.store: DedupeStore = store if store is not None else MemoryDedupeStore()

    def _verify(self, body: bytes, headers: Mapping[str, str]) -> CallbackEvent | Receipt:
        try:
            event = self.verifier.verify(body, headers)
        except SignatureError as exc:
            return Receipt(401, error=str(exc))
        if not self.store.claim(event.id):
            return Receipt(200, event=event, duplicate=True)
        return event

    def handle(self, body: bytes, headers: Mapping[str, str]) -> Receipt:
        """Verify and dispatch one delivery with a plain (non-async) handler."""
        checked = self._verify(body, headers)
        if isinstance(checked, Receipt):
            return checked
        try:
            result = self.handler(checked)
            if inspect.isawaitable(result):
                if inspect.iscoroutine(result):
                    result.close()  # never awaited: close it rather than leak a RuntimeWarning
                raise TypeError("an async handler needs ahandle() or the ASGI app")
        except CallbackRefused as exc:
            return Receipt(409, event=checked, error=str(exc))
        except Exception as exc:
            self.store.release(checked.id)
            return Receipt(500, event=checked, error=f"handler failed: {type(exc).__name__}")
        return Receipt(_success_status(result), event=checked)

    async def ahandle(self, body: bytes, headers: Mapping[str, str]) -> Receipt:
        """Verify and dispatch one delivery; the handler may be async."""
        checked = self._verify(body, headers)
        if isinstance(checked, Receipt):
            return checked
        try:
            result = self.handler(checked)
            if inspect.isawaitable(result):
                result = await result
        except CallbackRefused as exc:
            return Receipt(409, event=checked, error=str(exc))
        except Exception as exc:
            self.store.release(checked.id)
            return Receipt(500, event=checked, error=f"handler failed: {type(exc).__name__}")
        return Receipt(_success_status(result), event=checked)

    def asgi_app(self) -> Callable[..., Awaitable[None]]:
        """An ASGI app that accepts POSTed callbacks on any path."""

        async def app(
            scope: MutableMapping[str, Any],
            receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
            send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
        ) -> None:
            if scope["type"] != "http":
                return
            if scope["method"] != "POST":
                await _asgi_answer(send, Receipt(405, error="POST only"))
                return
            chunks: list[bytes] = []
            size = 0
            more = True
            while more:
                message = await receive()
                chunk: bytes = message.get("body", b"")
                size += len(chunk)
                if size > _MAX_BODY:
                    await _asgi_answer(send, Receipt(413, error="body too large"))
                    return
                chunks.append(chunk)
                more = bool(message.get("more_body", False))
            raw_headers: Iterable[tuple[bytes, bytes]] = scope.get("headers", [])
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw_headers}
            await _asgi_answer(send, await self.ahandle(b"".join(chunks), headers))

        return app

    def wsgi_app(self) -> Callable[[dict[str, Any], Callable[..., Any]], list[bytes]]:
        """A WSGI app that accepts POSTed callbacks on any path."""

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
            if environ.get("REQUEST_METHOD") != "POST":
                receipt = Receipt(405, error="POST only")
            else:
                length = int(environ.get("CONTENT_LENGTH") or 0)
                if length > _MAX_BODY:
                    receipt = Receipt(413, error="body too large")
                else:
                    body: bytes = environ["wsgi.input"].read(length)
                    headers = {
                        key[5:].replace("_", "-").lower(): str(value)
                        for key, value in environ.items()
                        if key.startswith("HTTP_")
                    }
                    receipt = self.handle(body, headers)
            start_response(
                f"{receipt.status_code} {_REASONS.get(receipt.status_code, 'Error')}",
                [("content-type", "application/json")],
            )
            return [receipt.body()]

        return app


def _success_status(result: object) -> int:
    # A handler may pick another 2xx, e.g. 202 for "recorded, waiting for the rest of the step".
    if isinstance(result, int) and not isinstance(result, bool) and 200 <= result < 300:
        return result
    return 200


_REASONS = {
    200: "OK",
    202: "Accepted",
    401: "Unauthorized",
    409: "Conflict",
    405: "Method Not Allowed",
    413: "Content Too Large",
    500: "Internal Server Error",
}


async def _asgi_answer(
    send: Callable[[MutableMapping[str, Any]], Awaitable[None]], receipt: Receipt
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": receipt.status_code,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": receipt.body()})
