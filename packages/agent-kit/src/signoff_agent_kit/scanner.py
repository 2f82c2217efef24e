"""`scan()`: files in, `ScanResult` out.

1. discover the files; parse the Python ones (a file that does not parse is a warning with its
   line, and the scan goes on) and load the JSON ones that look like n8n workflows;
2. find agents, tools and gates (`detect/`);
3. classify every tool (name, docstring, body and the project functions it calls) and add the
   gates its own body asks for before it acts;
4. give declared action names (`approval_node(action="payments.release")`) to the steps they
   gate, or keep them as actions of their own;
5. read the policy file, if any, for owner, SLA, escalation and timeout outcome.
"""

from __future__ import annotations

import ast
import json
import os
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from signoff_agent_kit.call_rules import (
    MCP_KEYWORDS,
)
from signoff_agent_kit.classify import (
    Classifier,
    docstring_categories,
    is_read_only_name,
    name_categories,
    tokens,
)
from signoff_agent_kit.detect.module import Module, Project
from signoff_agent_kit.detect.n8n import scan_workflows
from signoff_agent_kit.detect.python import PythonDetector
from signoff_agent_kit.detect.tools import ToolDef
from signoff_agent_kit.discover import MAX_JSON_BYTES, discover
from signoff_agent_kit.gating import body_gates
from signoff_agent_kit.model import (
    Action,
    Category,
    Confidence,
    Coverage,
    Evidence,
    Gate,
    GateKind,
    ScanResult,
    ScanWarning,
)
from signoff_agent_kit.policy import FIELDS_READ, PolicyFile, coverage, load_policies

__all__ = ["Progress", "scan"]

Progress = Callable[[int, int], None]
"""Called as `progress(done, total)` while files are read."""


def _parse(root: Path, rel: str, result: ScanResult) -> Module | None:
    try:
        with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as handle:
            source = handle.read()
    except OSError as exc:
        result.warnings.append(ScanWarning(rel, 1, f"cannot read: {exc.strerror}"))
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences in the scanned code
            tree = ast.parse(source, filename=rel)
    except SyntaxError as exc:
        result.warnings.append(
            ScanWarning(rel, exc.lineno or 1, f"skipped, does not parse: {exc.msg}")
        )
        return None
    except ValueError as exc:  # null bytes
        result.warnings.append(ScanWarning(rel, 1, f"skipped, does not parse: {exc}"))
        return None
    return Module(rel, source, tree)


def _load_json(root: Path, rel: str, result: ScanResult) -> tuple[str, str, object] | None:
    path = root / rel
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            return None
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        result.warnings.append(ScanWarning(rel, 1, f"cannot read: {exc.strerror}"))
        return None
    if '"nodes"' not in text or '"connections"' not in text:
        return None
    try:
        return rel, text, json.loads(text)
    except json.JSONDecodeError as exc:
        result.warnings.append(ScanWarning(rel, exc.lineno, f"skipped, not valid JSON: {exc.msg}"))
        return None


def _mcp_evidence(tool: ToolDef) -> list[Evidence]:
    words = set(tokens(f"{tool.name} {tool.doc}"))
    return [
        Evidence(
            cat,
            f"MCP server {tool.name!r} ({', '.join(sorted(words & keys))})",
            tool.file,
            tool.line,
            "mcp",
            Confidence.MEDIUM,
        )
        for keys, cat in MCP_KEYWORDS
        if words & keys
    ]


class _Builder:
    """Turns detector output into model actions (evidence, gates, coverage)."""

    def __init__(self, classifier: Classifier, policies: PolicyFile | None) -> None:
        self.classifier = classifier
        self.policies = policies

    def evidence(self, tool: ToolDef) -> tuple[list[Evidence], list[Gate], list[str]]:
        found = list(tool.evidence)
        gates: list[Gate] = []
        notes: list[str] = []
        if tool.kind == "MCP server":
            found += _mcp_evidence(tool)
        for cat, why in name_categories(tool.name):
            found.append(self._named(tool, cat, f"named {tool.name!r} ({why})", "name"))
        if tool.declared and tool.declared != tool.name:
            for cat, why in name_categories(tool.declared):
                reason = f"declared as signoff action {tool.declared!r} ({why})"
                found.append(self._named(tool, cat, reason, "declared"))
        if not found and tool.doc and not tool.kind.startswith(("n8n", "MCP")):
            for cat, why in docstring_categories(tool.doc):
                found.append(self._named(tool, cat, f"docstring says so ({why})", "docstring"))
        for body in tool.bodies:
            findings = self.classifier.function(body)
            found += findings.evidence
            body_gate_list, body_notes = body_gates(
                body, findings.first_line, self.classifier.project
            )
            gates += body_gate_list
            notes += body_notes
        if is_read_only_name(tool.name):
            found = [e for e in found if e.confidence is not Confidence.LOW]
        return found, gates, notes

    @staticmethod
    def _named(tool: ToolDef, cat: Category, reason: str, source: str) -> Evidence:
        conf = Confidence.LOW if source == "docstring" else Confidence.MEDIUM
        return Evidence(cat, reason, tool.file, tool.line, source, conf)

    def action(self, tool: ToolDef) -> Action:
        evidence, body_gate_list, notes = self.evidence(tool)
        gates = _unique([*tool.gates, *body_gate_list])
        notes = [*tool.notes, *notes]
        exposures = tool.exposures
        ungated = [e.label for e in exposures if not e.gates]
        if exposures and not ungated:
            gates = _unique([*gates, *(g for e in exposures for g in e.gates)])
        elif exposures and len(ungated) < len(exposures):
            gated = [e.label for e in exposures if e.gates]
            notes.append(
                f"gated through {', '.join(gated)}, but also runs without a gate through "
                f"{', '.join(ungated)}"
            )
        notes += [g.note for g in gates if g.note]
        action = Action(
            id=tool.key,
            name=tool.name,
            kind=tool.kind,
            framework=tool.framework,
            file=tool.file,
            line=tool.line,
            agents=sorted({e.label for e in exposures}),
            action_name=tool.declared or next((g.action for g in body_gate_list if g.action), None),
            evidence=evidence,
            gates=gates,
            notes=list(dict.fromkeys(notes)),
        )
        action.coverage = self.coverage(action)
        if self.policies is not None and action.coverage.policies and not action.audited:
            action.coverage.notes.append(
                "the policy applies once a signoff gate sends this action to signoff"
            )
        return action

    def coverage(self, action: Action) -> Coverage:
        if self.policies is not None:
            names = list(dict.fromkeys(n for n in (action.action_name, action.name) if n))
            return coverage(self.policies, names)
        signoff = [g for g in action.gates if g.kind is GateKind.SIGNOFF]
        owner = next((g.route for g in signoff if g.route), None)
        sla = next((g.sla for g in signoff if g.sla), None)
        if owner or sla:
            return Coverage(owner=owner, sla=sla, source="gate")
        return Coverage()


