"""Turning one CrewAI step into one signoff request, the same way every time.

CrewAI re-runs work: a task whose guardrail said no is redone, an agent whose execution failed
retries the whole task, a model may repeat a tool call. Each re-run must find the request made
the first time, so the idempotency key is a pure function of where the step runs and what it
asks for: the crew, its kickoff, the task (or the flow and its method), the tool, and the
arguments. `Scope.current()` reads where the step runs from the context CrewAI keeps while a
crew or flow executes; it never changes anything.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from pydantic import JsonValue

import signoff
from signoff.client import Client
from signoff.models import (
    Action,
    AgentRef,
    BusinessObject,
    CallbackTarget,
    OutcomeStatus,
    Request,
    RequestCreate,
    Risk,
    Route,
    Status,
    Verdict,
)

__all__ = [
    "FRAMEWORK",
    "RequestOptions",
    "Scope",
    "build_request",
    "digest",
    "is_approved",
    "jsonable",
    "rejection_text",
    "report_outcome",
]

FRAMEWORK = "crewai"
log = logging.getLogger("signoff.crewai")
_MAX_CORRELATION_VALUE = 512


@dataclass(frozen=True, kw_only=True)
class RequestOptions:
    """How a gated step becomes a signoff request (shared by tools, guardrails and flows).

    `business_object` and `summary` derive display and routing data from the step's arguments;
    `route`, `sla` and `risk` are hints a policy may tighten, never loosen. `callback_url` is
    where signoff posts the signed decision. `wait_timeout` bounds how long a tool or guardrail
    blocks for a decision before it fails closed (Flows never block).
    """

    action: str | None = None
    business_object: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None
    summary: Callable[[Mapping[str, Any]], str] | None = None
    route: str | None = None
    sla: str | None = None
    risk: Risk | None = None
    callback_url: str | None = None
    wait_timeout: float = 300.0


@dataclass(frozen=True, kw_only=True)
class Scope:
    """Where a step runs, as CrewAI exposes it to running code (None where it does not).

    CrewAI gives a tool's `_run` no handle on the agent that calls it; the task id pins it (a
    crew task is executed by its one agent). Guardrails learn the agent's role from the output.
    """

    crew_id: str | None = None
    kickoff_id: str | None = None
    task_id: str | None = None
    agent: str | None = None
    flow_id: str | None = None
    flow_method: str | None = None

    @classmethod
    def current(cls, *, agent: str | None = None) -> Scope:
        """The scope of the code running now (inside `crew.kickoff()` or a flow method)."""
        crew_id, kickoff_id, task_id, flow_id, flow_method = None, None, None, None, None
        try:
            from crewai.context import get_current_task_id
            from crewai.flow.flow_context import current_flow_id, current_flow_method_name
            from crewai.utilities.crew.crew_context import get_crew_context
        except ImportError:  # pragma: no cover - a CrewAI without these helpers
            return cls(agent=agent)
        task_id = get_current_task_id()
        crew = get_crew_context()
        crew_id = str(crew.id) if crew is not None and crew.id else None
        if task_id is None:
            # Inside a task CrewAI's own agent executor runs as an internal Flow with a fresh id
            # per execution: only a flow method outside any task names a flow of the user's.
            flow_id = current_flow_id.get()
            method = current_flow_method_name.get()
            flow_method = method if flow_id and method and method != "unknown" else None
        kickoff_id = _kickoff_event_id()
        return cls(
            crew_id=crew_id,
            kickoff_id=kickoff_id,
            task_id=task_id,
            agent=agent,
            flow_id=flow_id,
            flow_method=flow_method,
        )

    @property
    def known(self) -> bool:
        """True when CrewAI names the run this step belongs to (a crew task or a flow)."""
        return bool(self.task_id or self.crew_id or self.flow_id)

    def correlation(self, **extra: str | None) -> dict[str, str]:
        """The scope as signoff correlation entries (echoed back in the signed callback)."""
        raw: dict[str, str | None] = {
            "framework": FRAMEWORK,
            "crew_id": self.crew_id,
            "kickoff_id": self.kickoff_id,
            "task_id": self.task_id,
            "agent": self.agent,
            "flow_id": self.flow_id,
            "flow_method": self.flow_method,
            **extra,
        }
        return {k: v[:_MAX_CORRELATION_VALUE] for k, v in raw.items() if v}


def _kickoff_event_id() -> str | None:
    """The id of the current `crew.kickoff()` (stable across the retries inside it)."""
    try:
        from crewai.events.event_context import (
            _event_id_stack,  # pyright: ignore[reportPrivateUsage]
        )
    except ImportError:  # pragma: no cover - CrewAI moved its event context
        return None
    stack: tuple[tuple[str, str], ...] = _event_id_stack.get()
    for event_id, event_type in reversed(stack):
        if event_type == "crew_kickoff_started":
            return event_id
    return None


def jsonable(value: Any) -> Any:
    """`value` as plain JSON data (dates, decimals and models become strings or dicts)."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    return json.loads(json.dumps(value, default=str))


