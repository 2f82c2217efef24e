"""`approval_node` + `gated_action` in a business graph: read invoice → approve → pay / escalate /
follow the reviewer's instruction, on a real server, SQLite checkpointer and real callbacks."""

from __future__ import annotations

import operator
import uuid
from typing import Annotated, Any, NotRequired, TypedDict

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from tests.integrations.conformance.suite import ARGS, EDITED, INSTRUCTION
from tests.integrations.langgraph.conftest import Lab

from signoff import Client, NotFound
from signoff_langgraph import (
    GateError,
    LangGraphReceiver,
    SignoffDecision,
    approval_node,
    gated_action,
    resume,
)


class InvoiceState(TypedDict):
    invoice: dict[str, Any]
    signoff: NotRequired[SignoffDecision]
    log: Annotated[list[str], operator.add]


def decided(state: InvoiceState) -> SignoffDecision:
    """The approval node's decision, which every node after it finds in the state."""
    decision = state.get("signoff")
    assert decision is not None
    return decision


def build(lab: Lab, **options: Any) -> CompiledStateGraph[Any, Any, Any, Any]:
    client: Client = lab.client
    gate = approval_node(
        action="payments.release",
        arguments=lambda s: s["invoice"],
        business_object=lambda s: {
            "type": "invoice",
            "id": s["invoice"]["invoice_id"],
            "attributes": {"amount": s["invoice"]["amount"], "vendor": "Acme GmbH"},
        },
        summary=lambda s: f"Release EUR {s['invoice']['amount']} to Acme GmbH",
        route="finance-approver",
        client=client,
        callback_url=lab.h.inbox_url,
        on_approve="pay",
        on_reject="escalate",
        on_respond="follow_instruction",
        **options,
    )

    def pay(state: InvoiceState) -> dict[str, Any]:
        return {"log": [f"paid {decided(state)['arguments']['amount']}"]}

    def escalate(state: InvoiceState) -> dict[str, Any]:
        decision = decided(state)
        return {"log": [f"escalated after {decision['kind']}: {decision['comment']}"]}

    def follow_instruction(state: InvoiceState) -> dict[str, Any]:
        return {"log": [f"following: {decided(state)['comment']}"]}

    builder = StateGraph(InvoiceState)
    builder.add_node("approve", gate, destinations=("pay", "escalate", "follow_instruction"))
    builder.add_node("pay", gated_action(pay, client=client, action="payments.release"))
    builder.add_node("escalate", escalate)
    builder.add_node("follow_instruction", follow_instruction)
    builder.add_edge(START, "approve")
    for node in ("pay", "escalate", "follow_instruction"):
        builder.add_edge(node, END)
    return builder.compile(checkpointer=lab.saver)


def start(graph: CompiledStateGraph[Any, Any, Any, Any]) -> RunnableConfig:
    config: RunnableConfig = {"configurable": {"thread_id": f"inv-{uuid.uuid4().hex[:8]}"}}
    graph.invoke({"invoice": dict(ARGS), "log": []}, config)
    return config


def request_of(graph: CompiledStateGraph[Any, Any, Any, Any], config: RunnableConfig) -> str:
    (pending,) = graph.get_state(config).interrupts
    return str(pending.value["signoff"]["request_id"])


def test_approve_pays_and_reports_executed(lab: Lab) -> None:
    graph = build(lab)
    config = start(graph)
    (pending,) = graph.get_state(config).interrupts
    # LangChain's HITL shape: one action request and its review config.
    assert pending.value["action_requests"] == [
        {
            "name": "payments.release",
            "args": ARGS,
            "description": "Release EUR 12500.00 to Acme GmbH",
        }
    ]
    review = pending.value["review_configs"][0]
    assert review["action_name"] == "payments.release"
    assert sorted(review["allowed_decisions"]) == ["approve", "edit", "reject", "respond"]
    request_id = request_of(graph, config)
    lab.h.decide(request_id, "approve", comment="matches PO-7781")
    done = resume(graph, lab.event(request_id), client=lab.client)
    assert done.status == "resumed"
    state = graph.get_state(config).values
    assert state["log"] == ["paid 12500.00"]
    assert state["signoff"]["approved"] is True
    assert state["signoff"]["decided_by"] is not None
    assert lab.h.outcome(request_id) == "executed"
    assert [r.id for r in lab.h.agent.iter_requests()] == [request_id], "the re-run reused it"


