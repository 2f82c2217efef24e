"""LangGraph graphs: nodes, edges, approval nodes, and which steps every path gates.

A `StateGraph(...)` bound to a name is followed through the calls made on that name in the same
scope (`add_node`, `add_edge`, `add_conditional_edges`, `set_entry_point`, `add_sequence`,
`compile(interrupt_before=…)`). Routing comes from edges, path maps, router functions' returned
strings, `Command(goto=…)` and `Command[Literal[…]]` annotations; anything computed is read as
"may go anywhere". A node is an approval when it is a signoff adapter call or its body calls
`interrupt()` / the signoff client; `graph.ungated_reach` then says which nodes can run first.
"""

from __future__ import annotations

import ast
import itertools
from dataclasses import dataclass, field

from signoff_agent_kit.classify import strip_calls
from signoff_agent_kit.detect.frameworks import Construct, construct, is_signoff_adapter
from signoff_agent_kit.detect.module import Function, Module, Project
from signoff_agent_kit.detect.tools import Registry, ToolDef, kwarg
from signoff_agent_kit.gating import body_gates, signoff_gate
from signoff_agent_kit.graph import gates_reaching, ungated_reach
from signoff_agent_kit.model import Agent, Gate, GateKind

__all__ = ["Approval", "GraphScan", "scan_graph"]

START, END = "__start__", "__end__"


@dataclass(slots=True)
class _Node:
    name: str
    line: int
    function: Function | None = None
    tools: list[ToolDef] = field(default_factory=list[ToolDef])
    gate: Gate | None = None
    approve: str | None = None
    """Where an approval node goes on approve (its `on_approve`), when it says."""
    targets: set[str] = field(default_factory=set[str])
    dynamic: bool = False


@dataclass(slots=True)
class Approval:
    """An approval node and the tools of the nodes right behind it (for its declared action)."""

    gate: Gate
    behind: list[ToolDef]


@dataclass(slots=True)
class GraphScan:
    """What one graph contributed: its agent record and its approval nodes."""

    agent: Agent
    approvals: list[Approval]


