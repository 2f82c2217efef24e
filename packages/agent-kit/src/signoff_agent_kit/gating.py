"""Recognising gates: what pauses an action for a decision before it runs.

* **signoff** — a call into an adapter package (`signoff_langgraph.gate_tools`,
  `signoff_openai_agents.gate` / `approval_guardrail`, `signoff_crewai.gated_tool`, …) or the core
  client's `create_request` in the tool's own body. Routed, timed and in the audit log.
* **framework** — LangGraph `interrupt()` / `interrupt_before`, LangChain's
  `HumanInTheLoopMiddleware`, OpenAI Agents `needs_approval` and tool input guardrails, MCP
  `require_approval`, n8n wait / send-and-wait nodes. A pause, with no owner or audit trail.
* **weak** — CrewAI `human_input=True` (reviews the output after the tools ran) and
  `before_tool_call` hooks (fail open on errors), a console `input()` prompt.

This module turns calls and keyword arguments into `Gate` records; the detectors decide what each
gate covers.
"""

from __future__ import annotations

import ast

from signoff_agent_kit.classify import strip_calls
from signoff_agent_kit.detect.frameworks import Construct, construct, is_signoff_adapter
from signoff_agent_kit.detect.module import Function, Module, Project
from signoff_agent_kit.model import Gate, GateKind

__all__ = [
    "body_gates",
    "declared_action",
    "option_gates",
    "signoff_gate",
    "truthy",
]

_ACTION_KW = ("action", "action_name")
_ROUTE_KW = ("route", "role", "owner")


def _kw(call: ast.Call, *names: str) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg in names:
            return kw.value
    return None


def _text(module: Module, expr: ast.expr | None) -> str | None:
    if expr is None:
        return None
    if isinstance(expr, ast.Dict):  # route={"role": "finance-approver"}
        for key, value in zip(expr.keys, expr.values, strict=True):
            if isinstance(key, ast.Constant) and key.value in ("role", "name"):
                return _text(module, value)
        return None
    if isinstance(expr, ast.Call):  # route=Route(role="…"), action=Action(name="…")
        inner = _kw(expr, "role", "name")
        return _text(module, inner) if inner is not None else None
    return module.string_value(expr) or None


def truthy(expr: ast.expr | None) -> bool:
    """An option that is set and not literally False/None/"never"/empty."""
    if expr is None:
        return False
    if isinstance(expr, ast.Constant):
        return expr.value not in (False, None, 0, "", "never")
    if isinstance(expr, ast.List | ast.Tuple | ast.Set | ast.Dict):
        return bool(expr.keys if isinstance(expr, ast.Dict) else expr.elts)
    return True


def signoff_gate(module: Module, fn: Function | None, call: ast.Call, kind: str = "") -> Gate:
    """The gate a signoff adapter call makes, with the action, route and SLA it declares."""
    name = strip_calls(module.dotted(call.func, fn))
    short = ".".join(name.split(".")[:1] + name.split(".")[-1:])
    options = _kw(call, "options")  # approval_guardrail(options=GateOptions(action=…))
    sources = [call, options] if isinstance(options, ast.Call) else [call]

    def first(*names: str) -> str | None:
        for source in sources:
            text = _text(module, _kw(source, *names))
            if text:
                return text
        return None

    return Gate(
        kind=GateKind.SIGNOFF,
        mechanism=short + (f" ({kind})" if kind else ""),
        file=module.rel,
        line=call.lineno,
        action=first(*_ACTION_KW),
        route=first(*_ROUTE_KW),
        sla=first("sla"),
    )


def option_gates(module: Module, fn: Function | None, call: ast.Call) -> list[Gate]:
    """Gates set through a tool's options: `needs_approval`, input guardrails, MCP approval."""
    gates: list[Gate] = []
    needs = _kw(call, "needs_approval")
    if truthy(needs):
        gates.append(Gate(GateKind.FRAMEWORK, "needs_approval", module.rel, call.lineno))
    guardrails = _kw(call, "tool_input_guardrails")
    if isinstance(guardrails, ast.List | ast.Tuple):
        for item in guardrails.elts:
            if isinstance(item, ast.Call) and is_signoff_adapter(module.dotted(item.func, fn)):
                gates.append(signoff_gate(module, fn, item, "tool input guardrail"))
            else:
                label = f"tool input guardrail {strip_calls(module.dotted(item, fn))}"
                gates.append(Gate(GateKind.FRAMEWORK, label, module.rel, call.lineno))
    elif guardrails is not None and truthy(guardrails):
        gates.append(Gate(GateKind.FRAMEWORK, "tool input guardrails", module.rel, call.lineno))
    require = _kw(call, "require_approval")
    if require is not None and truthy(require):
        gates.append(Gate(GateKind.FRAMEWORK, "require_approval", module.rel, call.lineno))
    config = _kw(call, "tool_config")
    if isinstance(config, ast.Dict):
        for key, value in zip(config.keys, config.values, strict=True):
            if isinstance(key, ast.Constant) and key.value == "require_approval" and truthy(value):
                gates.append(Gate(GateKind.FRAMEWORK, "require_approval", module.rel, call.lineno))
    return gates


def declared_action(fn: Function) -> str | None:
    """An action name a body gives signoff itself: `Action(name=…)` or `{"action": {"name": …}}`."""
    for node in ast.walk(fn.node):
        if isinstance(node, ast.Call) and strip_calls(fn.module.dotted(node.func, fn)).endswith(
            "Action"
        ):
            text = _text(fn.module, _kw(node, "name"))
            if text:
                return text
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "action":
                    text = _text(fn.module, value)
                    if text:
                        return text
    return None


def _imports_signoff(module: Module) -> bool:
    return any(q.split(".", 1)[0] == "signoff" for q in module.imports.values())


def body_gates(
    fn: Function, first_risky_line: int, project: Project
) -> tuple[list[Gate], list[str]]:
    """Gates a body asks for itself before it acts, and notes about ones that come too late.

    An approval asked for after the first risky call does not gate it: that is a note, not a gate.
    """
    module = fn.module
    gates: list[Gate] = []
    notes: list[str] = []
    uses_client = _imports_signoff(module)
    for call in fn.calls:
        dotted = module.dotted(call.func, fn)
        plain = strip_calls(dotted)
        gate: Gate | None = None
        if construct(plain, Construct.INTERRUPT, project):
            gate = Gate(GateKind.FRAMEWORK, "LangGraph interrupt()", module.rel, call.lineno)
        elif is_signoff_adapter(plain):
            gate = signoff_gate(module, fn, call)
        elif plain.endswith("create_request") and (
            plain.split(".", 1)[0] == "signoff" or uses_client
        ):
            gate = Gate(
                GateKind.SIGNOFF,
                "signoff client create_request",
                module.rel,
                call.lineno,
                action=declared_action(fn),
            )
        elif plain == "input":
            gate = Gate(GateKind.WEAK, "console input() prompt", module.rel, call.lineno)
            gate.note = "a terminal prompt: no owner, no deadline, no audit trail"
        if gate is None:
            continue
        if first_risky_line and call.lineno > first_risky_line:
            notes.append(
                f"{gate.mechanism} at line {call.lineno} comes after the risky call at line "
                f"{first_risky_line}: it does not gate it"
            )
            continue
        gates.append(gate)
    return gates, notes
