"""`gate_tools` and `resume` on a real LangGraph graph, SQLite checkpointer and signoff server:
payload shapes, ungated tools, Send fan-out, failures, and LangGraph's resume pitfalls."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langgraph.prebuilt import ToolNode
from langgraph.types import Command
from tests.integrations.conformance.suite import ARGS, OTHER
from tests.integrations.langgraph.agent import (
    build_graph,
    checkpoint_of,
    ledger_entries,
    plan_message,
    release_payment,
    thread_of,
)
from tests.integrations.langgraph.conftest import Lab

from signoff import CallbackEvent
from signoff_langgraph import (
    AlreadyAnswered,
    GateError,
    InterruptNotPending,
    LangGraphReceiver,
    NotForLangGraph,
    gate_tools,
    resume,
    resume_pending,
)


def _tool_messages(lab: Lab, graph: Any, config: RunnableConfig) -> dict[str, ToolMessage]:
    messages = graph.get_state(config).values["messages"]
    return {m.tool_call_id: m for m in messages if isinstance(m, ToolMessage)}


def test_one_request_and_interrupt_in_the_hitl_per_call_shape(lab: Lab) -> None:
    graph = lab.graph()
    config = lab.start(graph, [("call_1", ARGS)])
    (pending,) = graph.get_state(config).interrupts
    request_id = lab.requests(config)["call_1"]
    value = pending.value
    assert value["type"] == "tool_approval"
    assert (value["tool_call_id"], value["name"], value["args"]) == (
        "call_1",
        "release_payment",
        ARGS,
    )
    assert sorted(value["allowed_decisions"]) == ["approve", "edit", "reject", "respond"]
    assert value["signoff"]["request_id"] == request_id
    request = lab.h.agent.get_request(request_id)
    assert request.agent.framework == "langgraph"
    assert request.business_object.type == "invoice"
    assert request.correlation["thread_id"] == thread_of(config)
    assert request.correlation["tool_call_id"] == "call_1"
    assert request.correlation["checkpoint_ns"].startswith("tools:")
    assert request.callback is not None


def test_agent_inbox_shape_and_resume(lab: Lab) -> None:
    graph = lab.graph(payload="agent_inbox")
    config = lab.start(graph, [("call_1", ARGS)])
    (pending,) = graph.get_state(config).interrupts
    assert pending.value["action_request"] == {"action": "release_payment", "args": ARGS}
    assert pending.value["config"]["allow_edit"] is True
    request_id = lab.requests(config)["call_1"]
    lab.h.decide(request_id, "edit", arguments={**ARGS, "amount": "12250.00"})
    done = resume(graph, lab.event(request_id), client=lab.client)
    assert done.status == "resumed"
    assert ledger_entries(lab.ledger) == [{**ARGS, "amount": "12250.00"}]
    result = _tool_messages(lab, graph, config)["call_1"]
    assert "changed this call's arguments" in str(result.content)


def test_ungated_tools_run_without_a_request(lab: Lab) -> None:
    graph = lab.graph()
    config = lab.start(graph, [("look", {"invoice_id": "INV-1042"}, "lookup_invoice")])
    state = graph.get_state(config)
    assert not state.interrupts
    assert not state.next
    assert lab.requests(config) == {}
    assert "Acme GmbH" in str(_tool_messages(lab, graph, config)["look"].content)


def test_gated_and_ungated_calls_in_one_step(lab: Lab) -> None:
    graph = lab.graph()
    config = lab.start(
        graph, [("look", {"invoice_id": "INV-1042"}, "lookup_invoice"), ("call_1", ARGS)]
    )
    assert list(lab.requests(config)) == ["call_1"]
    assert _tool_messages(lab, graph, config) == {}, "the step waits as a whole"
    lab.h.decide(lab.requests(config)["call_1"], "approve")
    resume(graph, lab.event(lab.requests(config)["call_1"]), client=lab.client)
    results = _tool_messages(lab, graph, config)
    assert set(results) == {"look", "call_1"}
    assert ledger_entries(lab.ledger) == [ARGS]


def test_send_fan_out_pauses_on_every_gated_call_at_once(lab: Lab) -> None:
    graph = lab.graph(fan_out=True)
    config = lab.start(graph, [("call_a", ARGS), ("call_b", OTHER)])
    pending = graph.get_state(config).interrupts
    assert len(pending) == 2, "each Send task pauses on its own"
    assert len({p.id for p in pending}) == 2
    requests = lab.requests(config)
    lab.h.decide(requests["call_b"], "approve")
    done = resume(graph, lab.event(requests["call_b"]), client=lab.client)
    assert done.status == "resumed"
    assert done.pending == (requests["call_a"],)
    assert ledger_entries(lab.ledger) == [OTHER], "an answered call runs; the other waits"
    lab.h.decide(requests["call_a"], "reject", comment="wrong vendor account")
    resume(graph, lab.event(requests["call_a"]), client=lab.client)
    assert ledger_entries(lab.ledger) == [OTHER]
    assert "wrong vendor account" in str(_tool_messages(lab, graph, config)["call_a"].content)
    assert not graph.get_state(config).next
    assert lab.h.outcome(requests["call_a"]) == "skipped"
    assert lab.h.outcome(requests["call_b"]) == "executed"


def test_a_callback_before_the_step_paused_is_deferred(lab: Lab) -> None:
    proceed = threading.Event()

    @tool
    def fetch_statement(account: str) -> str:
        """Fetch the vendor's bank statement (slow)."""
        proceed.wait(30)
        return f"statement of {account}"

    graph = lab.graph(fan_out=True, extra_tools=[fetch_statement])
    config: RunnableConfig = {"configurable": {"thread_id": "still-running"}}
    calls = [("call_1", ARGS), ("slow", {"account": "DE89"}, "fetch_statement")]
    run = threading.Thread(target=graph.invoke, args=({"messages": [plan_message(calls)]}, config))
    run.start()
    try:
        deadline = time.monotonic() + 30
        while not graph.get_state(config).interrupts and time.monotonic() < deadline:
            time.sleep(0.05)
        request_id = lab.requests(config)["call_1"]
        lab.h.decide(request_id, "approve")
        receiver = LangGraphReceiver(graph, verifier=lab.verifier, client=lab.client)
        early = receiver.handle(*lab.h.delivery(request_id))
        assert (early.status_code, early.outcome) == (503, "retry")
    finally:
        proceed.set()
        run.join(timeout=30)
    assert ledger_entries(lab.ledger) == []
    later = receiver.handle(*lab.h.delivery(request_id))  # the sender's retry
    assert (later.status_code, later.outcome) == (200, "resumed")
    assert ledger_entries(lab.ledger) == [ARGS]


