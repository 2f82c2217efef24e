"""An MCP server that gives any MCP-capable agent an approval tool.

Tools:

- `request_approval(action, arguments, business_object, summary, wait_seconds)` creates the
  request (idempotently: the same action, arguments and object give the same request) and waits
  up to `wait_seconds` (at most 25) for a decision, sending progress notifications meanwhile.
  It answers with the decision, or `pending` and the request id.
- `wait_for_approval(request_id, wait_seconds)` waits again for a pending request.
- `get_request(request_id)` reads a request's current state without waiting.

No single tool call blocks for long: MCP clients time out one call after anything from 5 to 60
seconds, so a long approval is a series of short waits the model is told to keep making.
Every answer says plainly whether the action may run (`approved`), and every error path answers
`approved: false` — the server fails closed.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations

import signoff
from signoff import AgentRef, AsyncClient, Request, RequestCreate, Status, Verdict

__all__ = [
    "MAX_WAIT_SECONDS",
    "ClientFactory",
    "create_server",
    "decision_payload",
    "is_approved",
]

MAX_WAIT_SECONDS = 25.0
"""The longest one tool call waits: below the usual 30 s client timeouts, with a margin."""

_POLL_SLICE = 5.0
"""Seconds per long-poll slice; a progress notification is sent after each."""

FRAMEWORK = "mcp"

ClientFactory = Callable[[], AsyncClient]
"""Makes a fresh signoff client per tool call (it is closed when the call ends)."""

_KEEP_WAITING = (
    "While the status is `pending`, the action is NOT approved: do not perform it, and do not "
    "ask again with request_approval. Call `wait_for_approval` with the request id, again and "
    "again, until the status is no longer pending. Perform the action only if `approved` is "
    "true, and then with the returned `arguments` (a reviewer may have edited them)."
)

REQUEST_APPROVAL_DESCRIPTION = (
    "Ask a human (through signoff) to approve an action before you perform it. `action` is a "
    "dotted name such as `payments.release`; `arguments` are the exact arguments you intend to "
    "use; `business_object` is what the action touches, e.g. "
    '{"type": "invoice", "id": "INV-1042"}; `summary` is one sentence for the reviewer. '
    "Waits up to `wait_seconds` (at most 25) for a decision. " + _KEEP_WAITING + " If the "
    "status is `responded`, follow the reviewer's `comment` instead of performing the action. "
    "Pass a new `attempt` value only to ask again for the same action after a rejection."
)

WAIT_DESCRIPTION = (
    "Wait up to `wait_seconds` (at most 25) for the decision on an approval request made with "
    "request_approval. " + _KEEP_WAITING
)

GET_DESCRIPTION = (
    "Read the current state of an approval request without waiting. Perform the action only "
    "if `approved` is true."
)


def _instruction(request: Request, approved: bool) -> str:
    final = request.final_decision
    comment = final.comment if final and final.comment else None
    match request.status:
        case _ if approved:
            return "Approved: perform the action now, with exactly the returned arguments."
        case Status.PENDING:
            return (
                f"Pending: not approved yet. Do not perform the action. Call wait_for_approval "
                f"with request_id {request.id!r} to keep waiting."
            )
        case Status.RESPONDED:
            return f"Not approved. The reviewer answered instead: {comment or '(no text)'}."
        case Status.EXPIRED:
            return "Not approved: no decision arrived before the deadline. Do not perform it."
        case Status.CANCELLED:
            return "Not approved: the request was cancelled. Do not perform the action."
        case _:
            reason = f" Reason: {comment}" if comment else ""
            return f"Rejected: do not perform the action.{reason}"


def is_approved(request: Request) -> bool:
    """True only for a request closed with an approving verdict (fail closed otherwise)."""
    final = request.final_decision
    if final is None:
        return False
    if request.status is Status.APPROVED:
        return final.verdict in (Verdict.APPROVE, Verdict.EDIT)
    return request.status is Status.EXPIRED and final.verdict is Verdict.APPROVE


def decision_payload(request: Request) -> dict[str, Any]:
    """What a tool returns for `request`: status, whether it may run, and with what."""
    approved = is_approved(request)
    final = request.final_decision
    payload: dict[str, Any] = {
        "request_id": request.id,
        "status": request.status.value,
        "approved": approved,
        "instruction": _instruction(request, approved),
    }
    if approved:
        payload["arguments"] = request.effective_arguments
    if final is not None:
        payload["verdict"] = final.verdict.value
        payload["decided_by"] = final.decided_by.user
        if final.comment:
            payload["comment"] = final.comment
    return payload


def _error_payload(exc: Exception, request_id: str | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "status": "error",
        "approved": False,
        "instruction": (
            "Not approved: the approval could not be obtained "
            f"({type(exc).__name__}: {exc}). Do not perform the action."
        ),
    }
    if request_id is not None:
        payload["request_id"] = request_id
    return payload


def _clamp(wait_seconds: float) -> float:
    return max(0.0, min(float(wait_seconds), MAX_WAIT_SECONDS))


def idempotency_key(
    action: str, arguments: dict[str, Any], business_object: dict[str, Any], key: str | None
) -> str:
    """A key that makes retries of the same ask land on the same request."""
    body = json.dumps(
        {"action": action, "arguments": arguments, "object": business_object, "key": key},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return "mcp:" + hashlib.sha256(body.encode()).hexdigest()[:40]


async def wait_with_progress(
    client: AsyncClient, request: Request, wait_seconds: float, ctx: Context | None
) -> Request:
    """Long-poll `request` for up to `wait_seconds`, reporting progress after each slice."""
    started = time.monotonic()
    deadline = started + _clamp(wait_seconds)
    while request.status is Status.PENDING:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            request = await client.wait(request.id, timeout=min(_POLL_SLICE, remaining))
        except signoff.TimeoutError:
            if ctx is not None:
                waited = time.monotonic() - started
                await ctx.report_progress(
                    waited,
                    _clamp(wait_seconds),
                    f"waiting for a reviewer to decide {request.id} ({waited:.0f} s)",
                )
    return request


def create_server(
    client_factory: ClientFactory | None = None, *, name: str = "signoff"
) -> MCPServer:
    """The signoff approval MCP server.

    `client_factory` makes the signoff client for each call; by default one configured from
    `SIGNOFF_URL` and `SIGNOFF_API_KEY`.
    """
    factory: ClientFactory = client_factory or AsyncClient
    server = MCPServer(
        name,
        instructions=("Use request_approval before any consequential action. " + _KEEP_WAITING),
    )
    annotations = ToolAnnotations(
        read_only_hint=False, destructive_hint=False, open_world_hint=True
    )

    @server.tool(description=REQUEST_APPROVAL_DESCRIPTION, annotations=annotations)
    async def request_approval(  # pyright: ignore[reportUnusedFunction]
        action: str,
        arguments: dict[str, Any] | None = None,
        business_object: dict[str, Any] | None = None,
        summary: str | None = None,
        wait_seconds: float = 20.0,
        attempt: str | None = None,
        ctx: Context | None = None,
    ) -> dict[str, Any]:
        args = dict(arguments or {})
        obj = dict(business_object or {"type": "action", "id": action})
        try:
            payload = RequestCreate.model_validate(
                {
                    "action": {"name": action, "arguments": args},
                    "business_object": obj,
                    "summary": summary,
                    "agent": AgentRef(framework=FRAMEWORK),
                    "correlation": {"source": "mcp"},
                    "idempotency_key": idempotency_key(action, args, obj, attempt),
                }
            )
        except ValueError as exc:
            return _error_payload(exc)
        request_id: str | None = None
        try:
            async with factory() as client:
                request = await client.create_request(payload)
                request_id = request.id
                request = await wait_with_progress(client, request, wait_seconds, ctx)
        except (signoff.SignoffError, ValueError) as exc:
            return _error_payload(exc, request_id)
        return decision_payload(request)

    @server.tool(description=WAIT_DESCRIPTION, annotations=ToolAnnotations(read_only_hint=True))
    async def wait_for_approval(  # pyright: ignore[reportUnusedFunction]
        request_id: str, wait_seconds: float = 20.0, ctx: Context | None = None
    ) -> dict[str, Any]:
        try:
            async with factory() as client:
                request = await client.get_request(request_id)
                request = await wait_with_progress(client, request, wait_seconds, ctx)
        except (signoff.SignoffError, ValueError) as exc:
            return _error_payload(exc, request_id)
        return decision_payload(request)

    @server.tool(description=GET_DESCRIPTION, annotations=ToolAnnotations(read_only_hint=True))
    async def get_request(request_id: str) -> dict[str, Any]:  # pyright: ignore[reportUnusedFunction]
        try:
            async with factory() as client:
                request = await client.get_request(request_id)
        except (signoff.SignoffError, ValueError) as exc:
            return _error_payload(exc, request_id)
        return decision_payload(request)

    return server
