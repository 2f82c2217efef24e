"""Async graphs (`ainvoke`, AsyncSqliteSaver): the tool gate with an AsyncClient through the
receiver's async path, and the approval node with a sync Client used from worker threads."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, NotRequired

import httpx
import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, MessagesState, StateGraph
from tests.integrations.conformance.harness import Harness
from tests.integrations.conformance.suite import ARGS, OTHER
from tests.integrations.langgraph.agent import build_graph, ledger_entries, plan_message
from tests.integrations.langgraph.conftest import Lab

from signoff import AsyncClient, Verifier
from signoff_langgraph import LangGraphReceiver, approval_node, aresume, gated_action

pytestmark = pytest.mark.anyio


async def _post(receiver: LangGraphReceiver, body: bytes, headers: dict[str, str]) -> Any:
    transport = httpx.ASGITransport(app=receiver.asgi_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as http:
        answer = await http.post("/", content=body, headers=headers)
    return answer.status_code, answer.json()["outcome"]


async def test_async_tool_gate_with_an_async_client(
    harness: Harness, tmp_path: Path, ledger: Path
) -> None:
    async with (
        AsyncClient(base_url=harness.world.url, api_key=harness.agent_key) as client,
        AsyncSqliteSaver.from_conn_string(str(tmp_path / "checkpoints.db")) as saver,
    ):
        graph = build_graph(checkpointer=saver, async_client=client, callback_url=harness.inbox_url)
        config: RunnableConfig = {"configurable": {"thread_id": f"a-{uuid.uuid4().hex[:8]}"}}
        await graph.ainvoke(
            {"messages": [plan_message([("call_a", ARGS), ("call_b", OTHER)])]}, config
        )
        assert len((await graph.aget_state(config)).interrupts) == 1
        requests = {r.correlation["tool_call_id"]: r.id for r in harness.agent.iter_requests()}
        receiver = LangGraphReceiver(
            graph, verifier=Verifier(harness.verifier_keys), async_client=client
        )
        harness.decide(requests["call_b"], "reject", comment="not now")
        assert await _post(receiver, *harness.delivery(requests["call_b"])) == (202, "queued")
        harness.decide(requests["call_a"], "approve")
        assert await _post(receiver, *harness.delivery(requests["call_a"])) == (200, "resumed")
        assert ledger_entries(ledger) == [ARGS]
        snapshot = await graph.aget_state(config)
        assert not snapshot.next
        assert harness.outcome(requests["call_a"]) == "executed"
        assert harness.outcome(requests["call_b"]) == "skipped"


async def test_async_approval_node_with_a_sync_client(lab: Lab, tmp_path: Path) -> None:
    paid: list[str] = []

    def pay(state: dict[str, Any]) -> dict[str, Any]:
        paid.append(state["signoff"]["arguments"]["amount"])
        return {}

    class State(MessagesState):
        signoff: NotRequired[dict[str, Any]]

    builder = StateGraph(State)
    builder.add_node(
        "approve",
        approval_node(
            action="payments.release",
            arguments=lambda _s: ARGS,
            business_object={"type": "invoice", "id": "INV-1042"},
            route="finance-approver",
            client=lab.client,
            callback_url=lab.h.inbox_url,
            on_approve="pay",
            on_reject=END,
        ),
    )
    builder.add_node("pay", gated_action(pay, client=lab.client))
    builder.add_edge(START, "approve")
    builder.add_edge("pay", END)
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "async.db")) as saver:
        graph = builder.compile(checkpointer=saver)
        config: RunnableConfig = {"configurable": {"thread_id": "async-approval"}}
        await graph.ainvoke(State(messages=[]), config)
        (pending,) = (await graph.aget_state(config)).interrupts
        request_id = pending.value["signoff"]["request_id"]
        lab.h.decide(request_id, "approve")
        done = await aresume(graph, lab.event(request_id), client=lab.client)
        assert done.status == "resumed"
    assert paid == ["12500.00"]
    assert lab.h.outcome(request_id) == "executed"
