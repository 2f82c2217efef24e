"""CrewAI Flows: steps, their triggers, and which steps a `@human_feedback` review precedes.

A class deriving from `crewai.flow.Flow` is a graph: `@start()` methods are entries,
`@listen(x)` / `@router(x)` methods run after `x` (a method, a method's name, a router's label,
or `or_(...)` / `and_(...)` of those), and a router leads to the labels it returns. A method
decorated with `@human_feedback(...)` runs, then pauses for review: what follows it is gated
(by signoff when its `provider` is a signoff one, such as `SignoffFeedbackProvider`). Every
step is a tool of the flow, reported when it is risky.
"""

from __future__ import annotations

import ast

from signoff_agent_kit.classify import strip_calls
from signoff_agent_kit.detect.frameworks import Construct, construct, is_signoff_adapter
from signoff_agent_kit.detect.langgraph import Approval
from signoff_agent_kit.detect.module import Class, Function
from signoff_agent_kit.detect.tools import Registry, kwarg
from signoff_agent_kit.gating import signoff_gate
from signoff_agent_kit.graph import gates_reaching, ungated_reach
from signoff_agent_kit.model import Agent, Gate, GateKind

__all__ = ["scan_flow"]


def _is_flow(cls: Class, registry: Registry, depth: int = 0) -> bool:
    for base in cls.node.bases:
        dotted = cls.module.dotted(base)
        if construct(dotted, Construct.FLOW, registry.project):
            return True
        found = registry.project.symbol(strip_calls(dotted), near=cls.module)
        if found is not None and found[1] in found[0].classes and depth < 5:
            return _is_flow(found[0].classes[found[1]], registry, depth + 1)
    return False


def _triggers(expr: ast.expr, methods: dict[str, Function]) -> set[str]:
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return {expr.value if expr.value in methods else f"label:{expr.value}"}
    if isinstance(expr, ast.Attribute | ast.Name):
        name = expr.attr if isinstance(expr, ast.Attribute) else expr.id
        return {name} if name in methods else set()
    if isinstance(expr, ast.Call):  # or_(a, b) / and_(a, b)
        return {t for arg in expr.args for t in _triggers(arg, methods)}
    return set()


def _feedback_gate(cls: Class, call: ast.Call | None, line: int) -> Gate:
    module = cls.module
    provider = kwarg(call, "provider") if call is not None else None
    if isinstance(provider, ast.Name):
        # a module-level provider, or a local of the function the class is defined in
        outer = module.functions.get(cls.qualname.rpartition(".")[0])
        local = outer.assigns.get(provider.id) if outer is not None else None
        provider = local or module.assigns.get(provider.id, provider)
    if isinstance(provider, ast.Call) and is_signoff_adapter(module.dotted(provider.func)):
        return signoff_gate(module, None, provider, "human_feedback provider")
    gate = Gate(GateKind.FRAMEWORK, "crewai @human_feedback", module.rel, line)
    gate.note = "reviewed in the console or a custom provider: no owner, SLA or audit trail"
    return gate


def _first_steps(
    review: str, edges: dict[str, set[str]], routers: set[str], methods: dict[str, Function]
) -> list[str]:
    """The steps right behind a review, looking through routers and their labels."""
    seen: set[str] = set()
    queue = sorted(edges.get(review, set()))
    out: list[str] = []
    while queue:
        node = queue.pop(0)
        if node in seen:
            continue
        seen.add(node)
        if node.startswith("label:") or node in routers:
            queue += sorted(edges.get(node, set()))
        elif node in methods:
            out.append(node)
    return out


def scan_flow(cls: Class, registry: Registry) -> tuple[Agent, list[Approval]] | None:
    """Analyse a Flow class; None if `cls` is not a CrewAI Flow."""
    if not _is_flow(cls, registry):
        return None
    module, project = cls.module, registry.project
    methods = cls.methods
    edges: dict[str, set[str]] = {}
    entries: set[str] = set()
    reviews: dict[str, Gate] = {}
    steps: list[str] = []
    routers: set[str] = set()
    for name, fn in methods.items():
        for deco in fn.node.decorator_list:
            call = deco if isinstance(deco, ast.Call) else None
            dotted = module.dotted(call.func if call is not None else deco)
            if construct(dotted, Construct.HUMAN_FEEDBACK, project):
                reviews[name] = _feedback_gate(cls, call, deco.lineno)
                continue
            if not construct(dotted, Construct.FLOW_STEP, project):
                continue
            steps.append(name)
            kind = strip_calls(dotted).rsplit(".", 1)[-1]
            if kind == "start":
                entries.add(name)
            elif call is not None and call.args:
                for trigger in _triggers(call.args[0], methods):
                    edges.setdefault(trigger, set()).add(name)
            if kind == "router":
                routers.add(name)
                labels = {
                    n.value
                    for n in ast.walk(fn.node)
                    if isinstance(n, ast.Return)
                    for n in ast.walk(n)
                    if isinstance(n, ast.Constant) and isinstance(n.value, str)
                }
                edges.setdefault(name, set()).update(f"label:{label}" for label in labels)
    if not steps:
        return None
    nodes = set(steps) | {t for ts in edges.values() for t in ts} | set(edges)
    reach = ungated_reach(entries, nodes, edges, approvals=set(), pause_after=set(reviews))
    approvals: list[Approval] = []
    tools: list[str] = []
    for name in steps:
        gates: list[Gate] = []
        if name not in reach:
            gates = [reviews[b] for b in gates_reaching(name, set(reviews), nodes, edges)]
        tool = registry.function_tool(methods[name], name=None, kind="function", framework="crewai")
        if tool.kind == "function":
            tool.kind = "flow step"
        tool.expose(f"crewai flow {cls.name}", gates)
        tools.append(tool.name)
    for name, gate in reviews.items():
        behind = [
            registry.function_tool(methods[n], name=None, kind="function", framework="crewai")
            for n in _first_steps(name, edges, routers, methods)
        ]
        approvals.append(Approval(gate, behind))
    return Agent(cls.name, "flow", "crewai", module.rel, cls.line, tools), approvals
