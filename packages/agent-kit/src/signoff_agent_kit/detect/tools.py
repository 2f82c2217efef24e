"""Tool definitions and the references that point at them.

A `ToolDef` is keyed by where its code lives (`billing/tools.py:refund`), so the same function
seen as an `@tool`, wrapped in `function_tool(...)`, listed in `ToolNode([...])` and gated by
`gate_tools([...])` is one tool. `Registry.refs` follows an expression — a name, a list, a
variable holding a list, `[*base, extra]`, an import from another project module, a wrapper
call — to the tools it denotes.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from signoff_agent_kit.call_rules import (
    KNOWN_TOOL_CLASSES,
)
from signoff_agent_kit.classify import strip_calls
from signoff_agent_kit.detect.frameworks import Construct, construct, is_signoff_adapter
from signoff_agent_kit.detect.module import Class, Function, Module, Project
from signoff_agent_kit.gating import option_gates
from signoff_agent_kit.model import Confidence, Evidence, Gate

__all__ = ["Exposure", "Registry", "ToolDef", "kwarg", "positional"]

_MAX_DEPTH = 8
_RUN_METHODS = ("_run", "_arun", "run", "arun", "_execute")


@dataclass(slots=True)
class Exposure:
    """One place a tool can be run from (an agent, a ToolNode in a graph) and its gates there."""

    label: str
    gates: list[Gate] = field(default_factory=list[Gate])


@dataclass(eq=False, slots=True)
class ToolDef:
    """A tool as the detectors build it up; the scanner turns it into a model `Action`."""

    key: str
    name: str
    kind: str
    framework: str
    file: str
    line: int
    bodies: list[Function] = field(default_factory=list[Function])
    doc: str = ""
    gates: list[Gate] = field(default_factory=list[Gate])
    exposures: list[Exposure] = field(default_factory=list[Exposure])
    declared: str | None = None
    evidence: list[Evidence] = field(default_factory=list[Evidence])
    notes: list[str] = field(default_factory=list[str])

    def add_gate(self, gate: Gate) -> None:
        """Record a tool-level gate once."""
        if not any(
            (g.mechanism, g.file, g.line) == (gate.mechanism, gate.file, gate.line)
            for g in self.gates
        ):
            self.gates.append(gate)
        if gate.action and not self.declared:
            self.declared = gate.action

    def expose(self, label: str, gates: list[Gate]) -> None:
        """Record that an agent or graph can run this tool, behind `gates` (maybe none)."""
        self.exposures.append(Exposure(label, list(gates)))


def kwarg(call: ast.Call, *names: str) -> ast.expr | None:
    """The value of the first keyword argument among `names`."""
    for kw in call.keywords:
        if kw.arg in names:
            return kw.value
    return None


def positional(call: ast.Call, index: int, *names: str) -> ast.expr | None:
    """Keyword `names` if given, else positional argument `index`."""
    found = kwarg(call, *names)
    if found is not None:
        return found
    args = [a for a in call.args if not isinstance(a, ast.Starred)]
    return args[index] if len(args) > index else None


class Registry:
    """Every tool found so far, by key and by the symbols that name it."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.tools: dict[str, ToolDef] = {}
        self.by_symbol: dict[tuple[str, str], ToolDef] = {}

    # -- registration -----------------------------------------------------------------------

    def function_tool(
        self, fn: Function, *, name: str | None, kind: str, framework: str
    ) -> ToolDef:
        """The tool whose body is `fn` (created on first sight, refined afterwards)."""
        key = f"{fn.module.rel}:{fn.qualname}"
        tool = self.tools.get(key)
        if tool is None:
            tool = ToolDef(
                key, name or fn.name, kind, framework, fn.module.rel, fn.line, [fn], fn.docstring
            )
            self.tools[key] = tool
            if fn.cls is None and "." not in fn.qualname:
                self.by_symbol[(fn.module.name, fn.qualname)] = tool
        elif kind != "function":
            tool.kind, tool.framework = kind, framework
            if name:
                tool.name = name
        return tool

    def class_tool(self, cls: Class, framework: str) -> ToolDef:
        """The tool a `BaseTool` subclass defines; its `_run`/`_arun` are the body."""
        key = f"{cls.module.rel}:{cls.qualname}"
        tool = self.tools.get(key)
        if tool is None:
            module = cls.module
            name = module.string_value(cls.attrs.get("name")) or cls.name
            doc = module.string_value(cls.attrs.get("description")) or (
                ast.get_docstring(cls.node) or ""
            )
            bodies = [cls.methods[m] for m in _RUN_METHODS if m in cls.methods]
            tool = ToolDef(key, name, "tool class", framework, module.rel, cls.line, bodies, doc)
            self.tools[key] = tool
            self.by_symbol[(module.name, cls.qualname)] = tool
        return tool

    def synthetic(self, module: Module, line: int, name: str, kind: str, framework: str) -> ToolDef:
        """A tool with no body of ours (an MCP server, a ready-made tool class, a lambda)."""
        key = f"{module.rel}:{line}:{name}"
        tool = self.tools.get(key)
        if tool is None:
            tool = ToolDef(key, name, kind, framework, module.rel, line)
            self.tools[key] = tool
        return tool

    def alias(self, module: Module, name: str, tool: ToolDef) -> None:
        """`refund_tool = StructuredTool.from_function(refund)`: the variable names the tool."""
        self.by_symbol.setdefault((module.name, name), tool)

    # -- references -------------------------------------------------------------------------

    def symbol(self, module: Module, name: str) -> tuple[Module, str] | None:
        """Where a top-level name used in `module` is defined in the project."""
        if name in module.functions or name in module.classes or name in module.assigns:
            return module, name
        if name in module.imports:
            return self.project.symbol(module.imports[name], near=module)
        return None

    def refs(
        self,
        module: Module,
        fn: Function | None,
        expr: ast.expr | None,
        framework: str | None,
        depth: int = 0,
    ) -> list[ToolDef]:
        """The tools `expr` denotes; with `framework`, plain functions found become tools."""
        if expr is None or depth > _MAX_DEPTH:
            return []
        if isinstance(expr, ast.List | ast.Tuple | ast.Set):
            return [t for e in expr.elts for t in self.refs(module, fn, e, framework, depth + 1)]
        if isinstance(expr, ast.Starred):
            return self.refs(module, fn, expr.value, framework, depth + 1)
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
            left = self.refs(module, fn, expr.left, framework, depth + 1)
            return left + self.refs(module, fn, expr.right, framework, depth + 1)
        if isinstance(expr, ast.BoolOp | ast.IfExp):  # `custom or default`, `a if x else b`
            parts = expr.values if isinstance(expr, ast.BoolOp) else [expr.body, expr.orelse]
            return [t for p in parts for t in self.refs(module, fn, p, framework, depth + 1)]
        if isinstance(expr, ast.Dict):
            return [t for v in expr.values for t in self.refs(module, fn, v, framework, depth + 1)]
        if isinstance(expr, ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp):
            # `{t.name: t for t in (a, b)}`: the tools are those iterated over
            return self.refs(module, fn, expr.generators[0].iter, framework, depth + 1)
        if isinstance(expr, ast.Subscript):  # `tools["release_payment"]`, `tools[0]`
            found = self.refs(module, fn, expr.value, framework, depth + 1)
            key = expr.slice
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                named = [t for t in found if t.name == key.value]
                return named or found
            return found
        if isinstance(expr, ast.Name):
            return self._name_refs(module, fn, expr.id, framework, depth)
        if isinstance(expr, ast.Attribute):
            found = self.project.symbol(strip_calls(module.dotted(expr, fn)), near=module)
            if found is not None:
                return self._symbol_refs(found[0], found[1], framework, depth)
            return []
        if isinstance(expr, ast.Call):
            return self.call_refs(module, fn, expr, framework, depth)
        return []

    def _name_refs(
        self, module: Module, fn: Function | None, name: str, framework: str | None, depth: int
    ) -> list[ToolDef]:
        if fn is not None and name in fn.assigns:
            value = fn.assigns[name]
            extra = module.extends.get(name, [])
            return [
                t for e in [value, *extra] for t in self.refs(module, fn, e, framework, depth + 1)
            ]
        if fn is not None and name in fn.params:
            return []
        nested = module.functions.get(f"{fn.qualname}.{name}") if fn is not None else None
        if nested is not None:  # `def make_tools(): @tool def pay(...) ...; return [pay]`
            known = self.tools.get(f"{module.rel}:{nested.qualname}")
            if known is not None or framework is None:
                return [known] if known is not None else []
            return [self.function_tool(nested, name=None, kind="function", framework=framework)]
        found = self.symbol(module, name)
        if found is None:
            return []
        return self._symbol_refs(found[0], found[1], framework, depth)

    def _symbol_refs(
        self, module: Module, name: str, framework: str | None, depth: int
    ) -> list[ToolDef]:
        known = self.by_symbol.get((module.name, name))
        if known is not None:
            return [known]
        if name in module.assigns:
            values = [module.assigns[name], *module.extends.get(name, [])]
            return [t for v in values for t in self.refs(module, None, v, framework, depth + 1)]
        if framework is not None and name in module.functions:
            return [
                self.function_tool(
                    module.functions[name], name=None, kind="function", framework=framework
                )
            ]
        return []

    def call_refs(
        self,
        module: Module,
        fn: Function | None,
        call: ast.Call,
        framework: str | None,
        depth: int = 0,
    ) -> list[ToolDef]:
        """Tools a call expression denotes: a wrapper, a tool class instance, a pass-through."""
        dotted = module.dotted(call.func, fn)
        plain = strip_calls(dotted)
        wrapper = construct(plain, Construct.TOOL_WRAPPER, self.project)
        if wrapper is not None:
            return self.wrap(module, fn, call, wrapper, depth)
        found = self.project.symbol(plain, near=module)
        if found is not None:
            known = self.by_symbol.get((found[0].name, found[1]))
            if known is not None:
                return [known]
            if found[1] in found[0].functions:  # a factory: `make_tools()` returns a list
                factory = found[0].functions[found[1]]
                return [
                    t
                    for node in ast.walk(factory.node)
                    if isinstance(node, ast.Return)
                    for t in self.refs(found[0], factory, node.value, framework, depth + 1)
                ]
            return []
        last = plain.rsplit(".", 1)[-1]
        if last in KNOWN_TOOL_CLASSES:
            category, label = KNOWN_TOOL_CLASSES[last]
            tool = self.synthetic(module, call.lineno, last, "ready-made tool", framework or "?")
            if not tool.evidence:
                tool.evidence.append(
                    Evidence(
                        category,
                        label,
                        module.rel,
                        call.lineno,
                        "call",
                        Confidence.HIGH,
                        module.snippet(call.lineno),
                    )
                )
            return [tool]
        passes = (
            is_signoff_adapter(plain)
            or construct(plain, Construct.TOOL_NODE, self.project) is not None
            or plain in ("dataclasses.replace", "replace")
        )
        if passes:
            first = call.args[0] if call.args else kwarg(call, "tools", "tool")
            return self.refs(module, fn, first, framework, depth + 1)
        return []

    def wrap(
        self, module: Module, fn: Function | None, call: ast.Call, framework: str, depth: int = 0
    ) -> list[ToolDef]:
        """`function_tool(f, …)`, `StructuredTool.from_function(f)`, `Tool("n", f, "d")`."""
        args = [a for a in call.args if not isinstance(a, ast.Starred)]
        name = module.string_value(kwarg(call, "name", "name_override")) or None
        target = kwarg(call, "func", "function", "coroutine", "fn")
        if target is None and args:
            if isinstance(args[0], ast.Constant) and isinstance(args[0].value, str):
                name = name or args[0].value
                target = args[1] if len(args) > 1 else None
            else:
                target = args[0]
        inner = self.refs(module, fn, target, framework, depth + 1)
        if not inner:
            label = name or "tool"
            inner = [self.synthetic(module, call.lineno, label, "tool", framework)]
        kind = strip_calls(module.dotted(call.func, fn)).rsplit(".", 1)[-1]
        for tool in inner:
            if tool.kind in ("function", "tool"):
                tool.kind = kind
                tool.framework = framework
            if name:
                tool.name = name
            description = module.string_value(kwarg(call, "description", "description_override"))
            if description and not tool.doc:
                tool.doc = description
            for gate in option_gates(module, fn, call):
                tool.add_gate(gate)
        assigned = module.assigned_name(call)
        if assigned and len(inner) == 1 and fn is None:
            self.alias(module, assigned, inner[0])
        return inner
