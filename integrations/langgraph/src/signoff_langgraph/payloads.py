"""What goes into `interrupt()` and what comes back in `Command(resume=...)`.

Interrupt payloads use LangChain's human-in-the-loop shapes, so UIs that speak them can show a
signoff gate (`payload="hitl"`, the default), or the Agent Inbox shape (`payload="agent_inbox"`):

- approval node, HITL: `{action_requests: [{name, args, description}], review_configs:
  [{action_name, allowed_decisions}]}`, answered with `{decisions: [decision]}`;
- tool gate, HITL per-call: `{type: "tool_approval", tool_call_id, name, args, description}`,
  answered with one decision (`{type: approve|edit|reject|respond, ...}`);
- Agent Inbox: `{action_request: {action, args}, config: {allow_accept, allow_edit,
  allow_respond, allow_ignore}, description}`, answered with `[{type: accept|edit|response|ignore,
  args}]`.

Every payload and every resume value also carries a `signoff` entry naming the request. The gate
acts only on a resume value naming its own request, and only on the decision signoff itself
returns for that request, never on the content of a resume value.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal, TypedDict, cast

from signoff import DecisionVia, Request, Status, Verdict
from signoff_langgraph._api import as_mapping

__all__ = [
    "DecisionKind",
    "PayloadFormat",
    "SignoffDecision",
    "answered_request",
    "approval_payload",
    "decision_from_request",
    "message_for",
    "resume_value",
    "signoff_meta",
    "tool_payload",
]

PayloadFormat = Literal["hitl", "agent_inbox"]
"""The interrupt payload shape: LangChain's HITL middleware shape, or Agent Inbox's."""

DecisionKind = Literal["approve", "edit", "reject", "respond", "expired", "cancelled"]
"""What became of a gated action: the two that let it run, and the four that do not."""


class SignoffDecision(TypedDict):
    """A closed request as the graph sees it (JSON-only, so any checkpointer can store it).

    `approved` is the one field to branch on: True only for an approval (as asked, or edited, or
    by a timeout policy that approves). `arguments` are the ones to run with (the edited ones
    after an edit). `comment` is the reviewer's reason, or the instruction after `respond`.
    """

    request_id: str
    action: str
    status: str
    kind: DecisionKind
    approved: bool
    arguments: dict[str, Any]
    comment: str | None
    decided_by: str | None
    role: str | None
    via: str | None


def decision_from_request(request: Request) -> SignoffDecision:
    """The decision carried by a closed request. Anything unexpected fails closed."""
    if not request.status.is_terminal:
        raise ValueError(f"{request.id} is still pending")
    final = request.decisions[-1] if request.decisions else None
    verdict = final.verdict if final else None
    kind: DecisionKind
    comment = final.comment if final else None
    if request.status in (Status.APPROVED, Status.EXPIRED) and verdict in (
        Verdict.APPROVE,
        Verdict.EDIT,
    ):
        # EXPIRED + approve: the timeout outcome a policy set to approve (DESIGN §3).
        kind = "edit" if verdict is Verdict.EDIT else "approve"
    elif request.status is Status.RESPONDED and verdict is Verdict.RESPOND and comment:
        kind = "respond"
    elif request.status is Status.EXPIRED:
        kind = "expired"
    elif request.status is Status.CANCELLED:
        kind = "cancelled"
    elif request.status is Status.REJECTED:
        kind = "reject"
    else:
        kind = "reject"
        comment = (
            f"signoff reported {request.status.value!r} without a matching decision; "
            "treated as rejected (fail closed)"
        )
    approved = kind in ("approve", "edit")
    return SignoffDecision(
        request_id=request.id,
        action=request.action.name,
        status=request.status.value,
        kind=kind,
        approved=approved,
        arguments=dict(request.effective_arguments if approved else request.action.arguments),
        comment=comment,
        decided_by=final.decided_by.user if final else None,
        role=final.decided_by.role if final else None,
        via=final.via.value if final else None,
    )


def decided_by_policy(request: Request) -> bool:
    """True if a policy decided the request when it was created (no human to wait for)."""
    return (
        request.status.is_terminal
        and bool(request.decisions)
        and request.decisions[-1].via is DecisionVia.POLICY
    )


# interrupt payloads --------------------------------------------------------------------------


def _inbox(
    name: str, args: dict[str, Any], description: str, allowed: Sequence[str], meta: dict[str, str]
) -> dict[str, Any]:
    return {
        "action_request": {"action": name, "args": args},
        "config": {
            "allow_ignore": True,
            "allow_respond": "respond" in allowed,
            "allow_edit": "edit" in allowed,
            "allow_accept": "approve" in allowed,
        },
        "description": description,
        "signoff": meta,
    }


def approval_payload(
    *,
    name: str,
    args: dict[str, Any],
    description: str,
    allowed: Sequence[str],
    meta: dict[str, str],
    payload: PayloadFormat,
) -> dict[str, Any]:
    """The approval node's interrupt value: one action request."""
    if payload == "agent_inbox":
        return _inbox(name, args, description, allowed, meta)
    return {
        "action_requests": [{"name": name, "args": args, "description": description}],
        "review_configs": [{"action_name": name, "allowed_decisions": list(allowed)}],
        "signoff": meta,
    }


