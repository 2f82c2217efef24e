"""The gates: `approval_node` (approve a business action before the next node) and `gate_tools`
(a drop-in `ToolNode` whose gated tools run only when signoff approved the call).

How a gate runs, in interrupt mode (the default; needs a checkpointer and a `thread_id`):

1. It creates one signoff request per gated action. The idempotency key comes from the thread id,
   the task's checkpoint namespace (node name + task id) and the tool call id, so LangGraph's
   re-run of the node on resume finds the same request instead of creating a second one. All of
   a step's requests exist before the first pause, so reviewers can decide them in parallel.
2. It calls `interrupt()` once per request, in order, with a LangChain HITL payload (see
   `signoff_langgraph.payloads`). `signoff_langgraph.resume` answers it from a verified callback.
3. When resumed, it acts on the decision signoff itself holds for the request (the create call
   on the re-run returns it), never on what the resume value says. A resume value that names
   another request, or arrives while signoff still shows the request pending, is ignored and
   the gate asks again, so a stray `Command(resume=...)` can never approve anything.

With `blocking=True` there is no interrupt: the node long-polls signoff until the request closes
or `wait_timeout` passes (then the request is withdrawn and the gate fails closed). A request a
policy decided on creation (`auto: approve|reject`) is acted on at once, in either mode.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from langchain_core.messages import AIMessage, ToolCall, ToolMessage
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda, ensure_config
from langchain_core.tools import BaseTool
from langgraph.errors import GraphBubbleUp
from langgraph.prebuilt import ToolNode
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.types import Command

from signoff import (
    AsyncClient,
    BusinessObject,
    Client,
    OutcomeStatus,
    Request,
    Verdict,
)
from signoff_langgraph._api import Api, as_mapping
from signoff_langgraph._keeper import Ask, Keeper, Where, request_body, value_of
from signoff_langgraph.errors import GateError
from signoff_langgraph.payloads import (
    PayloadFormat,
    SignoffDecision,
    approval_payload,
    decision_from_request,
    describe,
    message_for,
    tool_payload,
)

__all__ = [
    "ALL_DECISIONS",
    "DEFAULT_WAIT_TIMEOUT",
    "ToolGate",
    "approval_node",
    "gate_tools",
    "gated_action",
]

log = logging.getLogger("signoff.langgraph")

ALL_DECISIONS: tuple[str, ...] = ("approve", "edit", "reject", "respond")
"""Every decision a reviewer can make; `reject` is always allowed."""
DEFAULT_WAIT_TIMEOUT = 3600.0
"""Seconds a blocking gate waits for a decision before it withdraws the request."""

StateFn = Callable[[Any], Any]
"""A function of the graph state (approval node) ..."""
CallFn = Callable[[dict[str, Any], Any], Any]
"""... or of a tool call's arguments and the graph state (tool gate)."""

_EDIT_NOTE = (
    "Note: a reviewer changed this call's arguments before it ran; it ran with {args}. "
    "This was intentional and authorized."
)


@dataclass(frozen=True, kw_only=True)
class ToolGate:
    """How calls of one gated tool become signoff requests.

    Callables get the call's arguments and the graph state. `action` names the gated action in
    signoff (default: the tool's name), `business_object` should name what the call touches
    (default: the tool call itself). `route` is the owning role; `sla` an ISO-8601 duration or a
    timedelta; the rest are the request fields of the same names (DESIGN §3).
    """

    action: str | None = None
    business_object: CallFn | BusinessObject | Mapping[str, Any] | None = None
    summary: str | CallFn | None = None
    context: CallFn | None = None
    route: str | None = None
    sla: str | timedelta | None = None
    risk: str | None = None
    on_timeout: str | None = None
    allowed: Sequence[str] = ALL_DECISIONS
    approvals: Mapping[str, Any] | None = None
    comment_required: str | None = None
    initiator: str | StateFn | None = None


# approval_node -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _ApprovalNode:
    keeper: Keeper
    ask: Callable[[Any, Where], Ask]
    state_key: str | None
    targets: Mapping[str, str | None]

    def _result(self, decision: SignoffDecision) -> Any:
        update: dict[str, Any] = {self.state_key: decision} if self.state_key else {}
        goto = self.targets.get(decision["kind"])
        return Command(update=update, goto=goto) if goto else update

    @staticmethod
    def _skipped(decision: SignoffDecision) -> str:
        return f"not executed: {decision['kind']}" + (
            f" ({decision['comment']})" if decision["comment"] else ""
        )

    def run(self, state: Any, config: RunnableConfig) -> Any:
        where = Where.of(config)
        decision = self.keeper.decide(where, [self.ask(state, where)])[""]
        if not decision["approved"]:
            self.keeper.api.report(
                decision["request_id"], OutcomeStatus.SKIPPED, self._skipped(decision)
            )
        return self._result(decision)

    async def arun(self, state: Any, config: RunnableConfig) -> Any:
        where = Where.of(config)
        decision = (await self.keeper.adecide(where, [self.ask(state, where)]))[""]
        if not decision["approved"]:
            await self.keeper.api.areport(
                decision["request_id"], OutcomeStatus.SKIPPED, self._skipped(decision)
            )
        return self._result(decision)


