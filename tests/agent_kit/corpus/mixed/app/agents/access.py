"""Access requests as a LangGraph graph: grants need a human, revocations do not."""

from app.services.directory import add_to_group, groups_of, remove_from_group
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt


def triage(state: dict) -> dict:
    return {"groups": groups_of(state["user"])}


def route(state: dict) -> str:
    return "grant" if state["kind"] == "grant" else "revoke"


def review(state: dict) -> Command:
    ok = interrupt({"grant": state["group"], "to": state["user"]})
    return Command(goto="grant_admin" if ok else END)


def grant_admin(state: dict) -> dict:
    add_to_group(state["user"], "admins")
    return {}


def revoke_access(state: dict) -> dict:
    remove_from_group(state["user"], state["group"])
    return {}


graph = StateGraph(dict)
graph.add_node("triage", triage)
graph.add_node("review", review)
graph.add_node("grant_admin", grant_admin)
graph.add_node("revoke_access", revoke_access)
graph.add_edge(START, "triage")
graph.add_conditional_edges("triage", route, {"grant": "review", "revoke": "revoke_access"})
graph.add_edge("grant_admin", END)
graph.add_edge("revoke_access", END)
access_requests = graph.compile()