def _unique(gates: Iterable[Gate]) -> list[Gate]:
    out: dict[tuple[str, str, int], Gate] = {}
    for gate in gates:
        out.setdefault((gate.mechanism, gate.file, gate.line), gate)
    return list(out.values())


def _declared(
    tools: list[ToolDef],
    approvals: Sequence[tuple[Gate, list[ToolDef]]],
    loose: list[Gate],
    builder: _Builder,
) -> list[ToolDef]:
    """Give approval nodes' action names to the risky steps behind them; keep the rest apart."""
    standalone: list[Gate] = []
    for gate, behind in approvals:
        if not gate.action:
            continue
        wanted = {c for c, _ in name_categories(gate.action)}
        risky = [(t, {e.category for e in builder.evidence(t)[0]}) for t in behind]
        risky = [(t, cats) for t, cats in risky if cats]
        chosen = [t for t, cats in risky if not wanted or cats & wanted]
        for tool in chosen:
            tool.declared = tool.declared or gate.action
        if not chosen:
            standalone.append(gate)
    claimed = {
        (g.file, g.line)
        for t in tools
        for g in [*t.gates, *(eg for e in t.exposures for eg in e.gates)]
    }
    standalone += [g for g in loose if g.action and (g.file, g.line) not in claimed]
    out: dict[str, ToolDef] = {}
    for gate in standalone:
        assert gate.action is not None
        key = f"{gate.file}:{gate.line}:{gate.action}"
        framework = "n8n" if gate.mechanism.startswith("n8n") else gate.mechanism.split(".")[0]
        framework = framework.removeprefix("signoff_").replace("_", "-")
        tool = ToolDef(key, gate.action, "declared action", framework, gate.file, gate.line)
        tool.declared = gate.action
        tool.gates.append(gate)
        tool.notes.append(
            "an action a signoff gate declares; the code that performs it was not found"
        )
        out.setdefault(key, tool)
    return list(out.values())


def scan(
    paths: Sequence[str | Path],
    *,
    config: str | Path | None = None,
    excludes: Sequence[str] = (),
    progress: Progress | None = None,
) -> ScanResult:
    """Scan files and directories; nothing in them is imported or run.

    Raises FileNotFoundError for a path that does not exist and `PolicyFileError` for a policy
    file that cannot be read; a source file that does not parse is a warning in the result.
    """
    started = time.perf_counter()
    policies = load_policies(config) if config is not None else None
    found = discover([Path(p) for p in paths], tuple(excludes))
    result = ScanResult(root=str(found.root))
    result.config = str(config) if config is not None else None
    result.config_fields = list(FIELDS_READ) if config is not None else []
    total = len(found.python) + len(found.json)
    modules: list[Module] = []
    for done, rel in enumerate(found.python, 1):
        module = _parse(found.root, rel, result)
        if module is not None:
            modules.append(module)
        if progress is not None:
            progress(done, total)
    workflows: list[tuple[str, str, object]] = []
    for done, rel in enumerate(found.json, len(found.python) + 1):
        loaded = _load_json(found.root, rel, result)
        if loaded is not None:
            workflows.append(loaded)
        if progress is not None:
            progress(done, total)
    project = Project(modules)
    detector = PythonDetector(project)
    detector.run()
    n8n = scan_workflows(workflows)
    builder = _Builder(Classifier(project), policies)
    tools = [*detector.registry.tools.values(), *n8n.tools]
    approvals = [*((a.gate, a.behind) for a in detector.approvals), *n8n.approvals]
    loose = [c.gate for c in detector.signoff_calls if not c.attached]
    tools += _declared(tools, approvals, loose, builder)
    result.tools = [builder.action(t) for t in tools]
    result.tools = [t for t in result.tools if t.risky or t.kind != "declared action"]
    result.agents = [*detector.agents, *n8n.agents]
    result.files = total
    result.python_files = len(found.python)
    result.workflow_files = len({rel for rel, _, _ in workflows})
    result.seconds = time.perf_counter() - started
    return result
