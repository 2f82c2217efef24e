"""Blocking mode, for scripts without a checkpointer: the gate long-polls signoff; a decision, a
server-side timeout or its own wait timeout (fail closed) ends the wait."""

from __future__ import annotations

import threading
import time
from typing import Any, NotRequired, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from tests.integrations.conformance.harness import Harness
from tests.integrations.conformance.suite import ARGS
from tests.integrations.langgraph.agent import build_graph, ledger_entries, plan_message
from tests.integrations.langgraph.conftest import Lab

from signoff import AsyncClient, Client
from signoff_langgraph import SignoffDecision, approval_node, gated_action


class State(TypedDict):
    signoff: NotRequired[SignoffDecision]
    done: NotRequired[str]


def decided(state: State) -> SignoffDecision:
    """The approval node's decision."""
    decision = state.get("signoff")
    assert decision is not None
    return decision


def build(
    client: Client | None, *, async_client: AsyncClient | None = None, **options: Any
) -> CompiledStateGraph[Any, Any, Any, Any]:
    def pay(state: State) -> dict[str, Any]:
        return {"done": f"paid {decided(state)['arguments']['amount']}"}

    def stop(state: State) -> dict[str, Any]:
        return {"done": f"stopped: {decided(state)['kind']}"}

    builder = StateGraph(State)
    builder.add_node(
        "approve",
        approval_node(
            action="payments.release",
            arguments=lambda _s: ARGS,
            business_object={"type": "invoice", "id": "INV-1042"},
            route="finance-approver",
            client=client,
            async_client=async_client,
            blocking=True,
            on_approve="pay",
            on_reject="stop",
            **options,
        ),
    )
    builder.add_node("pay", gated_action(pay, client=client, async_client=async_client))
    builder.add_node("stop", stop)
    builder.add_edge(START, "approve")
    builder.add_edge("pay", END)
    builder.add_edge("stop", END)
    return builder.compile()  # no checkpointer: nothing can pause


def _decide_when_asked(h: Harness, verdict: str, **kwargs: Any) -> threading.Thread:
    def decide() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            pending = h.agent.list_requests(status="pending").items
            if pending:
                h.decide(pending[0].id, verdict, **kwargs)
                return
            time.sleep(0.05)

    reviewer = threading.Thread(target=decide)
    reviewer.start()
    return reviewer


def test_blocking_node_waits_for_the_decision(lab: Lab) -> None:
    reviewer = _decide_when_asked(lab.h, "edit", arguments={**ARGS, "amount": "12250.00"})
    try:
        result = build(lab.client, wait_timeout=30).invoke({})
    finally:
        reviewer.join(timeout=30)
    assert result["done"] == "paid 12250.00"
    (request,) = lab.h.agent.iter_requests()
    assert lab.h.outcome(request.id) == "executed"


def test_blocking_wait_timeout_withdraws_the_request_and_fails_closed(lab: Lab) -> None:
    started = time.monotonic()
    result = build(lab.client, wait_timeout=1.0).invoke({})
    assert time.monotonic() - started < 20
    assert result["done"] == "stopped: cancelled"
    assert result["signoff"]["approved"] is False
    (request,) = lab.h.agent.iter_requests()
    assert request.status.value == "cancelled", "nobody can approve it after the agent left"
    assert lab.h.outcome(request.id) == "skipped"


def test_blocking_tool_gate_server_timeout(lab: Lab) -> None:
    graph = build_graph(
        checkpointer=None, client=lab.client, blocking=True, sla="PT2S", wait_timeout=30
    )
    result = graph.invoke({"messages": [plan_message([("call_1", ARGS)])]})
    assert ledger_entries(lab.ledger) == []
    told = result["messages"][-2]
    assert "deadline" in str(told.content)
    (request,) = lab.h.agent.iter_requests()
    assert request.status.value == "expired"


@pytest.mark.anyio
async def test_blocking_node_in_an_async_graph(harness: Harness) -> None:
    reviewer = _decide_when_asked(harness, "approve")
    try:
        async with AsyncClient(base_url=harness.world.url, api_key=harness.agent_key) as client:
            result = await build(None, async_client=client, wait_timeout=30).ainvoke({})
    finally:
        reviewer.join(timeout=30)
    assert result["done"] == "paid 12500.00"
