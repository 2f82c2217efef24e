"""Finding agents, tools and gates in the Python modules of a project.

Three passes over the modules: **definitions** (decorated tools, tool classes, module-level tool
wrappers; every module, top level only), **usages** (agents, crews, tasks, ToolNodes,
`bind_tools`, signoff adapter calls, tool options; only files that import a framework or
signoff, the only ones that can build agents), then **graphs** (LangGraph builders, which need
the ToolNodes, and CrewAI Flows) and **hooks** (CrewAI `before_tool_call`, which applies to every
CrewAI tool). Classification and in-body gates are the scanner's job, once every tool is known.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from signoff_agent_kit.classify import strip_calls
from signoff_agent_kit.detect.flows import scan_flow
from signoff_agent_kit.detect.frameworks import (
    Construct,
    adapter_framework,
    construct,
    is_signoff_adapter,
)
from signoff_agent_kit.detect.langgraph import Approval, scan_graph
from signoff_agent_kit.detect.module import Class, Function, Module, Project
from signoff_agent_kit.detect.tools import Registry, ToolDef, kwarg, positional
from signoff_agent_kit.gating import option_gates, signoff_gate, truthy
from signoff_agent_kit.model import Agent, Gate, GateKind

__all__ = ["PythonDetector", "SignoffCall"]

_WRAPS = re.compile(r"gate|gated|wrap|guard", re.IGNORECASE)
"""Adapter functions that take a tool (a plain function passed to one becomes a tool)."""
_OPTIONS = re.compile(r"^[A-Z]\w*(Gate|Options|Config)$")
"""Adapter option records (`ToolGate`, `GateOptions`): read where they are used, not alone."""
_TOOL_KWARGS = frozenset({"tools", "tool", "fn", "func", "function", "target", "wrapped"})
_AGENT_TOOLS_POSITION = {
    "create_react_agent": 1,
    "create_agent": 1,
    "create_tool_calling_agent": 1,
    "create_openai_tools_agent": 1,
    "initialize_agent": 0,
}


@dataclass(slots=True)
class SignoffCall:
    """A signoff adapter call and whether it gated any tool (else its action stands alone)."""

    module: Module
    gate: Gate
    attached: bool


@dataclass(slots=True)
class _Hook:
    gate: Gate
    names: set[str]


class PythonDetector:
    """Runs the passes and holds what they found."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.registry = Registry(project)
        self.agents: list[Agent] = []
        self.signoff_calls: list[SignoffCall] = []
        self.approvals: list[Approval] = []
        self._toolnodes: dict[int, list[ToolDef]] = {}
        self._hooks: list[_Hook] = []
        self._agent_vars: dict[tuple[str, str], Agent] = {}
        self._decorators: set[int] = set()

    def run(self) -> None:
        """All passes, in order."""
        modules = self.project.modules
        for module in modules:
            self._definitions(module)
        active = [m for m in modules if m.uses_frameworks]
        for module in active:
            self._usages(module)
        for module in active:
            self._graphs(module)
        self._apply_hooks()

    # -- pass 1: definitions ----------------------------------------------------------------

    def _definitions(self, module: Module) -> None:
        if module.uses_frameworks:
            _ = module.calls  # walk every body: tools defined inside factories count too
        for fn in list(module.functions.values()):
            for deco in fn.node.decorator_list:
                self._decorators.add(id(deco))
                self._decorator(module, fn, deco)
        for cls in list(module.classes.values()):
            self._decorators.update(id(d) for d in cls.node.decorator_list)
        for cls in list(module.classes.values()):
            framework = self._tool_base(cls, 0)
            if framework is not None:
                self.registry.class_tool(cls, framework)
        for value in module.assigns.values():
            if isinstance(value, ast.Call):
                framework = construct(
                    module.dotted(value.func), Construct.TOOL_WRAPPER, self.project
                )
                if framework is not None:
                    self.registry.wrap(module, None, value, framework)

    def _decorator(self, module: Module, fn: Function, deco: ast.expr) -> None:
        call = deco if isinstance(deco, ast.Call) else None
        dotted = module.dotted(call.func if call is not None else deco)
        registry = self.registry
        framework = construct(dotted, Construct.TOOL_DECORATOR, self.project)
        if framework is None and construct(dotted, Construct.FASTMCP_TOOL, self.project):
            framework = "mcp"
        if framework is not None:
            name = None
            if call is not None:
                first = positional(call, 0, "name", "name_override")
                name = module.string_value(first) or None
            kind = "@" + strip_calls(dotted).rsplit(".", 1)[-1]
            tool = registry.function_tool(fn, name=name, kind=kind, framework=framework)
            if call is not None:
                for gate in option_gates(module, None, call):
                    tool.add_gate(gate)
        elif is_signoff_adapter(dotted) and _WRAPS.search(strip_calls(dotted).rsplit(".", 1)[-1]):
            tool = registry.function_tool(
                fn, name=None, kind="function", framework=adapter_framework(dotted)
            )
            if call is not None:
                tool.add_gate(signoff_gate(module, None, call, "decorator"))
            else:
                short = strip_calls(dotted).rsplit(".", 1)[-1]
                tool.add_gate(Gate(GateKind.SIGNOFF, f"@{short}", module.rel, deco.lineno))
        elif construct(dotted, Construct.CREWAI_HOOK, self.project) or (
            construct(dotted, Construct.CREWAI_ON, self.project)
            and call is not None
            and "PRE_TOOL_CALL" in ast.unparse(call)
        ):
            self._hook(module, fn, call, deco.lineno)

    def _tool_base(self, cls: Class, depth: int) -> str | None:
        if depth > 5:
            return None
        for base in cls.node.bases:
            dotted = cls.module.dotted(base)
            framework = construct(dotted, Construct.TOOL_BASE, self.project)
            if framework is not None:
                return framework
            found = self.project.symbol(strip_calls(dotted), near=cls.module)
            if found is not None and found[1] in found[0].classes:
                inherited = self._tool_base(found[0].classes[found[1]], depth + 1)
                if inherited is not None:
                    return inherited
        return None

    def _hook(self, module: Module, fn: Function, call: ast.Call | None, line: int) -> None:
        names = {
            n.value
            for n in ast.walk(fn.node)
            if isinstance(n, ast.Constant) and isinstance(n.value, str)
        }
        if call is not None:
            names |= {
                n.value
                for n in ast.walk(call)
                if isinstance(n, ast.Constant) and isinstance(n.value, str)
            }
        gate = Gate(GateKind.WEAK, f"crewai before-tool-call hook {fn.name}", module.rel, line)
        gate.note = "CrewAI tool hooks fail open on unexpected errors: not an approval gate"
        self._hooks.append(_Hook(gate, names))

    # -- pass 2: usages ---------------------------------------------------------------------

    def _usages(self, module: Module) -> None:
        for call, fn in module.calls:
            if id(call) in self._decorators:
                continue
            dotted = module.dotted(call.func, fn)
            plain = strip_calls(dotted)
            if is_signoff_adapter(plain):
                if not _OPTIONS.search(plain.rsplit(".", 1)[-1]):
                    self._signoff(module, fn, call)
                continue
            framework = construct(plain, Construct.AGENT, self.project)
            if framework is not None:
                self._agent(module, fn, call, framework, plain.rsplit(".", 1)[-1])
                continue
            if construct(plain, Construct.TASK, self.project):
                self._task(module, fn, call)
            elif construct(plain, Construct.CREW, self.project):
                self._crew(module, fn, call)
            elif construct(plain, Construct.TOOL_NODE, self.project):
                first = positional(call, 0, "tools")
                self._toolnodes[id(call)] = self.registry.refs(module, fn, first, "langgraph")
            elif plain.endswith(".bind_tools"):
                uses_graph = any(q.startswith("langgraph") for q in module.imports.values())
                framework = "langgraph" if uses_graph else "langchain"
                self.registry.refs(module, fn, positional(call, 0, "tools"), framework)
            elif (wrapper := construct(plain, Construct.TOOL_WRAPPER, self.project)) is not None:
                self.registry.wrap(module, fn, call, wrapper)
            elif plain in ("dataclasses.replace", "replace") and call.args:
                for tool in self.registry.refs(module, fn, call.args[0], None):
                    for gate in option_gates(module, fn, call):
                        tool.add_gate(gate)
            elif construct(plain, Construct.CREWAI_HOOK, self.project) and call.args:
                self._hook_call(module, fn, call)

    def _hook_call(self, module: Module, fn: Function | None, call: ast.Call) -> None:
        target = call.args[0]
        if isinstance(target, ast.Name):
            found = self.registry.symbol(module, target.id)
            if found is not None and found[1] in found[0].functions:
                self._hook(found[0], found[0].functions[found[1]], None, call.lineno)
                return
        gate = Gate(GateKind.WEAK, "crewai before-tool-call hook", module.rel, call.lineno)
        gate.note = "CrewAI tool hooks fail open on unexpected errors: not an approval gate"
        self._hooks.append(_Hook(gate, set()))
        del fn

    def _signoff(self, module: Module, fn: Function | None, call: ast.Call) -> None:
        dotted = module.dotted(call.func, fn)
        framework = adapter_framework(dotted)
        tail = strip_calls(dotted).rsplit(".", 1)[-1]
        gate = signoff_gate(module, fn, call)
        if tail == "gate_tools":  # a ToolNode in which the tools named in `gated` are gated
            tools = self.registry.refs(module, fn, positional(call, 0, "tools"), framework)
            self._toolnodes[id(call)] = tools
            gated = _gated_names(module, fn, kwarg(call, "gated"))
            attached = False
            for tool in tools:
                if tool.name in gated:
                    own = gated[tool.name]
                    tool.add_gate(
                        Gate(
                            GateKind.SIGNOFF,
                            gate.mechanism,
                            gate.file,
                            gate.line,
                            action=own.action,
                            route=own.route,
                            sla=own.sla,
                        )
                        if own is not None
                        else gate
                    )
                    attached = True
            self.signoff_calls.append(SignoffCall(module, gate, attached))
            return
        if tail == "approval_node":  # the graph scan decides what it gates
            self.signoff_calls.append(SignoffCall(module, gate, False))
            return
        make = framework if _WRAPS.search(tail) else None
        tools: list[ToolDef] = []
        for arg in call.args:
            tools += self.registry.refs(module, fn, arg, make)
        for kw in call.keywords:
            tools += self.registry.refs(
                module, fn, kw.value, make if kw.arg in _TOOL_KWARGS else None
            )
        unique = {id(t): t for t in tools}
        for tool in unique.values():
            tool.add_gate(gate)
            if len(unique) > 1 and tool.declared == gate.action:
                tool.declared = None  # one action name cannot name several tools
        self.signoff_calls.append(SignoffCall(module, gate, bool(unique)))

    def _mcp(self, module: Module, fn: Function | None, expr: ast.expr) -> ToolDef | None:
        if isinstance(expr, ast.Name):
            local = fn.assigns.get(expr.id) if fn is not None else None
            value = local if local is not None else module.assigns.get(expr.id)
            if value is None:
                return None
            expr = value
        if not isinstance(expr, ast.Call):
            return None
        dotted = module.dotted(expr.func, fn)
        hosted = construct(dotted, Construct.HOSTED_MCP, self.project)
        if hosted is None and construct(dotted, Construct.MCP_SERVER, self.project) is None:
            return None
        texts = [s for s in _strings(expr) if s not in ("always", "never")]
        label = module.string_value(kwarg(expr, "name")) or (texts[0] if texts else "mcp")
        tool = self.registry.synthetic(module, expr.lineno, label, "MCP server", "openai-agents")
        tool.doc = " ".join(texts)
        for gate in option_gates(module, fn, expr):
            tool.add_gate(gate)
        return tool

    def _agent(
        self, module: Module, fn: Function | None, call: ast.Call, framework: str, kind: str
    ) -> None:
        index = _AGENT_TOOLS_POSITION.get(kind)
        expr = positional(call, index, "tools") if index is not None else kwarg(call, "tools")
        tools = self.registry.refs(module, fn, expr, framework)
        if isinstance(expr, ast.List | ast.Tuple):
            tools += [t for e in expr.elts if (t := self._mcp(module, fn, e)) is not None]
        servers = kwarg(call, "mcp_servers")
        if isinstance(servers, ast.List | ast.Tuple):
            tools += [t for e in servers.elts if (t := self._mcp(module, fn, e)) is not None]
        var = module.assigned_name(call)
        text = module.string_value(kwarg(call, "name", "role"))
        name = text or var or (fn.name if fn is not None else f"{kind}@{call.lineno}")
        shared = self._agent_gates(module, call)
        per_tool = self._hitl(module, call)
        for tool in tools:
            gates = list(shared)
            if tool.name in per_tool:
                gates.append(per_tool[tool.name])
            tool.expose(f"{framework} agent {name}", gates)
        agent = Agent(name, "agent", framework, module.rel, call.lineno, [t.name for t in tools])
        self.agents.append(agent)
        if var:
            self._agent_vars[(module.name, var)] = agent

    def _agent_gates(self, module: Module, call: ast.Call) -> list[Gate]:
        before = kwarg(call, "interrupt_before")
        names: set[str] = set(_strings(before)) if before is not None else set()
        if names & {"tools", "*"}:
            label = f"interrupt_before={sorted(names)}"
            return [Gate(GateKind.FRAMEWORK, label, module.rel, call.lineno)]
        return []

    def _hitl(self, module: Module, call: ast.Call) -> dict[str, Gate]:
        middleware = kwarg(call, "middleware")
        out: dict[str, Gate] = {}
        if not isinstance(middleware, ast.List | ast.Tuple):
            return out
        for item in middleware.elts:
            if not isinstance(item, ast.Call):
                continue
            if construct(module.dotted(item.func), Construct.HITL_MIDDLEWARE, self.project) is None:
                continue
            mapping = kwarg(item, "interrupt_on")
            if not isinstance(mapping, ast.Dict):
                continue
            for key, value in zip(mapping.keys, mapping.values, strict=True):
                if isinstance(key, ast.Constant) and isinstance(key.value, str) and truthy(value):
                    label = "HumanInTheLoopMiddleware"
                    out[key.value] = Gate(GateKind.FRAMEWORK, label, module.rel, item.lineno)
        return out

    def _task(self, module: Module, fn: Function | None, call: ast.Call) -> None:
        tools = self.registry.refs(module, fn, kwarg(call, "tools"), "crewai")
        human = truthy(kwarg(call, "human_input"))
        weak: list[Gate] = []
        if human:
            gate = Gate(GateKind.WEAK, "crewai Task(human_input=True)", module.rel, call.lineno)
            gate.note = "human_input reviews the task's output after its tools ran"
            weak.append(gate)
        label = module.string_value(kwarg(call, "name")) or f"task@{call.lineno}"
        for tool in tools:
            tool.expose(f"crewai task {label}", weak)
        guards: list[Gate] = []
        for key in ("guardrail", "guardrails"):
            value = kwarg(call, key)
            items = value.elts if isinstance(value, ast.List | ast.Tuple) else [value]
            for item in items:
                if isinstance(item, ast.Call) and is_signoff_adapter(module.dotted(item.func, fn)):
                    guards.append(signoff_gate(module, fn, item, "task guardrail"))
        callback = kwarg(call, "callback")
        for tool in self.registry.refs(module, fn, callback, "crewai"):
            if tool.kind == "function":
                tool.kind = "task callback"
            for gate in guards or weak:
                tool.add_gate(gate)
        for gate in guards:
            self.signoff_calls.append(SignoffCall(module, gate, callback is not None))

    def _crew(self, module: Module, fn: Function | None, call: ast.Call) -> None:
        var = module.assigned_name(call)
        names: list[str] = []
        members = kwarg(call, "agents")
        if isinstance(members, ast.List | ast.Tuple):
            for element in members.elts:
                if isinstance(element, ast.Name):
                    agent = self._agent_vars.get((module.name, element.id))
                    if agent is not None:
                        names += agent.tools
        name = var or (fn.name if fn is not None else f"crew@{call.lineno}")
        self.agents.append(Agent(name, "crew", "crewai", module.rel, call.lineno, names))

    # -- pass 3: graphs and hooks -----------------------------------------------------------

    def _graphs(self, module: Module) -> None:
        calls = module.calls  # walks every body first: classes defined in functions count too
        for cls in list(module.classes.values()):
            flow = scan_flow(cls, self.registry)
            if flow is not None:
                self.agents.append(flow[0])
                self.approvals += flow[1]
        for call, fn in calls:
            if construct(module.dotted(call.func, fn), Construct.GRAPH, self.project):
                found = scan_graph(module, fn, call, self.registry, self._toolnodes)
                if found is not None:
                    self.agents.append(found.agent)
                    self.approvals += found.approvals

    def _apply_hooks(self) -> None:
        crew_tools = [t for t in self.registry.tools.values() if t.framework == "crewai"]
        for hook in self._hooks:
            named = [t for t in crew_tools if t.name in hook.names]
            for tool in named or crew_tools:
                tool.add_gate(hook.gate)


def _gated_names(
    module: Module, fn: Function | None, expr: ast.expr | None
) -> dict[str, Gate | None]:
    """`gated=["a"]` or `gated={"a": ToolGate(action=…)}` → names and their own gates."""
    if isinstance(expr, ast.Name):
        local = fn.assigns.get(expr.id) if fn is not None else None
        expr = local if local is not None else module.assigns.get(expr.id)
    out: dict[str, Gate | None] = {}
    if isinstance(expr, ast.List | ast.Tuple | ast.Set):
        for element in expr.elts:
            name = module.string_value(element, fn)
            if name:
                out[name] = None
    elif isinstance(expr, ast.Dict):
        for key, value in zip(expr.keys, expr.values, strict=True):
            name = module.string_value(key, fn) if key is not None else ""
            if not name:
                continue
            if isinstance(value, ast.Name):
                local = fn.assigns.get(value.id) if fn is not None else None
                value = local if local is not None else module.assigns.get(value.id, value)
            out[name] = (
                signoff_gate(module, fn, value, "gate_tools")
                if isinstance(value, ast.Call)
                else None
            )
    return out


def _strings(expr: ast.AST) -> list[str]:
    return [
        n.value for n in ast.walk(expr) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]
