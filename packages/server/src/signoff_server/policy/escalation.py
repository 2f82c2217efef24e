"""Escalation chains on durable timers (DESIGN.md §5).

At creation the request's chain (repeat unrolled) is copied into `escalations` and run up to its
first `wait`, which arms one `policy.escalation` timer with the index of the step after the wait
as its fence. When the timer fires, the handler runs in one transaction:

1. `timers.complete` (so the effect commits at most once, even if a lease ran out);
2. lock the request; act only if it is still pending and the stored `next_step` equals the
   timer's fence (a stale timer does nothing);
3. run the steps up to the next `wait` — `notify` writes `request.notified`, `escalate_to` moves
   the route (requests.route_role, request_roles, assignees, escalation_level) and notifies the
   new role's on-shift people — and arm the next timer.

Waits add up from the instant each timer was due, not from when it fired, so a late tick does
not stretch the chain. The SLA deadline is a separate timer (`request.deadline`, lifecycle.py).
Every step is an audit event naming who was on shift at that moment.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from signoff.durations import parse_duration
from signoff.models import Status
from signoff_server import audit, timers
from signoff_server.db import Database
from signoff_server.policy.notifier import Notification, Notifier
from signoff_server.policy.roster import Assignment, Roster
from signoff_server.policy.tables import escalations
from signoff_server.schema import request_roles, requests

__all__ = ["ESCALATION_TIMER", "Escalations"]

ESCALATION_TIMER = "policy.escalation"

log = logging.getLogger("signoff.policy")


class Escalations:
    """Starts chains for new requests and fires their timers."""

    def __init__(
        self,
        db: Database,
        roster: Roster,
        notifier: Notifier,
    ) -> None:
        self.db = db
        self.roster = roster
        self.notifier = notifier

    # at creation ----------------------------------------------------------------------------

    def start(
        self,
        conn: Connection,
        request_id: str,
        chain: str,
        steps: Sequence[dict[str, Any]],
        now: datetime,
        *,
        first_step: int = 0,
    ) -> None:
        """Copy the chain onto the request and run it up to its first wait (same transaction)."""
        if first_step >= len(steps):
            return
        conn.execute(
            insert(escalations).values(
                request_id=request_id,
                chain=chain,
                steps=list(steps),
                next_step=first_step,
                updated_at=now,
            )
        )
        self._advance(conn, request_id, list(steps), first_step, base=now, now=now)

    # timer handler --------------------------------------------------------------------------

    def fire(self, timer: timers.Timer, now: datetime) -> None:
        """Handler of `policy.escalation` timers: run the steps the timer fences."""
        assert timer.request_id is not None
        with self.db.write() as conn:
            timers.complete(conn, timer)
            status = conn.execute(
                select(requests.c.status).where(requests.c.id == timer.request_id).with_for_update()
            ).scalar()
            state = conn.execute(
                select(escalations.c.steps, escalations.c.next_step).where(
                    escalations.c.request_id == timer.request_id
                )
            ).first()
            if state is None or state.next_step != timer.fence:
                return  # stale: the chain moved on (or never existed)
            if status != Status.PENDING.value:
                conn.execute(
                    delete(escalations).where(escalations.c.request_id == timer.request_id)
                )
                return  # closed meanwhile: the chain ends here
            self._advance(
                conn, timer.request_id, list(state.steps), timer.fence, base=timer.due_at, now=now
            )

    # steps ----------------------------------------------------------------------------------

    def _advance(
        self,
        conn: Connection,
        request_id: str,
        steps: list[dict[str, Any]],
        index: int,
        *,
        base: datetime,
        now: datetime,
    ) -> None:
        """Run steps from `index` until a wait (arming its timer) or the end of the chain."""
        while index < len(steps):
            step = steps[index]
            if "wait" in step:
                due = base + parse_duration(step["wait"])
                self._set_next(conn, request_id, index + 1, now)
                timers.arm(
                    conn,
                    kind=ESCALATION_TIMER,
                    due_at=due,
                    now=now,
                    request_id=request_id,
                    fence=index + 1,
                    payload={"step": index + 1},
                )
                return
            if "escalate_to" in step:
                self.escalate(conn, request_id, step["escalate_to"], now, step=index, due_at=base)
            else:
                self._notify_step(conn, request_id, step, now, index)
            index += 1
        self._set_next(conn, request_id, index, now)

    @staticmethod
    def _set_next(conn: Connection, request_id: str, index: int, now: datetime) -> None:
        conn.execute(
            update(escalations)
            .where(escalations.c.request_id == request_id)
            .values(next_step=index, updated_at=now)
        )

    def _notify_step(
        self, conn: Connection, request_id: str, step: dict[str, Any], now: datetime, index: int
    ) -> None:
        row = conn.execute(
            select(requests.c.route_role, requests.c.escalation_level).where(
                requests.c.id == request_id
            )
        ).one()
        roster = self.roster
        role: str = step.get("role") or row.route_role
        if step["notify"] == "on_shift":
            assignment = roster.assign(role, now)
            if not assignment.people:  # gap_policy escalate: a notify step tells everyone
                assignment = _everyone(roster, role, now, assignment)
        elif step["notify"] == "role":
            assignment = _everyone(roster, role, now, roster.assign(role, now))
        else:
            named = tuple(step["people"])
            people, delegations = roster.with_delegates(named, now)
            assignment = Assignment(role, now, named, "named", people, delegations)
        self.notifier.notify(
            conn,
            Notification(request_id, "step", assignment, row.escalation_level, now, step=index),
        )

    def escalate(
        self,
        conn: Connection,
        request_id: str,
        role: str,
        now: datetime,
        *,
        step: int | None,
        reason: str = "no decision in time",
        due_at: datetime | None = None,
    ) -> Assignment:
        """Move the request's route to `role` and notify its on-shift people."""
        row = conn.execute(
            select(
                requests.c.route_role,
                requests.c.escalation_level,
                requests.c.version,
            ).where(requests.c.id == request_id)
        ).one()
        roster = self.roster
        assignment = roster.assign(role, now)
        if not assignment.people:  # a gap while escalating: tell every member
            assignment = _everyone(roster, role, now, assignment)
        level = row.escalation_level + 1
        conn.execute(
            update(requests)
            .where(requests.c.id == request_id, requests.c.status == Status.PENDING.value)
            .values(
                route_role=role,
                assignees=list(assignment.people),
                escalation_level=level,
                version=row.version + 1,
            )
        )
        held = conn.execute(
            select(request_roles.c.role).where(
                request_roles.c.request_id == request_id, request_roles.c.role == role
            )
        ).first()
        if held is None:
            conn.execute(insert(request_roles).values(request_id=request_id, role=role))
        data: dict[str, Any] = {
            "from_role": row.route_role,
            "to_role": role,
            "level": level,
            "reason": reason,
            **assignment.record(),
        }
        if step is not None:
            data["step"] = step
        if due_at is not None:
            data["due_at"] = due_at.isoformat()  # when it was due; the event's `at` is when it ran
        audit.append(
            conn, type="request.escalated", actor="system", at=now, request_id=request_id, data=data
        )
        self.notifier.notify(
            conn, Notification(request_id, "escalated", assignment, level, now, step=step)
        )
        return assignment


def _everyone(roster: Roster, role: str, now: datetime, base: Assignment) -> Assignment:
    people, delegations = roster.with_delegates(roster.members(role), now)
    return Assignment(role, now, base.on_shift, base.source, people, delegations, base.gap_policy)
