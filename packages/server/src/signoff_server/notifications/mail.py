"""Email notifications: the message, SMTP delivery, and signed single-use decision links.

An email names the request, links to its page in the inbox, and carries an Approve and a Reject
link. Each link is an itsdangerous token, signed with the server secret, holding a nonce, the
request id, the reviewer's email and the verdict; it expires (`SmtpSettings.link_hours`) and
works once: both links of one email share the nonce, whose `email_links` row is consumed by the
first decision made with either. A link never decides on a GET: it opens a confirmation page
(`signoff_server.inbox.email_pages`) whose form POSTs the token back.

A link decides as the person it was sent to, with the roles they hold *when it is used*, through
the same `Lifecycle.decide` as every other channel (`via: email`). Anything wrong with a link —
bad signature, expired, used, unknown nonce — refuses it and decides nothing.
"""

from __future__ import annotations

import json
import logging
import re
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import Column, Connection, ForeignKey, String, Table, insert, select, update

from signoff.ids import new_id
from signoff.models import Request, Verdict
from signoff_server.notifications.config import SmtpSettings
from signoff_server.schema import UTCDateTime, metadata

__all__ = [
    "EmailLinks",
    "LinkClaim",
    "LinkRefused",
    "RedactLinkTokens",
    "SmtpSender",
    "compose",
    "email_links",
]

_SALT = "signoff.email-decision.v1"