def approval_node(
    *,
    action: str,
    arguments: StateFn,
    business_object: StateFn | BusinessObject | Mapping[str, Any],
    client: Client | None = None,
    async_client: AsyncClient | None = None,
    summary: str | StateFn | None = None,
    context: StateFn | None = None,
    route: str | None = None,
    sla: str | timedelta | None = None,
    risk: str | None = None,
    on_timeout: str | None = None,
    allowed: Sequence[str] = ALL_DECISIONS,
    approvals: Mapping[str, Any] | None = None,
    comment_required: str | None = None,
    initiator: str | StateFn | None = None,
    callback_url: str | None = None,
    agent_name: str | None = None,
    payload: PayloadFormat = "hitl",
    state_key: str | None = "signoff",
    on_approve: str | None = None,
    on_reject: str | None = None,
    on_respond: str | None = None,
    on_expire: str | None = None,
    blocking: bool = False,
    wait_timeout: float | None = DEFAULT_WAIT_TIMEOUT,
    name: str = "signoff_approval",
) -> Runnable[Any, Any]:
    """A node that asks signoff to approve `action` before the graph goes on.

    `arguments(state)` gives the action's arguments and `business_object(state)` what it
    touches; `summary` and `context` (strings or functions of the state) are shown to reviewers.
    `route`, `sla`, `risk`, `on_timeout`, `allowed`, `approvals`, `comment_required` are the
    request's fields of the same names; `callback_url` is where signoff posts the signed decision.

    On a decision the node writes a `SignoffDecision` to `state[state_key]` (None: write nothing)
    and, when targets are given, routes with `Command(goto=...)`: `on_approve` for approve/edit,
    `on_reject` for reject and cancel, `on_respond` and `on_expire` (both default to `on_reject`).
    A node that routes with Command must have no static outgoing edge. Run the gated action in
    a node wrapped with `gated_action`, which refuses to run without an approval and reports the
    outcome; the approval node itself reports `skipped` when the action will not run.

    Sync and async graphs both work (`invoke`/`ainvoke`); pass `client=` for sync graphs and
    `async_client=` (or `client=`, then used from a worker thread) for async ones.
    """
    if payload not in ("hitl", "agent_inbox"):
        raise GateError(f"payload must be 'hitl' or 'agent_inbox', not {payload!r}")
    api = Api(client, async_client)
    allowed = [Verdict(v).value for v in allowed]

    def ask(state: Any, where: Where) -> Ask:
        args = as_mapping(arguments(state))
        if args is None:
            raise GateError("arguments(state) must return a mapping of the action's arguments")
        text = value_of(summary, state)
        body = request_body(
            where=where,
            call_id="",
            action=action,
            arguments=args,
            business_object=value_of(business_object, state),
            summary=text,
            context=value_of(context, state),
            route=route,
            sla=sla,
            risk=risk,
            on_timeout=on_timeout,
            allowed=allowed,
            approvals=approvals,
            comment_required=comment_required,
            initiator=value_of(initiator, state),
            callback_url=callback_url,
            agent_name=agent_name,
        )

        def show(request: Request) -> dict[str, Any]:
            return approval_payload(
                name=action,
                args=dict(request.action.arguments),
                description=describe(action, dict(request.action.arguments), text),
                allowed=[v.value for v in request.allowed],
                meta=where.meta(request, None),
                payload=payload,
            )

        return Ask("", body, show)

    node = _ApprovalNode(
        keeper=Keeper(api=api, blocking=blocking, wait_timeout=wait_timeout),
        ask=ask,
        state_key=state_key,
        targets={
            "approve": on_approve,
            "edit": on_approve,
            "reject": on_reject,
            "cancelled": on_reject,
            "respond": on_respond or on_reject,
            "expired": on_expire or on_reject,
        },
    )
    return RunnableLambda(node.run, afunc=node.arun, name=name)


# gated_action --------------------------------------------------------------------------------


def _from_state(state: Any, key: str) -> Mapping[str, Any] | None:
    mapping = as_mapping(state)
    found = mapping.get(key) if mapping is not None else getattr(state, key, None)
    return as_mapping(found)


