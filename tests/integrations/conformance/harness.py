"""The suite's side of the conformance run: a real signoff server, a reviewer, and callbacks.

Genuine callbacks are the server's own: requests name the harness's inbox as their callback
URL, the server signs (Ed25519, `v1a`) and POSTs each one when the request closes, the inbox
captures it, and the suite hands it byte for byte to the adapter's receiver, which verifies it
with the keys the server publishes at `GET /v1/keys`. Re-sending a captured delivery is a true
duplicate (same `webhook-id`).

The harness also signs its own deliveries where a scenario needs one the server would not send:
a second event for an already-delivered request (`fresh=True`, test key), a stale timestamp
(test key, old timestamp) and a forgery (a key nobody pins). So the adapter's verifier pins
`verifier_keys`: the server's published keys and the harness's test key.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from tests.support.server import ServerThread, World

from signoff import Client, Request, Status
from signoff.ids import new_id
from signoff.webhooks import KeyPair, Signer, generate_signing_key

__all__ = ["CallbackInbox", "Harness"]

Delivery = tuple[bytes, dict[str, str]]


class CallbackInbox:
    """An ASGI app that keeps every POSTed callback, by request id, and answers 200."""

    def __init__(self) -> None:
        self._got: defaultdict[str, list[Delivery]] = defaultdict(list)
        self._changed = threading.Condition()

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                while (message := await receive())["type"] != "lifespan.shutdown":
                    await send({"type": "lifespan.startup.complete"})
                await send({"type": "lifespan.shutdown.complete"})
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            request_id = str(json.loads(body)["data"]["request"]["id"])
        except (ValueError, KeyError, TypeError):
            request_id = "?"
        with self._changed:
            self._got[request_id].append((body, headers))
            self._changed.notify_all()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    def first(self, request_id: str, *, timeout: float = 30.0) -> Delivery:
        """The first delivery for `request_id`, waiting for it up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not self._got[request_id]:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"the server delivered no callback for {request_id}")
                self._changed.wait(left)
            return self._got[request_id][0]


@dataclass
class Harness:
    """A signoff server, an agent key, a reviewer, and signed callbacks for the suite."""

    world: World
    agent_key: str
    reviewer: Client
    agent: Client
    test_key: KeyPair = field(default_factory=generate_signing_key)
    foreign_key: KeyPair = field(default_factory=generate_signing_key)
    server_keys: list[str] = field(default_factory=list[str])
    inbox: CallbackInbox | None = None
    inbox_url: str | None = None
    """Where requests ask the server to post callbacks (real mode), else None."""
    _inbox_server: ServerThread | None = None

    @classmethod
    def open(cls, world: World, *, agent: str = "finance-agent") -> Harness:
        """A harness on `world`; real callbacks when the server publishes webhook keys."""
        key = world.agent_key(agent)
        harness = cls(
            world=world,
            agent_key=key,
            reviewer=world.client(world.reviewer_token("finance-approver")),
            agent=world.client(key),
        )
        harness.server_keys = _published_keys(world.url)
        if not harness.server_keys:
            raise AssertionError(
                "the signoff server publishes no webhook key at GET /v1/keys: it cannot sign "
                "and deliver the callbacks the conformance suite checks adapters against"
            )
        harness.inbox = CallbackInbox()
        harness._inbox_server = ServerThread(app=harness.inbox).__enter__()
        harness.inbox_url = f"{harness._inbox_server.url}/callbacks"
        return harness

    def close(self) -> None:
        """Stop the inbox (the world closes the clients)."""
        if self._inbox_server is not None:
            self._inbox_server.__exit__(None, None, None)
            self._inbox_server = None

    @property
    def verifier_keys(self) -> list[str]:
        """The keys the adapter's verifier must pin for the suite."""
        return [*self.server_keys, self.test_key.public]

    # reviewers ---------------------------------------------------------------------------------

    def decide(self, request_id: str, verdict: str, **kwargs: Any) -> Request:
        """A reviewer decides the request."""
        return self.reviewer.decide(request_id, verdict, **kwargs)

    def wait_closed(self, request_id: str, timeout: float = 30.0) -> Request:
        """The request once the server has closed it (e.g. expired by its SLA)."""
        return self.agent.wait(request_id, timeout=timeout)

    def outcome(self, request_id: str, timeout: float = 10.0) -> str | None:
        """The outcome the agent reported for the request (executed / failed / skipped).

        Adapters may send reports in the background after the gated action ran, so this
        waits up to `timeout` seconds for one to arrive; None if none did.
        """
        deadline = time.monotonic() + timeout
        while True:
            reported = self.agent.get_request(request_id).outcome
            if reported is not None:
                return reported.status.value
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)

    # callbacks ---------------------------------------------------------------------------------

    def _event_body(self, request_id: str, *, event_id: str) -> bytes:
        request = self.agent.get_request(request_id)
        assert request.status is not Status.PENDING, f"{request_id} is still pending"
        kind = {
            Status.EXPIRED: "request.expired",
            Status.CANCELLED: "request.cancelled",
        }.get(request.status, "request.decided")
        event = {
            "type": kind,
            "id": event_id,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "data": {"request": request.model_dump(mode="json")},
        }
        return json.dumps(event).encode()

    def delivery(self, request_id: str, *, fresh: bool = False) -> Delivery:
        """The server's own signed callback for a closed request (the same one every time).

        With `fresh`: a new event (new `webhook-id`) for the same request, signed with the
        harness's test key, as a second genuine event would look.
        """
        if not fresh:
            assert self.inbox is not None
            return self.inbox.first(request_id)
        event_id = new_id("evt")
        body = self._event_body(request_id, event_id=event_id)
        return body, Signer([self.test_key.secret]).headers(body, msg_id=event_id)

    def forged(self, request_id: str) -> Delivery:
        """A well-formed callback signed with a key nobody pins."""
        event_id = new_id("evt")
        body = self._event_body(request_id, event_id=event_id)
        return body, Signer([self.foreign_key.secret]).headers(body, msg_id=event_id)

    def stale(self, request_id: str, *, age: int = 3600) -> Delivery:
        """A callback signed with a pinned key, `age` seconds ago (outside any tolerance)."""
        event_id = new_id("evt")
        body = self._event_body(request_id, event_id=event_id)
        stamp = int(time.time()) - age
        return body, Signer([self.test_key.secret]).headers(body, msg_id=event_id, timestamp=stamp)


def _published_keys(url: str) -> list[str]:
    """The `whpk_` keys at `GET /v1/keys`, or [] when the server has no such endpoint."""
    try:
        answer = httpx.get(f"{url}/v1/keys", timeout=10)
    except httpx.HTTPError:
        return []
    if answer.status_code != 200:
        return []
    entries = answer.json().get("webhook_keys") or []
    return [e["public_key"] for e in entries if str(e.get("public_key", "")).startswith("whpk_")]