def digest(*parts: Any) -> str:
    """A short, stable hash of JSON-able parts (the same parts give the same digest)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def build_request(
    *,
    kind: str,
    name: str,
    arguments: Mapping[str, Any],
    scope: Scope,
    options: RequestOptions,
    default_object: Mapping[str, Any],
    extra_key: tuple[Any, ...] = (),
    correlation: Mapping[str, str | None] | None = None,
) -> RequestCreate:
    """The request for one gated step; identical for identical steps in the same run."""
    args = cast(dict[str, JsonValue], jsonable(dict(arguments)))
    obj = options.business_object(args) if options.business_object else default_object
    key = digest(
        kind,
        name,
        scope.crew_id,
        scope.kickoff_id,
        scope.task_id,
        scope.agent,
        scope.flow_id,
        scope.flow_method,
        args,
        *extra_key,
    )
    return RequestCreate(
        action=Action(name=options.action or name, arguments=args),
        business_object=BusinessObject.model_validate(dict(obj)),
        summary=options.summary(args) if options.summary else None,
        agent=AgentRef(framework=FRAMEWORK),
        correlation=scope.correlation(step=kind, **dict(correlation or {})),
        risk=options.risk or Risk.MEDIUM,
        route=Route(role=options.route) if options.route else None,
        sla=options.sla,
        callback=CallbackTarget.model_validate({"url": options.callback_url})
        if options.callback_url
        else None,
        idempotency_key=f"crewai:{kind}:{key}",
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


def rejection_text(request: Request, *, subject: str = "Not executed") -> str:
    """What the agent reads instead of a result when the step may not go ahead."""
    final = request.final_decision
    who = final.decided_by.user if final else "nobody"
    comment = f": {final.comment}" if final and final.comment else ""
    match request.status:
        case Status.RESPONDED:
            return (
                f"{subject}. The reviewer ({who}) answered instead of approving{comment}. "
                "Follow that instruction."
            )
        case Status.EXPIRED:
            return f"{subject}: no decision arrived before the deadline, so it was rejected."
        case Status.CANCELLED:
            return f"{subject}: the approval request ({request.id}) was cancelled."
        case Status.PENDING:
            return f"{subject}: the approval ({request.id}) is still pending."
        case _:
            return f"{subject}: rejected by {who}{comment}."


def report_outcome(
    client: Client, request_id: str, status: OutcomeStatus, detail: str | None = None
) -> None:
    """Report what became of a decided step; best effort (the step already ran or was skipped,
    and a lost report must not undo that). A second report of the same request is ignored."""
    try:
        client.report_outcome(request_id, status, detail=detail)
    except signoff.Conflict:
        pass  # reported already, by an earlier run of the same step
    except signoff.SignoffError:
        log.warning("could not report outcome %s for %s", status.value, request_id)
