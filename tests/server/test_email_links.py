"""Email: the notification arrives at a real (local, aiosmtpd) SMTP server; its approve link
lands on a confirmation page (a GET never decides), decides once on POST, and refuses a second
use, an expired link and a tampered one. A link decides as its person with their current roles.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from signoff.models import Status
from signoff_server.identity import set_user
from signoff_server.notifications.config import SmtpSettings
from signoff_server.notifications.mail import RedactLinkTokens

from .conftest import free_port
from .reviewer_support import Reviewers, reviewers_server, wait_for


@dataclass
class Mailbox:
    """An aiosmtpd handler that keeps every message it receives."""

    messages: list[EmailMessage] = field(default_factory=list[EmailMessage])
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        parsed: Any = message_from_bytes(raw, policy=default)
        with self.lock:
            self.messages.append(parsed)
        return "250 Message accepted for delivery"

    def to(self, address: str, request_id: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.messages if m["To"] == address and request_id in _body(m)]


class Clock:
    """The server's clock: real time plus an offset the test moves."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def _body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())  # pyright: ignore[reportUnknownMemberType, reportAttributeAccessIssue]


def _links(message: EmailMessage) -> dict[str, str]:
    body = _body(message)
    found = dict(re.findall(r"^(Approve|Reject):\s+(\S+)\s*$", body, re.MULTILINE))
    assert set(found) == {"Approve", "Reject"}, body
    return found


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    handler = Mailbox()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def server(
    mailbox: tuple[Mailbox, int], clock: Clock, store_url: str, tmp_path: Path
) -> Iterator[Reviewers]:
    smtp = SmtpSettings(host="127.0.0.1", port=mailbox[1], sender="signoff@example.com")
    with reviewers_server(store_url, tmp_path, smtp=smtp, clock=clock) as world:
        yield world


def _mail(mailbox: tuple[Mailbox, int], address: str, request_id: str) -> EmailMessage:
    (message,) = wait_for(lambda: mailbox[0].to(address, request_id), what=f"mail to {address}")
    return message


def _token(link: str) -> str:
    return link.split("?t=", 1)[1]


def _request(server: Reviewers, request_id: str) -> Any:
    return server.as_user("admin@example.com").get_request(request_id)


def test_the_email_arrives_and_its_link_decides_exactly_once(
    server: Reviewers, mailbox: tuple[Mailbox, int]
) -> None:
    request_id = server.create()
    message = _mail(mailbox, "alice@example.com", request_id)
    assert message["From"] == "signoff@example.com"
    assert "Approval needed: payments.release on invoice INV-1042" in message["Subject"]
    body = _body(message)
    assert f"{server.url}/requests/{request_id}" in body
    assert "REPORTED BY THE AGENT" in body
    links = _links(message)
    assert all(link.startswith(f"{server.url}/email/decide?t=") for link in links.values())
    for other in ("bob@example.com", "carol@example.com"):  # every finance-approver is told
        _mail(mailbox, other, request_id)

    confirm = httpx.get(links["Approve"])  # what a mail scanner's preview would do
    assert confirm.status_code == 200
    assert confirm.headers["referrer-policy"] == "no-referrer"
    assert "Approve payments.release on invoice INV-1042?" in confirm.text
    assert _request(server, request_id).status is Status.PENDING  # a GET never decides

    token = _token(links["Approve"])
    done = httpx.post(f"{server.url}/email/decide", data={"t": token})
    assert done.status_code == 200
    assert f"You approved {request_id}" in done.text
    decided = _request(server, request_id)
    assert decided.status is Status.APPROVED
    (decision,) = decided.decisions
    assert (decision.via.value, decision.decided_by.user) == ("email", "alice@example.com")

    again = httpx.post(f"{server.url}/email/decide", data={"t": token})
    assert again.status_code == 409
    assert "already used" in again.text
    assert httpx.get(links["Approve"]).status_code == 409
    other_link = httpx.post(f"{server.url}/email/decide", data={"t": _token(links["Reject"])})
    assert other_link.status_code == 409  # both links of one email share one use
    assert len(_request(server, request_id).decisions) == 1

    events = server.as_user("admin@example.com").timeline(request_id)
    sent = [e.data for e in events if e.type == "notification.sent"]
    assert {(d["channel"], d["recipient"]) for d in sent} == {
        ("email", "alice@example.com"),
        ("email", "bob@example.com"),
        ("email", "carol@example.com"),
    }
    assert token not in str([e.data for e in events])  # no secrets in the audit data


