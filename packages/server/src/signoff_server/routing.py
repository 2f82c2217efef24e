"""Routing: what the server decides about a new request before it is stored.

The lifecycle asks a `Router` for a `Routing` (role, SLA, quorum, auto-decision, the policy that
matched, who is assigned) and, once the request row exists, lets the router arm what it needs
(escalation timers, notifications) in the same transaction. `RequestRouter` takes everything from
the request itself; the policy engine provides a router that applies `signoff.yaml`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import Connection, bindparam, select

from signoff.models import (
    Approvals,
    CommentRequired,
    PolicyRef,
    Request,
    RequestCreate,
    Risk,
    TimeoutOutcome,
    Verdict,
)
from signoff_server.schema import user_roles

__all__ = ["DEFAULT_ROLE", "RequestRouter", "Router", "Routing", "members_of"]

DEFAULT_ROLE = "default"


@dataclass(frozen=True, slots=True)
class Routing:
    """The effective settings of a request: the caller's, tightened by policy."""

    role: str
    risk: Risk
    sla: str | None
    on_timeout: TimeoutOutcome
    approvals: Approvals
    allowed: list[Verdict]
    comment_required: CommentRequired
    assignees: list[str] | None
    """Who is assigned; None: everyone holding `role` when the request is stored (the
    lifecycle reads them in the statement that stores it, on PostgreSQL one round trip less)."""
    policy: PolicyRef | None = None
    auto: Verdict | None = None
    """`approve` or `reject` to decide at once, recorded as a decision `via: policy`."""


class Router(Protocol):
    """Decides a new request's routing, and arms its follow-ups once it is stored."""

    def route(
        self, conn: Connection, payload: RequestCreate, agent_id: str, now: datetime
    ) -> Routing:
        """The effective routing of `payload`; must never loosen what the caller asked."""
        ...

    def after_create(
        self, conn: Connection, request: Request, routing: Routing, now: datetime
    ) -> None:
        """Arm timers or write events for the stored request, in its creating transaction."""
        ...


_MEMBERS = (
    select(user_roles.c.email)
    .where(user_roles.c.role == bindparam("role"))
    .order_by(user_roles.c.email)
)


def members_of(conn: Connection, role: str) -> list[str]:
    """Everyone holding `role`, sorted."""
    return [r.email for r in conn.execute(_MEMBERS, {"role": role})]


class RequestRouter:
    """Routes by the request alone: its `route.role` (or `default`), SLA and quorum."""

    def route(
        self, conn: Connection, payload: RequestCreate, agent_id: str, now: datetime
    ) -> Routing:
        """The caller's own settings; everyone holding the role is assigned (`assignees`
        None: the lifecycle reads them as it stores the request)."""
        role = payload.route.role if payload.route else DEFAULT_ROLE
        return Routing(
            role=role,
            risk=payload.risk,
            sla=payload.sla,
            on_timeout=payload.on_timeout,
            approvals=payload.approvals,
            allowed=list(payload.allowed),
            comment_required=payload.comment_required,
            assignees=None,
        )

    def after_create(
        self, conn: Connection, request: Request, routing: Routing, now: datetime
    ) -> None:
        """Nothing to arm beyond the SLA deadline, which the lifecycle arms itself."""
