"""The payables agent: a tool-calling loop plus a month-end graph."""

from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import tools_condition
from langgraph.types import interrupt
from services.ledger import close_books, outstanding, purge_paid, write_off
from signoff import Client
from signoff_langgraph import ToolGate, approval_node, gate_tools, gated_action
from tools import (
    draft_vendor_reply,
    email_vendor,
    get_payment_status,
    issue_refund,
    match_purchase_order,
    release_payment,
)

client = Client("http://localhost:8080", api_key="sk_example")
read_tools = [get_payment_status, match_purchase_order, draft_vendor_reply]
money_tools = [release_payment, issue_refund]
all_tools = [*read_tools, *money_tools, email_vendor]
model = ChatOpenAI(model="gpt-5").bind_tools(all_tools)


def call_model(state: MessagesState) -> dict:
    return {"messages": [model.invoke(state["messages"])]}


tools_node = gate_tools(
    all_tools,
    gated={
        "release_payment": ToolGate(
            action="payments.release", route="finance-approver", sla="PT2H"
        ),
        "issue_refund": ToolGate(action="payments.refund", route="finance-approver"),
    },
    client=client,
)

builder = StateGraph(MessagesState)
builder.add_node("agent", call_model)
builder.add_node("tools", tools_node)
builder.add_edge(START, "agent")
builder.add_conditional_edges("agent", tools_condition)
builder.add_edge("tools", "agent")
payables = builder.compile()


def list_open(state: dict) -> dict:
    return {"open": outstanding()}


def write_off_bad_debt(state: dict) -> dict:
    answer = interrupt({"question": f"Write off {state['invoice_id']}?"})
    if answer == "yes":
        write_off(state["invoice_id"])
    return {}


def close_period(state: dict) -> dict:
    close_books(state["period"])
    return {"closed": True}


def purge(state: dict) -> dict:
    return {"purged": purge_paid(90)}


month_end = StateGraph(dict)
month_end.add_node("list_open", list_open)
month_end.add_node("write_off", write_off_bad_debt)
month_end.add_node(
    "review",
    approval_node(
        action="ledger.close_period",
        arguments=lambda s: {"period": s["period"]},
        business_object=lambda s: {"type": "period", "id": s["period"]},
        client=client,
        route="controller",
        on_approve="close_period",
        on_reject=END,
    ),
)
month_end.add_node("close_period", gated_action(close_period, client=client))
month_end.add_node("purge", purge)
month_end.add_edge(START, "list_open")
month_end.add_edge("list_open", "write_off")
month_end.add_edge("write_off", "review")
month_end.add_edge("list_open", "purge")
month_end.add_edge("purge", END)
closing = month_end.compile()
