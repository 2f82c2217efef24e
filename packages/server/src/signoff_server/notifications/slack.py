"""Slack: the Web API calls signoff makes, the Block Kit messages, and who is who.

Messages are built with slack-sdk's Block Kit models. The four Web API methods signoff needs
(`chat.postMessage`, `chat.update`, `chat.postEphemeral`, `views.open`) are posted with httpx:
slack-sdk's `WebClient` sends with urllib, which neither shares the server's HTTP stack nor can
be stubbed with respx in tests. Request signatures are verified with slack-sdk's
`SignatureVerifier` (see `slack_routes.py`).

Everything an agent wrote (summary, action name, object id) is escaped for Slack's mrkdwn, so it
cannot mention `@channel` or forge links.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import httpx
from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from signoff.models import Request, Status, Verdict
from signoff_server.notifications.config import SlackSettings

__all__ = [
    "APPROVE_ACTION",
    "OPEN_ACTION",
    "REJECT_ACTION",
    "SlackApi",
    "SlackApiError",
    "SlackDirectory",
    "escape",
    "outcome_blocks",
    "request_blocks",
]

APPROVE_ACTION = "signoff.approve"
REJECT_ACTION = "signoff.reject"
OPEN_ACTION = "signoff.open"

_PERMANENT = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "channel_not_found",
        "user_not_found",
        "is_archived",
        "message_not_found",
        "cant_update_message",
        "invalid_blocks",
        "msg_too_long",
        "missing_scope",
    }
)


class SlackApiError(Exception):
    """A Slack Web API call failed; `permanent` when retrying cannot help."""

    def __init__(self, detail: str, *, permanent: bool) -> None:
        super().__init__(detail)
        self.detail = detail
        self.permanent = permanent


class SlackApi:
    """The few Slack Web API methods signoff calls, over one httpx client."""

    def __init__(self, settings: SlackSettings) -> None:
        self.settings = settings
        self._http: httpx.Client | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        """Open the HTTP client (done at app start)."""
        with self._lock:
            if self._http is None:
                self._http = httpx.Client(
                    base_url=self.settings.api_url,
                    timeout=self.settings.timeout,
                    headers={"authorization": f"Bearer {self.settings.bot_token}"},
                    follow_redirects=False,
                )

    def close(self) -> None:
        """Close the HTTP client."""
        with self._lock:
            http, self._http = self._http, None
        if http is not None:
            http.close()

    def call(self, method: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """POST `payload` as JSON to `method`; the answer, or SlackApiError (never the token)."""
        http = self._http
        if http is None:
            raise SlackApiError("the Slack client is closed", permanent=False)
        try:
            response = http.post(method, json=dict(payload))
        except httpx.HTTPError as exc:
            raise SlackApiError(f"{method}: {type(exc).__name__}", permanent=False) from None
        if response.status_code != 200:
            raise SlackApiError(f"{method}: HTTP {response.status_code}", permanent=False)
        try:
            body: Any = response.json()
        except ValueError:
            raise SlackApiError(f"{method}: the answer is not JSON", permanent=False) from None
        if not isinstance(body, dict):
            raise SlackApiError(f"{method}: unexpected answer", permanent=False)
        answer: dict[str, Any] = body  # pyright: ignore[reportUnknownVariableType]
        if not answer.get("ok"):
            error = str(answer.get("error", "unknown_error"))[:100]
            raise SlackApiError(f"{method}: {error}", permanent=error in _PERMANENT)
        return answer

    def post(self, user_id: str, blocks: list[dict[str, Any]], text: str) -> dict[str, Any]:
        """Send a direct message to `user_id` as the app; where it landed (`channel`, `ts`)."""
        answer = self.call("chat.postMessage", {"channel": user_id, "text": text, "blocks": blocks})
        return {"channel": str(answer.get("channel", user_id)), "ts": str(answer.get("ts", ""))}

    def update(self, channel: str, ts: str, blocks: list[dict[str, Any]], text: str) -> None:
        """Replace the message at `channel`/`ts`."""
        self.call("chat.update", {"channel": channel, "ts": ts, "text": text, "blocks": blocks})

    def ephemeral(self, channel: str, user_id: str, text: str) -> None:
        """Show `text` to `user_id` only, in `channel`."""
        self.call("chat.postEphemeral", {"channel": channel, "user": user_id, "text": text})

    def open_view(self, trigger_id: str, view: Mapping[str, Any]) -> None:
        """Open a modal for the user who clicked (within 3 s of the click)."""
        self.call("views.open", {"trigger_id": trigger_id, "view": dict(view)})


class SlackDirectory:
    """Email ↔ Slack user id, from the settings and the policy file's people."""

    def __init__(self, users: Mapping[str, str]) -> None:
        self._by_email: dict[str, str] = {}
        self._by_slack: dict[str, str] = {}
        self.add(users)

    def add(self, users: Mapping[str, str]) -> None:
        """Add (or replace) people's Slack ids."""
        for email, slack_id in users.items():
            email = email.strip().lower()
            old = self._by_email.get(email)
            if old is not None:
                self._by_slack.pop(old, None)
            self._by_email[email] = slack_id
            self._by_slack[slack_id] = email

    def slack_id(self, email: str) -> str | None:
        """The Slack user id of `email`, if known."""
        return self._by_email.get(email.strip().lower())

    def email(self, slack_id: str) -> str | None:
        """The signoff person behind a Slack user id, if known."""
        return self._by_slack.get(slack_id)


