"""Slack: the Block Kit message to the on-shift people, the interactivity endpoint's signature
checks (valid, stale, forged), and the whole path button → decision → message update. Slack's
Web API is stubbed with respx; nothing leaves the machine."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import respx

from signoff.models import Status
from signoff_server.notifications.config import SlackSettings

from .reviewer_support import Reviewers, reviewers_server, wait_for

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TOKEN = "xoxb-test-0000"
SLACK = "https://slack.com/api/"
USERS = {
    "alice@example.com": "U0ALICE",
    "bob@example.com": "U0BOB",
    "dave@example.com": "U0DAVE",  # holds no finance role
}


@pytest.fixture
def slack() -> Iterator[respx.MockRouter]:
    """Slack's Web API, stubbed: DMs land in channel D<user>, with increasing timestamps."""
    stamps = itertools.count(1)

    def post_message(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        return httpx.Response(
            200,
            json={"ok": True, "channel": "D" + body["channel"][1:], "ts": f"17000.{next(stamps)}"},
        )

    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="127.0.0.1").pass_through()  # the test's own calls to the server
        mock.post(SLACK + "chat.postMessage", name="post").mock(side_effect=post_message)
        mock.post(SLACK + "chat.update", name="update").respond(json={"ok": True})
        mock.post(SLACK + "chat.postEphemeral", name="ephemeral").respond(json={"ok": True})
        mock.post(SLACK + "views.open", name="modal").respond(json={"ok": True})
        yield mock


@pytest.fixture
def server(slack: respx.MockRouter, store_url: str, tmp_path: Path) -> Iterator[Reviewers]:
    settings = SlackSettings(bot_token=TOKEN, signing_secret=SECRET, users=USERS)
    with reviewers_server(
        store_url, tmp_path, slack=settings, notification_retry_delays=(0.2, 0.2)
    ) as world:
        yield world


def _signed(body: str, *, secret: str = SECRET, at: float | None = None) -> dict[str, str]:
    stamp = str(int(time.time() if at is None else at))
    digest = hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256)
    return {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": stamp,
        "x-slack-signature": "v0=" + digest.hexdigest(),
    }


def _click(user: str, request_id: str, action: str, *, channel: str = "", ts: str = "") -> str:
    payload = {
        "type": "block_actions",
        "user": {"id": user},
        "trigger_id": "1337.42.abcd",
        "channel": {"id": channel or "D" + user[1:]},
        "message": {"ts": ts or "17000.1"},
        "container": {"type": "message"},
        "actions": [{"action_id": f"signoff.{action}", "value": request_id}],
    }
    return urlencode({"payload": json.dumps(payload)})


