"""Gating: what counts as a gate, what it covers, and what does not count."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from signoff_agent_kit import Action, GateKind, GateStatus, ScanResult, scan


def _scan(tmp_path: Path, source: str, name: str = "agent.py") -> ScanResult:
    (tmp_path / name).write_text(textwrap.dedent(source), encoding="utf-8")
    return scan([tmp_path])


def _action(result: ScanResult, name: str) -> Action:
    found = [a for a in result.actions if name in (a.name, a.display_name)]
    assert len(found) == 1, [a.display_name for a in result.actions]
    return found[0]


GRAPH_HEAD = """
import stripe, os
from langgraph.graph import StateGraph, START, END
from langgraph.types import interrupt, Command

def ask(state):
    interrupt({"ok?": True})
    return {}

def pay(state):
    stripe.Transfer.create(amount=1)

def wipe(state):
    os.remove(state["path"])
"""


def test_a_node_behind_an_interrupt_node_is_gated_and_one_beside_it_is_not(tmp_path: Path) -> None:
    result = _scan(
        tmp_path,
        GRAPH_HEAD
        + """
g = StateGraph(dict)
g.add_node("ask", ask)
g.add_node("pay", pay)
g.add_node("wipe", wipe)
g.add_edge(START, "ask")
g.add_edge("ask", "pay")
g.add_edge(START, "wipe")
app = g.compile()
""",
    )
    assert _action(result, "pay").status is GateStatus.GATED
    assert _action(result, "wipe").status is GateStatus.UNGATED


def test_a_second_path_around_the_approval_leaves_the_node_ungated(tmp_path: Path) -> None:
    result = _scan(
        tmp_path,
        GRAPH_HEAD
        + """
g = StateGraph(dict)
g.add_node("ask", ask)
g.add_node("pay", pay)
g.add_edge(START, "ask")
g.add_edge("ask", "pay")
g.add_conditional_edges(START, lambda s: s["x"], {"fast": "pay", "slow": "ask"})
""",
    )
    assert _action(result, "pay").status is GateStatus.UNGATED


def test_routing_the_scanner_cannot_read_counts_as_going_anywhere(tmp_path: Path) -> None:
    result = _scan(
        tmp_path,
        GRAPH_HEAD
        + """
def router(state):
    return Command(goto=state["next"])

g = StateGraph(dict)
g.add_node("router", router)
g.add_node("ask", ask)
g.add_node("pay", pay)
g.add_edge(START, "router")
g.add_edge("ask", "pay")
""",
    )
    assert _action(result, "pay").status is GateStatus.UNGATED


def test_interrupt_before_gates_the_node(tmp_path: Path) -> None:
    result = _scan(
        tmp_path,
        GRAPH_HEAD
        + """
