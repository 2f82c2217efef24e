"""What a scan finds: agents, tools, risky actions, their gates and policy coverage.

Plain frozen-ish dataclasses with `to_dict()` for the JSON output. The vocabulary:

* a **tool** is anything an agent can invoke: a decorated function, a tool class, a plain
  function in a `tools=[...]` list, a LangGraph node, an n8n node, an MCP server;
* a **risky action** is a tool with at least one `Category` of evidence;
* a **gate** is something that pauses the action for a decision before it runs;
* **coverage** is what the policy file (or the gate's own arguments) says about who owns the
  decision, by when, what happens on timeout, and whether signoff's audit log records it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

__all__ = [
    "CATEGORY_LABELS",
    "CATEGORY_RISK",
    "Action",
    "Agent",
    "Category",
    "Confidence",
    "Coverage",
    "Evidence",
    "Gate",
    "GateKind",
    "GateStatus",
    "Risk",
    "ScanResult",
    "ScanWarning",
]


class Category(StrEnum):
    """What a risky action does."""

    MONEY = "money"
    ACCESS = "access"
    DELETION = "data-deletion"
    CUSTOMER_CONTACT = "customer-contact"
    PRODUCTION = "production-change"
    CODE_EXECUTION = "code-execution"


CATEGORY_LABELS: dict[Category, str] = {
    Category.MONEY: "moves money",
    Category.ACCESS: "changes access",
    Category.DELETION: "deletes data",
    Category.CUSTOMER_CONTACT: "contacts customers",
    Category.PRODUCTION: "changes production",
    Category.CODE_EXECUTION: "executes code",
}


class Risk(IntEnum):
    """The signoff risk levels (`low|medium|high|critical`), ordered."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        """The lower-case name used on the wire and on the command line."""
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Risk:
        """`"high"` → `Risk.HIGH`; raises ValueError on anything else."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown risk {text!r}: use low, medium, high or critical") from None


CATEGORY_RISK: dict[Category, Risk] = {
    Category.MONEY: Risk.CRITICAL,
    Category.ACCESS: Risk.CRITICAL,
    Category.DELETION: Risk.HIGH,
    Category.PRODUCTION: Risk.HIGH,
    Category.CODE_EXECUTION: Risk.HIGH,
    Category.CUSTOMER_CONTACT: Risk.MEDIUM,
}


class Confidence(StrEnum):
    """How sure the classification is: a payment SDK call beats a tool's name."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class GateKind(StrEnum):
    """How strong a gate is."""

    SIGNOFF = "signoff"
    """A signoff adapter or client: routed, timed and recorded in the audit log."""
    FRAMEWORK = "framework"
    """The framework's own pause (interrupt, needs_approval, guardrail, n8n wait); no audit."""
    WEAK = "weak"
    """Something that looks like review but can fail open or runs after the side effect."""


class GateStatus(StrEnum):
    """Whether a risky action is gated."""

    GATED = "gated"
    WEAK = "weak"
    UNGATED = "ungated"


@dataclass(slots=True)
class Evidence:
    """Why an action is in a category: the call, name or docstring that says so."""

    category: Category
    reason: str
    file: str
    line: int
    source: str
    """`call`, `sql`, `http`, `shell`, `name`, `docstring`, `declared`, `n8n` or `mcp`."""
    confidence: Confidence
    snippet: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "category": self.category.value,
            "reason": self.reason,
            "file": self.file,
            "line": self.line,
            "source": self.source,
            "confidence": self.confidence.value,
            "snippet": self.snippet,
        }


@dataclass(slots=True)
class Gate:
    """One mechanism that pauses an action for a decision."""

    kind: GateKind
    mechanism: str
    file: str
    line: int
    action: str | None = None
    """The signoff action name the gate declares (`payments.release`), when it says."""
    route: str | None = None
    sla: str | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "kind": self.kind.value,
            "mechanism": self.mechanism,
            "file": self.file,
            "line": self.line,
            "action": self.action,
            "route": self.route,
            "sla": self.sla,
            "note": self.note,
        }


@dataclass(slots=True)
class Coverage:
    """What the policy file says about an action: owner, SLA, escalation, timeout outcome."""

    policies: list[str] = field(default_factory=list[str])
    owner: str | None = None
    sla: str | None = None
    escalation: str | None = None
    on_timeout: str | None = None
    auto: str | None = None
    conditional: bool = False
    """True when every matching policy has a condition the scanner does not evaluate."""
    source: str = "none"
    """`policy` (from --config), `gate` (arguments of the gate call) or `none`."""
    by_default: bool = False
    """Only the file's catch-all `default` policy applies."""
    notes: list[str] = field(default_factory=list[str])

    @property
    def owned(self) -> bool:
        """A role is named as the owner of the decision (a catch-all default does not count)."""
        return self.owner is not None and not self.by_default

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "policies": self.policies,
            "owner": self.owner,
            "sla": self.sla,
            "escalation": self.escalation,
            "on_timeout": self.on_timeout,
            "auto": self.auto,
            "conditional": self.conditional,
            "source": self.source,
            "by_default": self.by_default,
            "owned": self.owned,
            "notes": self.notes,
        }


