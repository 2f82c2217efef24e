"""Secrets never appear in logs, in API responses after their creation, in the audit log or in
callbacks (DESIGN.md §11); keys, tokens, passwords, sessions and link tokens are not stored in
the clear either.

`signoff serve` runs as a real process with its own JSON logging at debug level (uvicorn's
access log included) and email notifications to a local SMTP server. One flow touches every
secret: an agent key creates a request with a callback (signed with the Ed25519 `whsk_` key and
the agent's HMAC `whsec_` secret), unknown keys are tried until the throttle answers 429,
reviewers sign in with a password (a wrong one first) and use personal tokens, an email link
decides, the agent reports its outcome, an admin reads the audit log and an evidence packet.
Then every secret is searched for in the server's output, every response (bodies and headers;
a session cookie only in the sign-in's Set-Cookie), the callbacks received, and every table.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import MetaData, select
from tests.support.server import free_port

from signoff_server.callbacks.keys import create_hmac_secret
from signoff_server.db import Database, migrate
from signoff_server.identity import create_agent_key, create_token, set_user

from .conftest import PASSWORD, ROLE, csrf_of

ALICE, BOB, ADMIN = "alice@example.com", "bob@example.com", "admin@example.com"


class Mailbox:
    """An aiosmtpd handler keeping every message."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        parsed: Any = message_from_bytes(envelope.original_content or b"", policy=default)
        with self.lock:
            self.messages.append(parsed)
        return "250 Message accepted for delivery"

    def links(self, address: str) -> dict[str, str]:
        with self.lock:
            for message in self.messages:
                if message["To"] == address:
                    body = message.get_body(preferencelist=("plain",))
                    assert body is not None
                    text = str(body.get_content())  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType]
                    return dict(re.findall(r"^(Approve|Reject):\s+(\S+)\s*$", text, re.M))
        return {}


