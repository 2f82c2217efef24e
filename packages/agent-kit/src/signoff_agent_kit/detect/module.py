"""One Python file as facts: imports, functions, classes, assignments and every call.

Nothing is imported or executed: the file is parsed with `ast`; its top level is walked at once
and each function body the first time something asks about it. `Module.dotted`
turns an expression into a dotted name through imports and simple assignments
(`s3 = boto3.client("s3"); s3.delete_object` → `boto3.client(s3).delete_object`), which is what
the classifier and the framework detectors match on. `Project` indexes the modules of one scan so
`from .billing import refund` resolves to the function in `billing.py`.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

__all__ = ["Class", "Function", "Module", "Project", "module_name"]

_MAX_DEPTH = 6
_IDENT = re.compile(r"^[A-Za-z_][\w\-]{0,40}$")
_FRAMEWORK_IMPORT = re.compile(
    r"^[ \t]*(?:from|import)[ \t]+(?:agents|crewai\w*|langgraph\w*|langchain\w*|signoff\w*|mcp|"
    r"fastmcp)\b",
    re.MULTILINE,
)

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef
_LEAVES = (ast.Name, ast.Constant, ast.expr_context, ast.operator, ast.cmpop, ast.unaryop,
           ast.boolop, ast.Pass, ast.Break, ast.Continue)  # fmt: skip
"""Nodes with nothing to collect below them: skipped without descending."""


@dataclass(eq=False, slots=True)
class Class:
    """A class definition: bases, class-level assignments, methods and `self.x = ...` targets."""

    module: Module
    node: ast.ClassDef
    qualname: str
    attrs: dict[str, ast.expr] = field(default_factory=dict[str, ast.expr])
    methods: dict[str, Function] = field(default_factory=dict[str, "Function"])
    self_attrs: dict[str, ast.expr] = field(default_factory=dict[str, ast.expr])

    @property
    def name(self) -> str:
        """The class's own name."""
        return self.node.name

    @property
    def line(self) -> int:
        """The line of the `class` statement."""
        return self.node.lineno


class Function:
    """A function or method: its calls (nested definitions excluded) and local assignments.

    The body is walked on first use: most functions of a large project are never looked into.
    """

    __slots__ = ("_assigns", "_attr_writes", "_calls", "_walked", "cls", "module", "node",
                 "params", "qualname")  # fmt: skip

    def __init__(
        self,
        module: Module,
        node: FunctionNode,
        qualname: str,
        cls: Class | None,
        params: frozenset[str] = frozenset(),
    ) -> None:
        self.module = module
        self.node = node
        self.qualname = qualname
        self.cls = cls
        self.params = params
        self._calls: list[ast.Call] = []
        self._assigns: dict[str, ast.expr] = {}
        self._attr_writes: list[tuple[str, int]] = []
        self._walked = False

    @property
    def calls(self) -> list[ast.Call]:
        """Every call in the body, in source order (nested `def`s excluded)."""
        self.module.walk_body(self)
        return self._calls

    @property
    def assigns(self) -> dict[str, ast.expr]:
        """Local name → the last value assigned to it."""
        self.module.walk_body(self)
        return self._assigns

    @property
    def attr_writes(self) -> list[tuple[str, int]]:
        """`obj.field = …` / `obj.field += …` in the body (not on `self`): field and line."""
        self.module.walk_body(self)
        return self._attr_writes

    @property
    def name(self) -> str:
        """The function's own name."""
        return self.node.name

    @property
    def line(self) -> int:
        """The line of the `def` (decorators excluded)."""
        return self.node.lineno

    @property
    def docstring(self) -> str:
        """The docstring, or an empty string."""
        return ast.get_docstring(self.node) or ""

    def start_walk(self) -> bool:
        """True the first time: the module is about to collect this body."""
        first, self._walked = not self._walked, True
        return first

    def record_call(self, call: ast.Call) -> None:
        """A call found in the body."""
        self._calls.append(call)

    def record_assign(self, name: str, value: ast.expr) -> None:
        """`name = value` found in the body."""
        self._assigns[name] = value

    def record_attr_write(self, attr: str, line: int) -> None:
        """`obj.attr = …` found in the body."""
        self._attr_writes.append((attr, line))


