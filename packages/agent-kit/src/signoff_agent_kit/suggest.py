"""Suggestions: the gate to add for each gap, and a starting `signoff.yaml`.

`suggested_gate(action)` is one line of code in the action's own framework.
`suggest_config(result)` writes a policy file in the server's schema (docs/policies.md): one
role per kind of risk, one escalation chain per role, one policy per risky action, and a
fail-closed `default`. People are left for the team to fill in: `signoff check` reports the
roles nobody holds yet.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import yaml

from signoff_agent_kit.model import CATEGORY_LABELS, Action, Category, Risk, ScanResult

__all__ = ["ROLE_FOR", "SLA_FOR", "suggest_config", "suggested_gate"]

ROLE_FOR: dict[Category, tuple[str, str]] = {
    Category.MONEY: ("finance-approver", "Approves actions that move money."),
    Category.ACCESS: ("security-admin", "Approves changes to who can access what."),
    Category.DELETION: ("data-owner", "Approves deleting data."),
    Category.PRODUCTION: ("sre-oncall", "Approves changes to production systems."),
    Category.CODE_EXECUTION: ("platform-owner", "Approves running code and shell commands."),
    Category.CUSTOMER_CONTACT: ("support-lead", "Approves messages sent to customers."),
}
"""The owning role suggested for an action, by its riskiest category."""

SLA_FOR: dict[Risk, tuple[str, str]] = {
    Risk.CRITICAL: ("PT2H", "PT30M"),
    Risk.HIGH: ("PT4H", "PT1H"),
    Risk.MEDIUM: ("PT8H", "PT2H"),
    Risk.LOW: ("P1D", "PT4H"),
}
"""(SLA, wait before escalating) by risk."""


def suggested_gate(action: Action) -> str:
    """The smallest change that gates `action` with signoff, in its framework's terms."""
    name, act = action.name, action.display_name
    role = ROLE_FOR[action.categories[0]][0] if action.categories else "owner"
    if action.framework == "langgraph" and action.kind == "graph node":
        return (
            f'signoff_langgraph: add approval_node(action="{act}", route="{role}", '
            f'on_approve="{name}", ...) before node {name!r} and wrap the node in '
            f'gated_action(..., action="{act}")'
        )
    if action.framework in ("langgraph", "langchain"):
        return (
            f'signoff_langgraph: replace the ToolNode with gate_tools(tools, gated={{"{name}": '
            f'ToolGate(action="{act}", route="{role}")}}, client=client)'
        )
    if action.framework == "openai-agents" and action.kind == "MCP server":
        return (
            'OpenAI Agents SDK: require_approval="always" (or put it behind signoff_mcp\'s proxy)'
        )
    if action.framework == "openai-agents":
        return f'signoff_openai_agents: gate({name}, client=client, action="{act}", route="{role}")'
    if action.framework == "crewai" and action.kind == "flow step":
        return (
            f"signoff_crewai: put a step with @human_feedback(provider=SignoffFeedbackProvider("
            f'action="{act}", route="{role}")) before {name!r} and route on decision_of(flow)'
        )
    if action.framework == "crewai":
        return (
            f'signoff_crewai: wrap the tool with gated_tool({name}, action="{act}", '
            f'route="{role}") (gates _run; a denial is returned to the agent, never raised)'
        )
    if action.framework == "n8n":
        return (
            f"n8n: insert a signoff node (n8n-nodes-signoff, action {act!r}) before "
            f"{name!r} and connect only its Approved output to it"
        )
    if action.framework == "mcp":
        return "signoff_mcp: serve these tools through signoff's gating MCP proxy"
    return (
        f'signoff client: create_request(action={{"name": "{act}", ...}}) and wait for '
        "approval before the call"
    )


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "action"


def _glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def suggest_config(result: ScanResult) -> str:
    """A starting signoff.yaml with one policy per risky action of `result`."""
    actions = result.actions
    by_role: dict[str, tuple[str, Risk]] = {}
    policies: list[dict[str, object]] = []
    comments: list[str] = []
    used: set[str] = set()
    for action in actions:
        category = action.categories[0]
        role, description = ROLE_FOR[category]
        risk = action.risk
        sla, _ = SLA_FOR[risk]
        worst = by_role.get(role, (description, Risk.LOW))[1]
        by_role[role] = (description, max(worst, risk))
        name = _slug(action.display_name)
        while name in used:
            name += "-2"
        used.add(name)
        does = ", ".join(CATEGORY_LABELS[c] for c in action.categories)
        policies.append(
            {
                "name": name,
                "description": f"{action.display_name} ({action.file}:{action.line}) {does}.",
                "match": {"action": _glob_escape(action.display_name)},
                "route": role,
                "sla": sla,
                "on_timeout": "reject",
                "escalation": f"{role}-escalation",
                "risk": risk.label,
            }
        )
        comments.append(f"#   {name}: {action.status.value}, {risk.label}")
    roles: dict[str, object] = {
        role: {"description": description, "members": []}
        for role, (description, _) in sorted(by_role.items())
    }
    roles["admin"] = {"description": "Decides what no policy covers.", "members": []}
    escalations: dict[str, object] = {
        f"{role}-escalation": [
            {"notify": "on_shift"},
            {"wait": SLA_FOR[risk][1]},
            {"escalate_to": "admin"},
        ]
        for role, (_, risk) in sorted(by_role.items())
    }
    document: dict[str, object] = {
        "version": 1,
        "timezone": "UTC",
        "people": [],
        "roles": roles,
        "escalations": escalations,
        "policies": policies,
        "default": {"route": "admin", "sla": "P1D", "on_timeout": "reject"},
    }
    today = datetime.now(UTC).date().isoformat()
    header = [
        f"# A starting signoff.yaml, written by `signoff scan --suggest-config` on {today}",
        f"# from {result.root} ({len(actions)} risky actions).",
        "#",
        "# Next: add people (and schedules) to the roles, adjust SLAs and quorums (money and",
        "# access often want `approvals: {mode: threshold, required: 2}`), then run",
        "# `signoff check --config signoff.yaml`. Unmatched actions fall to `default`, which",
        "# fails closed. Policies:",
        *comments,
        "",
    ]
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
    return "\n".join(header) + body