def test_tampered_and_expired_links_are_refused(
    server: Reviewers, mailbox: tuple[Mailbox, int], clock: Clock
) -> None:
    request_id = server.create(sla="P3D")
    token = _token(_links(_mail(mailbox, "alice@example.com", request_id))["Approve"])
    flipped = token[:-5] + ("A" if token[-5] != "A" else "B") + token[-4:]
    payload, _, signature = token.partition(".")
    for bad in (flipped, token[:-3], "nonsense", payload + "x." + signature, ""):
        answer = httpx.post(f"{server.url}/email/decide", data={"t": bad})
        assert answer.status_code == 400, bad
        assert "not valid" in answer.text
    assert httpx.get(f"{server.url}/email/decide", params={"t": flipped}).status_code == 400

    clock.offset = timedelta(hours=25)  # links last 24 hours
    expired = httpx.post(f"{server.url}/email/decide", data={"t": token})
    assert expired.status_code == 410
    assert "expired" in expired.text
    assert httpx.get(f"{server.url}/email/decide", params={"t": token}).status_code == 410
    assert _request(server, request_id).status is Status.PENDING


def test_a_link_decides_with_the_roles_its_person_holds_now(
    server: Reviewers, mailbox: tuple[Mailbox, int]
) -> None:
    request_id = server.create()
    token = _token(_links(_mail(mailbox, "bob@example.com", request_id))["Approve"])
    with server.db.write() as conn:
        set_user(conn, "bob@example.com", ["sales"])  # bob moved teams since the email
    answer = httpx.post(f"{server.url}/email/decide", data={"t": token})
    assert answer.status_code == 403
    assert "roles you do not hold" in answer.text
    assert _request(server, request_id).status is Status.PENDING


def test_a_missing_comment_is_asked_for_without_using_up_the_link(
    server: Reviewers, mailbox: tuple[Mailbox, int]
) -> None:
    request_id = server.create(comment_required="on_reject")
    token = _token(_links(_mail(mailbox, "carol@example.com", request_id))["Reject"])
    page = httpx.get(f"{server.url}/email/decide", params={"t": token})
    assert "(required)" in page.text
    missing = httpx.post(f"{server.url}/email/decide", data={"t": token, "comment": "  "})
    assert missing.status_code == 422
    assert "needs a comment" in missing.text
    done = httpx.post(
        f"{server.url}/email/decide", data={"t": token, "comment": "Vendor is blocked."}
    )
    assert done.status_code == 200
    decided = _request(server, request_id)
    assert decided.status is Status.REJECTED
    assert decided.decisions[0].comment == "Vendor is blocked."


def test_an_unreachable_mail_server_is_retried_then_recorded(
    store_url: str, tmp_path: Path
) -> None:
    smtp = SmtpSettings(host="127.0.0.1", port=free_port(), timeout=2)  # nothing listens there
    with reviewers_server(
        store_url, tmp_path, smtp=smtp, notification_retry_delays=(0.1, 0.1)
    ) as world:
        request_id = world.create(route={"role": "finance-manager"})  # carol only

        def failed() -> list[dict[str, Any]]:
            events = world.as_user("admin@example.com").timeline(request_id)
            return [dict(e.data) for e in events if e.type == "notification.failed"]

        (event,) = wait_for(failed, what="notification.failed")
        assert event["recipient"] == "carol@example.com"
        assert event["attempts"] == 3
        assert "ConnectionRefusedError" in event["error"]


def test_link_tokens_never_reach_the_access_log(server: Reviewers) -> None:
    import logging

    access = logging.getLogger("uvicorn.access")
    record = access.makeRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/email/decide?t=.eJyr.awkJIA.TsGx&x=1", "1.1", 200),
        None,
    )
    redactors = [f for f in access.filters if isinstance(f, RedactLinkTokens)]
    assert redactors  # installed when the server started
    assert all(f.filter(record) for f in redactors)
    assert record.getMessage() == (
        '127.0.0.1:5000 - "GET /email/decide?t=[redacted]&x=1 HTTP/1.1" 200'
    )
