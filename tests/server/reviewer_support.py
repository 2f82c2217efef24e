"""Helpers for the reviewer-channel tests (inbox, Slack, email, terminal): a server with
password-holding reviewers, sign-in over plain HTTP, and the payment request of DESIGN.md §12."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from signoff import Client
from signoff_server.db import Database
from signoff_server.identity import create_agent_key, create_token, set_user
from signoff_server.settings import Settings

from .conftest import ServerThread, free_port

PASSWORD = "correct horse battery staple"
PEOPLE: dict[str, list[str]] = {
    "alice@example.com": ["finance-approver"],
    "bob@example.com": ["finance-approver"],
    "carol@example.com": ["finance-manager", "finance-approver"],
    "dave@example.com": ["sales"],
    "admin@example.com": ["admin"],
}


def payment(**overrides: Any) -> dict[str, Any]:
    """The reference scenario's request body, with `overrides`."""
    body: dict[str, Any] = {
        "action": {
            "name": "payments.release",
            "arguments": {
                "invoice_id": "INV-1042",
                "amount": 12500.0,
                "currency": "EUR",
                "vendor_account": "DE89 3704 0044 0532 0130 00",
            },
        },
        "business_object": {
            "type": "invoice",
            "id": "INV-1042",
            "attributes": {"amount": 12500.0, "currency": "EUR", "vendor": "Acme GmbH"},
        },
        "summary": "Invoice INV-1042 from Acme GmbH matches PO-7781.",
        "risk": "high",
        "route": {"role": "finance-approver"},
        "sla": "PT2H",
    }
    body.update(overrides)
    return body


@dataclass
class Reviewers:
    """A running server, its database, an agent client, and helpers."""

    url: str
    db: Database
    agent: Client
    tokens: dict[str, str] = field(default_factory=dict[str, str])
    _clients: list[Client] = field(default_factory=list[Client])

    def create(self, **overrides: Any) -> str:
        """Create a payment request as the agent; its id."""
        return self.agent.create_request(payment(**overrides)).id

    def as_user(self, email: str) -> Client:
        """A core Client with `email`'s personal token."""
        if email not in self.tokens:
            with self.db.write() as conn:
                self.tokens[email] = create_token(conn, email)
        client = Client(base_url=self.url, api_key=self.tokens[email])
        self._clients.append(client)
        return client

    def close(self) -> None:
        """Close the clients handed out."""
        for client in self._clients:
            client.close()


@contextmanager
def reviewers_server(store_url: str, tmp_path: Path, **settings: Any) -> Iterator[Reviewers]:
    """A server on `store_url` with PEOPLE (password PASSWORD) and a `finance-agent` key.

    `settings` go to Settings; a callable `public_url` receives the chosen port.
    """
    db = Database(store_url)
    with db.write() as conn:
        for email, roles in PEOPLE.items():
            set_user(conn, email, roles, password=PASSWORD)
        key = create_agent_key(conn, "finance-agent")
    port = free_port()
    public: str | Callable[[int], str] | None = settings.pop("public_url", None)
    config = Settings(
        database_url=store_url,
        timer_interval=0.05,
        webhook_keys_path=str(tmp_path / "webhook-keys.json"),
        audit_key_file=str(tmp_path / "audit.key"),
        secret_key_file=str(tmp_path / "secret.key"),
        public_url=public(port) if callable(public) else (public or f"http://127.0.0.1:{port}"),
        **settings,
    )
    try:
        with (
            ServerThread(config, port=port) as server,
            Client(base_url=server.url, api_key=key) as agent,
        ):
            world = Reviewers(server.url, db, agent)
            try:
                yield world
            finally:
                world.close()
    finally:
        db.dispose()


_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token in a page's first form."""
    found = _CSRF.search(html)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


def sign_in(http: httpx.Client, email: str, password: str = PASSWORD) -> str:
    """Sign `http` in as `email`; returns the session's CSRF token."""
    form = http.get("/login")
    assert form.status_code == 200
    answer = http.post(
        "/login",
        data={"email": email, "password": password, "csrf": csrf_of(form.text), "next": "/"},
    )
    assert answer.status_code == 303, answer.text
    queue = http.get("/")
    assert queue.status_code == 200
    return csrf_of(queue.text)


def wait_for(check: Callable[[], Any], *, timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