def _send(server: Reviewers, body: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{server.url}/slack/interactions", content=body, headers=headers)


def _calls(slack: respx.MockRouter, name: str) -> list[dict[str, Any]]:
    return [json.loads(call.request.content) for call in slack.routes[name].calls]


def _messages_for(slack: respx.MockRouter, request_id: str) -> list[dict[str, Any]]:
    return [m for m in _calls(slack, "post") if request_id in json.dumps(m["blocks"])]


def _timeline(server: Reviewers, request_id: str) -> list[tuple[str, dict[str, Any]]]:
    events = server.as_user("admin@example.com").timeline(request_id)
    return [(e.type, dict(e.data)) for e in events]


def _status(server: Reviewers, request_id: str) -> Status:
    return server.as_user("admin@example.com").get_request(request_id).status


def test_new_request_messages_the_on_shift_people(
    server: Reviewers, slack: respx.MockRouter
) -> None:
    request_id = server.create()
    messages = wait_for(
        lambda: len(_messages_for(slack, request_id)) == 2 and _messages_for(slack, request_id),
        what="two Slack messages",
    )
    assert sorted(m["channel"] for m in messages) == ["U0ALICE", "U0BOB"]  # carol has no id
    blocks = messages[0]["blocks"]
    text = json.dumps(blocks)
    assert "Approval needed: payments.release" in text
    assert "invoice INV-1042" in text
    assert "*Risk*\\nhigh" in text
    assert "<!date^" in text  # the deadline, in each reader's own time zone
    assert "reported by the agent (not verified)" in text
    buttons = next(b for b in blocks if b["type"] == "actions")["elements"]
    assert [(b["text"]["text"], b.get("value")) for b in buttons[:2]] == [
        ("Approve", request_id),
        ("Reject", request_id),
    ]
    call = slack.routes["post"].calls[0]
    assert call.request.headers["authorization"] == f"Bearer {TOKEN}"
    sent = [d for t, d in _timeline(server, request_id) if t == "notification.sent"]
    assert {(d["channel"], d["recipient"], d["reason"]) for d in sent} == {
        ("slack", "alice@example.com", "created"),
        ("slack", "bob@example.com", "created"),
    }
    assert TOKEN not in json.dumps(_timeline(server, request_id))


def test_agent_text_cannot_ping_channels_or_forge_links(
    server: Reviewers, slack: respx.MockRouter
) -> None:
    request_id = server.create(summary="<!channel> pay now <https://evil.example|click>")
    (message, *_) = wait_for(lambda: _messages_for(slack, request_id), what="a Slack message")
    text = json.dumps(message["blocks"])
    assert "<!channel>" not in text
    assert "<https://evil" not in text
    assert "&lt;!channel&gt;" in text


def test_signature_verification_valid_stale_forged(
    server: Reviewers, slack: respx.MockRouter
) -> None:
    request_id = server.create()
    body = _click("U0ALICE", request_id, "approve")
    stale = _send(server, body, _signed(body, at=time.time() - 600))
    forged = _send(server, body, _signed(body, secret="not-the-signing-secret"))
    tampered = _send(
        server, body.replace("approve", "reject"), _signed(body)
    )  # signed one body, sent another
    unsigned = _send(server, body, {"content-type": "application/x-www-form-urlencoded"})
    garbage = _send(server, body, {**_signed(body), "x-slack-request-timestamp": "soon"})
    for answer in (stale, forged, tampered, unsigned, garbage):
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "slack_signature_invalid"
    assert _status(server, request_id) is Status.PENDING
    assert not slack.routes["ephemeral"].called

    valid = _send(server, body, _signed(body))
    assert valid.status_code == 200
    assert _status(server, request_id) is Status.APPROVED


def test_button_decides_and_every_message_shows_the_outcome(
    server: Reviewers, slack: respx.MockRouter
) -> None:
    request_id = server.create()
    messages = wait_for(
        lambda: len(_messages_for(slack, request_id)) == 2 and _messages_for(slack, request_id),
        what="two Slack messages",
    )
    assert messages
    before = len(_calls(slack, "update"))
    body = _click("U0ALICE", request_id, "approve", channel="D0ALICE")
    assert _send(server, body, _signed(body)).status_code == 200

    decided = server.as_user("admin@example.com").get_request(request_id)
    assert decided.status is Status.APPROVED
    (decision,) = decided.decisions
    assert (decision.via.value, decision.decided_by.user) == ("slack", "alice@example.com")

    updates = wait_for(
        lambda: len(_calls(slack, "update")) >= before + 2 and _calls(slack, "update")[before:],
        what="both messages updated",
    )
    assert sorted(u["channel"] for u in updates) == ["D0ALICE", "D0BOB"]
    for update in updates:
        text = json.dumps(update["blocks"])
        assert "Approved by alice@example.com via slack" in text
        assert '"type": "actions"' not in text  # the buttons are gone
    outcome = wait_for(
        lambda: [
            d
            for t, d in _timeline(server, request_id)
            if t == "notification.sent" and d["reason"] == "outcome"
        ],
        what="outcome notifications in the timeline",
    )
    assert {d["recipient"] for d in outcome} <= {"alice@example.com", "bob@example.com"}


def test_a_partial_quorum_approval_updates_the_clicked_message(
    server: Reviewers, slack: respx.MockRouter
) -> None:
    request_id = server.create(approvals={"mode": "threshold", "required": 2})
    wait_for(lambda: len(_messages_for(slack, request_id)) == 2, what="two Slack messages")
    before = len(_calls(slack, "update"))
    body = _click("U0BOB", request_id, "approve", channel="D0BOB", ts="17000.99")
    assert _send(server, body, _signed(body)).status_code == 200
    assert _status(server, request_id) is Status.PENDING
    (update,) = wait_for(lambda: _calls(slack, "update")[before:], what="the clicked message")
    assert (update["channel"], update["ts"]) == ("D0BOB", "17000.99")
    assert "Approved so far by bob@example.com" in json.dumps(update["blocks"])


def test_a_required_comment_is_asked_for_in_a_modal(
    server: Reviewers, slack: respx.MockRouter
) -> None:
    request_id = server.create(comment_required="on_reject")
    body = _click("U0ALICE", request_id, "reject", channel="D0ALICE", ts="17000.5")
    assert _send(server, body, _signed(body)).status_code == 200
    assert _status(server, request_id) is Status.PENDING  # not without the comment
    (opened,) = _calls(slack, "modal")
    assert opened["trigger_id"] == "1337.42.abcd"
    view = opened["view"]
    assert view["callback_id"] == "signoff.comment"

    def submit(comment: str | None) -> httpx.Response:
        payload = {
            "type": "view_submission",
            "user": {"id": "U0ALICE"},
            "view": {
                "callback_id": view["callback_id"],
                "private_metadata": view["private_metadata"],
                "state": {"values": {"comment": {"comment": {"value": comment}}}},
            },
        }
        form = urlencode({"payload": json.dumps(payload)})
        return _send(server, form, _signed(form))

    empty = submit(None)
    assert empty.json()["response_action"] == "errors"
    assert "needs a comment" in empty.json()["errors"]["comment"]
    assert submit("Wrong vendor account on the invoice.").status_code == 200
    decided = server.as_user("admin@example.com").get_request(request_id)
    assert decided.status is Status.REJECTED
    assert decided.decisions[0].comment == "Wrong vendor account on the invoice."


def test_refusals_are_shown_to_the_clicker_only(server: Reviewers, slack: respx.MockRouter) -> None:
    request_id = server.create(initiator="alice@example.com")
    for user, action in (("U0DAVE", "approve"), ("U0NOBODY", "approve"), ("U0ALICE", "approve")):
        body = _click(user, request_id, action)
        assert _send(server, body, _signed(body)).status_code == 200
    told = wait_for(
        lambda: len(_calls(slack, "ephemeral")) >= 3 and _calls(slack, "ephemeral"),
        what="three ephemeral messages",
    )
    by_user = {t["user"]: t["text"] for t in told}
    assert "roles you do not hold" in by_user["U0DAVE"]
    assert "not linked to a signoff reviewer" in by_user["U0NOBODY"]
    assert "separation of duties" in by_user["U0ALICE"]
    assert _status(server, request_id) is Status.PENDING


def test_failed_delivery_is_retried_then_recorded(
    server: Reviewers, slack: respx.MockRouter
) -> None:
    alice_calls = itertools.count()

    def flaky(request: httpx.Request) -> httpx.Response:
        channel = json.loads(request.content)["channel"]
        if channel == "U0BOB":  # permanent: retrying cannot help
            return httpx.Response(200, json={"ok": False, "error": "channel_not_found"})
        if next(alice_calls) == 0:  # transient: retried
            return httpx.Response(503)
        return httpx.Response(200, json={"ok": True, "channel": "D0ALICE", "ts": "17000.7"})

    slack.routes["post"].side_effect = flaky
    request_id = server.create()

    def outcomes() -> list[tuple[str, dict[str, Any]]]:
        found = [(t, d) for t, d in _timeline(server, request_id) if t.startswith("notification.")]
        return found if len(found) == 2 else []

    events = wait_for(outcomes, what="two notification outcomes")
    by_recipient = {d["recipient"]: (t, d) for t, d in events}
    kind, sent = by_recipient["alice@example.com"]
    assert (kind, sent["attempts"]) == ("notification.sent", 2)
    kind, failed = by_recipient["bob@example.com"]
    assert (kind, failed["attempts"]) == ("notification.failed", 1)  # permanent: no retry
    assert "channel_not_found" in failed["error"]
