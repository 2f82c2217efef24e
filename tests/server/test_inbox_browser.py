"""The web inbox in real headless Chromium (Debian's `chromium`, driven by Playwright).

Sign in, watch a new request appear in the queue without a reload (server-sent events), edit
its arguments (a malformed edit is caught before it is sent), approve, and read the timeline;
a reviewer without the role can neither see nor decide the request; a form without its CSRF
token decides nothing. Screenshots of the queue and the request page are saved under the test's
temporary directory (the path is printed; `SIGNOFF_SCREENSHOTS=DIR` copies them there too).

Skipped, saying why, when Chromium is not installed (`apt-get install -y chromium`; another
binary with `SIGNOFF_CHROMIUM=/path`). Playwright never downloads a browser here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from signoff import Client
from signoff.models import Status
from signoff_server.db import Database, migrate
from signoff_server.identity import create_agent_key, create_token, set_user
from signoff_server.settings import Settings

from .conftest import ServerThread

CHROMIUM = os.environ.get("SIGNOFF_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
PASSWORD = "correct horse battery staple"
TIMEOUT_MS = 20_000  # two cores shared by several test runs: generous


@dataclass
class Inbox:
    """A running server with alice (finance-approver), bob (sales only) and an agent key."""

    url: str
    agent: Client
    alice: Client
    shots: Path

    def create(self, **overrides: Any) -> str:
        """A payment request for finance-approver; returns its id."""
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
                "url": "https://erp.example.com/invoices/INV-1042",
                "attributes": {"amount": 12500.0, "currency": "EUR", "vendor": "Acme GmbH"},
            },
            "summary": "Invoice INV-1042 from Acme GmbH matches PO-7781; releasing €12,500.00.",
            "context": {"purchase_order": "PO-7781", "due_in_days": 10},
            "risk": "high",
            "route": {"role": "finance-approver"},
            "sla": "PT2H",
            "allowed": ["approve", "edit", "reject", "respond"],
            **overrides,
        }
        return self.agent.create_request(body).id


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module."""
    if not Path(CHROMIUM).exists():
        pytest.skip(
            f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium, "
            "or SIGNOFF_CHROMIUM=/path/to/chromium)"
        )
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def inbox(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Inbox]:
    """A server on a fresh SQLite store."""
    url = f"sqlite:///{tmp_path / 'signoff.db'}"
    migrate(url)
    db = Database(url)
    with db.write() as conn:
        set_user(conn, "alice@example.com", ["finance-approver"], name="Alice", password=PASSWORD)
        set_user(conn, "bob@example.com", ["sales"], name="Bob", password=PASSWORD)
        agent_key = create_agent_key(conn, "finance-agent")
        alice_token = create_token(conn, "alice@example.com")
    settings = Settings(
        database_url=url,
        timer_interval=0.1,
        webhook_keys_path=str(tmp_path / "webhook-keys.json"),
        audit_key_file=str(tmp_path / "audit.key"),
        secret_key_file=str(tmp_path / "secret.key"),
    )
    shots = tmp_path_factory.getbasetemp() / "inbox-screenshots"
    shots.mkdir(exist_ok=True)
    try:
        with (
            ServerThread(settings) as server,
            Client(base_url=server.url, api_key=agent_key) as agent,
            Client(base_url=server.url, api_key=alice_token) as alice,
        ):
            yield Inbox(server.url, agent, alice, shots)
    finally:
        db.dispose()


