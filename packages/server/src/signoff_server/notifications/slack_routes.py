"""`POST /slack/interactions`: Slack's button clicks and modal submissions.

Every payload is verified first with slack-sdk's `SignatureVerifier` (the app's signing
secret, and a timestamp within five minutes of the server's clock); anything that does not
verify is a 401 and decides nothing. The Slack user is mapped to a signoff person
(`SlackDirectory`); an unknown user decides nothing. A decision then goes through the same
`Lifecycle.decide` as the web inbox and the API (`via: slack`), with that person's current
roles, so the role, quorum, comment and separation-of-duties checks are the same everywhere.

* Approve/Reject on a request that needs a comment for that verdict opens a modal asking for
  it; the modal's submission decides (a refusal is shown in the modal).
* A refusal (not your role, separation of duties, already closed) is shown to the clicker only
  (`chat.postEphemeral`).
* When the decision closes the request, the lifecycle close hook queues the outcome for every
  Slack message of the request; a partial quorum approval updates the clicked message at once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast
from urllib.parse import parse_qs

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from slack_sdk.models.blocks import InputBlock, PlainTextInputElement, SectionBlock
from slack_sdk.models.views import View
from slack_sdk.signature import Clock, SignatureVerifier
from starlette.concurrency import run_in_threadpool

from signoff.models import DecisionCreate, DecisionVia, Status, Verdict
from signoff.models import Request as RequestModel
from signoff_server.db import Database
from signoff_server.errors import ServiceError
from signoff_server.identity import Principal, user_roles_of
from signoff_server.lifecycle import Lifecycle
from signoff_server.notifications.checks import needs_comment
from signoff_server.notifications.slack import (
    APPROVE_ACTION,
    REJECT_ACTION,
    SlackApi,
    SlackApiError,
    SlackDirectory,
    escape,
    outcome_blocks,
)
from signoff_server.views import load_request

__all__ = ["COMMENT_VIEW", "MAX_BODY", "slack_router"]

log = logging.getLogger("signoff.slack")

COMMENT_VIEW = "signoff.comment"
MAX_BODY = 1 << 20
"""Interactive payloads larger than this are refused before verification."""


class _ServerClock(Clock):
    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock

    def now(self) -> float:
        return self._clock().timestamp()


def _obj(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one (payloads are untrusted shapes)."""
    return cast(dict[str, Any], value) if isinstance(value, dict) else {}


def _verified(verifier: SignatureVerifier, body: bytes, headers: Any) -> bool:
    """True only for a well-formed, fresh, correctly signed request (never raises)."""
    timestamp = headers.get("x-slack-request-timestamp")
    signature = headers.get("x-slack-signature")
    if not timestamp or not signature or not timestamp.isdigit():
        return False
    try:
        return verifier.is_valid(body=body, timestamp=timestamp, signature=signature)
    except (ValueError, UnicodeDecodeError):
        return False


def _refused(message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": "slack_signature_invalid", "message": message, "details": None}},
        status_code=401,
    )


def _comment_view(request: RequestModel, verdict: Verdict, channel: str, ts: str) -> dict[str, Any]:
    label = "Approve" if verdict is Verdict.APPROVE else "Reject"
    view = View(
        type="modal",
        callback_id=COMMENT_VIEW,
        title=f"{label} request",
        submit=label,
        close="Cancel",
        private_metadata=json.dumps({"r": request.id, "v": verdict.value, "c": channel, "t": ts}),
        blocks=[
            SectionBlock(
                text=f"*{escape(request.action.name)}* on "
                f"{escape(request.business_object.type)} {escape(request.business_object.id)}: "
                "this decision needs a comment."
            ),
            InputBlock(
                block_id="comment",
                label="Comment",
                element=PlainTextInputElement(action_id="comment", multiline=True, max_length=3000),
            ),
        ],
    )
    return view.to_dict()  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]