@dataclass(frozen=True, kw_only=True)
class _GatedAction:
    api: Api
    inner: Runnable[Any, Any]
    state_key: str
    action: str | None

    def _approval(self, state: Any) -> str:
        decision = _from_state(state, self.state_key)
        if decision is None or decision.get("approved") is not True:
            raise GateError(
                f"refusing to run the gated action: state[{self.state_key!r}] holds no approval"
            )
        if self.action is not None and decision.get("action") != self.action:
            raise GateError(
                f"refusing to run {self.action!r}: the approval in state is for "
                f"{decision.get('action')!r}"
            )
        return str(decision["request_id"])

    @staticmethod
    def _confirm(request: Request) -> None:
        if not request.status.is_terminal or not decision_from_request(request)["approved"]:
            raise GateError(
                f"refusing to run the gated action: signoff shows {request.id} as "
                f"{request.status.value}, not approved"
            )

    def run(self, state: Any, config: RunnableConfig) -> Any:
        request_id = self._approval(state)
        self._confirm(self.api.get(request_id))
        try:
            result = self.inner.invoke(state, config)
        except GraphBubbleUp:
            raise
        except Exception as exc:
            self.api.report(request_id, OutcomeStatus.FAILED, f"{type(exc).__name__}: {exc}")
            raise
        self.api.report(request_id, OutcomeStatus.EXECUTED)
        return result

    async def arun(self, state: Any, config: RunnableConfig) -> Any:
        request_id = self._approval(state)
        self._confirm(await self.api.aget(request_id))
        try:
            result = await self.inner.ainvoke(state, config)
        except GraphBubbleUp:
            raise
        except Exception as exc:
            await self.api.areport(request_id, OutcomeStatus.FAILED, f"{type(exc).__name__}: {exc}")
            raise
        await self.api.areport(request_id, OutcomeStatus.EXECUTED)
        return result


def gated_action(
    action_node: Callable[..., Any] | Runnable[Any, Any],
    *,
    client: Client | None = None,
    async_client: AsyncClient | None = None,
    state_key: str = "signoff",
    action: str | None = None,
    name: str | None = None,
) -> Runnable[Any, Any]:
    """Wrap the node that performs an approved action (the approval node's `on_approve`).

    Before running it, the wrapper checks `state[state_key]` holds an approval (for `action`,
    when given) and that signoff still shows that request approved; otherwise it raises
    `GateError` and the action does not run. Afterwards it reports `executed`, or `failed` if the
    node raised. The node reads the arguments to use from `state[state_key]["arguments"]`.
    """
    inner: Runnable[Any, Any] = (
        cast(Runnable[Any, Any], action_node)
        if isinstance(action_node, Runnable)
        else RunnableLambda(action_node)
    )
    wrapper = _GatedAction(
        api=Api(client, async_client), inner=inner, state_key=state_key, action=action
    )
    return RunnableLambda(wrapper.run, afunc=wrapper.arun, name=name or inner.get_name())


# gate_tools ----------------------------------------------------------------------------------

_DECIDED: contextvars.ContextVar[Mapping[str, SignoffDecision] | None] = contextvars.ContextVar(
    "signoff_langgraph_decided", default=None
)


def _tool_calls(node_input: Any, messages_key: str) -> list[ToolCall]:
    """The tool calls a ToolNode would run for this input (same rules as ToolNode)."""
    if isinstance(node_input, list):
        items = cast(list[Any], node_input)
        last = as_mapping(items[-1]) if items else None
        if last is not None and last.get("type") == "tool_call":
            return cast(list[ToolCall], items)
        messages = items
    else:
        mapping = as_mapping(node_input)
        if mapping is not None and mapping.get("__type") == "tool_call_with_context":
            return [cast(ToolCall, mapping["tool_call"])]
        messages = (
            mapping.get(messages_key, [])
            if mapping is not None
            else getattr(node_input, messages_key, [])
        )
    for message in reversed(cast(list[Any], messages)):
        if isinstance(message, AIMessage):
            return list(message.tool_calls)
    return []


def _state_of(node_input: Any) -> Any:
    mapping = as_mapping(node_input)
    if mapping is not None and mapping.get("__type") == "tool_call_with_context":
        return mapping.get("state")
    return node_input


def _outcome(result: object) -> tuple[OutcomeStatus, str | None]:
    if isinstance(result, ToolMessage) and result.status == "error":
        return OutcomeStatus.FAILED, str(result.content)
    return OutcomeStatus.EXECUTED, None


