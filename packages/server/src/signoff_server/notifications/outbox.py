"""The notification outbox: one row per message to one person on one channel.

Rows are written in the transaction of the change that causes them (a new request, an
escalation, a close), together with the timer that drives the first attempt, so a committed
change always has its messages queued and a rolled-back one never does. The delivery worker
(`service.py`) sends outside any transaction and records the result.

`attempts` fences the delivery chain: a timer armed after attempt n carries fence n, and a timer
whose fence no longer matches (the row moved on) completes without sending.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    insert,
)

from signoff.ids import new_id
from signoff_server import timers
from signoff_server.schema import UTCDateTime, metadata

__all__ = [
    "DELIVER_TIMER",
    "Channel",
    "NotificationState",
    "Reason",
    "enqueue",
    "notification_outbox",
]

DELIVER_TIMER = "notification.deliver"
"""The timer kind that drives notification attempts."""


class Channel(StrEnum):
    """Where a message goes."""

    EMAIL = "email"
    SLACK = "slack"


class Reason(StrEnum):
    """Why a message is sent: a new request, an escalation, a chain step, or (Slack) the outcome
    shown in place of the buttons."""

    CREATED = "created"
    ESCALATED = "escalated"
    STEP = "step"
    OUTCOME = "outcome"


class NotificationState(StrEnum):
    """Where one message stands. `skipped`: the request closed before it went out."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


notification_outbox = Table(
    "notification_outbox",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("request_id", String(40), ForeignKey("requests.id"), nullable=False, index=True),
    Column("channel", String(16), nullable=False),
    Column("recipient", String(320), nullable=False),  # the person (email) it is for
    Column("address", String(320), nullable=False),
    # The email address or Slack user id at the time it was queued.
    Column("reason", String(16), nullable=False),
    Column("level", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", String(300)),
    # Slack: where the message is ({"channel", "ts"}), so its outcome can replace the buttons.
    Column("ref", JSON),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime()),
    Index(None, "state"),
)


def enqueue(
    conn: Connection,
    *,
    request_id: str,
    channel: Channel,
    recipient: str,
    address: str,
    reason: Reason,
    level: int,
    now: datetime,
    ref: dict[str, Any] | None = None,
) -> str:
    """Queue one message and arm its first attempt, in the caller's transaction."""
    notification_id = new_id("ntf")
    conn.execute(
        insert(notification_outbox).values(
            id=notification_id,
            request_id=request_id,
            channel=channel.value,
            recipient=recipient,
            address=address,
            reason=reason.value,
            level=level,
            state=NotificationState.PENDING.value,
            attempts=0,
            ref=ref,
            created_at=now,
        )
    )
    timers.arm(
        conn,
        kind=DELIVER_TIMER,
        due_at=now,
        now=now,
        request_id=request_id,
        fence=0,
        payload={"id": notification_id},
    )
    return notification_id