def test_a_failing_gated_tool_reports_failed(lab: Lab) -> None:
    @tool("release_payment")
    def broken(invoice_id: str, amount: str, currency: str, vendor_account: str) -> str:
        """Release the payment (the bank is down)."""
        raise RuntimeError("bank unreachable")

    graph = lab.graph(payment_tool=broken, tool_node_options={"handle_tool_errors": True})
    config = lab.start(graph, [("call_1", ARGS)])
    request_id = lab.requests(config)["call_1"]
    lab.h.decide(request_id, "approve")
    resume(graph, lab.event(request_id), client=lab.client)
    result = _tool_messages(lab, graph, config)["call_1"]
    assert result.status == "error"
    assert lab.h.outcome(request_id) == "failed"
    reported = lab.h.agent.get_request(request_id).outcome
    assert reported is not None
    assert "bank unreachable" in (reported.detail or "")


def test_gating_a_tool_that_does_not_exist_is_refused(lab: Lab) -> None:
    with pytest.raises(GateError, match="release_paymnet"):
        gate_tools([release_payment], gated=["release_paymnet"], client=lab.client)


def test_the_gate_is_a_tool_node_with_the_name_asked_for(lab: Lab) -> None:
    node = gate_tools([release_payment], gated=["release_payment"], client=lab.client, name="pay")
    assert isinstance(node, ToolNode), "users reach ToolNode's API (tools_by_name, ...) on it"
    assert node.get_name() == "pay"
    assert list(node.tools_by_name) == ["release_payment"]


def test_no_thread_id_fails_before_any_request(lab: Lab) -> None:
    graph = build_graph(checkpointer=None, client=lab.client)
    with pytest.raises(GateError, match="checkpointer"):
        graph.invoke({"messages": [plan_message([("call_1", ARGS)])]})
    assert list(lab.h.agent.iter_requests()) == []


# Refusals ------------------------------------------------------------------------------------


def test_a_refused_resume_leaves_the_checkpoint_alone(lab: Lab) -> None:
    graph = lab.graph()
    config = lab.start(graph, [("call_1", ARGS)])
    request_id = lab.requests(config)["call_1"]
    graph.update_state(
        config,
        {"messages": [ToolMessage("handled by hand", tool_call_id="call_1")]},
        as_node="tools",
    )
    before = checkpoint_of(graph.get_state(config).config)
    lab.h.decide(request_id, "approve")
    with pytest.raises(InterruptNotPending):
        resume(graph, lab.event(request_id), client=lab.client)
    assert checkpoint_of(graph.get_state(config).config) == before
    assert ledger_entries(lab.ledger) == []


def test_an_event_from_another_adapter_is_refused(lab: Lab) -> None:
    foreign = lab.h.agent.create_request(
        {
            "action": {"name": "payments.release", "arguments": ARGS},
            "business_object": {"type": "invoice", "id": "INV-1042"},
            "correlation": {"call_id": "x"},
            "route": {"role": "finance-approver"},
        }
    )
    lab.h.decide(foreign.id, "approve")
    event = CallbackEvent.model_validate(
        {
            "type": "request.decided",
            "id": "evt_1",
            "timestamp": "2026-01-01T00:00:00Z",
            "data": {"request": lab.h.agent.get_request(foreign.id).model_dump(mode="json")},
        }
    )
    with pytest.raises(NotForLangGraph):
        resume(lab.graph(), event, client=lab.client)


