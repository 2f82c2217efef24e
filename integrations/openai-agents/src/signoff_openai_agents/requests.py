"""Turning one tool call into one signoff request, the same way every time.

The guardrail, the `needs_approval` check and the tool wrapper all build the request for a call
with `build_request`; its idempotency key comes from the tool name and the call id, and the body
is a pure function of the call, so any of them can re-create it and get the same request back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import JsonValue

from signoff.models import (
    Action,
    AgentRef,
    BusinessObject,
    CallbackTarget,
    Request,
    RequestCreate,
    Risk,
    Route,
    Status,
    Verdict,
)

__all__ = ["GateOptions", "build_request", "is_approved", "parse_arguments", "rejection_text"]

FRAMEWORK = "openai-agents"


@dataclass(frozen=True, kw_only=True)
class GateOptions:
    """How calls of one tool become signoff requests.

    `business_object` and `summary` derive display and routing data from the call's arguments;
    `action` defaults to the tool's name. `route`, `sla` and `risk` are hints a policy may
    tighten. `callback_url` is where signoff posts the signed decision (durable mode).
    """

    action: str | None = None
    business_object: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None
    summary: Callable[[Mapping[str, Any]], str] | None = None
    route: str | None = None
    sla: str | None = None
    risk: Risk | None = None
    callback_url: str | None = None
    wait_timeout: float = 300.0
    """Seconds the guardrail waits for a decision before it fails closed."""


def parse_arguments(raw: str | Mapping[str, Any]) -> dict[str, JsonValue]:
    """The call's arguments as a dict (the SDK hands them over as a JSON string)."""
    if isinstance(raw, Mapping):
        return dict(raw)
    value = json.loads(raw or "{}")
    if not isinstance(value, dict):
        raise ValueError("tool arguments must be a JSON object")
    return value  # pyright: ignore[reportUnknownVariableType]


def build_request(
    tool_name: str, arguments: Mapping[str, Any], call_id: str, options: GateOptions
) -> RequestCreate:
    """The request for one tool call; identical for identical calls."""
    args = dict(arguments)
    obj = (
        options.business_object(args)
        if options.business_object
        else {"type": "tool_call", "id": call_id}
    )
    return RequestCreate(
        action=Action(name=options.action or tool_name, arguments=args),
        business_object=BusinessObject.model_validate(obj),
        summary=options.summary(args) if options.summary else None,
        agent=AgentRef(framework=FRAMEWORK),
        correlation={"call_id": call_id, "tool": tool_name},
        risk=options.risk or Risk.MEDIUM,
        route=Route(role=options.route) if options.route else None,
        sla=options.sla,
        callback=CallbackTarget.model_validate({"url": options.callback_url})
        if options.callback_url
        else None,
        idempotency_key=f"oai:{tool_name}:{call_id}",
    )


def is_approved(request: Request) -> bool:
    """True only for a request closed with an approving verdict (fail closed otherwise)."""
    final = request.final_decision
    if final is None:
        return False
    if request.status is Status.APPROVED:
        return final.verdict in (Verdict.APPROVE, Verdict.EDIT)
    # `expired` with an approving timeout outcome is an approval the policy asked for.
    return request.status is Status.EXPIRED and final.verdict is Verdict.APPROVE


def rejection_text(request: Request) -> str:
    """What the model reads instead of the tool's output when the call may not run."""
    final = request.final_decision
    who = final.decided_by.user if final else "nobody"
    comment = f": {final.comment}" if final and final.comment else ""
    match request.status:
        case Status.RESPONDED:
            return (
                f"Not executed. The reviewer ({who}) answered instead of approving{comment}. "
                "Follow that instruction."
            )
        case Status.EXPIRED:
            return "Not executed: no decision arrived before the deadline, so it was rejected."
        case Status.CANCELLED:
            return "Not executed: the approval request was cancelled."
        case Status.PENDING:
            return "Not executed: the approval is still pending."
        case _:
            return f"Not executed: rejected by {who}{comment}."