@dataclass(kw_only=True)
class _ToolGate:
    keeper: Keeper
    gates: Mapping[str, ToolGate]
    callback_url: str | None
    agent_name: str | None
    payload: PayloadFormat
    edit_notice: bool
    messages_key: str

    def ask(self, call: ToolCall, state: Any, where: Where) -> Ask:
        gate = self.gates[call["name"]]
        call_id = call.get("id")
        if not call_id:
            raise GateError(f"the model's call of gated tool {call['name']!r} has no id")
        args = dict(call["args"])
        action = gate.action or call["name"]
        text = value_of(gate.summary, args, state)
        body = request_body(
            where=where,
            call_id=call_id,
            action=action,
            arguments=args,
            business_object=value_of(gate.business_object, args, state)
            or {"type": "tool_call", "id": call_id},
            summary=text,
            context=value_of(gate.context, args, state),
            route=gate.route,
            sla=gate.sla,
            risk=gate.risk,
            on_timeout=gate.on_timeout,
            allowed=gate.allowed,
            approvals=gate.approvals,
            comment_required=gate.comment_required,
            initiator=value_of(gate.initiator, state),
            callback_url=self.callback_url,
            agent_name=self.agent_name,
        )

        def show(request: Request) -> dict[str, Any]:
            return tool_payload(
                tool_call_id=call_id,
                name=call["name"],
                args=args,
                description=describe(action, args, text),
                allowed=[v.value for v in request.allowed],
                meta=where.meta(request, call_id),
                payload=self.payload,
            )

        return Ask(call_id, body, show)

    def _asks(self, node_input: Any, where: Where) -> list[Ask]:
        state = _state_of(node_input)
        calls = _tool_calls(node_input, self.messages_key)
        return [self.ask(c, state, where) for c in calls if c["name"] in self.gates]

    def decide(self, node_input: Any, config: RunnableConfig) -> dict[str, SignoffDecision]:
        """The decisions on this step's gated calls (interrupting for those still pending)."""
        where = Where.of(config)
        asks = self._asks(node_input, where)
        return self.keeper.decide(where, asks) if asks else {}

    async def adecide(self, node_input: Any, config: RunnableConfig) -> dict[str, SignoffDecision]:
        """`decide` for async graphs."""
        where = Where.of(config)
        asks = self._asks(node_input, where)
        return await self.keeper.adecide(where, asks) if asks else {}

    # Inside the ToolNode, once per tool call ------------------------------------------------

    def _plan(self, request: ToolCallRequest) -> ToolCallRequest | ToolMessage | None:
        """None: ungated, run as is. A ToolMessage: do not run. A request: run this one."""
        call = request.tool_call
        if call["name"] not in self.gates:
            return None
        decision = (_DECIDED.get() or {}).get(call.get("id") or "")
        if decision is None:  # fail closed: a gated tool never runs without a decision
            return ToolMessage(
                content=f"`{call['name']}` needs approval and has none; it was not executed.",
                name=call["name"],
                tool_call_id=call.get("id") or "",
                status="error",
            )
        if not decision["approved"]:
            return ToolMessage(
                content=message_for(decision, call["name"]),
                name=call["name"],
                tool_call_id=call.get("id") or "",
                status="success" if decision["kind"] == "respond" else "error",
                artifact={"signoff": decision},
            )
        if decision["kind"] == "edit":
            return request.override(tool_call={**call, "args": decision["arguments"]})
        return request

    def _noted(self, result: Any, decision: SignoffDecision) -> Any:
        if (
            self.edit_notice
            and decision["kind"] == "edit"
            and isinstance(result, ToolMessage)
            and isinstance(result.content, str)
        ):
            note = _EDIT_NOTE.format(args=decision["arguments"])
            return result.model_copy(update={"content": f"{note}\n\n{result.content}"})
        return result

    @staticmethod
    def _skipped(message: ToolMessage) -> str | None:
        """The request id to report `skipped` for, when a decision kept the call from running."""
        decision = (_DECIDED.get() or {}).get(message.tool_call_id)
        return decision["request_id"] if decision is not None else None

    def _decision(self, request: ToolCallRequest) -> SignoffDecision:
        return (_DECIDED.get() or {})[request.tool_call.get("id") or ""]

    def wrap(
        self,
        request: ToolCallRequest,
        execute: Callable[[ToolCallRequest], ToolMessage | Command[Any]],
    ) -> ToolMessage | Command[Any]:
        plan = self._plan(request)
        if plan is None:
            return execute(request)
        if isinstance(plan, ToolMessage):
            if (skipped := self._skipped(plan)) is not None:
                self.keeper.api.report(skipped, OutcomeStatus.SKIPPED, str(plan.content))
            return plan
        decision = self._decision(request)
        try:
            result = execute(plan)
        except GraphBubbleUp:
            raise
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}"
            self.keeper.api.report(decision["request_id"], OutcomeStatus.FAILED, detail)
            raise
        self.keeper.api.report(decision["request_id"], *_outcome(result))
        return self._noted(result, decision)

    async def awrap(
        self,
        request: ToolCallRequest,
        execute: Callable[[ToolCallRequest], Awaitable[ToolMessage | Command[Any]]],
    ) -> ToolMessage | Command[Any]:
        plan = self._plan(request)
        if plan is None:
            return await execute(request)
        if isinstance(plan, ToolMessage):
            if (skipped := self._skipped(plan)) is not None:
                await self.keeper.api.areport(skipped, OutcomeStatus.SKIPPED, str(plan.content))
            return plan
        decision = self._decision(request)
        try:
            result = await execute(plan)
        except GraphBubbleUp:
            raise
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}"
            await self.keeper.api.areport(decision["request_id"], OutcomeStatus.FAILED, detail)
            raise
        await self.keeper.api.areport(decision["request_id"], *_outcome(result))
        return self._noted(result, decision)


