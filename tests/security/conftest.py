"""Live servers for the security suite (see README.md here for what is tested where)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.server import ServerThread, World
from tests.support.stores import BACKENDS, fresh_store

from signoff_server.db import Database
from signoff_server.identity import set_user
from signoff_server.settings import Settings

PASSWORD = "correct horse battery staple"
ROLE = "finance-approver"


class Live(World):
    """A running server (World's helpers) that also makes reviewers with passwords."""

    def person(self, email: str, *roles: str, password: str = PASSWORD) -> str:
        with self.db.write() as conn:
            set_user(conn, email, list(roles), password=password)
        return email


@contextmanager
def live_server(backend: str, directory: Path, **settings: Any) -> Iterator[Live]:
    """A real server over HTTP on a fresh store of `backend`; `settings` are Settings fields."""
    with fresh_store(backend, directory) as url:
        config = replace(
            Settings(
                database_url=url,
                timer_interval=0.1,
                audit_key_file=str(directory / "audit.key"),
                webhook_keys_path=str(directory / "webhook-keys.json"),
                secret_key_file=str(directory / "secret.key"),
            ),
            **settings,
        )
        db = Database(url)
        try:
            with ServerThread(config) as server:
                live = Live(server.url, db, config)
                try:
                    yield live
                finally:
                    live.close()
        finally:
            db.dispose()


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def invoice(**overrides: Any) -> dict[str, Any]:
    """A request routed to ROLE (no policy file)."""
    return {
        "action": {"name": "payments.release", "arguments": {"invoice_id": "INV-1042"}},
        "business_object": {"type": "invoice", "id": "INV-1042"},
        "route": {"role": ROLE},
        **overrides,
    }


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The `{code, message, details}` of a refusal, checking the envelope on the way."""
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"]
    assert body["error"]["message"]
    return body["error"]


_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token in a page's first form."""
    found = _CSRF.search(html)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


def sign_in(
    http: httpx.Client, email: str, password: str = PASSWORD, **headers: str
) -> httpx.Response:
    """POST the sign-in form (with its CSRF token) as a browser would; the answer."""
    form = http.get("/login")
    assert form.status_code == 200, form.text
    return http.post(
        "/login",
        data={"email": email, "password": password, "csrf": csrf_of(form.text), "next": "/"},
        headers=headers,
    )