@dataclass(slots=True)
class Action:
    """A tool, node or workflow step an agent can run, with what it does and how it is gated."""

    id: str
    name: str
    kind: str
    framework: str
    file: str
    line: int
    agents: list[str] = field(default_factory=list[str])
    action_name: str | None = None
    """The signoff action name: declared by a gate, else the tool's name."""
    evidence: list[Evidence] = field(default_factory=list[Evidence])
    gates: list[Gate] = field(default_factory=list[Gate])
    coverage: Coverage = field(default_factory=Coverage)
    notes: list[str] = field(default_factory=list[str])

    @property
    def categories(self) -> list[Category]:
        """Distinct categories, riskiest first."""
        seen = {e.category for e in self.evidence}
        return sorted(seen, key=lambda c: (-CATEGORY_RISK[c], list(Category).index(c)))

    @property
    def risky(self) -> bool:
        """At least one category of evidence."""
        return bool(self.evidence)

    @property
    def risk(self) -> Risk:
        """The highest risk of its categories (LOW for a tool with none)."""
        return max((CATEGORY_RISK[c] for c in self.categories), default=Risk.LOW)

    @property
    def confidence(self) -> Confidence:
        """The best confidence among the evidence for its riskiest category."""
        cats = self.categories
        if not cats:
            return Confidence.LOW
        order = [Confidence.HIGH, Confidence.MEDIUM, Confidence.LOW]
        best = min(
            (order.index(e.confidence) for e in self.evidence if e.category is cats[0]),
            default=2,
        )
        return order[best]

    @property
    def status(self) -> GateStatus:
        """Gated by a signoff or framework gate, weakly gated, or not gated."""
        kinds = {g.kind for g in self.gates}
        if kinds & {GateKind.SIGNOFF, GateKind.FRAMEWORK}:
            return GateStatus.GATED
        if GateKind.WEAK in kinds:
            return GateStatus.WEAK
        return GateStatus.UNGATED

    @property
    def audited(self) -> bool:
        """A signoff gate records every step of the decision in the audit log."""
        return any(g.kind is GateKind.SIGNOFF for g in self.gates)

    @property
    def display_name(self) -> str:
        """The action name when a gate declares one, else the tool name."""
        return self.action_name or self.name

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "id": self.id,
            "name": self.name,
            "action": self.display_name,
            "kind": self.kind,
            "framework": self.framework,
            "file": self.file,
            "line": self.line,
            "agents": self.agents,
            "categories": [c.value for c in self.categories],
            "risk": self.risk.label,
            "confidence": self.confidence.value,
            "status": self.status.value,
            "audited": self.audited,
            "evidence": [e.to_dict() for e in self.evidence],
            "gates": [g.to_dict() for g in self.gates],
            "coverage": self.coverage.to_dict(),
            "notes": self.notes,
        }


@dataclass(slots=True)
class Agent:
    """Something that decides which tools to call: an Agent, a crew, a graph, a workflow."""

    name: str
    kind: str
    framework: str
    file: str
    line: int
    tools: list[str] = field(default_factory=list[str])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "kind": self.kind,
            "framework": self.framework,
            "file": self.file,
            "line": self.line,
            "tools": self.tools,
        }


@dataclass(slots=True)
class ScanWarning:
    """A file the scanner could not read fully; the scan went on."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"file": self.file, "line": self.line, "message": self.message}


@dataclass(slots=True)
class ScanResult:
    """Everything one scan found."""

    root: str
    files: int = 0
    python_files: int = 0
    workflow_files: int = 0
    seconds: float = 0.0
    agents: list[Agent] = field(default_factory=list[Agent])
    tools: list[Action] = field(default_factory=list[Action])
    """Every tool found, risky or not."""
    warnings: list[ScanWarning] = field(default_factory=list[ScanWarning])
    config: str | None = None
    config_fields: list[str] = field(default_factory=list[str])
    """The policy fields the reader looked at (so a reader of the report knows what counted)."""

    @property
    def actions(self) -> list[Action]:
        """The risky actions, riskiest and least covered first."""
        return sorted((t for t in self.tools if t.risky), key=_rank)

    @property
    def gaps(self) -> list[Action]:
        """Risky actions not gated, weakly gated, or (with a config) gated but not owned."""
        return [a for a in self.actions if _gap(a, self.config is not None)]

    def ungated_at_or_above(self, risk: Risk) -> list[Action]:
        """Risky actions at or above `risk` that are not (or only weakly) gated."""
        return [a for a in self.actions if a.risk >= risk and a.status is not GateStatus.GATED]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the `--format json` document)."""
        actions = self.actions
        return {
            "root": self.root,
            "files": self.files,
            "python_files": self.python_files,
            "workflow_files": self.workflow_files,
            "seconds": round(self.seconds, 3),
            "config": self.config,
            "config_fields": self.config_fields,
            "summary": {
                "agents": len(self.agents),
                "tools": len(self.tools),
                "risky_actions": len(actions),
                "gated": sum(a.status is GateStatus.GATED for a in actions),
                "weak": sum(a.status is GateStatus.WEAK for a in actions),
                "ungated": sum(a.status is GateStatus.UNGATED for a in actions),
                "owned": sum(a.coverage.owned for a in actions),
                "audited": sum(a.audited for a in actions),
                "gaps": len(self.gaps),
            },
            "agents": [a.to_dict() for a in self.agents],
            "actions": [a.to_dict() for a in actions],
            "safe_tools": sorted({t.name for t in self.tools if not t.risky}),
            "gaps": [a.id for a in self.gaps],
            "warnings": [w.to_dict() for w in self.warnings],
        }


_STATUS_ORDER = {GateStatus.UNGATED: 0, GateStatus.WEAK: 1, GateStatus.GATED: 2}


def _rank(a: Action) -> tuple[int, int, int, str, int]:
    return (-a.risk, _STATUS_ORDER[a.status], int(a.coverage.owned), a.file, a.line)


def _gap(a: Action, with_config: bool) -> bool:
    if a.status is not GateStatus.GATED:
        return True
    if a.coverage.auto == "approve" and not a.coverage.conditional:
        return True
    return with_config and not a.coverage.owned