def test_a_decision_is_applied_once_even_from_a_second_event(lab: Lab) -> None:
    graph = lab.graph()
    config = lab.start(graph, [("call_a", ARGS), ("call_b", OTHER)])
    requests = lab.requests(config)
    lab.h.decide(requests["call_a"], "approve")
    first = resume(graph, lab.event(requests["call_a"]), client=lab.client, markers=lab.store)
    assert first.status == "resumed"
    pending = graph.get_state(config).interrupts
    assert [p.value["signoff"]["request_id"] for p in pending] == [requests["call_b"]]
    # A second genuine event for the first request (new webhook id): never applied again,
    # and above all never to the next gate of the same task (LangGraph reuses interrupt slots).
    with pytest.raises(AlreadyAnswered):
        resume(
            graph, lab.event(requests["call_a"], fresh=True), client=lab.client, markers=lab.store
        )
    assert graph.get_state(config).interrupts == pending
    assert lab.h.agent.get_request(requests["call_b"]).status.value == "pending"
    assert ledger_entries(lab.ledger) == []


def test_a_resume_marked_elsewhere_but_not_landed_is_retried_later(lab: Lab) -> None:
    graph = lab.graph()
    config = lab.start(graph, [("call_1", ARGS)])
    request_id = lab.requests(config)["call_1"]
    lab.h.decide(request_id, "approve")
    receiver = LangGraphReceiver(graph, verifier=lab.verifier, client=lab.client, store=lab.store)
    marker = f"langgraph-answered:{thread_of(config)}:{request_id}"
    assert lab.store.claim(marker)  # another process is resuming it, or died doing so
    busy = receiver.handle(*lab.h.delivery(request_id))
    assert (busy.status_code, busy.outcome) == (503, "retry")
    assert ledger_entries(lab.ledger) == []
    lab.store.release(marker)
    done = receiver.handle(*lab.h.delivery(request_id))
    assert (done.status_code, done.outcome) == (200, "resumed")
    assert ledger_entries(lab.ledger) == [ARGS]


# LangGraph's own resume paths cannot approve anything -----------------------------------------


def test_a_bare_resume_value_is_ignored_and_the_gate_asks_again(lab: Lab) -> None:
    graph = lab.graph()
    config = lab.start(graph, [("call_1", ARGS)])
    request_id = lab.requests(config)["call_1"]
    graph.invoke(Command(resume={"type": "approve"}), config)
    (pending,) = graph.get_state(config).interrupts
    assert pending.value["signoff"]["request_id"] == request_id
    assert ledger_entries(lab.ledger) == []
    # A value that names the request, while signoff still shows it pending: ignored too.
    forged = {"type": "approve", "signoff": {"request_id": request_id}}
    graph.invoke(Command(resume={pending.id: forged}), config)
    assert graph.get_state(config).interrupts
    assert ledger_entries(lab.ledger) == []
    lab.h.decide(request_id, "approve")
    assert resume(graph, lab.event(request_id), client=lab.client).status == "resumed"
    assert ledger_entries(lab.ledger) == [ARGS]


def test_invoke_none_does_not_answer_a_waiting_gate(lab: Lab) -> None:
    graph = lab.graph()
    config = lab.start(graph, [("call_a", ARGS), ("call_b", OTHER)])
    requests = lab.requests(config)
    lab.h.decide(requests["call_a"], "approve")
    resume(graph, lab.event(requests["call_a"]), client=lab.client)
    graph.invoke(None, config)  # LangGraph may re-send an old answer here (langgraph #8837)
    pending = graph.get_state(config).interrupts
    assert [p.value["signoff"]["request_id"] for p in pending] == [requests["call_b"]]
    assert ledger_entries(lab.ledger) == []


def test_resume_pending_catches_up_without_callbacks(lab: Lab) -> None:
    graph = lab.graph()
    config = lab.start(graph, [("call_a", ARGS), ("call_b", OTHER)])
    requests = lab.requests(config)
    thread = thread_of(config)
    assert resume_pending(graph, thread_id=thread, client=lab.client) == []
    lab.h.decide(requests["call_b"], "approve")
    lab.h.decide(requests["call_a"], "approve")
    answered = resume_pending(graph, thread_id=thread, client=lab.client)
    assert list(answered) == [requests["call_a"], requests["call_b"]]
    # Both approved calls ran once each; ToolNode may run a step's calls in either order.
    paid = sorted(ledger_entries(lab.ledger), key=lambda entry: str(entry["invoice_id"]))
    assert paid == [ARGS, OTHER]
    assert not graph.get_state(config).next
