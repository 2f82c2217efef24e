"""The policy router: `signoff.yaml` applied to each new request (the `Router` of routing.py).

Matching is first-match-wins over `policies`, on machine-observed fields only: the action name,
the business object type and the agent id (globs), the declared risk, and a CEL condition over
the request (see cel.py). An `auto: approve` policy matches only requests that ask for no more
than one approval, since auto-approval must not loosen a quorum the caller asked for. No match
means the `default` policy, which fails closed (without one in the file: rejected at once).

A condition that cannot be evaluated (a missing argument, a non-numeric amount) stops matching
and routes the request to the `default` policy, noting the error in the policy reference: an
error never lets a request reach a later, possibly looser, policy such as an auto-approval.

The matched policy tightens what the caller asked and never loosens it (`tighten`): the shorter
SLA, `reject` on timeout over `approve`, the larger quorum, the intersection of allowed
verdicts, the stricter comment requirement, the higher risk, and separation of duties if
either side asks for it. The route is the policy's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

from sqlalchemy import Connection, insert, select, update

from signoff.durations import parse_duration
from signoff.models import (
    ApprovalMode,
    Approvals,
    CommentRequired,
    PolicyRef,
    Request,
    RequestCreate,
    Risk,
    TimeoutOutcome,
    Verdict,
)
from signoff_server import audit
from signoff_server.policy.cel import ConditionError, request_activation
from signoff_server.policy.config import CompiledPolicy, PolicyBody, PolicyConfig
from signoff_server.policy.escalation import Escalations
from signoff_server.policy.notifier import Notification, Notifier
from signoff_server.policy.roster import Assignment, Roster
from signoff_server.routing import DEFAULT_ROLE, Routing
from signoff_server.schema import request_roles, requests

__all__ = [
    "Hop",
    "PolicyRouter",
    "PolicyRouting",
    "Selection",
    "merge_approvals",
    "select_policy",
    "tighten",
]

_COMMENT_ORDER = [CommentRequired.NEVER, CommentRequired.ON_REJECT, CommentRequired.ALWAYS]


# --- matching ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Selection:
    """The policy that applies, and a note when matching stopped on an error."""

    policy: CompiledPolicy
    note: str | None = None

    def ref(self, version: str) -> PolicyRef:
        """The reference stamped on the request."""
        rule = self.policy.rule if self.note is None else f"{self.policy.rule} ({self.note})"
        return PolicyRef(name=self.policy.name, rule=rule, version=version)


def _globs(patterns: list[str] | None, value: str) -> bool:
    return patterns is None or any(fnmatchcase(value, p) for p in patterns)


def _asks_for_more_than_one(approvals: Approvals) -> bool:
    return approvals.mode is ApprovalMode.ALL_OF or approvals.required > 1


def select_policy(config: PolicyConfig, payload: RequestCreate, agent_id: str) -> Selection:
    """First-match-wins over the file's policies; the default when none matches."""
    activation: dict[str, Any] | None = None
    for policy in config.policies:
        match = policy.match
        assert match is not None
        if not (
            _globs(match.action, payload.action.name)
            and _globs(match.object_type, payload.business_object.type)
            and _globs(match.agent, agent_id)
            and (match.risk is None or payload.risk in match.risk)
        ):
            continue
        if policy.body.auto == "approve" and _asks_for_more_than_one(payload.approvals):
            continue
        if policy.condition is not None:
            if activation is None:
                activation = request_activation(payload, agent_id)
            try:
                if not policy.condition.evaluate(activation):
                    continue
            except ConditionError as exc:
                return Selection(config.default, f"condition of {policy.name!r} failed: {exc}")
        return Selection(policy)
    return Selection(config.default)


# --- tightening -------------------------------------------------------------------------------


def _required(approvals: Approvals) -> int:
    return 1 if approvals.mode is ApprovalMode.SINGLE else approvals.required


def merge_approvals(asked: Approvals, policy: Approvals | None) -> Approvals:
    """The stricter of two quorums: more approvers, every role either side requires.

    Roles that only widen who may approve (`any_of`/`threshold` roles) come from the policy
    alone; the caller cannot add eligible roles.
    """
    policy = policy or Approvals()
    required = max(_required(asked), _required(policy))
    sod = asked.separation_of_duties or policy.separation_of_duties
    all_of = [
        *(policy.roles or [] if policy.mode is ApprovalMode.ALL_OF else []),
        *(asked.roles or [] if asked.mode is ApprovalMode.ALL_OF else []),
    ]
    if all_of:
        return Approvals(
            mode=ApprovalMode.ALL_OF,
            required=required,
            roles=list(dict.fromkeys(all_of)),
            separation_of_duties=sod,
        )
    if policy.mode in (ApprovalMode.ANY_OF, ApprovalMode.THRESHOLD):
        return Approvals(
            mode=policy.mode, required=required, roles=policy.roles, separation_of_duties=sod
        )
    mode = ApprovalMode.THRESHOLD if required > 1 else ApprovalMode.SINGLE
    return Approvals(mode=mode, required=required, separation_of_duties=sod)


@dataclass(frozen=True, slots=True)
class Tightened:
    """The caller's settings after a policy tightened them."""

    sla: str | None
    on_timeout: TimeoutOutcome
    approvals: Approvals
    allowed: list[Verdict]
    comment_required: CommentRequired
    risk: Risk