def module_name(rel: str) -> str:
    """`pkg/sub/mod.py` → `pkg.sub.mod`; `pkg/__init__.py` → `pkg`."""
    parts = [p for p in rel.removesuffix(".py").split("/") if p not in ("", ".")]
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(p.replace("-", "_") for p in parts) or "__main__"


class Module:
    """A parsed Python file and the facts the detectors need from it."""

    def __init__(self, rel: str, source: str, tree: ast.Module) -> None:
        self.rel = rel
        self.name = module_name(rel)
        self.is_package = rel.endswith("__init__.py")
        self.lines = source.splitlines()
        self.uses_frameworks = bool(_FRAMEWORK_IMPORT.search(source))
        """It imports an agent framework or signoff (only such files can build agents)."""
        self.tree = tree
        self.imports: dict[str, str] = {}
        self.functions: dict[str, Function] = {}
        self.classes: dict[str, Class] = {}
        self.assigns: dict[str, ast.expr] = {}
        self.extends: dict[str, list[ast.expr]] = {}
        """Elements added to a list name with `.append`, `.extend` or `+=`."""
        self._calls: list[tuple[ast.Call, Function | None]] = []
        self._targets: dict[int, str] = {}
        self._pending: list[Function] = []
        self._walk(tree, None, None, "")

    @property
    def calls(self) -> list[tuple[ast.Call, Function | None]]:
        """Every call in the file with the function it is in (walks every body once)."""
        while self._pending:
            self.walk_body(self._pending.pop())
        return self._calls

    def walk_body(self, fn: Function) -> None:
        """Collect a function's calls and assignments, once."""
        if fn.module is not self or not fn.start_walk():
            return
        for stmt in fn.node.body:
            self._walk(ast.Module(body=[stmt], type_ignores=[]), fn, None, fn.qualname + ".")

    def assigned_name(self, expr: ast.expr) -> str | None:
        """The variable `expr` is assigned to (`graph = builder.compile()` → `graph`), if any."""
        return self._targets.get(id(expr))

    # -- collection -------------------------------------------------------------------------

    def _walk(self, node: ast.AST, fn: Function | None, cls: Class | None, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, _LEAVES):
                continue
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                self._function(child, fn, cls, prefix)
            elif isinstance(child, ast.ClassDef):
                self._class(child, fn, prefix)
            else:
                if isinstance(child, ast.Call):
                    self._call(child, fn)
                elif isinstance(child, ast.Assign | ast.AnnAssign | ast.AugAssign):
                    self._assign(child, fn)
                elif isinstance(child, ast.Import | ast.ImportFrom):
                    self._import(child)
                self._walk(child, fn, None, prefix)

    def _function(
        self, node: FunctionNode, outer: Function | None, cls: Class | None, prefix: str
    ) -> None:
        for deco in node.decorator_list:
            self._walk_expr(deco, outer)
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None:
                self._walk_expr(default, outer)
        args = node.args
        params = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
        params |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
        qual = prefix + node.name
        fn = Function(self, node, qual, cls, params=frozenset(params))
        self.functions.setdefault(qual, fn)
        if cls is not None:
            cls.methods.setdefault(node.name, fn)
        self._pending.append(fn)

    def _walk_expr(self, expr: ast.expr, fn: Function | None) -> None:
        wrapper = ast.Expr(value=expr)
        self._walk(wrapper, fn, None, "")

    def _class(self, node: ast.ClassDef, fn: Function | None, prefix: str) -> None:
        for expr in [*node.bases, *(k.value for k in node.keywords), *node.decorator_list]:
            self._walk_expr(expr, fn)
        qual = prefix + node.name
        cls = Class(self, node, qual)
        self.classes.setdefault(qual, cls)
        for stmt in node.body:
            if isinstance(stmt, ast.Assign):
                for target in stmt.targets:
                    if isinstance(target, ast.Name):
                        cls.attrs[target.id] = stmt.value
            elif (
                isinstance(stmt, ast.AnnAssign)
                and stmt.value is not None
                and isinstance(stmt.target, ast.Name)
            ):
                cls.attrs[stmt.target.id] = stmt.value
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                self._function(stmt, fn, cls, qual + ".")
            elif isinstance(stmt, ast.ClassDef):
                self._class(stmt, fn, qual + ".")
            elif isinstance(stmt, ast.Assign | ast.AnnAssign) and stmt.value is not None:
                self._walk_expr(stmt.value, fn)
            else:
                self._walk(ast.Module(body=[stmt], type_ignores=[]), fn, None, qual + ".")

    def _call(self, node: ast.Call, fn: Function | None) -> None:
        self._calls.append((node, fn))
        if fn is not None:
            fn.record_call(node)
        func = node.func
        if (
            isinstance(func, ast.Attribute)
            and func.attr in ("append", "extend", "insert")
            and isinstance(func.value, ast.Name)
            and node.args
        ):
            self.extends.setdefault(func.value.id, []).append(node.args[-1])

    def _assign(
        self, node: ast.Assign | ast.AnnAssign | ast.AugAssign, fn: Function | None
    ) -> None:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        if fn is not None:
            for t in targets:
                if isinstance(t, ast.Attribute) and not (
                    isinstance(t.value, ast.Name) and t.value.id == "self"
                ):
                    fn.record_attr_write(t.attr, node.lineno)
        if isinstance(node, ast.AugAssign):
            if isinstance(node.target, ast.Name) and isinstance(node.op, ast.Add):
                self.extends.setdefault(node.target.id, []).append(node.value)
            return
        if node.value is None:
            return
        for target in targets:
            if isinstance(target, ast.Name):
                if fn is not None:
                    fn.record_assign(target.id, node.value)
                else:
                    self.assigns[target.id] = node.value
                self._targets.setdefault(id(node.value), target.id)
            elif (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id == "self"
                and fn is not None
                and fn.cls is not None
            ):
                fn.cls.self_attrs[target.attr] = node.value

    def _import(self, node: ast.Import | ast.ImportFrom) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    self.imports[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    self.imports[top] = top
            return
        base = node.module or ""
        if node.level:
            parts = self.name.split(".")
            keep = len(parts) - node.level + (1 if self.is_package else 0)
            base = ".".join([*parts[: max(keep, 0)], *([base] if base else [])])
        for alias in node.names:
            if alias.name != "*":
                self.imports[alias.asname or alias.name] = (
                    f"{base}.{alias.name}" if base else alias.name
                )

    # -- queries ----------------------------------------------------------------------------

    def dotted(self, expr: ast.expr, fn: Function | None = None, depth: int = 0) -> str:
        """A dotted name for `expr`, following imports and simple assignments."""
        if depth > _MAX_DEPTH:
            return "?"
        if isinstance(expr, ast.Name):
            return self._dotted_name(expr.id, fn, depth)
        if isinstance(expr, ast.Attribute):
            value = expr.value
            if (
                isinstance(value, ast.Name)
                and value.id == "self"
                and fn is not None
                and fn.cls is not None
                and expr.attr in self._self_attrs(fn.cls)
            ):
                return self.dotted(fn.cls.self_attrs[expr.attr], None, depth + 1)
            return f"{self.dotted(value, fn, depth + 1)}.{expr.attr}"
        if isinstance(expr, ast.Call):
            head = self.dotted(expr.func, fn, depth + 1)
            first = expr.args[0] if expr.args else None
            if (
                isinstance(first, ast.Constant)
                and isinstance(first.value, str)
                and _IDENT.match(first.value)
            ):
                return f"{head}({first.value})"
            return f"{head}()"
        if isinstance(expr, ast.Subscript):
            return f"{self.dotted(expr.value, fn, depth + 1)}[]"
        if isinstance(expr, ast.Await):
            return self.dotted(expr.value, fn, depth + 1)
        return "?"

    def _self_attrs(self, cls: Class) -> dict[str, ast.expr]:
        for method in list(cls.methods.values()):
            self.walk_body(method)
        return cls.self_attrs

    def _dotted_name(self, name: str, fn: Function | None, depth: int) -> str:
        if fn is not None:
            if name in fn.assigns:
                value = fn.assigns[name]
                if _follows(value, name):
                    return self.dotted(value, fn, depth + 1)
                return name
            if name in fn.params:
                return name
        if name in self.imports:
            return self.imports[name]
        if name in self.assigns:
            value = self.assigns[name]
            if _follows(value, name):
                return self.dotted(value, None, depth + 1)
            return name
        if name in self.functions or name in self.classes:
            return f"{self.name}.{name}"
        return name

    def snippet(self, line: int) -> str:
        """The stripped source line (1-based), cut to 120 characters."""
        if 0 < line <= len(self.lines):
            text = self.lines[line - 1].strip()
            return text if len(text) <= 120 else text[:117] + "..."
        return ""

    def string_value(
        self, expr: ast.expr | None, fn: Function | None = None, depth: int = 0
    ) -> str:
        """The literal text of a string expression; f-string holes and unknowns become `{}`."""
        if expr is None or depth > _MAX_DEPTH:
            return ""
        if isinstance(expr, ast.Constant):
            return expr.value if isinstance(expr.value, str) else ""
        if isinstance(expr, ast.JoinedStr):
            return "".join(
                v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else "{}"
                for v in expr.values
            )
        if isinstance(expr, ast.BinOp):
            left = self.string_value(expr.left, fn, depth + 1)
            if isinstance(expr.op, ast.Mod):
                return left
            return left + self.string_value(expr.right, fn, depth + 1)
        if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute):
            if expr.func.attr in ("format", "strip", "lower", "upper", "join"):
                return self.string_value(expr.func.value, fn, depth + 1)
            return ""
        if isinstance(expr, ast.Name):
            value = (fn.assigns.get(expr.id) if fn is not None else None) or self.assigns.get(
                expr.id
            )
            return self.string_value(value, fn, depth + 1) if value is not None else ""
        return ""


