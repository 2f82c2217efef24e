"""Quorum rules: when do the approvals recorded so far close a request as approved?"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from signoff.models import ApprovalMode, Approvals

__all__ = ["Approval", "eligible_roles", "quorum_met", "role_to_decide_in"]


@dataclass(frozen=True, slots=True)
class Approval:
    """One approving decision: who gave it and in which role."""

    user: str
    role: str | None


def eligible_roles(route_role: str, approvals: Approvals) -> list[str]:
    """The roles whose members may decide: the route's role plus any quorum roles."""
    return list(dict.fromkeys([route_role, *(approvals.roles or [])]))


def quorum_met(approvals: Approvals, given: Sequence[Approval]) -> bool:
    """True when `given` (distinct people) satisfies the quorum."""
    people = {a.user for a in given}
    match approvals.mode:
        case ApprovalMode.SINGLE:
            return len(people) >= 1
        case ApprovalMode.THRESHOLD | ApprovalMode.ANY_OF:
            return len(people) >= approvals.required
        case ApprovalMode.ALL_OF:
            # One approver per listed role, and at least `required` people in all (a policy
            # may combine all_of with a larger count; `required` defaults to 1).
            covered = {a.role for a in given}
            roles_met = all(role in covered for role in approvals.roles or [])
            return roles_met and len(people) >= approvals.required


def role_to_decide_in(
    held: frozenset[str],
    route_role: str,
    approvals: Approvals,
    given: Sequence[Approval],
    *,
    also: Sequence[str] = (),
) -> str | None:
    """The role a reviewer decides in, preferring one the quorum still lacks; None if none.

    `also` are further roles the request was routed to (the roles it escalated from). Being an
    admin is no such role (DESIGN §11): an admin sees every request but decides, and counts
    toward a quorum, only in a role the request is routed to.
    """
    candidates = dict.fromkeys([*eligible_roles(route_role, approvals), *also])
    eligible = [role for role in candidates if role in held]
    if approvals.mode is ApprovalMode.ALL_OF:
        covered = {a.role for a in given}
        missing = [role for role in eligible if role not in covered]
        if missing:
            return missing[0]
    return eligible[0] if eligible else None
