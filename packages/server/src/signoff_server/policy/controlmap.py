"""The control map: per role, who holds it, who is on shift when (and the gaps) over the next
days, the policies that route to it, and whether each policy's quorum can be met.

`build_control_map` is pure (config + instant in, model out); `signoff check` prints it with
rich and `GET /v1/control-map` returns it as JSON. It is `ok` unless a policy's quorum cannot be
met or a role with `gap_policy: fail` has a gap within the horizon.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from signoff.durations import format_duration
from signoff.models import ApprovalMode, Approvals
from signoff_server.policy import shifts
from signoff_server.policy.config import CompiledPolicy, PolicyConfig, chain_waits
from signoff_server.policy.roster import Roster

__all__ = [
    "ControlMap",
    "CoverageSegment",
    "PolicyLink",
    "PolicySummary",
    "RoleMap",
    "build_control_map",
]


class CoverageSegment(BaseModel):
    """`[start, end)` with the same people on shift; `gap` when the schedule has nobody."""

    start: datetime
    end: datetime
    on_shift: list[str]
    source: str
    gap: bool
    covered_by: list[str] = Field(description="Who gets requests then, after the gap policy.")


class PolicyLink(BaseModel):
    """A policy that sends requests to a role, and how: as route, escalation or quorum role."""

    policy: str
    via: Literal["route", "escalation", "quorum"]


class PolicySummary(BaseModel):
    """One policy: what it matches, where it routes, and whether its quorum can be met."""

    name: str
    rule: str
    line: int | None
    route: str | None
    auto: str | None
    sla: str | None
    escalation: str | None
    escalation_wait: str | None = Field(description="Total waiting time of the chain.")
    approvals: Approvals | None
    satisfiable: bool
    reason: str | None = None
    eligible: list[str] = Field(default_factory=list[str])
    needed: int = 0
    tight: bool = Field(
        default=False,
        description="Exactly as many eligible people as needed: one initiator among them "
        "(separation of duties) or one absence leaves the quorum unreachable.",
    )


class RoleMap(BaseModel):
    """One role's people, coverage over the horizon and the policies that reach it."""

    role: str
    description: str | None
    members: list[str]
    gap_policy: str
    fallback: list[str]
    timezone: str | None
    on_shift_now: list[str]
    coverage: list[CoverageSegment]
    gaps: list[CoverageSegment]
    uncovered: bool = Field(description="A gap within the horizon and gap_policy: fail.")
    policies: list[PolicyLink]


class ControlMap(BaseModel):
    """The whole map. `ok` is False when `problems` is not empty."""

    path: str
    version: str
    generated_at: datetime
    start: datetime
    end: datetime
    roles: list[RoleMap]
    policies: list[PolicySummary]
    problems: list[str]
    warnings: list[str]
    ok: bool


def _needed(approvals: Approvals) -> int:
    if approvals.mode is ApprovalMode.SINGLE:
        return 1
    if approvals.mode is ApprovalMode.ALL_OF:
        return max(approvals.required, len(set(approvals.roles or [])))
    return approvals.required


def _summary(policy: CompiledPolicy, config: PolicyConfig, roster: Roster) -> PolicySummary:
    body = policy.body
    reason = config.quorum_problems.get(policy.name)
    eligible: list[str] = []
    needed = 0
    if body.auto is None and body.route is not None:
        approvals = body.approvals or Approvals()
        listed: list[str] = list(approvals.roles or [])
        roles = dict.fromkeys([body.route, *listed])
        eligible = sorted({p for role in roles for p in roster.members(role)})
        needed = _needed(approvals)
    steps = config.chains.get(body.escalation or "", ())
    wait = chain_waits(steps)
    return PolicySummary(
        name=policy.name,
        rule=policy.rule,
        line=policy.line,
        route=body.route,
        auto=body.auto,
        sla=body.sla,
        escalation=body.escalation,
        escalation_wait=format_duration(wait) if wait else None,
        approvals=body.approvals,
        satisfiable=reason is None,
        reason=reason,
        eligible=eligible,
        needed=needed,
        tight=reason is None and needed > 1 and len(eligible) == needed,
    )


def _links(config: PolicyConfig, role: str) -> list[PolicyLink]:
    links: list[PolicyLink] = []
    for policy in (*config.policies, config.default):
        body = policy.body
        if body.auto is not None:
            continue
        if body.route == role:
            links.append(PolicyLink(policy=policy.name, via="route"))
        elif any(
            s.get("escalate_to") == role for s in config.chains.get(body.escalation or "", ())
        ):
            links.append(PolicyLink(policy=policy.name, via="escalation"))
        elif body.approvals is not None and role in (body.approvals.roles or []):
            links.append(PolicyLink(policy=policy.name, via="quorum"))
    return links


def build_control_map(config: PolicyConfig, now: datetime, *, days: int = 14) -> ControlMap:
    """The control map of `config` from `now` over `days` days."""
    roster = Roster(config)
    end = now + timedelta(days=days)
    roles: list[RoleMap] = []
    problems: list[str] = []
    warnings: list[str] = []
    for spec in config.roles.values():
        if spec.schedule is not None:
            segments = shifts.coverage(spec.schedule, now, end)
        else:
            segments = [shifts.Segment(now, end, shifts.OnShift(spec.members, "members"))]
        coverage = [
            CoverageSegment(
                start=s.start,
                end=s.end,
                on_shift=list(s.on_shift.people),
                source=s.on_shift.source,
                gap=s.on_shift.is_gap,
                covered_by=list(roster.assign(spec.name, s.start).people),
            )
            for s in segments
        ]
        gaps = [c for c in coverage if c.gap]
        uncovered = bool(gaps) and spec.gap_policy == "fail"
        if uncovered:
            first = gaps[0]
            problems.append(
                f"role {spec.name}: nobody on shift from {first.start.isoformat()} to "
                f"{first.end.isoformat()} ({len(gaps)} gap(s) in {days} days; gap_policy: fail)"
            )
        elif gaps:
            warnings.append(
                f"role {spec.name}: {len(gaps)} gap(s) in {days} days, "
                f"handled by gap_policy {spec.gap_policy}"
            )
        if not spec.members:
            warnings.append(f"role {spec.name}: has no members")
        roles.append(
            RoleMap(
                role=spec.name,
                description=config.file.roles[spec.name].description,
                members=list(spec.members),
                gap_policy=spec.gap_policy,
                fallback=list(spec.fallback),
                timezone=spec.schedule.zone.key if spec.schedule is not None else None,
                on_shift_now=list(roster.assign(spec.name, now).people),
                coverage=coverage,
                gaps=gaps,
                uncovered=uncovered,
                policies=_links(config, spec.name),
            )
        )
    policies = [_summary(p, config, roster) for p in (*config.policies, config.default)]
    for summary in policies:
        if not summary.satisfiable:
            problems.append(f"policy {summary.name}: {summary.reason}")
        elif summary.tight:
            warnings.append(
                f"policy {summary.name}: needs {summary.needed} of exactly {summary.needed} "
                "eligible people; an initiator or an absence among them blocks it"
            )
    return ControlMap(
        path=config.path,
        version=config.version,
        generated_at=now,
        start=now,
        end=end,
        roles=roles,
        policies=policies,
        problems=problems,
        warnings=warnings,
        ok=not problems,
    )
