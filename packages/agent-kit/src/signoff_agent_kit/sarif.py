"""SARIF 2.1.0 output, for code-scanning UIs (GitHub code scanning, GitLab, VS Code viewers).

One result per gap: an ungated risky action (rule `ungated/<category>`, by its riskiest
category), a weakly gated one (`weak-gate`), one a policy auto-approves (`auto-approved`), and
— with `--config` — a gated action no policy gives an owner (`no-owner`). The action's
definition is the location; the evidence lines are related locations. Files that did not parse
are tool execution notifications. `partialFingerprints` keep a result stable across line moves.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from signoff_agent_kit.model import (
    CATEGORY_LABELS,
    CATEGORY_RISK,
    Action,
    Category,
    GateStatus,
    Risk,
    ScanResult,
)
from signoff_agent_kit.suggest import suggested_gate

__all__ = ["SARIF_SCHEMA", "to_sarif"]

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
HELP = "See docs/scan.md in the signoff repository for what counts and how to gate it."
_SEVERITY = {Risk.CRITICAL: "9.0", Risk.HIGH: "7.5", Risk.MEDIUM: "5.0", Risk.LOW: "3.0"}


def _rule(
    rule_id: str, name: str, short: str, full: str, level: str, severity: str
) -> dict[str, Any]:
    return {
        "id": rule_id,
        "name": name,
        "shortDescription": {"text": short},
        "fullDescription": {"text": full},
        "help": {"text": f"{full} {HELP}"},
        "defaultConfiguration": {"level": level},
        "properties": {
            "tags": ["security", "ai-agents", "approval"],
            "security-severity": severity,
        },
    }


def _rules() -> list[dict[str, Any]]:
    rules = [
        _rule(
            f"ungated/{c.value}",
            "Ungated" + "".join(w.title() for w in c.value.split("-")),
            f"An agent tool that {CATEGORY_LABELS[c]} runs without an approval gate",
            f"An agent can call this tool, which {CATEGORY_LABELS[c]}, and nothing pauses it "
            "for a decision first. Gate it with a signoff adapter so a named owner approves "
            "each call within an SLA, with a timeout outcome and an audit trail.",
            "error" if CATEGORY_RISK[c] >= Risk.HIGH else "warning",
            _SEVERITY[CATEGORY_RISK[c]],
        )
        for c in Category
    ]
    rules.append(
        _rule(
            "weak-gate",
            "WeakGate",
            "A risky tool is only weakly gated",
            "The only review in front of this tool can fail open (a CrewAI tool hook) or comes "
            "after the tool already ran (CrewAI human_input), or is a console prompt.",
            "warning",
            "7.0",
        )
    )
    rules.append(
        _rule(
            "auto-approved",
            "AutoApproved",
            "A policy approves a risky action without a person",
            "The policy that applies to this action decides it at once with auto: approve.",
            "warning",
            "6.0",
        )
    )
    rules.append(
        _rule(
            "no-owner",
            "NoOwner",
            "A gated action has no owner in the policy file",
            "The action is gated, but no policy in signoff.yaml routes it to a role (only the "
            "catch-all default, or nothing, applies).",
            "note",
            "4.0",
        )
    )
    return rules


def _location(file: str, line: int) -> dict[str, Any]:
    return {
        "physicalLocation": {
            "artifactLocation": {"uri": file, "uriBaseId": "SRCROOT"},
            "region": {"startLine": max(line, 1)},
        }
    }


def _rule_for(action: Action, with_config: bool) -> str | None:
    if action.status is GateStatus.UNGATED:
        return f"ungated/{action.categories[0].value}"
    if action.status is GateStatus.WEAK:
        return "weak-gate"
    if action.coverage.auto == "approve" and not action.coverage.conditional:
        return "auto-approved"
    if with_config and not action.coverage.owned:
        return "no-owner"
    return None


def _message(action: Action, rule: str) -> str:
    does = ", ".join(CATEGORY_LABELS[c] for c in action.categories)
    head = f"{action.kind} {action.display_name!r} ({action.framework}) {does}"
    if rule.startswith("ungated/"):
        return f"{head} and is not gated. Gate it: {suggested_gate(action)}."
    if rule == "weak-gate":
        return f"{head}; its only gate is weak: {'; '.join(action.notes) or 'see the gates'}."
    if rule == "auto-approved":
        return f"{head}; policy {', '.join(action.coverage.policies)} approves it at once."
    return f"{head}; it is gated but no policy names an owner."


def to_sarif(result: ScanResult) -> str:
    """The `--format sarif` document (SARIF 2.1.0, one run)."""
    rules = _rules()
    index = {r["id"]: i for i, r in enumerate(rules)}
    with_config = result.config is not None
    results: list[dict[str, Any]] = []
    for action in result.gaps:
        rule = _rule_for(action, with_config)
        if rule is None:
            continue
        level = rules[index[rule]]["defaultConfiguration"]["level"]
        if rule.startswith("ungated/") and action.risk < Risk.HIGH:
            level = "warning"
        fingerprint = hashlib.sha256(f"{rule}|{action.file}|{action.display_name}".encode())
        results.append(
            {
                "ruleId": rule,
                "ruleIndex": index[rule],
                "level": level,
                "message": {"text": _message(action, rule)},
                "locations": [_location(action.file, action.line)],
                "relatedLocations": [
                    {**_location(e.file, e.line), "id": n, "message": {"text": e.reason}}
                    for n, e in enumerate(action.evidence[:10], 1)
                ],
                "partialFingerprints": {"signoffAction/v1": fingerprint.hexdigest()[:32]},
                "properties": {
                    "risk": action.risk.label,
                    "categories": [c.value for c in action.categories],
                    "confidence": action.confidence.value,
                    "status": action.status.value,
                    "framework": action.framework,
                    "agents": action.agents,
                },
            }
        )
    notifications = [
        {
            "level": "warning",
            "message": {"text": w.message},
            "locations": [_location(w.file, w.line)],
        }
        for w in result.warnings
    ]
    root_uri = Path(result.root).as_uri().rstrip("/") + "/"
    document = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "signoff-scan",
                        "semanticVersion": "0.1.0",
                        "version": "0.1.0",
                        "rules": rules,
                    }
                },
                "originalUriBaseIds": {"SRCROOT": {"uri": root_uri}},
                "invocations": [
                    {
                        "executionSuccessful": True,
                        "toolExecutionNotifications": notifications,
                    }
                ],
                "results": results,
            }
        ],
    }
    return json.dumps(document, indent=2) + "\n"