def slack_router(
    *,
    signing_secret: str,
    api: SlackApi,
    directory: SlackDirectory,
    lifecycle: Lifecycle,
    db: Database,
    request_url: Callable[[str], str],
    clock: Callable[[], datetime],
    kick: Callable[[], None] = lambda: None,
) -> APIRouter:
    """The interactivity endpoint (kept out of the OpenAPI schema)."""
    verifier = SignatureVerifier(signing_secret, clock=_ServerClock(clock))
    router = APIRouter(include_in_schema=False)

    def principal_of(email: str) -> Principal:
        with db.read() as conn:
            return Principal("user", email, roles=user_roles_of(conn, email))

    def tell(channel: str, user_id: str, text: str) -> None:
        try:
            api.ephemeral(channel, user_id, text)
        except SlackApiError as exc:
            log.warning("could not tell a Slack user why nothing was decided: %s", exc.detail)

    def show(channel: str, ts: str, request: RequestModel) -> None:
        blocks, text = outcome_blocks(request, request_url(request.id))
        try:
            api.update(channel, ts, blocks, text)
        except SlackApiError as exc:
            log.warning("could not update a Slack message: %s", exc.detail)

    def decide(email: str, request_id: str, verdict: Verdict, comment: str | None) -> RequestModel:
        decision = DecisionCreate(verdict=verdict, comment=comment or None)
        return lifecycle.decide(principal_of(email), request_id, decision, via=DecisionVia.SLACK)

    def on_click(payload: dict[str, Any], background: BackgroundTasks) -> Response:
        actions: Any = payload.get("actions")
        action = _obj(actions[0] if isinstance(actions, list) and actions else None)
        action_id = action.get("action_id")
        if action_id not in (APPROVE_ACTION, REJECT_ACTION):
            return Response(status_code=200)  # e.g. the "Open in signoff" link button
        verdict = Verdict.APPROVE if action_id == APPROVE_ACTION else Verdict.REJECT
        request_id = str(action.get("value", ""))
        user_id = str(_obj(payload.get("user")).get("id", ""))
        container = _obj(payload.get("container"))
        channel = str(_obj(payload.get("channel")).get("id") or container.get("channel_id", ""))
        ts = str(_obj(payload.get("message")).get("ts") or container.get("message_ts", ""))
        email = directory.email(user_id)
        if email is None:
            background.add_task(
                tell,
                channel,
                user_id,
                "Your Slack account is not linked to a signoff reviewer: nothing was decided.",
            )
            return Response(status_code=200)
        try:
            with db.read() as conn:
                request = load_request(conn, principal_of(email), request_id)[1]
            if request.status is Status.PENDING and needs_comment(request, verdict):
                api.open_view(
                    str(payload.get("trigger_id", "")), _comment_view(request, verdict, channel, ts)
                )
                return Response(status_code=200)
            result = decide(email, request_id, verdict, None)
        except ServiceError as exc:
            background.add_task(tell, channel, user_id, f"Not decided: {exc.message}")
            return Response(status_code=200)
        except SlackApiError as exc:
            log.warning("could not open the comment modal: %s", exc.detail)
            return Response(status_code=200)
        if result.status is Status.PENDING:
            background.add_task(show, channel, ts, result)  # partial quorum: this message only
        else:
            kick()  # the close hook queued the outcome for every message of the request
        return Response(status_code=200)

    def on_submit(payload: dict[str, Any], background: BackgroundTasks) -> Response:
        view = _obj(payload.get("view"))
        if view.get("callback_id") != COMMENT_VIEW:
            return Response(status_code=200)
        try:
            meta: Any = json.loads(str(view.get("private_metadata", "")))
            request_id, verdict = str(meta["r"]), Verdict(meta["v"])
            channel, ts = str(meta.get("c", "")), str(meta.get("t", ""))
            comment = view["state"]["values"]["comment"]["comment"].get("value")
        except (ValueError, KeyError, TypeError):
            return JSONResponse(
                {"response_action": "errors", "errors": {"comment": "Malformed form."}}
            )
        email = directory.email(str(_obj(payload.get("user")).get("id", "")))
        if email is None:
            return JSONResponse(
                {
                    "response_action": "errors",
                    "errors": {
                        "comment": "Your Slack account is not linked to a signoff reviewer."
                    },
                }
            )
        try:
            result = decide(
                email, request_id, verdict, comment if isinstance(comment, str) else None
            )
        except ServiceError as exc:
            return JSONResponse(
                {"response_action": "errors", "errors": {"comment": exc.message[:150]}}
            )
        except ValidationError:
            return JSONResponse(
                {"response_action": "errors", "errors": {"comment": "Comment too long."}}
            )
        if result.status is Status.PENDING and channel and ts:
            background.add_task(show, channel, ts, result)
        else:
            kick()
        return Response(status_code=200)

    @router.post("/slack/interactions")
    async def interactions(request: Request, background: BackgroundTasks) -> Response:
        """Slack interactivity request URL."""
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_BODY:
            return _refused("payload too large")
        body = await request.body()
        if len(body) > MAX_BODY or not _verified(verifier, body, request.headers):
            return _refused("the Slack signature or timestamp does not verify")
        try:
            form = parse_qs(body.decode(), strict_parsing=False)
            payload: Any = json.loads(form["payload"][0])
        except (UnicodeDecodeError, KeyError, IndexError, ValueError):
            return JSONResponse(
                {
                    "error": {
                        "code": "invalid_payload",
                        "message": "no interaction payload",
                        "details": None,
                    }
                },
                status_code=400,
            )
        if not isinstance(payload, dict):
            return Response(status_code=400)
        data: dict[str, Any] = payload  # pyright: ignore[reportUnknownVariableType]
        kind = data.get("type")
        if kind == "block_actions":
            return await run_in_threadpool(on_click, data, background)
        if kind == "view_submission":
            return await run_in_threadpool(on_submit, data, background)
        return Response(status_code=200)

    return router
