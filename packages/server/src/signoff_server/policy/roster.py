"""Who gets a request of a role at an instant: shifts, then the gap policy, then delegation.

`Roster.who_is_on_shift(role, at)` is the schedule's answer (every member for a role without a
schedule). `Roster.assign(role, at)` turns it into the people to notify and assign:

* a gap is handled by the role's `gap_policy`: `fallback` people; `notify_all` and `fail` fall
  back to every member (better everyone than no one); `escalate` leaves the choice to the
  router, which moves the request up its escalation chain at once;
* then everyone out of office is replaced by their delegate (followed transitively; a cycle of
  absent people keeps the original person). The assignment records both, for the audit.

Pure: no database, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from signoff_server.policy import shifts
from signoff_server.policy.config import PolicyConfig

__all__ = ["Assignment", "Delegation", "Roster"]


@dataclass(frozen=True, slots=True)
class Delegation:
    """`absent` is out of office; `delegate` gets their requests."""

    absent: str
    delegate: str


@dataclass(frozen=True, slots=True)
class Assignment:
    """The people a role's request goes to at `at`, and how they were chosen."""

    role: str
    at: datetime
    on_shift: tuple[str, ...]
    """Who the schedule has on shift (every member for a role without schedule)."""
    source: str
    """`override`, `rotation:<name>`, `members` (no schedule) or `gap`."""
    people: tuple[str, ...]
    """Who is notified and assigned: after the gap policy and delegation."""
    delegations: tuple[Delegation, ...] = ()
    gap_policy: str | None = None
    """The gap policy applied, when nobody was on shift."""

    @property
    def is_gap(self) -> bool:
        """True when the schedule had nobody on shift."""
        return self.source == "gap"

    def record(self) -> dict[str, Any]:
        """The audit form: who was on shift, who gets it, and why."""
        data: dict[str, Any] = {
            "role": self.role,
            "on_shift": list(self.on_shift),
            "shift": self.source,
            "people": list(self.people),
        }
        if self.delegations:
            data["delegations"] = [
                {"absent": d.absent, "delegate": d.delegate} for d in self.delegations
            ]
        if self.gap_policy is not None:
            data["gap_policy"] = self.gap_policy
        return data


class Roster:
    """Role and people questions over one policy config."""

    def __init__(self, config: PolicyConfig) -> None:
        self.config = config

    def members(self, role: str) -> tuple[str, ...]:
        """Everyone holding `role` in the file (none for an unknown role)."""
        spec = self.config.roles.get(role)
        return spec.members if spec is not None else ()

    def who_is_on_shift(self, role: str, at: datetime) -> shifts.OnShift:
        """The schedule's answer for `role` at `at`; every member when it has no schedule."""
        spec = self.config.roles.get(role)
        if spec is None:
            return shifts.GAP
        if spec.schedule is None:
            return shifts.OnShift(spec.members, "members")
        return shifts.who_is_on_shift(spec.schedule, at)

    def delegate_of(self, email: str, at: datetime) -> str:
        """Who stands in for `email` at `at` (themselves when present)."""
        seen = [email]
        current = email
        while True:
            person = self.config.people.get(current)
            away = (
                next((a for a in person.absences if a.start <= at < a.end), None)
                if person is not None
                else None
            )
            if away is None:
                return current
            if away.delegate in seen:
                return email  # everyone in the loop is away: keep the person on shift
            seen.append(away.delegate)
            current = away.delegate

    def with_delegates(
        self, people: tuple[str, ...], at: datetime
    ) -> tuple[tuple[str, ...], tuple[Delegation, ...]]:
        """`people` with everyone absent replaced by their delegate."""
        result: list[str] = []
        delegations: list[Delegation] = []
        for email in people:
            stand_in = self.delegate_of(email, at)
            if stand_in != email:
                delegations.append(Delegation(email, stand_in))
            result.append(stand_in)
        return tuple(dict.fromkeys(result)), tuple(delegations)

    def assign(self, role: str, at: datetime) -> Assignment:
        """Who a request of `role` goes to at `at` (see the module docstring)."""
        answer = self.who_is_on_shift(role, at)
        spec = self.config.roles.get(role)
        chosen = answer.people
        gap_policy: str | None = None
        if answer.is_gap:
            gap_policy = spec.gap_policy if spec is not None else "notify_all"
            if gap_policy == "fallback" and spec is not None:
                chosen = spec.fallback
            elif gap_policy != "escalate":
                chosen = self.members(role)
            else:
                chosen = ()
        people, delegations = self.with_delegates(chosen, at)
        return Assignment(role, at, answer.people, answer.source, people, delegations, gap_policy)
