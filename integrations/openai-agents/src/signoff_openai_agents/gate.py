"""Gating function tools: a waiting tool input guardrail, or a durable `needs_approval` pause.

`gate(tool, client=..., mode="wait")` adds `approval_guardrail` to the tool: the guardrail creates
the request and long-polls for the decision (bounded by `wait_timeout`); approve lets the call
run, anything else replaces the tool's output with a message the model can read.

`gate(tool, client=..., mode="durable")` sets `needs_approval` instead: the run stops with an
interruption (unless a policy auto-approved), the app stores the RunState (`pause`) and resumes
it when the signed callback arrives (`resume`).

In both modes the tool's invocation is wrapped: just before the body runs, the wrapper re-reads
the decision from signoff (the request is re-created idempotently, so this is one round trip),
runs the body only if it is approved — with the reviewer's edited arguments after an `edit`,
since a guardrail cannot change arguments — and reports the outcome afterwards.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any, Literal, cast

from agents import FunctionTool, RunContextWrapper
from agents.tool_context import ToolContext
from agents.tool_guardrails import (
    ToolGuardrailFunctionOutput,
    ToolInputGuardrail,
    ToolInputGuardrailData,
)
from agents.tracing import custom_span

import signoff
from signoff import AsyncClient, OutcomeStatus, Request, Risk, Status
from signoff_openai_agents.requests import (
    GateOptions,
    build_request,
    is_approved,
    parse_arguments,
    rejection_text,
)

__all__ = ["approval_guardrail", "gate"]


def _record(request: Request) -> None:
    # A span in the SDK's own trace: who decided what, for which signoff request.
    final = request.final_decision
    with custom_span(
        "signoff.decision",
        data={
            "request_id": request.id,
            "status": request.status.value,
            "verdict": final.verdict.value if final else None,
            "decided_by": final.decided_by.user if final else None,
            "via": final.via.value if final else None,
        },
    ):
        pass


async def _decide(
    client: AsyncClient,
    tool_name: str,
    raw_arguments: str | Mapping[str, Any],
    call_id: str,
    options: GateOptions,
) -> Request:
    request = await client.create_request(
        build_request(tool_name, parse_arguments(raw_arguments), call_id, options)
    )
    if request.status is Status.PENDING:
        try:
            request = await client.wait(request.id, timeout=options.wait_timeout)
        except signoff.TimeoutError:
            # Nobody decided in time: withdraw the request so a late approval cannot count.
            try:
                request = await client.cancel(request.id, reason="the agent stopped waiting")
            except signoff.Conflict:
                request = await client.get_request(request.id)
    _record(request)
    return request


def approval_guardrail(
    *,
    client: AsyncClient,
    options: GateOptions | None = None,
    on_reject: Literal["reject_content", "raise"] = "reject_content",
) -> ToolInputGuardrail[Any]:
    """A tool input guardrail that waits for a signoff decision on each call.

    Approve → the call runs. Reject, respond, timeout, cancel, or any error reaching signoff →
    `reject_content` with the reason (the model reads it), or `raise_exception` with
    `on_reject="raise"`. Edited arguments need the wrapper that `gate()` installs.
    """
    opts = options or GateOptions()

    async def signoff_approval(data: ToolInputGuardrailData) -> ToolGuardrailFunctionOutput:
        ctx = data.context
        try:
            request = await _decide(
                client, ctx.tool_name, ctx.tool_arguments, ctx.tool_call_id, opts
            )
        except (signoff.SignoffError, ValueError) as exc:
            message = f"Not executed: the approval could not be obtained ({exc})."
            if on_reject == "raise":
                return ToolGuardrailFunctionOutput.raise_exception(output_info=message)
            return ToolGuardrailFunctionOutput.reject_content(message)
        if is_approved(request):
            return ToolGuardrailFunctionOutput.allow(output_info={"request_id": request.id})
        await _report(client, request, OutcomeStatus.SKIPPED, rejection_text(request))
        if on_reject == "raise":
            return ToolGuardrailFunctionOutput.raise_exception(output_info=rejection_text(request))
        return ToolGuardrailFunctionOutput.reject_content(
            rejection_text(request), output_info={"request_id": request.id}
        )

    return ToolInputGuardrail(guardrail_function=signoff_approval, name="signoff_approval")


def _needs_approval(
    client: AsyncClient, tool_name: str, options: GateOptions
) -> Callable[[RunContextWrapper[Any], dict[str, Any], str], Any]:
    async def needs_approval(
        _ctx: RunContextWrapper[Any], params: dict[str, Any], call_id: str
    ) -> bool:
        try:
            request = await client.create_request(
                build_request(tool_name, params, call_id, options)
            )
        except signoff.SignoffError:
            return True  # pause; the wrapper refuses to run anything signoff did not approve
        return not is_approved(request)  # a policy auto-approved: no pause

    return needs_approval


async def _request_for_call(
    client: AsyncClient,
    tool_name: str,
    arguments: dict[str, Any],
    call_id: str,
    options: GateOptions,
) -> Request:
    """The signoff request of this exact call, re-read just before the tool runs.

    Re-creating it is idempotent. A process that resumes a durable run may have configured the
    gate differently (another callback URL, say); then the server names the request made for
    this call's key, and it is used only if it binds to this very call and these arguments.
    """
    payload = build_request(tool_name, arguments, call_id, options)
    try:
        return await client.create_request(payload)
    except signoff.Conflict as exc:
        details: Any = exc.details
        if exc.code != "idempotency_key_reused" or not isinstance(details, dict):
            raise
        request_id = cast(dict[str, Any], details).get("request_id")
        if not isinstance(request_id, str):
            raise
        request = await client.get_request(request_id)
        if (
            request.correlation.get("call_id") != call_id
            or request.correlation.get("tool") != tool_name
            or request.action.arguments != payload.action.arguments
        ):
            raise signoff.Conflict(
                f"{request_id} does not belong to this call", status_code=409, code="mismatch"
            ) from exc
        return request


def _wrap_invoke(
    client: AsyncClient, tool: FunctionTool, options: GateOptions
) -> Callable[[ToolContext[Any], str], Any]:
    inner = tool.on_invoke_tool

    async def on_invoke_tool(ctx: ToolContext[Any], raw_arguments: str) -> Any:
        try:
            request = await _request_for_call(
                client, tool.name, parse_arguments(raw_arguments), ctx.tool_call_id, options
            )
        except (signoff.SignoffError, ValueError) as exc:
            return f"Not executed: the approval could not be checked ({exc})."
        if not is_approved(request):
            return rejection_text(request)
        arguments = json.dumps(request.effective_arguments)
        try:
            result = await inner(ctx, arguments)
        except Exception as exc:
            await _report(client, request, OutcomeStatus.FAILED, f"{type(exc).__name__}: {exc}")
            raise
        await _report(client, request, OutcomeStatus.EXECUTED, None)
        return result

    return on_invoke_tool


async def _report(
    client: AsyncClient, request: Request, status: OutcomeStatus, detail: str | None
) -> None:
    with contextlib.suppress(signoff.Conflict):  # already reported by an earlier invocation
        await client.report_outcome(request.id, status, detail=detail)


def gate(
    tool: FunctionTool,
    *,
    client: AsyncClient,
    mode: Literal["wait", "durable"] = "wait",
    action: str | None = None,
    business_object: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
    summary: Callable[[Mapping[str, Any]], str] | None = None,
    route: str | None = None,
    sla: str | None = None,
    risk: Risk | None = None,
    callback_url: str | None = None,
    wait_timeout: float = 300.0,
    on_reject: Literal["reject_content", "raise"] = "reject_content",
) -> FunctionTool:
    """A copy of `tool` whose every call needs a signoff decision. See the module docstring."""
    options = GateOptions(
        action=action, business_object=business_object, summary=summary, route=route, sla=sla,
        risk=risk, callback_url=callback_url, wait_timeout=wait_timeout,
    )  # fmt: skip
    changes: dict[str, Any] = {"on_invoke_tool": _wrap_invoke(client, tool, options)}
    if mode == "wait":
        guardrail = approval_guardrail(client=client, options=options, on_reject=on_reject)
        changes["tool_input_guardrails"] = [*(tool.tool_input_guardrails or []), guardrail]
    else:
        changes["needs_approval"] = _needs_approval(client, tool.name, options)
    return dataclasses.replace(tool, **changes)