def test_edit_pays_the_corrected_amount(lab: Lab) -> None:
    graph = build(lab)
    config = start(graph)
    request_id = request_of(graph, config)
    lab.h.decide(request_id, "edit", arguments=EDITED)
    resume(graph, lab.event(request_id), client=lab.client)
    assert graph.get_state(config).values["log"] == ["paid 12250.00"]
    assert graph.get_state(config).values["signoff"]["kind"] == "edit"


def test_reject_escalates_and_reports_skipped(lab: Lab) -> None:
    graph = build(lab)
    config = start(graph)
    request_id = request_of(graph, config)
    lab.h.decide(request_id, "reject", comment="vendor bank details changed last week")
    resume(graph, lab.event(request_id), client=lab.client)
    log = graph.get_state(config).values["log"]
    assert log == ["escalated after reject: vendor bank details changed last week"]
    assert lab.h.outcome(request_id) == "skipped"


def test_respond_follows_the_instruction(lab: Lab) -> None:
    graph = build(lab)
    config = start(graph)
    request_id = request_of(graph, config)
    lab.h.decide(request_id, "respond", comment=INSTRUCTION)
    resume(graph, lab.event(request_id), client=lab.client)
    assert graph.get_state(config).values["log"] == [f"following: {INSTRUCTION}"]
    assert lab.h.outcome(request_id) == "skipped"


def test_server_timeout_routes_to_on_expire(lab: Lab) -> None:
    graph = build(lab, sla="PT2S", on_expire="escalate")
    config = start(graph)
    request_id = request_of(graph, config)
    assert lab.h.wait_closed(request_id).status.value == "expired"
    resume(graph, lab.event(request_id), client=lab.client)
    state = graph.get_state(config).values
    assert state["signoff"]["kind"] == "expired"
    assert state["signoff"]["approved"] is False
    assert state["log"][0].startswith("escalated after expired")


def test_agent_inbox_payload_through_the_receiver(lab: Lab) -> None:
    graph = build(lab, payload="agent_inbox")
    config = start(graph)
    (pending,) = graph.get_state(config).interrupts
    assert pending.value["action_request"] == {"action": "payments.release", "args": ARGS}
    assert pending.value["config"] == {
        "allow_ignore": True,
        "allow_respond": True,
        "allow_edit": True,
        "allow_accept": True,
    }
    request_id = request_of(graph, config)
    lab.h.decide(request_id, "approve")
    receiver = LangGraphReceiver(graph, verifier=lab.verifier, client=lab.client)
    delivery = receiver.handle(*lab.h.delivery(request_id))
    assert (delivery.status_code, delivery.outcome) == (200, "resumed")
    assert graph.get_state(config).values["log"] == ["paid 12500.00"]
    assert receiver.handle(*lab.h.delivery(request_id)).outcome == "duplicate"


def test_gated_action_refuses_to_run_without_an_approval(lab: Lab) -> None:
    ran: list[str] = []
    builder = StateGraph(InvoiceState)
    builder.add_node("pay", gated_action(lambda _s: ran.append("paid") or {}, client=lab.client))
    builder.add_edge(START, "pay")
    graph = builder.compile()
    with pytest.raises(GateError, match="no approval"):
        graph.invoke({"invoice": dict(ARGS), "log": []})
    forged: SignoffDecision = {
        "request_id": "req_nope",
        "action": "payments.release",
        "status": "approved",
        "kind": "approve",
        "approved": True,
        "arguments": dict(ARGS),
        "comment": None,
        "decided_by": None,
        "role": None,
        "via": None,
    }
    with pytest.raises(NotFound):  # signoff never heard of it: the action does not run
        graph.invoke({"invoice": dict(ARGS), "log": [], "signoff": forged})
    assert ran == []