def tighten(payload: RequestCreate, body: PolicyBody) -> Tightened:
    """Apply `body` to what the caller asked, never loosening it."""
    slas = [s for s in (payload.sla, body.sla) if s is not None]
    sla = min(slas, key=parse_duration) if slas else None
    on_timeout = (
        TimeoutOutcome.APPROVE
        if payload.on_timeout is TimeoutOutcome.APPROVE
        and (body.on_timeout or TimeoutOutcome.APPROVE) is TimeoutOutcome.APPROVE
        else TimeoutOutcome.REJECT
    )
    allowed = list(payload.allowed)
    if body.allowed is not None:
        allowed = [v for v in allowed if v in body.allowed]
    if Verdict.REJECT not in allowed:
        allowed.append(Verdict.REJECT)  # a reviewer can always refuse
    comment = max(
        payload.comment_required,
        body.comment_required or CommentRequired.NEVER,
        key=_COMMENT_ORDER.index,
    )
    risk = max(payload.risk, body.risk or Risk.LOW, key=lambda r: r.rank)
    return Tightened(
        sla=sla,
        on_timeout=on_timeout,
        approvals=merge_approvals(payload.approvals, body.approvals),
        allowed=allowed,
        comment_required=comment,
        risk=risk,
    )


# --- the router --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hop:
    """A move up the chain at creation, because nobody was on shift (`gap_policy: escalate`)."""

    from_role: str
    to_role: str
    step: int
    assignment: Assignment


@dataclass(frozen=True, slots=True)
class PolicyRouting(Routing):
    """A `Routing` plus what the router arms after the request is stored."""

    first: Assignment | None = None
    """Who the route's role had on shift at creation (before any hop)."""
    hops: tuple[Hop, ...] = ()
    final: Assignment | None = None
    """Who is notified at creation."""
    chain: str | None = None
    steps: tuple[dict[str, Any], ...] = field(default_factory=tuple[dict[str, Any], ...])
    first_step: int = 0


class PolicyRouter:
    """Routes by `signoff.yaml`, notifies at creation, and starts the escalation chain."""

    def __init__(self, config: PolicyConfig, notifier: Notifier, escalations: Escalations) -> None:
        self.config = config
        self.roster = Roster(config)
        self.notifier = notifier
        self.escalations = escalations

    def route(
        self, conn: Connection, payload: RequestCreate, agent_id: str, now: datetime
    ) -> Routing:
        """The matched policy's routing, tightening (never loosening) the caller's settings."""
        selection = select_policy(self.config, payload, agent_id)
        body = selection.policy.body
        settings = tighten(payload, body)
        ref = selection.ref(self.config.version)
        if body.auto is not None:
            asked = payload.route.role if payload.route else DEFAULT_ROLE
            return Routing(
                role=asked,
                risk=settings.risk,
                sla=None,
                on_timeout=settings.on_timeout,
                approvals=settings.approvals,
                allowed=settings.allowed,
                comment_required=settings.comment_required,
                assignees=[],
                policy=ref,
                auto=Verdict.APPROVE if body.auto == "approve" else Verdict.REJECT,
            )
        assert body.route is not None  # the config refuses a non-auto policy without a route
        steps = self.config.chains.get(body.escalation, ()) if body.escalation else ()
        first = self.roster.assign(body.route, now)
        role, final, hops, first_step = body.route, first, list[Hop](), 0
        while not final.people:  # nobody on shift and gap_policy: escalate
            index = next(
                (i for i in range(first_step, len(steps)) if "escalate_to" in steps[i]), None
            )
            if index is None:  # no escalation left: every member is better than nobody
                people, delegations = self.roster.with_delegates(self.roster.members(role), now)
                final = Assignment(
                    role, now, final.on_shift, final.source, people, delegations, final.gap_policy
                )
                break
            target = steps[index]["escalate_to"]
            assignment = self.roster.assign(target, now)
            hops.append(Hop(role, target, index, assignment))
            role, final, first_step = target, assignment, index + 1
        return PolicyRouting(
            role=role,
            risk=settings.risk,
            sla=settings.sla,
            on_timeout=settings.on_timeout,
            approvals=settings.approvals,
            allowed=settings.allowed,
            comment_required=settings.comment_required,
            assignees=list(final.people),
            policy=ref,
            first=first,
            hops=tuple(hops),
            final=final,
            chain=body.escalation,
            steps=tuple(steps),
            first_step=first_step,
        )

    def after_create(
        self, conn: Connection, request: Request, routing: Routing, now: datetime
    ) -> None:
        """Record hops, notify the on-shift people, start the escalation chain."""
        if not isinstance(routing, PolicyRouting) or routing.final is None:
            return
        for level, hop in enumerate(routing.hops, start=1):
            self._record_hop(conn, request.id, hop, level, now)
        # The lifecycle answers the create with this object: keep it in step with the row.
        request.escalation_level = len(routing.hops)
        self.notifier.notify(
            conn,
            Notification(request.id, "created", routing.final, len(routing.hops), now),
        )
        if routing.chain is not None:
            self.escalations.start(
                conn, request.id, routing.chain, routing.steps, now, first_step=routing.first_step
            )

    @staticmethod
    def _record_hop(conn: Connection, request_id: str, hop: Hop, level: int, now: datetime) -> None:
        held = {
            r.role
            for r in conn.execute(
                select(request_roles.c.role).where(request_roles.c.request_id == request_id)
            )
        }
        if hop.from_role not in held:  # whoever the request first went to may still decide
            conn.execute(insert(request_roles).values(request_id=request_id, role=hop.from_role))
        conn.execute(
            update(requests).where(requests.c.id == request_id).values(escalation_level=level)
        )
        audit.append(
            conn,
            type="request.escalated",
            actor="system",
            at=now,
            request_id=request_id,
            data={
                "from_role": hop.from_role,
                "to_role": hop.to_role,
                "level": level,
                "reason": f"nobody on shift in {hop.from_role} (gap_policy: escalate)",
                "step": hop.step,
                **hop.assignment.record(),
            },
        )
