"""The small invoice agent the LangGraph tests drive, offline: a scripted chat model, the payment
tool behind `gate_tools`, a SQLite checkpointer. Importable from the tests and from the
subprocess that pauses a run in another process (`pause_run.py`).

The model is scripted by its first human message, a JSON object
`{"pay": [{"id": "call_1", "args": {...}, "name": "release_payment"}, ...]}`: on the first turn
it makes one tool call per entry (all in one AIMessage; `name` defaults to `release_payment`),
and once tool results are in it answers with a summary.
Every real payment is appended to a ledger file (JSON lines), so a test can count executions
across processes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, tool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import tools_condition
from langgraph.types import Send

from signoff import AsyncClient, Client
from signoff_langgraph import ToolGate, gate_tools

LEDGER_ENV = "SIGNOFF_TEST_LEDGER"

INVOICE_ARGS: dict[str, Any] = {
    "invoice_id": "INV-1042",
    "amount": "12500.00",
    "currency": "EUR",
    "vendor_account": "DE89370400440532013000",
}


class ScriptedModel(BaseChatModel):
    """Calls `release_payment` as the first human message says, then summarizes the results."""

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        results = [m for m in messages if isinstance(m, ToolMessage)]
        if results:
            text = " | ".join(f"{m.tool_call_id}: {m.content}" for m in results)
            reply = AIMessage(content=f"done: {text}")
        else:
            first = next(m for m in messages if isinstance(m, HumanMessage))
            plan = json.loads(str(first.content))
            reply = AIMessage(
                content="",
                tool_calls=[
                    {
                        "name": p.get("name", "release_payment"),
                        "args": p["args"],
                        "id": p["id"],
                        "type": "tool_call",
                    }
                    for p in plan["pay"]
                ],
            )
        return ChatResult(generations=[ChatGeneration(message=reply)])


@tool
def release_payment(invoice_id: str, amount: str, currency: str, vendor_account: str) -> str:
    """Release the payment of an invoice to the vendor's account."""
    entry = {
        "invoice_id": invoice_id,
        "amount": amount,
        "currency": currency,
        "vendor_account": vendor_account,
    }
    with Path(os.environ[LEDGER_ENV]).open("a", encoding="utf-8") as ledger:
        ledger.write(json.dumps(entry) + "\n")
    return f"released {currency} {amount} for {invoice_id}"


@tool
def lookup_invoice(invoice_id: str) -> str:
    """Read an invoice (ungated)."""
    return f"{invoice_id}: Acme GmbH, EUR 12500.00, due in 10 days"


def build_graph(
    *,
    checkpointer: BaseCheckpointSaver[Any] | None,
    client: Client | None = None,
    async_client: AsyncClient | None = None,
    sla: str | None = None,
    callback_url: str | None = None,
    blocking: bool = False,
    wait_timeout: float | None = None,
    payload: str = "hitl",
    payment_tool: BaseTool | None = None,
    extra_tools: Sequence[Any] = (),
    tool_node_options: dict[str, Any] | None = None,
    fan_out: bool = False,
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """model → tools (gated) → model, with `release_payment` gated as `payments.release`.

    With `fan_out`, each tool call goes to the tool node in a `Send` of its own (as
    `create_agent` does) instead of all calls of a turn in one task (`tools_condition`).
    """
    model = ScriptedModel()

    def agent(state: MessagesState) -> dict[str, Sequence[BaseMessage]]:
        return {"messages": [model.invoke(state["messages"])]}

    async def aagent(state: MessagesState) -> dict[str, Sequence[BaseMessage]]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    tools = gate_tools(
        [payment_tool or release_payment, lookup_invoice, *extra_tools],
        gated={
            "release_payment": ToolGate(
                action="payments.release",
                business_object=lambda args, _state: {
                    "type": "invoice",
                    "id": args["invoice_id"],
                    "attributes": {"amount": args["amount"], "currency": args["currency"]},
                },
                summary=lambda args, _state: (
                    f"Release {args['currency']} {args['amount']} for {args['invoice_id']}"
                ),
                route="finance-approver",
                sla=sla,
            )
        },
        client=client,
        async_client=async_client,
        callback_url=callback_url,
        blocking=blocking,
        wait_timeout=wait_timeout,
        payload="agent_inbox" if payload == "agent_inbox" else "hitl",
        tool_node_options=tool_node_options,
    )
    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent if async_client is None else aagent)
    builder.add_node("tools", tools)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges(
        "agent", send_each if fan_out else tools_condition, ["tools", END]
    )
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=checkpointer)


def send_each(state: MessagesState) -> list[Send] | str:
    """Route every tool call of the last message to the tool node in a Send of its own."""
    last = state["messages"][-1]
    calls = last.tool_calls if isinstance(last, AIMessage) else []
    if not calls:
        return END
    return [
        Send("tools", {"__type": "tool_call_with_context", "tool_call": call, "state": state})
        for call in calls
    ]


def plan_message(
    calls: Sequence[tuple[str, dict[str, Any]] | tuple[str, dict[str, Any], str]],
) -> HumanMessage:
    """The first human message that scripts the model: one tool call per entry, given as
    `(call id, arguments)` for `release_payment` or `(call id, arguments, tool name)`."""
    plan = [
        {"id": c[0], "args": c[1], "name": c[2] if len(c) > 2 else "release_payment"} for c in calls
    ]
    return HumanMessage(json.dumps({"pay": plan}))


def thread_of(config: RunnableConfig) -> str:
    """The thread id in a run config."""
    return str(config.get("configurable", {})["thread_id"])


def checkpoint_of(config: RunnableConfig) -> str:
    """The checkpoint id in a state snapshot's config: it changes whenever the state does."""
    return str(config.get("configurable", {}).get("checkpoint_id"))


def ledger_entries(path: Path) -> list[dict[str, Any]]:
    """Every payment released so far, in order."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