g = StateGraph(dict)
g.add_node("pay", pay)
g.add_node("wipe", wipe)
g.add_edge(START, "pay")
g.add_edge("pay", "wipe")
app = g.compile(interrupt_before=["pay"])
""",
    )
    pay = _action(result, "pay")
    assert pay.status is GateStatus.GATED
    assert pay.gates[0].mechanism == "interrupt_before=['pay']"
    assert _action(result, "wipe").status is GateStatus.GATED  # only reachable through pay


def test_an_approval_asked_for_after_the_action_does_not_gate_it(tmp_path: Path) -> None:
    result = _scan(
        tmp_path,
        """
        import stripe
        from langchain_core.tools import tool
        from langgraph.types import interrupt

        @tool
        def before(x: str) -> str:
            '''Refund.'''
            interrupt({"refund": x})
            return stripe.Refund.create(charge=x).id

        @tool
        def after(x: str) -> str:
            '''Refund.'''
            refund = stripe.Refund.create(charge=x)
            interrupt({"refunded": x})
            return refund.id
        """,
    )
    assert _action(result, "before").status is GateStatus.GATED
    after = _action(result, "after")
    assert after.status is GateStatus.UNGATED
    assert any("comes after the risky call" in n for n in after.notes)


def test_gate_tools_gates_only_the_tools_it_names(tmp_path: Path) -> None:
    result = _scan(
        tmp_path,
        """
        import os, stripe
        from langchain_core.tools import tool
        from signoff_langgraph import gate_tools, ToolGate

        @tool
        def pay(a: int) -> str:
            '''Pay.'''
            return stripe.Payout.create(amount=a).id

        @tool
        def wipe(p: str) -> None:
            '''Wipe.'''
            os.remove(p)

        node = gate_tools([pay, wipe], gated={"pay": ToolGate(action="payments.pay", sla="PT1H")})
        """,
    )
    pay = _action(result, "payments.pay")
    assert pay.status is GateStatus.GATED
    assert pay.audited
    assert pay.coverage.sla == "PT1H"
    assert _action(result, "wipe").status is GateStatus.UNGATED


def test_a_tool_gated_in_one_agent_and_bare_in_another_is_ungated(tmp_path: Path) -> None:
    result = _scan(
        tmp_path,
        """
        import os
        from langchain_core.tools import tool
        from langgraph.prebuilt import create_react_agent

        @tool
        def wipe(p: str) -> None:
            '''Wipe.'''
            os.remove(p)

        careful = create_react_agent("m", [wipe], interrupt_before=["tools"])
        reckless = create_react_agent("m", [wipe])
        """,
    )
    wipe = _action(result, "wipe")
    assert wipe.status is GateStatus.UNGATED
    assert any("also runs without a gate" in n for n in wipe.notes)


def test_crewai_hooks_and_human_input_are_weak(tmp_path: Path) -> None:
    result = _scan(
        tmp_path,
        """
        import os
        from crewai import Task
        from crewai.tools import tool
        from crewai.hooks import before_tool_call

        @tool("Wipe disk")
        def wipe(p: str) -> str:
            '''Wipe.'''
            os.remove(p)

        @tool("Email all")
        def email_all(m: str) -> str:
            '''Email everyone.'''
            smtp.sendmail("a", "b", m)

        @before_tool_call
        def check(ctx):
            return ctx.tool_name != "Wipe disk"

        Task(description="x", expected_output="y", tools=[email_all], human_input=True)
        """,
    )
    wipe = _action(result, "Wipe disk")
    assert wipe.status is GateStatus.WEAK
    assert wipe.gates[0].kind is GateKind.WEAK
    assert _action(result, "Email all").status is GateStatus.WEAK
    assert {a.display_name for a in result.ungated_at_or_above(result.actions[-1].risk)} >= {
        "Wipe disk"
    }


def test_openai_agents_gates(tmp_path: Path) -> None:
    result = _scan(
        tmp_path,
        """
        import os, stripe
        from agents import Agent, function_tool
        from signoff_openai_agents import gate

        @function_tool(needs_approval=True)
        def pay(a: int) -> str:
            '''Pay.'''
            return stripe.Payout.create(amount=a).id

        @function_tool(needs_approval=False)
        def refund(c: str) -> str:
            '''Refund.'''
            return stripe.Refund.create(charge=c).id

        @function_tool
        def wipe(p: str) -> None:
            '''Wipe.'''
            os.remove(p)

        Agent(name="a", tools=[pay, refund, gate(wipe, client=c, action="files.wipe", route="ops")])
        """,
    )
    assert _action(result, "pay").gates[0].mechanism == "needs_approval"
    assert _action(result, "refund").status is GateStatus.UNGATED
    wipe = _action(result, "files.wipe")
    assert wipe.status is GateStatus.GATED
    assert wipe.coverage.owner == "ops"


def test_an_approval_nodes_action_names_the_risky_step_it_approves(tmp_path: Path) -> None:
    result = _scan(
        tmp_path,
        GRAPH_HEAD
        + """
from signoff_langgraph import approval_node, gated_action

def reply(state):
    return {"draft": "..."}

g = StateGraph(dict)
g.add_node("approve", approval_node(action="payments.release", arguments=f, business_object=b,
                                    on_approve="pay", on_reject="reply"))