def tool_payload(
    *,
    tool_call_id: str,
    name: str,
    args: dict[str, Any],
    description: str,
    allowed: Sequence[str],
    meta: dict[str, str],
    payload: PayloadFormat,
) -> dict[str, Any]:
    """The tool gate's interrupt value for one tool call (HITL per-call shape)."""
    if payload == "agent_inbox":
        return _inbox(name, args, description, allowed, meta)
    return {
        "type": "tool_approval",
        "tool_call_id": tool_call_id,
        "name": name,
        "args": args,
        "description": description,
        "allowed_decisions": list(allowed),
        "signoff": meta,
    }


def signoff_meta(value: object) -> dict[str, str] | None:
    """The `signoff` entry of an interrupt payload this adapter made, else None."""
    payload = as_mapping(value)
    meta = as_mapping(payload.get("signoff")) if payload is not None else None
    if meta is None or not isinstance(meta.get("request_id"), str):
        return None
    return {k: v for k, v in meta.items() if isinstance(v, str)}


# resume values -------------------------------------------------------------------------------


def message_for(decision: SignoffDecision, name: str) -> str:
    """The text the agent (or model) gets when the action does not run."""
    who = decision["decided_by"] or "signoff"
    if decision["role"]:
        who = f"{who} ({decision['role']})"
    reason = f": {decision['comment']}" if decision["comment"] else ""
    kind = decision["kind"]
    if kind == "respond":
        return decision["comment"] or ""
    if kind == "expired":
        return (
            f"No decision on `{name}` before its deadline (request {decision['request_id']}); "
            "it timed out as rejected and was not executed."
        )
    if kind == "cancelled":
        return f"The approval request for `{name}` was cancelled{reason}; it was not executed."
    return (
        f"{who} rejected `{name}`{reason}. The action was not executed; do not retry it unless "
        "asked to."
    )


def _hitl_decision(decision: SignoffDecision, name: str) -> dict[str, Any]:
    kind = decision["kind"]
    if kind == "approve":
        return {"type": "approve"}
    if kind == "edit":
        return {"type": "edit", "edited_action": {"name": name, "args": decision["arguments"]}}
    if kind == "respond":
        return {"type": "respond", "message": message_for(decision, name)}
    return {"type": "reject", "message": message_for(decision, name)}


def _inbox_response(decision: SignoffDecision, name: str) -> dict[str, Any]:
    kind = decision["kind"]
    if kind == "approve":
        return {"type": "accept", "args": None}
    if kind == "edit":
        return {"type": "edit", "args": {"action": name, "args": decision["arguments"]}}
    if kind == "respond":
        return {"type": "response", "args": message_for(decision, name)}
    return {"type": "ignore", "args": None}


def resume_value(payload: object, request: Request, *, source: str) -> Any:
    """The `Command(resume=...)` value answering `payload` with `request`'s decision."""
    decision = decision_from_request(request)
    meta = {"request_id": request.id, "status": request.status.value, "source": source}
    shape = as_mapping(payload) or {}
    if "action_request" in shape:
        action = as_mapping(shape["action_request"]) or {}
        name = str(action.get("action", request.action.name))
        return [{**_inbox_response(decision, name), "signoff": meta}]
    if "action_requests" in shape:
        requests = cast(list[Any], shape["action_requests"])
        first = as_mapping(requests[0]) if requests else None
        name = str(first.get("name", request.action.name)) if first else request.action.name
        return {"decisions": [_hitl_decision(decision, name)], "signoff": meta}
    name = str(shape.get("name", request.action.name))
    return {**_hitl_decision(decision, name), "signoff": meta}


def answered_request(value: object) -> str | None:
    """The request id a resume value names (any of the shapes above), else None."""
    if isinstance(value, list):
        items = cast(list[Any], value)
        value = items[0] if items else None
    meta = signoff_meta(value)
    return meta["request_id"] if meta else None


def describe(name: str, args: dict[str, Any], summary: str | None) -> str:
    """A reviewer-facing description: the summary, else the action and its arguments."""
    if summary:
        return summary
    return f"{name} needs approval\n\nArguments: {json.dumps(args, sort_keys=True, default=str)}"
