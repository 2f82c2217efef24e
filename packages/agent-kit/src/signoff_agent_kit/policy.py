"""Reading `signoff.yaml` (tolerantly) to say who owns each action, by when, and what then.

The server's loader (`signoff_server.policy.config`) is strict and needs the server installed;
the scanner must run alone, so it reads the same file with PyYAML and looks only at the fields
in `FIELDS_READ`. Unknown fields are ignored; a few older spellings are accepted (`route:
{role: …}`, a top-level `action:` in a policy, `when:` for `condition:`, an inline list of
escalation steps).

Matching mirrors the server: policies in order, `match.action` globs (`fnmatchcase`) against
the action name, first match wins. A policy with a `condition` (CEL), or matching on
`object_type`, `agent` or `risk`, depends on the request at run time: the scanner cannot
evaluate it, so it lists it and keeps looking for the policy that applies otherwise, down to
`default`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, cast

import yaml

from signoff_agent_kit.model import Coverage

__all__ = ["FIELDS_READ", "Policy", "PolicyFile", "PolicyFileError", "coverage", "load_policies"]

FIELDS_READ = [
    "policies[].name",
    "policies[].match.action",
    "policies[].match.condition",
    "policies[].match.object_type|agent|risk",
    "policies[].route",
    "policies[].sla",
    "policies[].escalation",
    "policies[].on_timeout",
    "policies[].auto",
    "escalations",
    "roles",
    "default",
]
"""The fields of signoff.yaml the scanner reads (reported with the results)."""


class PolicyFileError(ValueError):
    """The policy file cannot be read; the message names the file and line."""


@dataclass(slots=True)
class Policy:
    """One policy as far as the scanner cares."""

    name: str
    line: int
    actions: list[str] | None
    conditional: bool
    route: str | None = None
    sla: str | None = None
    escalation: str | None = None
    on_timeout: str | None = None
    auto: str | None = None
    condition: str | None = None

    def matches(self, names: list[str]) -> bool:
        """Its action globs match one of `names` (no globs: every action)."""
        return self.actions is None or any(fnmatchcase(n, g) for n in names for g in self.actions)


@dataclass(slots=True)
class PolicyFile:
    """The policies, escalation chains and roles of one file."""

    path: str
    policies: list[Policy] = field(default_factory=list[Policy])
    default: Policy | None = None
    escalations: set[str] = field(default_factory=set[str])
    roles: set[str] = field(default_factory=set[str])


def _str(value: object) -> str | None:
    if value is None or isinstance(value, bool | dict | list):
        return None
    return str(value)


def _route(value: object) -> str | None:
    if isinstance(value, dict):
        return _str(cast(dict[str, object], value).get("role"))
    return _str(value)


def _role_name(value: object) -> str:
    if isinstance(value, dict):
        return str(cast(dict[str, object], value).get("name"))
    return str(value)


def _globs(value: object) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in cast(list[object], value)]
    return None


def _lines(text: str) -> list[int]:
    """The line of each item under the top-level `policies:` key."""
    compose = cast(Any, yaml.compose)  # pyright: ignore[reportUnknownMemberType]
    try:
        root = cast(object, compose(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError:
        return []
    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in cast(list[tuple[yaml.Node, yaml.Node]], root.value):
        if (
            isinstance(key, yaml.ScalarNode)
            and key.value == "policies"
            and isinstance(value, yaml.SequenceNode)
        ):
            items = cast(list[yaml.Node], value.value)
            return [item.start_mark.line + 1 for item in items]
    return []


def _policy(raw: dict[str, Any], index: int, line: int) -> Policy:
    match = raw.get("match")
    match = cast(dict[str, Any], match) if isinstance(match, dict) else {}
    actions = _globs(match.get("action", match.get("actions", raw.get("action"))))
    condition = _str(match.get("condition") or match.get("when") or raw.get("when"))
    others = any(match.get(k) is not None for k in ("object_type", "agent", "risk"))
    escalation = raw.get("escalation", raw.get("escalate"))
    if isinstance(escalation, list):
        escalation_name: str | None = f"{len(cast(list[object], escalation))} inline steps"
    else:
        escalation_name = _str(escalation)
    return Policy(
        name=_str(raw.get("name")) or f"policies[{index}]",
        line=line,
        actions=actions,
        conditional=condition is not None or others,
        route=_route(raw.get("route", raw.get("role"))),
        sla=_str(raw.get("sla")),
        escalation=escalation_name,
        on_timeout=_str(raw.get("on_timeout")),
        auto=_str(raw.get("auto")),
        condition=condition,
    )


def load_policies(path: str | Path) -> PolicyFile:
    """Read the policy file; raises `PolicyFileError` (with file:line) when it is unusable."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyFileError(f"{p}: cannot read the policy file: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark is not None else str(p)
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise PolicyFileError(f"{where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PolicyFileError(f"{p}:1: a policy file is a mapping with a 'policies' list")
    doc = cast(dict[str, Any], data)
    raw_policies = doc.get("policies", [])
    if not isinstance(raw_policies, list):
        raise PolicyFileError(f"{p}: 'policies' must be a list")
    out = PolicyFile(str(p))
    escalations = doc.get("escalations")
    if isinstance(escalations, dict):
        out.escalations = {str(k) for k in cast(dict[object, object], escalations)}
    roles = doc.get("roles")
    if isinstance(roles, dict):
        out.roles = {str(k) for k in cast(dict[object, object], roles)}
    elif isinstance(roles, list):
        out.roles = {_role_name(r) for r in cast(list[object], roles)}
    lines = _lines(text)
    for index, raw in enumerate(cast(list[object], raw_policies)):
        line = lines[index] if index < len(lines) else 1
        if not isinstance(raw, dict):
            raise PolicyFileError(f"{p}:{line}: policies[{index}] must be a mapping")
        out.policies.append(_policy(cast(dict[str, Any], raw), index, line))
    default = doc.get("default")
    if isinstance(default, dict):
        out.default = _policy(cast(dict[str, Any], default), -1, 1)
        out.default.name = "default"
        out.default.actions = None
        out.default.conditional = False
    return out


def coverage(policies: PolicyFile, names: list[str]) -> Coverage:
    """What the file says about an action known by `names` (its declared and tool names)."""
    chain: list[Policy] = []
    for policy in policies.policies:
        if policy.matches(names):
            chain.append(policy)
            if not policy.conditional:
                break
    if (not chain or chain[-1].conditional) and policies.default is not None:
        chain.append(policies.default)
    cov = Coverage(source="policy")
    if not chain:
        cov.notes.append("no policy matches and there is no default: the caller's routing applies")
        return cov
    cov.policies = [p.name for p in chain]
    cov.conditional = all(p.conditional for p in chain)
    deciding = [p for p in chain if p.auto is None]
    routes = _join(p.route for p in deciding)
    cov.owner = routes
    cov.sla = _join(p.sla for p in deciding)
    cov.escalation = _join(p.escalation for p in deciding)
    timeouts = _join(p.on_timeout for p in deciding)
    cov.on_timeout = timeouts or ("reject (default)" if cov.sla else None)
    final = chain[-1]
    if final.auto is not None:
        cov.auto = final.auto
        cov.notes.append(f"policy {final.name!r} decides it at once: auto {final.auto}")
    for policy in chain:
        if policy.auto is not None and policy is not final:
            cov.notes.append(f"auto {policy.auto} when {policy.condition or 'its match holds'}")
        if policy.route and policies.roles and policy.route not in policies.roles:
            cov.notes.append(f"policy {policy.name!r} routes to undeclared role {policy.route!r}")
        if (
            policy.escalation
            and not policy.escalation.endswith("inline steps")
            and policy.escalation not in policies.escalations
        ):
            cov.notes.append(f"policy {policy.name!r}: no escalation chain {policy.escalation!r}")
    if final.name == "default" and len(chain) == 1:
        cov.by_default = True
        cov.notes.append("only the catch-all default policy applies: no owner chose this action")
    return cov


def _join(values: Any) -> str | None:
    seen: list[str] = []
    for value in values:
        if value and value not in seen:
            seen.append(value)
    return " / ".join(seen) if seen else None
