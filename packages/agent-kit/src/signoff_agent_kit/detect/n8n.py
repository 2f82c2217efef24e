"""n8n workflow JSON: nodes that write to external systems, and whether a gate precedes them.

A workflow is a JSON object with `nodes` (each with `name`, `type`, `parameters`) and
`connections` (`{"Source": {"main": [[{"node": "Target"}], ...]}}`); an export may hold a list of
them. Risky nodes are classified by type, resource and operation (n8n omits parameters left at
their default, so a messaging node without an operation sends). Gates: the `n8n-nodes-signoff`
node (its first output is "Approved"; the others are not gated), a Wait node that resumes on a
webhook or form, and any `sendAndWait` operation. Nodes an AI Agent calls as tools (`ai_tool`
connections) run whenever the model decides: they are gated only by being a gate themselves.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, cast

from signoff_agent_kit.call_rules import (
    HTTP_HINTS,
    HTTP_READ_URL,
    SHELL_HINTS,
    SQL_RULES,
)
from signoff_agent_kit.classify import name_categories
from signoff_agent_kit.detect.tools import ToolDef
from signoff_agent_kit.graph import gates_reaching, ungated_reach
from signoff_agent_kit.model import Agent, Category, Confidence, Evidence, Gate, GateKind

__all__ = ["N8nScan", "is_workflow", "scan_workflows"]

_PAYMENT = {"stripe", "paypal", "quickbooks", "xero", "wise", "chargebee", "paddle", "invoiceninja"}
_MESSAGING = {
    "gmail",
    "emailsend",
    "sendgrid",
    "mailgun",
    "mailchimp",
    "mailjet",
    "microsoftoutlook",
    "slack",
    "twilio",
    "telegram",
    "discord",
    "whatsapp",
    "mattermost",
    "microsoftteams",
    "sms77",
    "vonage",
    "messagebird",
    "postmark",
    "awsses",
    "awssns",
    "plivo",
    "pushover",
    "sendemail",
    "gotify",
    "line",
    "matrix",
    "rocketchat",
    "zulip",
    "brevo",
    "sendinblue",
}
_ACCESS = {"okta", "microsoftentra", "azuread", "gsuiteadmin", "googleworkspaceadmin", "jumpcloud"}
_DATABASES = {
    "postgres",
    "mysql",
    "microsoftsql",
    "mongodb",
    "snowflake",
    "supabase",
    "redis",
    "oracledb",
    "questdb",
    "cratedb",
    "timescaledb",
    "mariadb",
    "sqlite",
}
_CODE = {"executecommand", "ssh"}
_REPO = {"github", "gitlab", "bitbucket", "git"}
_WRITE_OPS = {
    "create",
    "update",
    "upsert",
    "insert",
    "execute",
    "post",
    "send",
    "edit",
    "add",
    "push",
    "merge",
    "append",
    "patch",
    "release",
    "invite",
    "pay",
    "refund",
    "capture",
}
_DELETE_OPS = re.compile(r"^(delete|remove|truncate|drop|clear|purge)", re.IGNORECASE)


@dataclass(slots=True)
class N8nScan:
    """What the workflow files contributed."""

    agents: list[Agent] = field(default_factory=list[Agent])
    tools: list[ToolDef] = field(default_factory=list[ToolDef])
    approvals: list[tuple[Gate, list[ToolDef]]] = field(
        default_factory=list[tuple[Gate, list[ToolDef]]]
    )


def is_workflow(data: object) -> bool:
    """A JSON value that looks like an n8n workflow (or a list of them)."""
    if isinstance(data, list):
        return any(is_workflow(x) for x in cast(list[object], data))
    if not isinstance(data, dict):
        return False
    wf = cast(dict[str, object], data)
    nodes = wf.get("nodes")
    return (
        isinstance(nodes, list)
        and isinstance(wf.get("connections"), dict)
        and all(isinstance(n, dict) and "type" in n for n in cast(list[object], nodes))
    )


def _short(node_type: str) -> tuple[str, bool]:
    short = node_type.rsplit(".", 1)[-1]
    as_tool = short.endswith("Tool") or short.startswith("tool")
    if short.endswith("Tool"):
        short = short[: -len("Tool")]
    return short.lower(), as_tool


def _params(node: dict[str, Any]) -> dict[str, Any]:
    params = node.get("parameters")
    return cast(dict[str, Any], params) if isinstance(params, dict) else {}


def _text(params: dict[str, Any], *keys: str) -> str:
    for key in keys:
        value = params.get(key)
        if isinstance(value, str):
            return value
    return ""


def _gate(node: dict[str, Any], rel: str, line: int) -> Gate | None:
    node_type = str(node.get("type", ""))
    params = _params(node)
    if node_type.startswith("n8n-nodes-signoff."):
        return Gate(
            GateKind.SIGNOFF,
            "n8n-nodes-signoff",
            rel,
            line,
            action=_text(params, "action", "actionName") or None,
            route=_text(params, "route", "role") or None,
            sla=_text(params, "sla") or None,
        )
    short, _ = _short(node_type)
    if short == "wait" and _text(params, "resume") in ("webhook", "form"):
        return Gate(GateKind.FRAMEWORK, "n8n Wait (resume on webhook/form)", rel, line)
    if _text(params, "operation") == "sendAndWait":
        return Gate(GateKind.FRAMEWORK, f"n8n {short} send-and-wait", rel, line)
    return None


def _classify(node: dict[str, Any], rel: str, line: int) -> list[Evidence]:
    short, _ = _short(str(node.get("type", "")))
    params = _params(node)
    op = _text(params, "operation")
    resource = _text(params, "resource")
    label = f"n8n {short}" + (f" {resource}" if resource else "") + (f" {op}" if op else "")
    out: list[Evidence] = []

    def add(cat: Category, conf: Confidence = Confidence.HIGH, why: str = label) -> None:
        out.append(Evidence(cat, why, rel, line, "n8n", conf, str(node.get("name", ""))))

    if _DELETE_OPS.match(op):
        add(Category.DELETION)
    writes = op.lower() in _WRITE_OPS or any(op.lower().startswith(w) for w in _WRITE_OPS)
    if short in _PAYMENT and writes:
        add(Category.MONEY)
    if short in _MESSAGING and (not op or writes or op.lower().startswith(("reply", "send"))):
        add(Category.CUSTOMER_CONTACT)
    if short in _ACCESS and (writes or _DELETE_OPS.match(op)):
        add(Category.ACCESS)
    if short in _CODE:
        command = _text(params, "command")
        for rx, cat, hint in SHELL_HINTS:
            if rx.search(command.removeprefix("=")):
                add(cat, Confidence.HIGH, f"{label}: {hint}")
        if not command or command.startswith("=") or "{{" in command:
            add(Category.CODE_EXECUTION, Confidence.HIGH, f"{label}: a command built at run time")
    if short in _REPO and writes:
        add(Category.PRODUCTION)
    if short in _DATABASES:
        query = _text(params, "query")
        if op == "executeQuery" and query:
            for rx, cat, sql_label, conf in SQL_RULES:
                if rx.search(query):
                    add(cat, conf, f"{label}: {sql_label}")
                    break
        elif writes:
            add(Category.PRODUCTION, Confidence.MEDIUM)
    if short in ("httprequest", "toolhttprequest"):
        method = _text(params, "method", "requestMethod").upper() or "GET"
        url = _text(params, "url")
        why = f"n8n HTTP {method} {url[:60]}"
        if method == "DELETE":
            add(Category.DELETION, Confidence.MEDIUM, why)
        elif method in ("POST", "PUT", "PATCH") and not HTTP_READ_URL.search(url):
            hinted = [cat for rx, cat in HTTP_HINTS if rx.search(url)]
            for cat in hinted or [Category.PRODUCTION]:
                add(cat, Confidence.MEDIUM if hinted else Confidence.LOW, why)
    known = _PAYMENT | _MESSAGING | _ACCESS | _CODE | _REPO | _DATABASES
    if not out and (op or resource) and short not in known and "http" not in short:
        for cat, why in name_categories(f"{op}_{resource}", alone=False):
            add(cat, Confidence.MEDIUM, f"{label} ({why})")
    return out


def _line_of(text: str, name: str) -> int:
    match = re.search(r'"name"\s*:\s*' + re.escape(json.dumps(name)), text)
    return text.count("\n", 0, match.start()) + 1 if match else 1


def _scan_one(wf: dict[str, Any], rel: str, text: str, out: N8nScan) -> None:
    raw_nodes = [cast(dict[str, Any], n) for n in wf.get("nodes", []) if isinstance(n, dict)]
    nodes = {str(n.get("name", "")): n for n in raw_nodes}
    lines = {name: _line_of(text, name) for name in nodes}
    edges: dict[str, set[str]] = {}
    tool_of: dict[str, str] = {}  # AI tool node → the agent node that calls it
    gates = {n: g for n, node in nodes.items() if (g := _gate(node, rel, lines[n])) is not None}
    raw_connections = wf.get("connections")
    connections = cast(dict[str, Any], raw_connections) if isinstance(raw_connections, dict) else {}
    for source, kinds in connections.items():
        if not isinstance(kinds, dict):
            continue
        for kind, outputs in cast(dict[str, Any], kinds).items():
            outputs_list = cast(list[Any], outputs) if isinstance(outputs, list) else []
            for index, targets in enumerate(outputs_list):
                for target in cast(list[Any], targets) if isinstance(targets, list) else []:
                    if not isinstance(target, dict):
                        continue
                    dest = str(cast(dict[str, Any], target).get("node", ""))
                    if kind == "ai_tool":
                        tool_of[str(source)] = dest
                    elif kind == "main":
                        src = str(source)
                        if src in gates and gates[src].kind is GateKind.SIGNOFF and index > 0:
                            src = f"{src}#not-approved"
                        edges.setdefault(src, set()).add(dest)
    for name in list(gates):  # a signoff node's other outputs are reached without approval
        other = f"{name}#not-approved"
        if other in edges:
            for targets in list(edges.values()):
                if name in targets:
                    targets.add(other)
    all_nodes = set(nodes) | {n for ts in edges.values() for n in ts} | set(edges)
    incoming = {t for ts in edges.values() for t in ts}
    entries = {
        n
        for n, node in nodes.items()
        if "trigger" in str(node.get("type", "")).lower()
        or str(node.get("type", "")).endswith(".webhook")
    } or {n for n in nodes if n not in incoming and n not in tool_of}
    reach = ungated_reach(entries, all_nodes, edges, approvals=set(gates))
    workflow = str(wf.get("name") or rel)
    found: list[ToolDef] = []
    for name, node in nodes.items():
        if name in gates:
            continue
        evidence = _classify(node, rel, lines[name])
        if not evidence and name not in tool_of:
            continue
        node_type = str(node.get("type", ""))
        tool = ToolDef(f"{rel}:{name}", name, "n8n node", "n8n", rel, lines[name])
        tool.evidence = evidence
        tool.doc = node_type
        if name in tool_of:
            tool.kind = "n8n AI tool"
            tool.expose(f"n8n agent {tool_of[name]}", [])
        elif name not in reach:
            blockers = gates_reaching(name, set(gates), all_nodes, edges)
            tool.expose(f"n8n workflow {workflow}", [gates[b] for b in blockers if b in gates])
        else:
            tool.expose(f"n8n workflow {workflow}", [])
        found.append(tool)
    out.tools += found
    for name, gate in gates.items():
        behind = [t for t in found if t.name in edges.get(name, set())]
        out.approvals.append((gate, behind))
    out.agents.append(
        Agent(workflow, "workflow", "n8n", rel, 1, [t.name for t in found if t.name not in tool_of])
    )
    for agent_name in sorted(set(tool_of.values())):
        tools = [t for t in tool_of if tool_of[t] == agent_name]
        out.agents.append(Agent(agent_name, "agent", "n8n", rel, lines.get(agent_name, 1), tools))


def scan_workflows(files: list[tuple[str, str, object]]) -> N8nScan:
    """Scan `(relative path, text, parsed JSON)` triples that hold n8n workflows."""
    out = N8nScan()
    for rel, text, data in files:
        items = cast(list[object], data) if isinstance(data, list) else [data]
        for item in items:
            if is_workflow(item):
                _scan_one(cast(dict[str, Any], item), rel, text, out)
    return out