@pytest.fixture
def context(browser: Any, inbox: Inbox) -> Iterator[Any]:
    """A fresh browser profile (cookies) per test, closed before its server stops (an open
    page holds a server-sent-events stream)."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(TIMEOUT_MS)
    try:
        yield ctx
    finally:
        ctx.close()


def _shot(page: Any, inbox: Inbox, name: str) -> Path:
    path = inbox.shots / name
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}", file=sys.stderr)
    copy_to = os.environ.get("SIGNOFF_SCREENSHOTS")
    if copy_to:
        Path(copy_to).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(copy_to) / name)
    return path


def _sign_in(page: Any, inbox: Inbox, email: str) -> None:
    from playwright.sync_api import expect

    page.goto(inbox.url + "/")
    expect(page).to_have_url(re.compile(r"/login\?next=%2F$"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="My queue")).to_be_visible()


def _status(inbox: Inbox, request_id: str) -> Status:
    return inbox.alice.get_request(request_id).status


def test_sign_in_live_queue_edit_approve_and_timeline(context: Any, inbox: Inbox) -> None:
    from playwright.sync_api import expect

    page = context.new_page()
    _sign_in(page, inbox, "alice@example.com")
    expect(page.get_by_text("Nothing waiting for you.")).to_be_visible()
    expect(page.locator("body[data-live=connected]")).to_have_count(1)  # the stream is open
    page.evaluate("window.__sameDocument = 'yes'")

    request_id = inbox.create()
    row = page.locator(f'tr[data-id="{request_id}"]')
    expect(row).to_be_visible()  # arrived over server-sent events, no reload
    assert page.evaluate("window.__sameDocument") == "yes"
    expect(row).to_contain_text("INV-1042")
    expect(row).to_contain_text("high")
    expect(row.locator(".countdown")).to_have_text(re.compile(r"^in 1 h \d\d min$"))
    expect(page.get_by_role("status")).to_contain_text("New request")
    _shot(page, inbox, "inbox-queue.png")

    row.get_by_role("link", name="payments.release").click()
    expect(page.get_by_role("heading", name=re.compile("payments.release"))).to_be_visible()
    reported = page.locator("section.agent-reported")
    expect(reported).to_contain_text("Reported by the agent")
    expect(reported).to_contain_text("matches PO-7781")
    expect(page.locator("aside")).to_contain_text("alice@example.com")  # on shift

    editor = page.locator("#arguments")
    editor.fill('{"invoice_id": "INV-1042", "amount": 12250.0,')
    page.get_by_role("button", name="Approve with edits").click()
    expect(page.locator("#arguments-error")).to_contain_text("not valid JSON")
    assert _status(inbox, request_id) is Status.PENDING  # nothing was sent

    edited = {
        "invoice_id": "INV-1042",
        "amount": 12250.0,
        "currency": "EUR",
        "vendor_account": "DE89 3704 0044 0532 0130 00",
    }
    editor.fill(json.dumps(edited, indent=2))
    expect(page.locator("#arguments-error")).to_be_hidden()  # editing clears the complaint
    page.get_by_label(re.compile("^Comment")).fill("Credit note CN-88 deducted.")
    _shot(page, inbox, "inbox-request.png")
    page.get_by_role("button", name="Approve with edits").click()
    expect(page.get_by_role("status").filter(has_text="edited arguments")).to_be_visible()
    timeline = page.locator("ol.timeline")
    expect(timeline).to_contain_text("request.created")
    expect(timeline).to_contain_text("request.decided")
    expect(timeline).to_contain_text("user:alice@example.com")

    decided = inbox.alice.get_request(request_id)
    assert decided.status is Status.APPROVED
    (decision,) = decided.decisions
    assert decision.via.value == "web"
    assert decision.decided_by.user == "alice@example.com"
    assert decision.arguments is not None
    assert decision.arguments["amount"] == 12250.0
    assert decision.comment == "Credit note CN-88 deducted."

    page.goto(inbox.url + "/")  # the queue no longer lists it
    expect(page.get_by_text("Nothing waiting for you.")).to_be_visible()


def test_a_reviewer_without_the_role_can_neither_see_nor_decide(context: Any, inbox: Inbox) -> None:
    from playwright.sync_api import expect

    request_id = inbox.create()
    page = context.new_page()
    _sign_in(page, inbox, "bob@example.com")
    expect(page.get_by_text("Nothing waiting for you.")).to_be_visible()
    expect(page.locator(f'tr[data-id="{request_id}"]')).to_have_count(0)

    csrf = page.locator("form.signout input[name=csrf]").get_attribute("value")
    response = page.goto(f"{inbox.url}/requests/{request_id}")
    assert response is not None
    assert response.status == 403
    expect(page.get_by_role("heading", name="Not routed to you")).to_be_visible()
    expect(page.locator("body")).not_to_contain_text("PO-7781")  # nothing of it is shown

    answer = page.request.post(
        f"{inbox.url}/requests/{request_id}/decide",
        form={"csrf": csrf or "", "verdict": "approve"},
    )
    assert answer.status == 403
    assert "roles you do not hold" in answer.text()
    assert _status(inbox, request_id) is Status.PENDING


def test_a_form_without_its_csrf_token_is_refused(context: Any, inbox: Inbox) -> None:
    from playwright.sync_api import expect

    request_id = inbox.create()
    page = context.new_page()
    _sign_in(page, inbox, "alice@example.com")
    page.goto(f"{inbox.url}/requests/{request_id}")
    page.evaluate("document.querySelector('#decide-form input[name=csrf]').remove()")
    with page.expect_response(re.compile(r"/decide$")) as answer:
        page.get_by_role("button", name="Approve", exact=True).click()
    assert answer.value.status == 403
    expect(page.get_by_role("heading", name="Form refused")).to_be_visible()
    time.sleep(0.2)
    assert _status(inbox, request_id) is Status.PENDING

    page.goto(f"{inbox.url}/requests/{request_id}")  # with the token it works
    page.get_by_role("button", name="Approve", exact=True).click()
    expect(page.get_by_text("You approved this request.")).to_be_visible()
    assert _status(inbox, request_id) is Status.APPROVED


def test_the_queue_reads_on_a_phone(browser: Any, inbox: Inbox) -> None:
    from playwright.sync_api import expect

    inbox.create()
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    phone.set_default_timeout(TIMEOUT_MS)
    try:
        page = phone.new_page()
        _sign_in(page, inbox, "alice@example.com")
        expect(page.locator("tr[data-id]")).to_have_count(1)
        # Nothing wider than the screen: no sideways scrolling on a phone.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        _shot(page, inbox, "inbox-queue-phone.png")
    finally:
        phone.close()