g.add_node("pay", gated_action(pay))
g.add_node("reply", reply)
g.add_edge(START, "approve")
""",
    )
    pay = _action(result, "payments.release")
    assert pay.name == "pay"
    assert pay.status is GateStatus.GATED
    assert "reply" not in {a.name for a in result.actions}


def test_a_declared_action_whose_code_is_not_found_stands_alone(tmp_path: Path) -> None:
    result = _scan(
        tmp_path,
        """
        from langgraph.graph import StateGraph, START
        from signoff_langgraph import approval_node

        def release(state):
            ledger.book(state)

        g = StateGraph(dict)
        g.add_node("approve", approval_node(action="payments.release", on_approve="release"))
        g.add_node("release", release)
        g.add_edge(START, "approve")
        """,
    )
    declared = _action(result, "payments.release")
    assert declared.kind == "declared action"
    assert declared.status is GateStatus.GATED


def test_n8n_signoff_node_gates_only_its_approved_output(tmp_path: Path) -> None:
    def node(name: str, kind: str, **params: object) -> dict[str, object]:
        return {"name": name, "type": kind, "parameters": params, "position": [0, 0]}

    workflow = {
        "name": "wf",
        "nodes": [
            node("Start", "n8n-nodes-base.manualTrigger"),
            node("Ask", "n8n-nodes-signoff.signoff", action="files.wipe"),
            node("Wipe", "n8n-nodes-base.executeCommand", command="=rm -rf {{ $json.p }}"),
            node("Post", "n8n-nodes-base.httpRequest", method="DELETE", url="https://x/api/a"),
        ],
        "connections": {
            "Start": {"main": [[{"node": "Ask"}]]},
            "Ask": {"main": [[{"node": "Wipe"}], [{"node": "Post"}]]},
        },
    }
    (tmp_path / "wf.json").write_text(json.dumps(workflow, indent=1), encoding="utf-8")
    result = scan([tmp_path])
    assert _action(result, "files.wipe").status is GateStatus.GATED
    assert _action(result, "Post").status is GateStatus.UNGATED
    assert _action(result, "files.wipe").line > 1  # the node's line in the file


def test_a_crewai_flow_review_gates_the_steps_after_it(tmp_path: Path) -> None:
    result = _scan(
        tmp_path,
        """
        import os, shutil, stripe
        from crewai.flow.flow import Flow, listen, router, start
        from crewai.flow.human_feedback import human_feedback

        class Pay(Flow):
            @start()
            @human_feedback(message="Pay?")
            def propose(self):
                return {"amount": 1}

            @router(propose)
            def decide(self):
                return "ok" if self.last_human_feedback.feedback == "yes" else "no"

            @listen("ok")
            def pay(self):
                stripe.Payout.create(amount=1)

        class Wipe(Flow):
            @start()
            def wipe(self):
                shutil.rmtree("/data")
        """,
    )
    pay = _action(result, "pay")
    assert pay.status is GateStatus.GATED
    assert pay.gates[0].mechanism == "crewai @human_feedback"
    assert not pay.audited
    assert _action(result, "wipe").status is GateStatus.UNGATED
    assert {a.name for a in result.agents} >= {"Pay", "Wipe"}


def test_tools_chosen_with_or_and_if_are_both_followed(tmp_path: Path) -> None:
    result = _scan(
        tmp_path,
        """
        import os
        from langchain_core.tools import tool
        from signoff_langgraph import gate_tools

        @tool
        def wipe(p: str) -> None:
            '''Wipe.'''
            os.remove(p)

        @tool
        def erase(p: str) -> None:
            '''Erase.'''
            os.remove(p)

        def build(custom=None, fast=False):
            return gate_tools([custom or wipe, erase if fast else wipe], gated=["wipe", "erase"])
        """,
    )
    assert _action(result, "wipe").status is GateStatus.GATED
    assert _action(result, "erase").status is GateStatus.GATED
