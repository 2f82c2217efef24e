"""Notifying people of a request: the interface, and the notifier that records the event.

Every notification is a `request.notified` audit event naming who was notified, who was on
shift, and any delegation, written in the transaction of the change that caused it. Delivery
(Slack, email) plugs in as further `Notifier`s that enqueue their messages in that same
transaction; `AuditNotifier` records the event and delivers nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import Connection

from signoff_server import audit
from signoff_server.policy.roster import Assignment

__all__ = ["AuditNotifier", "Notification", "Notifier", "Notifiers"]


@dataclass(frozen=True, slots=True)
class Notification:
    """Who is told about a request, and why: `created`, `escalated` or a chain `step`."""

    request_id: str
    reason: str
    assignment: Assignment
    level: int
    at: datetime
    step: int | None = None


class Notifier(Protocol):
    """Acts on a notification inside the transaction of the change that caused it."""

    def notify(self, conn: Connection, notification: Notification) -> None:
        """Record or enqueue `notification`; must not do network I/O in the transaction."""
        ...


class AuditNotifier:
    """Records each notification as a `request.notified` audit event."""

    def notify(self, conn: Connection, notification: Notification) -> None:
        """Append the `request.notified` event naming the people."""
        data = {
            "reason": notification.reason,
            "level": notification.level,
            **notification.assignment.record(),
        }
        if notification.step is not None:
            data["step"] = notification.step
        audit.append(
            conn,
            type="request.notified",
            actor="system",
            at=notification.at,
            request_id=notification.request_id,
            data=data,
        )


class Notifiers:
    """Several notifiers as one, called in order."""

    def __init__(self, notifiers: Sequence[Notifier]) -> None:
        self.notifiers = list(notifiers)

    def notify(self, conn: Connection, notification: Notification) -> None:
        """Hand `notification` to every notifier."""
        for notifier in self.notifiers:
            notifier.notify(conn, notification)