email_links = Table(
    "email_links",
    metadata,
    Column("nonce", String(40), primary_key=True),
    Column("request_id", String(40), ForeignKey("requests.id"), nullable=False, index=True),
    Column("email", String(320), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("used_at", UTCDateTime()),
    Column("used_verdict", String(16)),
)


_TOKEN_IN_URL = re.compile(r"([?&]t=)[^&\s\"]+")


class RedactLinkTokens(logging.Filter):
    """Removes decision-link tokens from log records (uvicorn's access log prints query strings):
    a token in a log file would be a usable decision for whoever reads it."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's arguments and message; never drops a record."""
        if isinstance(record.args, tuple):
            record.args = tuple(
                _TOKEN_IN_URL.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                for a in record.args
            )
        if isinstance(record.msg, str):
            record.msg = _TOKEN_IN_URL.sub(r"\1[redacted]", record.msg)
        return True

    @classmethod
    def install(cls, *names: str) -> None:
        """Add the filter to the named loggers (once each)."""
        for name in names or ("uvicorn.access",):
            logger = logging.getLogger(name)
            if not any(isinstance(f, cls) for f in logger.filters):
                logger.addFilter(cls())


class LinkRefused(Exception):
    """A decision link that must not decide. `reason`: invalid, expired, used."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class LinkClaim:
    """What a verified link says: who may decide what on which request."""

    nonce: str
    request_id: str
    email: str
    verdict: Verdict


def _signer_for(clock: Callable[[], datetime]) -> type[TimestampSigner]:
    """A TimestampSigner reading the server's clock, so expiry follows an injected clock."""

    class _Signer(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(clock().timestamp())

    return _Signer


class EmailLinks:
    """Mints and checks the approve/reject links of decision emails."""

    def __init__(self, secret: bytes, ttl: timedelta, clock: Callable[[], datetime]) -> None:
        if ttl <= timedelta(0):
            raise ValueError("email link lifetime must be positive")
        self.ttl = ttl
        self.clock = clock
        self._serializer = URLSafeTimedSerializer(secret, salt=_SALT, signer=_signer_for(clock))

    def mint(self, conn: Connection, request_id: str, email: str) -> dict[Verdict, str]:
        """Record a fresh nonce and return the approve and reject tokens that share it."""
        now = self.clock()
        nonce = new_id("eln")
        conn.execute(
            insert(email_links).values(
                nonce=nonce,
                request_id=request_id,
                email=email,
                created_at=now,
                expires_at=now + self.ttl,
            )
        )
        return {
            verdict: str(
                self._serializer.dumps(
                    {"n": nonce, "r": request_id, "e": email, "v": verdict.value}
                )
            )
            for verdict in (Verdict.APPROVE, Verdict.REJECT)
        }

    def verify(self, token: str) -> LinkClaim:
        """The claim of a well-signed, unexpired token; LinkRefused otherwise (no DB access)."""
        if not token or len(token) > 2000:
            raise LinkRefused("invalid", "This link is not valid.")
        try:
            data: Any = self._serializer.loads(token, max_age=int(self.ttl.total_seconds()))
        except SignatureExpired:
            raise LinkRefused("expired", "This link has expired.") from None
        except BadSignature:
            raise LinkRefused("invalid", "This link is not valid.") from None
        try:
            claim = LinkClaim(str(data["n"]), str(data["r"]), str(data["e"]), Verdict(data["v"]))
        except (KeyError, TypeError, ValueError):
            raise LinkRefused("invalid", "This link is not valid.") from None
        if claim.verdict not in (Verdict.APPROVE, Verdict.REJECT):
            raise LinkRefused("invalid", "This link is not valid.")
        return claim

    def check_unused(self, conn: Connection, claim: LinkClaim) -> None:
        """Refuse a claim whose nonce is unknown, for another request or person, expired or used."""
        row = conn.execute(select(email_links).where(email_links.c.nonce == claim.nonce)).first()
        if row is None or row.request_id != claim.request_id or row.email != claim.email:
            raise LinkRefused("invalid", "This link is not valid.")
        if row.used_at is not None:
            raise LinkRefused("used", "This link was already used; each link works once.")
        if row.expires_at <= self.clock():
            raise LinkRefused("expired", "This link has expired.")

    def consume(self, conn: Connection, claim: LinkClaim) -> None:
        """Mark the nonce used (compare-and-set); LinkRefused if it is not usable any more."""
        self.check_unused(conn, claim)
        result = conn.execute(
            update(email_links)
            .where(email_links.c.nonce == claim.nonce, email_links.c.used_at.is_(None))
            .values(used_at=self.clock(), used_verdict=claim.verdict.value)
        )
        if result.rowcount != 1:
            raise LinkRefused("used", "This link was already used; each link works once.")


def _header(text: str, limit: int = 150) -> str:
    """Agent-supplied text made safe for a header: one line, bounded."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _deadline(request: Request, now: datetime) -> str:
    if request.due_at is None:
        return "none"
    left = request.due_at - now
    minutes = int(left.total_seconds() // 60)
    when = request.due_at.strftime("%Y-%m-%d %H:%M UTC")
    if minutes < 0:
        return f"{when} (overdue)"
    hours, minutes = divmod(minutes, 60)
    return f"{when} (in {hours} h {minutes:02d} min)" if hours else f"{when} (in {minutes} min)"


def compose(
    request: Request,
    *,
    sender: str,
    to: str,
    reason: str,
    request_url: str,
    links: dict[Verdict, str],
    link_hours: float,
    now: datetime,
) -> EmailMessage:
    """The notification email for `to` (plain text: no agent text is ever rendered as HTML)."""
    obj = request.business_object
    what = f"{request.action.name} on {obj.type} {obj.id}"
    prefix = "Escalated: " if reason == "escalated" else ""
    message = EmailMessage()
    message["Subject"] = _header(f"[signoff] {prefix}Approval needed: {what} ({request.risk} risk)")
    message["From"] = sender
    message["To"] = to
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain="signoff")
    message["Auto-Submitted"] = "auto-generated"
    lines = [
        f"A request for role {request.route.role} needs a decision."
        + (" It was escalated to you." if reason == "escalated" else ""),
        "",
        f"  Action:          {request.action.name}",
        f"  Business object: {obj.type} {obj.id}" + (f"  <{obj.url}>" if obj.url else ""),
        f"  Risk:            {request.risk}",
        f"  Agent:           {request.agent.id}",
        f"  Deadline:        {_deadline(request, now)}",
        f"  Request:         {request.id}",
        "",
        "Arguments:",
        *("  " + line for line in json.dumps(request.action.arguments, indent=2).splitlines()),
        "",
    ]
    if request.summary:
        lines += [
            "Summary REPORTED BY THE AGENT (not verified by signoff):",
            *("  " + line for line in request.summary.splitlines()),
            "",
        ]
    lines += [
        f"Open the request:  {request_url}",
        "",
        f"Approve:  {links[Verdict.APPROVE]}",
        f"Reject:   {links[Verdict.REJECT]}",
        "",
        "Each link opens a confirmation page: nothing is decided until you confirm there.",
        f"The two links work once (either one) and expire after {link_hours:g} hours.",
        "Do not forward this email: the links decide as you.",
    ]
    message.set_content("\n".join(lines) + "\n")
    return message


class SmtpError(Exception):
    """Sending failed; `permanent` when retrying cannot help (a 5xx answer)."""

    def __init__(self, detail: str, *, permanent: bool) -> None:
        super().__init__(detail)
        self.detail = detail
        self.permanent = permanent


class SmtpSender:
    """Sends one message per connection (notifications are few; no pool to go stale)."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    def send(self, message: EmailMessage) -> None:
        """Deliver `message`; SmtpError (never with the password in it) if it could not."""
        s = self.settings
        try:
            if s.security == "tls":
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    s.host, s.port, timeout=s.timeout, context=ssl.create_default_context()
                )
            else:
                client = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            with client:
                if s.security == "starttls":
                    client.starttls(context=ssl.create_default_context())
                if s.username:
                    client.login(s.username, s.password or "")
                client.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise SmtpError(f"recipient refused: {list(exc.recipients)}", permanent=True) from None
        except smtplib.SMTPResponseException as exc:
            raw: bytes | str = exc.smtp_error
            text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
            raise SmtpError(
                f"SMTP {exc.smtp_code}: {text}"[:300], permanent=exc.smtp_code >= 500
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise SmtpError(f"{type(exc).__name__}: {exc}"[:300], permanent=False) from None