class _Graph:
    def __init__(
        self,
        module: Module,
        scope: Function | None,
        var: str,
        registry: Registry,
        toolnodes: dict[int, list[ToolDef]],
    ) -> None:
        self.module, self.scope, self.var = module, scope, var
        self.registry, self.toolnodes = registry, toolnodes
        self.project: Project = registry.project
        self.nodes: dict[str, _Node] = {}
        self.edges: dict[str, set[str]] = {}
        self.dynamic: set[str] = set()
        self.before: set[str] = set()
        self.after: set[str] = set()
        self.before_line = 0
        self.name = var

    # -- reading ----------------------------------------------------------------------------

    def read(self) -> None:
        for call, fn in self.module.calls:
            func = call.func
            if (
                fn is self.scope
                and isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id == self.var
            ):
                self._method(func.attr, call)
        for node in self.nodes.values():
            for target in node.targets:
                self.edges.setdefault(node.name, set()).add(target)
            if node.dynamic:
                self.dynamic.add(node.name)

    def _label(self, expr: ast.expr | None) -> str | None:
        if expr is None:
            return None
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            return expr.value
        dotted = strip_calls(self.module.dotted(expr, self.scope))
        if dotted.endswith("START"):
            return START
        if dotted.endswith("END"):
            return END
        return None

    def _labels(self, expr: ast.expr | None) -> list[str]:
        if isinstance(expr, ast.List | ast.Tuple | ast.Set):
            return [x for e in expr.elts if (x := self._label(e)) is not None]
        if isinstance(expr, ast.IfExp):
            body, orelse = self._labels(expr.body), self._labels(expr.orelse)
            return [*body, *orelse] if body and orelse else []
        label = self._label(expr)
        return [label] if label is not None else []

    def _edge(self, source: str, target: str) -> None:
        self.edges.setdefault(source, set()).add(target)

    def _method(self, method: str, call: ast.Call) -> None:
        args = call.args
        if method == "add_node":
            self._add_node(call)
        elif method == "add_edge" and len(args) >= 2:
            for source in self._labels(args[0]):
                for target in self._labels(args[1]):
                    self._edge(source, target)
        elif method == "add_conditional_edges" and args:
            source = self._label(args[0])
            if source is not None:
                self._conditional(source, call)
        elif method == "set_entry_point" and args:
            for target in self._labels(args[0]):
                self._edge(START, target)
        elif method == "set_conditional_entry_point":
            self._conditional(START, call, path_index=0)
        elif method == "add_sequence" and args and isinstance(args[0], ast.List | ast.Tuple):
            names: list[str] = []
            for element in args[0].elts:
                name = self._add_node_from(element, None, element.lineno)
                if name:
                    names.append(name)
            for a, b in itertools.pairwise(names):
                self._edge(a, b)
        elif method == "compile":
            self._compile(call)

    def _compile(self, call: ast.Call) -> None:
        before = kwarg(call, "interrupt_before")
        self.before |= set(self._labels(before))
        if isinstance(before, ast.Constant) and before.value == "*":
            self.before |= set(self.nodes)
        self.after |= set(self._labels(kwarg(call, "interrupt_after")))
        self.before_line = call.lineno
        assigned = self.module.assigned_name(call)
        if assigned:
            self.name = assigned
        elif self.scope is not None:  # `def build_graph(): ...; return builder.compile()`
            self.name = self.scope.name

    def _add_node(self, call: ast.Call) -> None:
        args = call.args
        target = kwarg(call, "action", "node")
        name = self._label(args[0]) if args else None
        if name is not None and isinstance(args[0], ast.Constant):
            target = args[1] if len(args) > 1 else target
        elif args:
            target, name = args[0], None
        if target is not None:
            self._add_node_from(target, name, call.lineno)

    def _add_node_from(self, target: ast.expr, name: str | None, line: int) -> str | None:
        if isinstance(target, ast.Tuple) and len(target.elts) == 2:  # add_sequence(("n", fn))
            name = self._label(target.elts[0])
            target = target.elts[1]
        if name is None:
            if isinstance(target, ast.Name):
                name = target.id
            elif isinstance(target, ast.Attribute):
                name = target.attr
            else:
                return None
        node = _Node(name, line)
        self._resolve(node, target, 0)
        self.nodes[name] = node
        return name

    # -- node targets -----------------------------------------------------------------------

    def _resolve(self, node: _Node, target: ast.expr, depth: int) -> None:
        module, scope = self.module, self.scope
        if depth > 4:
            return
        if isinstance(target, ast.Call):
            plain = strip_calls(module.dotted(target.func, scope))
            tail = plain.rsplit(".", 1)[-1]
            if is_signoff_adapter(plain) and tail == "gate_tools":
                node.tools = self.toolnodes.get(id(target), [])
            elif is_signoff_adapter(plain) and tail == "gated_action" and target.args:
                self._resolve(node, target.args[0], depth + 1)
            elif is_signoff_adapter(plain):
                node.gate = signoff_gate(module, scope, target, "approval node")
                routes = {k.arg: module.string_value(k.value) for k in target.keywords if k.arg}
                node.approve = routes.get("on_approve") or None
                node.targets |= {
                    v for k, v in routes.items() if k.startswith("on_") and v and v != node.name
                }
                node.dynamic = not node.targets
            elif construct(plain, Construct.TOOL_NODE, self.project):
                node.tools = self.toolnodes.get(id(target)) or self.registry.refs(
                    module, scope, target.args[0] if target.args else None, "langgraph"
                )
            elif plain.endswith("RunnableLambda") and target.args:
                self._resolve(node, target.args[0], depth + 1)
            return
        if isinstance(target, ast.Name):
            local = scope.assigns.get(target.id) if scope is not None else None
            value = local if local is not None else module.assigns.get(target.id)
            if isinstance(value, ast.Call):
                self._resolve(node, value, depth + 1)
                return
            found = self.registry.symbol(module, target.id)
            if found is not None and found[1] in found[0].functions:
                self._function_node(node, found[0].functions[found[1]])
            elif scope is not None and f"{scope.qualname}.{target.id}" in module.functions:
                self._function_node(node, module.functions[f"{scope.qualname}.{target.id}"])

    def _function_node(self, node: _Node, fn: Function) -> None:
        node.function = fn
        gates, _ = body_gates(fn, 0, self.project)
        approvals = [g for g in gates if g.kind is not GateKind.WEAK]
        if approvals:  # its own body is gated (later) and so is everything behind it
            node.gate = approvals[0]
        self._routing(node, fn)

    def _routing(self, node: _Node, fn: Function) -> None:
        returns = fn.node.returns
        if returns is not None:
            node.targets |= {
                s
                for s in _strings(returns)
                if construct(self.module.dotted(returns, fn), Construct.COMMAND, self.project)
                or "Literal" in ast.unparse(returns)
            }
        for call in fn.calls:
            if construct(fn.module.dotted(call.func, fn), Construct.COMMAND, self.project):
                goto = kwarg(call, "goto")
                if goto is None and call.args:
                    goto = call.args[0] if "Send" in ast.unparse(call.func) else None
                if goto is None:
                    continue
                labels = self._labels(goto)
                if labels:
                    node.targets |= set(labels)
                else:
                    node.dynamic = True

    def _conditional(self, source: str, call: ast.Call, path_index: int = 1) -> None:
        args = call.args
        path_map = kwarg(call, "path_map")
        if path_map is None and len(args) > path_index + 1:
            path_map = args[path_index + 1]
        if isinstance(path_map, ast.Dict):
            for value in path_map.values:
                for target in self._labels(value):
                    self._edge(source, target)
            return
        if isinstance(path_map, ast.List | ast.Tuple):
            for target in self._labels(path_map):
                self._edge(source, target)
            return
        path = kwarg(call, "path")
        if path is None and len(args) > path_index:
            path = args[path_index]
        targets = self._router_targets(path)
        if targets:
            for target in targets:
                self._edge(source, target)
        else:
            self.dynamic.add(source)

    def _router_targets(self, path: ast.expr | None) -> set[str]:
        if path is None:
            return set()
        dotted = self.module.dotted(path, self.scope)
        if construct(dotted, Construct.TOOLS_CONDITION, self.project):
            return {"tools", END}
        if isinstance(path, ast.Name):
            found = self.registry.symbol(self.module, path.id)
            if found is not None and found[1] in found[0].functions:
                fn = found[0].functions[found[1]]
                out: set[str] = set()
                for node in ast.walk(fn.node):
                    if isinstance(node, ast.Return) and node.value is not None:
                        out |= set(_strings(node.value))
                        dotted = strip_calls(fn.module.dotted(node.value, fn))
                        if dotted.endswith("END"):
                            out.add(END)
                if fn.node.returns is not None and "Literal" in ast.unparse(fn.node.returns):
                    out |= set(_strings(fn.node.returns))
                return out
        return set()

    # -- verdict ----------------------------------------------------------------------------

    def verdict(self) -> GraphScan:
        nodes = set(self.nodes) | {END}
        approvals = {n for n, node in self.nodes.items() if node.gate is not None}
        entries = self.edges.get(START, set())
        if not entries:
            targets = {t for ts in self.edges.values() for t in ts}
            entries = {n for n in self.nodes if n not in targets} or set(self.nodes)
        reach = ungated_reach(
            entries,
            nodes,
            self.edges,
            approvals=approvals,
            pause_before=self.before,
            pause_after=self.after,
            dynamic=self.dynamic,
        )
        blockers = approvals | self.after | self.before
        found: list[Approval] = []
        tool_names: list[str] = []
        for name, node in self.nodes.items():
            if node.gate is not None:
                after = [node.approve] if node.approve else sorted(self.edges.get(name, set()))
                behind = [t for n in after for t in self._tools(n)]
                found.append(Approval(node.gate, behind))
            gates: list[Gate] = []
            if name not in reach:
                if name in self.before:
                    gates.append(self._pause("interrupt_before", name))
                for b in gates_reaching(name, blockers, nodes, self.edges, dynamic=self.dynamic):
                    gate = self.nodes[b].gate if b in self.nodes else None
                    kind = "interrupt_after" if b in self.after else "interrupt_before"
                    gates.append(gate or self._pause(kind, b))
            label = f"graph {self.name}, node {name!r}"
            for tool in self._tools(name):
                tool.expose(label, gates)
                tool_names.append(tool.name)
        agent = Agent(self.name, "graph", "langgraph", self.module.rel, self._line(), tool_names)
        return GraphScan(agent, found)

    def _pause(self, kind: str, node: str) -> Gate:
        return Gate(GateKind.FRAMEWORK, f"{kind}=[{node!r}]", self.module.rel, self.before_line)

    def _tools(self, name: str) -> list[ToolDef]:
        node = self.nodes.get(name)
        if node is None:
            return []
        if node.function is not None:
            tool = self.registry.function_tool(
                node.function, name=None, kind="function", framework="langgraph"
            )
            if tool.kind == "function":
                tool.kind = "graph node"
                tool.name = name
            return [tool]
        return node.tools

    def _line(self) -> int:
        return min((n.line for n in self.nodes.values()), default=1)


def _strings(expr: ast.AST) -> list[str]:
    return [
        n.value for n in ast.walk(expr) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]


def scan_graph(
    module: Module,
    scope: Function | None,
    call: ast.Call,
    registry: Registry,
    toolnodes: dict[int, list[ToolDef]],
) -> GraphScan | None:
    """Analyse the graph built by `call` (a `StateGraph(...)` bound to a name)."""
    var = module.assigned_name(call)
    if var is None:
        return None
    graph = _Graph(module, scope, var, registry, toolnodes)
    graph.read()
    if not graph.nodes:
        return None
    return graph.verdict()
