"""signoff-agent-kit: `signoff scan`, the map of agents and risky actions in a codebase.

`scan(paths, config=...)` reads Python (with `ast`; nothing is imported or run) and n8n workflow
JSON, and returns a `ScanResult`: the agents, every tool they can call, which tools move money,
change access, delete data, contact customers, change production or execute code (with the
evidence line), whether each is gated, and — with a `signoff.yaml` — who owns the decision, by
when, and what happens on timeout. `render_text`, `to_json` and `to_sarif` format a result;
`suggest_config` writes a starting policy file.
"""

from signoff_agent_kit.model import (
    Action,
    Agent,
    Category,
    Confidence,
    Coverage,
    Evidence,
    Gate,
    GateKind,
    GateStatus,
    Risk,
    ScanResult,
    ScanWarning,
)
from signoff_agent_kit.policy import PolicyFileError
from signoff_agent_kit.scanner import scan

__version__ = "0.1.0"

__all__ = [
    "Action",
    "Agent",
    "Category",
    "Confidence",
    "Coverage",
    "Evidence",
    "Gate",
    "GateKind",
    "GateStatus",
    "PolicyFileError",
    "Risk",
    "ScanResult",
    "ScanWarning",
    "__version__",
    "scan",
]
