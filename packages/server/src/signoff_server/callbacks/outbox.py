"""The callback outbox: one row per closed request that carries `callback.url`.

The row is written by a close hook, in the transaction that closes the request, together with
the timer that drives its first delivery attempt, so a committed decision always has its
callback queued and a rolled-back one never does. The row freezes what is sent: the event id
(`evt_…`, the stable `webhook-id`), the URL and the exact body, so every attempt and every replay
posts the same bytes under the same id; only the timestamp and signatures are fresh.

`generation` fences delivery chains: a replay bumps it, and a timer armed for an older
generation completes without sending.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    ForeignKey,
    Index,
    Integer,
    Row,
    String,
    Table,
    Text,
    insert,
    select,
    update,
)

from signoff.ids import new_id
from signoff.models import CallbackData, CallbackEvent, CallbackStatus, Request, Status
from signoff_server import audit, timers
from signoff_server.errors import Conflict, NotFound
from signoff_server.schema import UTCDateTime, metadata, requests

__all__ = [
    "DELIVER_TIMER",
    "DeliveryState",
    "callback_outbox",
    "enqueue",
    "event_type",
    "find",
    "replay",
    "set_request_status",
]

DELIVER_TIMER = "callback.deliver"
"""The timer kind that drives delivery attempts."""


class DeliveryState(StrEnum):
    """Where one callback stands. `refused`: the receiver answered 401, 404, 409 or 410."""

    PENDING = "pending"
    DELIVERED = "delivered"
    REFUSED = "refused"
    FAILED = "failed"


callback_outbox = Table(
    "callback_outbox",
    metadata,
    Column("event_id", String(40), primary_key=True),
    Column("request_id", String(40), ForeignKey("requests.id"), nullable=False, unique=True),
    Column("agent_id", String(200), nullable=False),
    Column("type", String(32), nullable=False),
    Column("url", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("generation", Integer, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_attempt_at", UTCDateTime()),
    Column("last_status_code", Integer),
    Column("last_error", String(300)),
    Column("next_attempt_at", UTCDateTime()),
    Column("delivered_at", UTCDateTime()),
    Column("created_at", UTCDateTime(), nullable=False),
    Index(None, "state"),
)


def event_type(status: Status) -> str:
    """The CallbackEvent type for a request closed with `status`."""
    if status is Status.EXPIRED:
        return "request.expired"
    if status is Status.CANCELLED:
        return "request.cancelled"
    return "request.decided"


def enqueue(conn: Connection, request: Request, now: datetime) -> str | None:
    """Close hook: queue the signed callback of a request that just closed, if it has a URL.

    Returns the event id (None without a callback URL). Runs in the closing transaction.
    """
    if request.callback is None or not request.status.is_terminal:
        return None
    event_id = new_id("evt")
    event = CallbackEvent(
        type=event_type(request.status),  # pyright: ignore[reportArgumentType]
        id=event_id,
        timestamp=now,
        data=CallbackData(
            request=request.model_copy(update={"callback_status": CallbackStatus.PENDING})
        ),
    )
    conn.execute(
        insert(callback_outbox).values(
            event_id=event_id,
            request_id=request.id,
            agent_id=request.agent.id or "",
            type=event.type,
            url=str(request.callback.url),
            body=event.model_dump_json(),
            state=DeliveryState.PENDING.value,
            generation=1,
            attempts=0,
            created_at=now,
            next_attempt_at=now,
        )
    )
    set_request_status(conn, request.id, CallbackStatus.PENDING)
    timers.arm(
        conn,
        kind=DELIVER_TIMER,
        due_at=now,
        now=now,
        request_id=request.id,
        fence=1,
        payload={"event_id": event_id},
    )
    audit.append(
        conn,
        type="callback.queued",
        actor="system",
        at=now,
        request_id=request.id,
        data={"event_id": event_id, "event_type": event.type},
    )
    return event_id


def set_request_status(conn: Connection, request_id: str, status: CallbackStatus) -> None:
    """Record the request's `callback_status`, in the caller's transaction.

    Not a version bump: the callback state is tracked beside the request, not part of it.
    """
    conn.execute(
        update(requests).where(requests.c.id == request_id).values(callback_status=status.value)
    )


def find(conn: Connection, request_id: str, *, for_update: bool = False) -> Row[Any] | None:
    """The outbox row of a request, if it has one."""
    query = select(callback_outbox).where(callback_outbox.c.request_id == request_id)
    if for_update:
        query = query.with_for_update()
    return conn.execute(query).first()


def replay(conn: Connection, request_id: str, now: datetime, *, actor: str) -> str:
    """Send a request's callback again, now, under the same `webhook-id`.

    Starts a new delivery chain (a full retry schedule); a chain still in progress stops at
    its next attempt. Returns the event id.
    """
    row = find(conn, request_id, for_update=True)
    if row is None:
        exists = conn.execute(select(requests.c.id).where(requests.c.id == request_id)).first()
        if exists is None:
            raise NotFound(f"no request {request_id}")
        raise Conflict(
            f"{request_id} has no callback to replay (no callback.url, or still pending)",
            code="no_callback",
        )
    generation = row.generation + 1
    conn.execute(
        update(callback_outbox)
        .where(callback_outbox.c.event_id == row.event_id)
        .values(
            state=DeliveryState.PENDING.value,
            generation=generation,
            attempts=0,
            next_attempt_at=now,
        )
    )
    set_request_status(conn, request_id, CallbackStatus.PENDING)
    timers.arm(
        conn,
        kind=DELIVER_TIMER,
        due_at=now,
        now=now,
        request_id=request_id,
        fence=generation,
        payload={"event_id": row.event_id},
    )
    audit.append(
        conn,
        type="callback.replayed",
        actor=actor,
        at=now,
        request_id=request_id,
        data={"event_id": row.event_id, "previous_state": row.state},
    )
    return str(row.event_id)