def _follows(value: ast.expr, name: str) -> bool:
    # Follow `x = <call|attribute|name>` but not `x = x.y` loops or literals.
    if isinstance(value, ast.Name):
        return value.id != name
    return isinstance(value, ast.Call | ast.Attribute | ast.Await | ast.Subscript)


class Project:
    """The modules of one scan, indexed by dotted name and by every dotted suffix of it.

    Suffixes make `from billing import refund` resolve when the scan root is a `src/` folder's
    parent. A suffix several modules share (`tools` in two sibling projects) resolves to the one
    nearest the importing file, as Python's script-directory-first path would; a tie resolves to
    nothing.
    """

    def __init__(self, modules: list[Module]) -> None:
        self.modules = modules
        self._exact: dict[str, Module] = {m.name: m for m in modules}
        self._suffix: dict[str, list[Module]] = {}
        for module in modules:
            parts = module.name.split(".")
            for i in range(1, len(parts)):
                self._suffix.setdefault(".".join(parts[i:]), []).append(module)

    def module(self, dotted: str, near: Module | None = None) -> Module | None:
        """The module called `dotted`, or ending so (the nearest to `near` when several do)."""
        exact = self._exact.get(dotted)
        if exact is not None:
            return exact
        candidates = self._suffix.get(dotted, [])
        if len(candidates) == 1:
            return candidates[0]
        if not candidates or near is None:
            return None
        here = near.rel.split("/")[:-1]

        def shared(m: Module) -> int:
            there = m.rel.split("/")[:-1]
            n = 0
            while n < min(len(here), len(there)) and here[n] == there[n]:
                n += 1
            return n

        ranked = sorted(candidates, key=shared, reverse=True)
        return ranked[0] if shared(ranked[0]) > shared(ranked[1]) else None

    def symbol(
        self, dotted: str, depth: int = 0, near: Module | None = None
    ) -> tuple[Module, str] | None:
        """Where `pkg.mod.name` is defined in the project, following re-exports."""
        if depth > _MAX_DEPTH or "." not in dotted:
            return None
        head, _, name = dotted.rpartition(".")
        module = self.module(head, near)
        if module is None:
            return None
        if name in module.functions or name in module.classes or name in module.assigns:
            return module, name
        if name in module.imports:
            return self.symbol(module.imports[name], depth + 1, near=module)
        return None

    def function(self, dotted: str, near: Module | None = None) -> Function | None:
        """The project function a dotted name points at (also `mod.Class.method`)."""
        found = self.symbol(dotted, near=near)
        if found is not None:
            module, name = found
            return module.functions.get(name)
        head, _, method = dotted.rpartition(".")
        owner = self.symbol(head, near=near)
        if owner is not None:
            cls = owner[0].classes.get(owner[1])
            if cls is not None:
                return cls.methods.get(method)
        return None