class _GatedToolNode(ToolNode):
    """A `ToolNode` that first asks signoff about the step's gated calls, then runs the calls
    with those decisions at hand (`_ToolGate.wrap`). A subclass, not a node around a ToolNode:
    a nested runnable cost about 0.7 ms a step (bench_langgraph)."""

    gate: _ToolGate

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        token = _DECIDED.set(self.gate.decide(input, ensure_config(config)))
        try:
            return super().invoke(input, config, **kwargs)
        finally:
            _DECIDED.reset(token)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        token = _DECIDED.set(await self.gate.adecide(input, ensure_config(config)))
        try:
            return await super().ainvoke(input, config, **kwargs)
        finally:
            _DECIDED.reset(token)


def gate_tools(
    tools: Sequence[BaseTool | Callable[..., Any]],
    *,
    gated: Mapping[str, ToolGate] | Sequence[str],
    client: Client | None = None,
    async_client: AsyncClient | None = None,
    callback_url: str | None = None,
    agent_name: str | None = None,
    payload: PayloadFormat = "hitl",
    blocking: bool = False,
    wait_timeout: float | None = DEFAULT_WAIT_TIMEOUT,
    edit_notice: bool = True,
    messages_key: str = "messages",
    tool_node_options: Mapping[str, Any] | None = None,
    name: str = "tools",
) -> ToolNode:
    """A `ToolNode` for `tools` in which every call of a `gated` tool needs a signoff approval.

    `gated` names the gated tools, or maps each to a `ToolGate` (signoff action name, business
    object, route, SLA, ...). Each gated call becomes one request and one interrupt (HITL
    per-call shape); several gated calls in one model turn each get theirs. Approved calls run
    (with the reviewer's arguments after an edit); a rejected, timed-out or cancelled call
    returns an error `ToolMessage` the model can read; after `respond` the reviewer's text is the
    tool's result. Ungated tools run as usual. The outcome (executed / failed / skipped) is
    reported to signoff after each gated call.

    Use it where a `ToolNode` goes (e.g. after `tools_condition`); a `Send` per tool call (as
    `create_agent` does) works as well. `tool_node_options` are passed to `ToolNode` (e.g.
    `handle_tool_errors`).
    """
    gates = {n: ToolGate() for n in gated} if not isinstance(gated, Mapping) else dict(gated)
    gate = _ToolGate(
        keeper=Keeper(api=Api(client, async_client), blocking=blocking, wait_timeout=wait_timeout),
        gates=gates,
        callback_url=callback_url,
        agent_name=agent_name,
        payload=payload,
        edit_notice=edit_notice,
        messages_key=messages_key,
    )
    node = _GatedToolNode(
        list(tools),
        wrap_tool_call=gate.wrap,
        awrap_tool_call=gate.awrap,
        messages_key=messages_key,
        name=name,
        **dict(tool_node_options or {}),
    )
    node.gate = gate
    unknown = sorted(set(gates) - set(node.tools_by_name))
    if unknown:  # a typo would leave the real tool ungated: refuse instead
        raise GateError(f"gated names no tool of this node: {', '.join(unknown)}")
    if payload not in ("hitl", "agent_inbox"):
        raise GateError(f"payload must be 'hitl' or 'agent_inbox', not {payload!r}")
    for tool_gate in gates.values():
        for verdict in tool_gate.allowed:
            Verdict(verdict)  # an unknown decision name fails here, not at the first call
    return node