def escape(text: str) -> str:
    """Text as literal mrkdwn: `&`, `<` and `>` escaped (no mentions, no links)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _dicts(blocks: list[Block]) -> list[dict[str, Any]]:
    return [block.to_dict() for block in blocks]  # pyright: ignore[reportUnknownMemberType]


def _facts(request: Request, url: str) -> list[Block]:
    obj = request.business_object
    name = escape(f"{obj.type} {obj.id}")
    shown = f"<{obj.url}|{name}>" if obj.url else name
    deadline = (
        f"<!date^{int(request.due_at.timestamp())}^{{date_short_pretty}} {{time}}|"
        f"{request.due_at.strftime('%Y-%m-%d %H:%M UTC')}>"
        if request.due_at
        else "none"
    )
    blocks: list[Block] = [
        SectionBlock(
            fields=[
                MarkdownTextObject(text=f"*Business object*\n{shown}"),
                MarkdownTextObject(text=f"*Risk*\n{request.risk}"),
                MarkdownTextObject(text=f"*Agent*\n{escape(request.agent.id or '?')}"),
                MarkdownTextObject(text=f"*Deadline*\n{deadline}"),
            ]
        )
    ]
    if request.summary:
        quoted = "\n".join(
            "> " + line for line in escape(_clip(request.summary, 1500)).splitlines()
        )
        blocks.append(
            SectionBlock(
                text=MarkdownTextObject(
                    text=f"*Summary reported by the agent (not verified)*\n{quoted}"
                )
            )
        )
    blocks.append(
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=f"<{url}|{request.id}> · role {escape(request.route.role)}"
                    + (
                        f" · escalation level {request.escalation_level}"
                        if request.escalation_level
                        else ""
                    )
                )
            ]
        )
    )
    return blocks


def request_blocks(
    request: Request, url: str, *, escalated: bool = False
) -> tuple[list[dict[str, Any]], str]:
    """The message asking for a decision (blocks, and the notification's fallback text)."""
    title = _clip(
        f"{'Escalated: ' if escalated else ''}Approval needed: {request.action.name}", 150
    )
    buttons: list[ButtonElement] = [
        ButtonElement(text="Approve", action_id=APPROVE_ACTION, value=request.id, style="primary"),
        ButtonElement(text="Reject", action_id=REJECT_ACTION, value=request.id, style="danger"),
        ButtonElement(text="Open in signoff", action_id=OPEN_ACTION, url=url),
    ]
    blocks: list[Block] = [HeaderBlock(text=title), *_facts(request, url)]
    if Verdict.APPROVE not in request.allowed:
        buttons = buttons[1:]
    blocks.insert(len(blocks) - 1, ActionsBlock(block_id="signoff.decide", elements=buttons))
    obj = request.business_object
    return _dicts(blocks), _clip(f"{title} ({obj.type} {obj.id})", 300)


_OUTCOME = {
    Status.APPROVED: "✅ Approved",
    Status.REJECTED: "❌ Rejected",
    Status.RESPONDED: "💬 Answered",
    Status.EXPIRED: "⌛ Expired",
    Status.CANCELLED: "🚫 Cancelled",
}


def outcome_line(request: Request) -> str:
    """`✅ Approved by alice@example.com (web)` and the like, as mrkdwn."""
    closing = request.decisions[-1] if request.decisions else None
    label = _OUTCOME.get(request.status, f"Status: {request.status}")
    if request.status is Status.PENDING:
        approvals = [d for d in request.decisions if d.verdict in (Verdict.APPROVE, Verdict.EDIT)]
        who = ", ".join(escape(d.decided_by.user) for d in approvals)
        return f"⏳ Approved so far by {who}; more approvals are needed"
    if closing is None or request.status in (Status.CANCELLED,):
        return label
    if request.status is Status.EXPIRED:
        return f"{label}: no decision before the deadline ({closing.verdict} applied)"
    line = f"{label} by {escape(closing.decided_by.user)} via {closing.via}"
    if closing.verdict is Verdict.EDIT:
        line += " (with edited arguments)"
    if closing.comment:
        line += f"\n> {escape(_clip(closing.comment, 500))}"
    return line


def outcome_blocks(request: Request, url: str) -> tuple[list[dict[str, Any]], str]:
    """The message after a decision: the facts and the outcome, no buttons."""
    title = _clip(f"{request.action.name}: {request.status}", 150)
    line = outcome_line(request)
    blocks: list[Block] = [
        HeaderBlock(text=title),
        SectionBlock(text=MarkdownTextObject(text=line)),
        *_facts(request, url),
    ]
    return _dicts(blocks), _clip(line.splitlines()[0], 300)
