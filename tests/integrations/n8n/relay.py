# pyright: strict
"""A relay between signoff's callback sender and n8n: the host n8n puts in its resume URLs.

n8n builds `$execution.resumeUrl` from `WEBHOOK_URL`; the tests point that at this relay, so
every callback signoff sends to an n8n execution passes through it. By default it forwards each
POST unchanged to n8n and hands n8n's answer back (signoff records exactly what n8n said). A test
can have it alter deliveries in flight (`tamper`), or send them to the conformance harness's
inbox instead of n8n (`inbox_url`), so the suite delivers them to n8n itself. It keeps every
delivery it saw, with n8n's answer.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["CallbackRelay", "Relayed"]

Tamper = Callable[[bytes, dict[str, str]], tuple[bytes, dict[str, str]]]
_FORWARDED = ("content-type", "user-agent", "webhook-id", "webhook-timestamp", "webhook-signature")


@dataclass(frozen=True)
class Relayed:
    """One delivery that passed: where it was going, what it carried, what came back."""

    path: str
    """Path and query of the resume URL (n8n's signed token included)."""
    body: bytes
    headers: dict[str, str]
    status: int
    answer: bytes
    request_id: str | None
    tampered: bool


class CallbackRelay:
    """An ASGI app: POST /<anything> → n8n (or the inbox), optionally altered on the way."""

    def __init__(self, n8n_url: str) -> None:
        self.n8n_url = n8n_url.rstrip("/")
        self.inbox_url: str | None = None
        self.tamper: Tamper | None = None
        self._seen: list[Relayed] = []
        self._lock = threading.Condition()

    def seen(self, request_id: str | None = None) -> list[Relayed]:
        """Deliveries so far (for one request, when given)."""
        with self._lock:
            return [r for r in self._seen if request_id is None or r.request_id == request_id]

    def wait_for(self, request_id: str, count: int = 1, timeout: float = 30) -> list[Relayed]:
        """Wait until `count` deliveries for `request_id` passed; return them."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self.seen(request_id)) >= count, timeout):
                raise AssertionError(
                    f"signoff sent {len(self.seen(request_id))} callbacks for "
                    f"{request_id} through the relay, expected {count}"
                )
            return self.seen(request_id)

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        raw = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        headers = {k: raw[k] for k in _FORWARDED if k in raw}
        path = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        if scope.get("query_string"):
            path = f"{path}?{scope['query_string'].decode('latin-1')}"
        tamper, inbox = self.tamper, self.inbox_url
        sent_body, sent_headers = tamper(body, dict(headers)) if tamper else (body, headers)
        target = inbox if inbox is not None else f"{self.n8n_url}{path}"
        try:
            async with httpx.AsyncClient(timeout=30, trust_env=False) as http:
                answer = await http.request(
                    scope["method"], target, content=sent_body, headers=sent_headers
                )
            status, content = answer.status_code, answer.content
        except httpx.HTTPError as exc:
            status, content = 502, str(exc).encode()
        try:
            request_id = str(json.loads(body)["data"]["request"]["id"])
        except (ValueError, KeyError, TypeError):
            request_id = None
        with self._lock:
            self._seen.append(
                Relayed(path, body, headers, status, content, request_id, tamper is not None)
            )
            self._lock.notify_all()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": content})