class Receiver(BaseHTTPRequestHandler):
    """Takes callbacks; keeps their headers and bodies."""

    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        Receiver.received.append((dict(self.headers.items()), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


class Recorder:
    """An httpx client that keeps every response it got."""

    def __init__(self, url: str) -> None:
        self.responses: list[httpx.Response] = []
        self.http = httpx.Client(base_url=url, timeout=30, event_hooks={"response": [self._keep]})

    def _keep(self, response: httpx.Response) -> None:
        response.read()
        self.responses.append(response)

    def close(self) -> None:
        self.http.close()


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("the server did not start")


def _wait_for(check: Any, what: str) -> Any:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    mailbox, port = Mailbox(), free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def test_secrets_stay_out_of_logs_responses_audit_and_storage(
    tmp_path: Path, smtp: tuple[Mailbox, int], receiver: str
) -> None:
    url = f"sqlite:///{tmp_path / 'signoff.db'}"
    migrate(url)
    db = Database(url)
    secret: dict[str, str] = {}
    with db.write() as conn:
        for email, roles in ((ALICE, [ROLE]), (BOB, [ROLE]), (ADMIN, ["admin"])):
            set_user(conn, email, roles, password=PASSWORD)
        secret["agent key"] = create_agent_key(conn, "finance-agent")
        secret["alice token"] = create_token(conn, ALICE)
        secret["bob token"] = create_token(conn, BOB)
        secret["admin token"] = create_token(conn, ADMIN)
        secret["whsec"] = create_hmac_secret(conn, "finance-agent", _now())[1]
    mailbox, smtp_port = smtp
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "server.log").open("wb")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")},
        "SIGNOFF_LOG_LEVEL": "debug",
        "SIGNOFF_PUBLIC_URL": base,
        "SIGNOFF_SMTP_HOST": "127.0.0.1",
        "SIGNOFF_SMTP_PORT": str(smtp_port),
        "SIGNOFF_SECRET_KEY_FILE": str(tmp_path / "secret.key"),
    }
    process = subprocess.Popen(
        [
            sys.executable, "-m", "signoff_server", "serve", "--db", url, "--port", str(port),
            "--webhook-keys", str(tmp_path / "webhook-keys.json"),
            "--audit-key", str(tmp_path / "audit.key"),
        ],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    client = Recorder(base)
    http = client.http
    session_cookie = ""
    try:
        _wait_ready(base, process)
        agent = {"Authorization": f"Bearer {secret['agent key']}"}
        body = {
            "action": {"name": "payments.release", "arguments": {"invoice_id": "INV-1042"}},
            "business_object": {"type": "invoice", "id": "INV-1042"},
            "route": {"role": ROLE},
            "callback": {"url": receiver},
        }
        created = http.post("/v1/requests", json=body, headers=agent)
        assert created.status_code == 201, created.text
        request_id = created.json()["id"]
        assert http.get(f"/v1/requests/{request_id}", headers=agent).status_code == 200
        # Guessing keys until the throttle answers (the guesses are secrets too: never logged),
        # from another address (X-Forwarded-For), so the sign-ins below are not throttled.
        statuses: list[int] = []
        for index in range(12):
            secret[f"guess {index}"] = "sk_" + secrets.token_urlsafe(32)
            guess = {"Authorization": f"Bearer {secret[f'guess {index}']}"}
            guessed = http.get("/v1/requests", headers={**guess, "X-Forwarded-For": "10.9.9.9"})
            statuses.append(guessed.status_code)
        assert statuses == [401] * 10 + [429] * 2
        # Reviewers: a wrong password, then the right one; a personal token.
        secret["wrong password"] = "Tr0ub4dor&3-" + secrets.token_hex(4)
        secret["password"] = PASSWORD
        for password, status in ((secret["wrong password"], 401), (PASSWORD, 303)):
            form = http.get("/login")
            answer = http.post(
                "/login",
                data={"email": ALICE, "password": password, "csrf": csrf_of(form.text)},
            )
            assert answer.status_code == status, answer.text
        session_cookie = http.cookies["signoff_session"]
        secret["session"] = session_cookie
        assert http.get(f"/requests/{request_id}").status_code == 200
        bob = {"Authorization": f"Bearer {secret['bob token']}"}
        assert http.get("/v1/requests", headers=bob).status_code == 200
        # The email link decides (as Bob), once.
        links = _wait_for(lambda: mailbox.links(BOB), "Bob's decision email")
        for verdict, link in links.items():
            secret[f"{verdict} link"] = link.split("?t=", 1)[1]
        confirm = http.get(links["Approve"])
        assert confirm.status_code == 200, confirm.text
        decided = http.post("/email/decide", data={"t": secret["Approve link"]})
        assert decided.status_code == 200, decided.text
        _wait_for(lambda: Receiver.received, "the callback")
        outcome = http.post(
            f"/v1/requests/{request_id}/outcome", json={"status": "executed"}, headers=agent
        )
        assert outcome.status_code == 200, outcome.text
        admin = {"Authorization": f"Bearer {secret['admin token']}"}
        for path in (
            "/v1/audit/entries",
            "/v1/audit/checkpoint",
            f"/v1/requests/{request_id}/evidence",
            f"/v1/requests/{request_id}/timeline",
            "/v1/keys",
            "/metrics",
            "/openapi.json",
        ):
            assert http.get(path, headers=admin).status_code == 200, path
    finally:
        client.close()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        log.close()

    # The key files' secrets: the callback signing key, the audit signing key, the link secret.
    keys = json.loads((tmp_path / "webhook-keys.json").read_text())
    secret["whsk"] = keys["keys"][0]["secret"]
    audit_key = (tmp_path / "audit.key").read_text().strip()
    secret["audit signing key"] = audit_key.rsplit("+", 1)[-1]
    secret["link secret"] = (tmp_path / "secret.key").read_text().strip()

    output = (tmp_path / "server.log").read_text()
    assert '"logger": "uvicorn.access"' in output, "the access log was not captured"
    assert "/email/decide" in output
    leaks = [name for name, value in secret.items() if value in output]
    assert not leaks, f"in the server's log: {leaks}"

    for response in client.responses:
        headers = "\n".join(
            f"{k}: {v}"
            for k, v in response.headers.multi_items()
            if not (k == "set-cookie" and response.request.url.path == "/login")
        )
        text = response.text + "\n" + headers
        # The confirmation page carries its own link's token in its form, to POST it back.
        mine = {"Approve link"} if response.request.url.path == "/email/decide" else set()
        leaked = [n for n, value in secret.items() if value in text and n not in mine]
        assert not leaked, f"{response.request.method} {response.request.url}: {leaked}"
    assert len(client.responses) >= 25, "the flow did not run"

    assert Receiver.received, "no callback arrived"
    for headers, payload in Receiver.received:
        assert headers.get("webhook-signature", "").count("v1") >= 2  # v1a (whsk) and v1 (whsec)
        text = payload.decode() + json.dumps(headers)
        assert not [name for name, value in secret.items() if value in text]

    # Stored: keys, tokens, sessions and passwords only as hashes; link tokens not at all.
    # (The whsec_ secret is stored: HMAC signing needs it. Key files hold the signing keys.)
    dump = _dump(db)
    db.dispose()
    stored = [name for name, value in secret.items() if name != "whsec" and value in dump]
    assert not stored, f"stored in the clear: {stored}"
    assert secret["whsec"] in dump  # the dump does see what the tables hold


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _dump(db: Database) -> str:
    """Every row of every table, as text (bytes also as base64)."""
    metadata = MetaData()
    metadata.reflect(db.engine)
    parts: list[str] = []
    with db.read() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                for value in row:
                    if isinstance(value, bytes):
                        parts.append(base64.b64encode(value).decode())
                        value = value.decode("latin-1")
                    parts.append(str(value))
    return "\n".join(parts)
