"""A ready receiver for signoff's signed callbacks that resumes LangGraph threads.

    receiver = LangGraphReceiver(graph, verifier=server_verifier(client), client=client,
                                 store=SqliteDedupeStore("callbacks.db"))
    app = receiver.asgi_app()            # mount it, or run it: uvicorn.run(app)

It is core's `signoff.CallbackReceiver` (verify, deduplicate on `webhook-id`) with `resume` as
the handler, and answers in a way the sender can act on:

| answer | when |
|---|---|
| 200 `resumed` | the interrupt was answered and the graph ran on |
| 202 `queued` | the gated call waits behind an earlier one of the same model turn |
| 200 `duplicate` | this delivery, or this request's decision, was handled already |
| 401 | signature, key or timestamp do not verify (never reaches the graph) |
| 409 `refused` | nothing is pending for this request (the graph is not touched) |
| 503 `retry` | the step has not paused yet; deliver again later |
| 500 | the graph failed while resuming; the delivery may be retried |

Use a persistent checkpointer (SqliteSaver, PostgresSaver, ...) so a graph paused in one
process resumes in the receiver's, and a persistent `store` (`SqliteDedupeStore`) shared by
every receiver process, which also holds the once-markers that keep a decision from being
applied twice. One receiver process per checkpointer is simplest: the per-thread lock that
serializes resumes of one thread is per process.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig

from signoff import AsyncClient, CallbackEvent, Client, Verifier
from signoff.receiver import CallbackReceiver, DedupeStore, MemoryDedupeStore, Receipt
from signoff_langgraph._api import as_mapping
from signoff_langgraph.errors import (
    AlreadyAnswered,
    GateError,
    NotPausedYet,
    ResumeRefused,
)
from signoff_langgraph.resume import ResumableGraph, Resumed, aresume, resume

__all__ = ["Delivery", "LangGraphReceiver", "server_verifier"]

log = logging.getLogger("signoff.langgraph")

_MAX_BODY = 4 * 1024 * 1024
Outcome = Literal["resumed", "queued", "duplicate", "unverified", "refused", "retry", "failed"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """What became of one callback delivery, and the HTTP answer for it."""

    status_code: int
    outcome: Outcome
    request_id: str | None = None
    detail: str | None = None
    resumed: Resumed | None = None

    def body(self) -> bytes:
        """A small JSON body for the HTTP answer."""
        payload: dict[str, Any] = {"ok": self.status_code < 300, "outcome": self.outcome}
        if self.request_id:
            payload["request_id"] = self.request_id
        if self.detail:
            payload["detail"] = self.detail
        return json.dumps(payload).encode()


def server_verifier(client: Client, *, tolerance: float = 300.0) -> Verifier:
    """A Verifier pinned to the `whpk_` keys the signoff server publishes at `GET /v1/keys`.

    Fetch once at start-up (and again after a key rotation); pinning a key from config instead
    (`Verifier(["whpk_..."])`) avoids trusting the network at start-up.
    """
    entries: Iterable[Any] = client.keys().get("webhook_keys") or []
    keys: list[str] = []
    for entry in entries:
        found = as_mapping(entry)
        key = found.get("public_key") if found is not None else None
        if isinstance(key, str) and key.startswith("whpk_"):
            keys.append(key)
    if not keys:
        raise GateError("the signoff server publishes no webhook key at GET /v1/keys")
    return Verifier(keys, tolerance=tolerance)


class LangGraphReceiver:
    """Verifies, deduplicates and resumes: signoff callbacks in, resumed LangGraph threads out.

    With `client=` (a sync `signoff.Client`) resumes run the graph's sync API (`invoke`), from a
    worker thread when called through `ahandle`/ASGI; with only `async_client=` they run its
    async API (`ainvoke`, needs an async checkpointer such as `AsyncSqliteSaver`). The client
    also answers the thread's other gates whose requests closed meanwhile.
    """

    def __init__(
        self,
        graph: ResumableGraph,
        *,
        verifier: Verifier,
        client: Client | None = None,
        async_client: AsyncClient | None = None,
        store: DedupeStore | None = None,
        config: RunnableConfig | None = None,
        durability: Literal["sync", "async", "exit"] | None = None,
    ) -> None:
        if client is None and async_client is None:
            raise GateError("pass client= (sync graphs) or async_client= (async graphs)")
        self.graph = graph
        self.client = client
        self.async_client = async_client
        self.store: DedupeStore = store if store is not None else MemoryDedupeStore()
        self.config = config
        self.durability: Literal["sync", "async", "exit"] | None = durability
        self._outcomes: dict[str, Delivery] = {}
        self._sync = CallbackReceiver(verifier, self._resume, store=self.store)
        self._async = CallbackReceiver(verifier, self._aresume, store=self.store)

    # handlers: record what happened, raise when the delivery must not count as handled --------

    def _record(self, event: CallbackEvent, delivery: Delivery) -> None:
        self._outcomes[event.id] = delivery

    def _failed(self, event: CallbackEvent, exc: Exception) -> bool:
        """Record a refusal; True if the delivery still counts as handled (no redelivery)."""
        request_id = event.data.request.id
        if isinstance(exc, AlreadyAnswered):
            self._record(event, Delivery(200, "duplicate", request_id, str(exc)))
            return True
        if isinstance(exc, ResumeRefused):
            self._record(event, Delivery(409, "refused", request_id, str(exc)))
        elif isinstance(exc, NotPausedYet):
            self._record(event, Delivery(503, "retry", request_id, str(exc)))
        return False

    def _done(self, event: CallbackEvent, done: Resumed) -> None:
        status = 202 if done.status == "queued" else 200
        self._record(event, Delivery(status, done.status, event.data.request.id, resumed=done))

    def _resume(self, event: CallbackEvent) -> None:
        try:
            done = resume(
                self.graph,
                event,
                client=self.client,
                config=self.config,
                markers=self.store,
                durability=self.durability,
            )
        except (ResumeRefused, NotPausedYet) as exc:
            if self._failed(event, exc):
                return
            raise  # the core receiver releases the webhook id: a redelivery is looked at again
        except Exception:
            log.exception("resuming for %s failed", event.data.request.id)
            raise
        self._done(event, done)

    async def _aresume(self, event: CallbackEvent) -> None:
        try:
            done = await aresume(
                self.graph,
                event,
                client=self.async_client,
                config=self.config,
                markers=self.store,
                durability=self.durability,
            )
        except (ResumeRefused, NotPausedYet) as exc:
            if self._failed(event, exc):
                return
            raise
        except Exception:
            log.exception("resuming for %s failed", event.data.request.id)
            raise
        self._done(event, done)

    def _delivery(self, receipt: Receipt) -> Delivery:
        if receipt.status_code == 401:
            return Delivery(401, "unverified", detail=receipt.error)
        event = receipt.event
        request_id = event.data.request.id if event is not None else None
        if receipt.duplicate:
            return Delivery(200, "duplicate", request_id, "this delivery was handled already")
        recorded = self._outcomes.pop(event.id, None) if event is not None else None
        if recorded is not None:
            return recorded
        if receipt.status_code >= 500:
            return Delivery(500, "failed", request_id, receipt.error)
        return Delivery(receipt.status_code, "resumed", request_id)

    # entry points ----------------------------------------------------------------------------

    def handle(self, body: bytes, headers: Mapping[str, str]) -> Delivery:
        """Verify, deduplicate and resume one delivery (sync graphs; needs `client=`)."""
        if self.client is None:
            raise GateError("handle() runs the graph synchronously: pass client=signoff.Client()")
        return self._delivery(self._sync.handle(body, headers))

    async def ahandle(self, body: bytes, headers: Mapping[str, str]) -> Delivery:
        """Verify, deduplicate and resume one delivery without blocking the event loop."""
        if self.client is not None:
            return await asyncio.to_thread(self.handle, body, headers)
        return self._delivery(await self._async.ahandle(body, headers))

    def asgi_app(self) -> Callable[..., Awaitable[None]]:
        """An ASGI app that takes POSTed callbacks on any path."""

        async def app(
            scope: MutableMapping[str, Any],
            receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
            send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
        ) -> None:
            if scope["type"] == "lifespan":
                await _lifespan(receive, send)
                return
            if scope["type"] != "http":
                return
            if scope["method"] != "POST":
                await _answer(send, Delivery(405, "refused", detail="POST only"))
                return
            body = await _read_body(receive)
            if body is None:
                await _answer(send, Delivery(413, "refused", detail="body too large"))
                return
            raw: Iterable[tuple[bytes, bytes]] = scope.get("headers", [])
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw}
            await _answer(send, await self.ahandle(body, headers))

        return app


async def _read_body(
    receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > _MAX_BODY:
            return None
        chunks.append(chunk)
        more = bool(message.get("more_body", False))
    return b"".join(chunks)


async def _lifespan(
    receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
    send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _answer(
    send: Callable[[MutableMapping[str, Any]], Awaitable[None]], delivery: Delivery
) -> None:
    headers = [(b"content-type", b"application/json")]
    if delivery.status_code == 503:
        headers.append((b"retry-after", b"5"))
    await send({"type": "http.response.start", "status": delivery.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": delivery.body()})
