"""A task guardrail that sends the task's output to a reviewer before CrewAI accepts it.

    task = Task(..., guardrail=approval_guardrail(client=signoff.Client(), route="editor"))

The guardrail creates one request per distinct output (action `crewai.task_output` by default,
arguments `{"task", "agent", "output"}`) and blocks until it is decided:

- approve → the output is accepted as it is; edit → the reviewer's `output` replaces it;
- anything else (reject, respond, expiry, a wait that runs out, signoff unreachable) →
  `on_reject="retry"` (default) returns `(False, feedback)` so CrewAI has the agent redo the
  task with the reviewer's words (up to the task's `guardrail_max_retries`);
  `on_reject="stop"` raises `OutputRejected`, which ends `kickoff()`.
"""

# No `from __future__ import annotations` here: CrewAI checks a guardrail's return annotation
# at runtime and refuses a string one ("it must be Tuple[bool, Any]").

import json
from collections.abc import Callable, Mapping
from typing import Any, Literal

from crewai.lite_agent_output import LiteAgentOutput
from crewai.tasks.task_output import TaskOutput

import signoff
from signoff import Client, OutcomeStatus, Request, Risk, Status
from signoff_crewai.errors import OutputRejected
from signoff_crewai.requests import (
    RequestOptions,
    Scope,
    build_request,
    is_approved,
    rejection_text,
    report_outcome,
)

__all__ = ["DEFAULT_ACTION", "approval_guardrail"]

DEFAULT_ACTION = "crewai.task_output"

Guardrail = Callable[[TaskOutput | LiteAgentOutput], tuple[bool, Any]]
"""CrewAI's guardrail shape: output in, (accepted, output or feedback) out."""


def _decide(client: Client, payload: Any, wait_timeout: float) -> Request:
    request = client.create_request(payload)
    if request.status is Status.PENDING:
        try:
            request = client.wait(request.id, timeout=wait_timeout)
        except signoff.TimeoutError:
            try:
                request = client.cancel(request.id, reason="the crew stopped waiting")
            except signoff.Conflict:
                request = client.get_request(request.id)
    return request


def _edited_output(request: Request, original: str) -> str:
    final = request.final_decision
    if final is None or final.arguments is None:
        return original
    edited = final.arguments.get("output", original)
    return edited if isinstance(edited, str) else json.dumps(edited)


def approval_guardrail(
    *,
    client: Client,
    action: str = DEFAULT_ACTION,
    business_object: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
    summary: Callable[[Mapping[str, Any]], str] | None = None,
    route: str | None = None,
    sla: str | None = None,
    risk: Risk | None = None,
    callback_url: str | None = None,
    wait_timeout: float = 300.0,
    on_reject: Literal["retry", "stop"] = "retry",
) -> Guardrail:
    """A CrewAI task guardrail that needs a signoff approval of the task's output.

    See the module docstring. `business_object` and `summary` receive the request's arguments
    (`task`, `agent`, `output`); the default business object is `{type: "crewai_task", id:
    <task name>}`.
    """
    options = RequestOptions(
        action=action, business_object=business_object, summary=summary, route=route, sla=sla,
        risk=risk, callback_url=callback_url, wait_timeout=wait_timeout,
    )  # fmt: skip

    def refuse(text: str, request: Request | None) -> tuple[bool, Any]:
        if on_reject == "stop":
            raise OutputRejected(text, request=request)
        return False, f"{text} Revise the output and answer again."

    def signoff_review(output: TaskOutput | LiteAgentOutput) -> tuple[bool, Any]:
        if isinstance(output, TaskOutput):
            task_name, agent = output.name or output.description or "task", output.agent
        else:
            task_name, agent = "agent output", output.agent_role
        arguments = {"task": task_name, "agent": agent, "output": output.raw}
        scope = Scope.current(agent=agent or None)
        try:
            payload = build_request(
                kind="guardrail",
                name=action,
                arguments=arguments,
                scope=scope,
                options=options,
                default_object={"type": "crewai_task", "id": task_name[:200]},
            )
            request = _decide(client, payload, wait_timeout)
        except (signoff.SignoffError, ValueError) as exc:
            return refuse(
                f"The output was not accepted: no approval could be obtained ({exc}).", None
            )
        if not is_approved(request):
            report_outcome(client, request.id, OutcomeStatus.SKIPPED, "output not accepted")
            return refuse(rejection_text(request, subject="The output was not accepted"), request)
        report_outcome(client, request.id, OutcomeStatus.EXECUTED, "output accepted")
        edited = _edited_output(request, output.raw)
        if edited != output.raw or isinstance(output, LiteAgentOutput):
            return True, edited
        return True, output

    return signoff_review
