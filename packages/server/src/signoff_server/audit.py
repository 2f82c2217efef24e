"""Appending to the audit log, always inside the transaction of the change it records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from signoff.models import AuditEvent
from signoff_server.schema import audit_events

__all__ = ["append", "timeline"]


def append(
    conn: Connection,
    *,
    type: str,
    actor: str,
    at: datetime,
    request_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Record one event. Call it with the connection of the change, so both commit or neither."""
    conn.execute(
        insert(audit_events).values(
            at=at, type=type, request_id=request_id, actor=actor, data=data or {}
        )
    )


def timeline(conn: Connection, request_id: str) -> list[AuditEvent]:
    """A request's events in the order they were appended."""
    rows = conn.execute(
        select(audit_events)
        .where(audit_events.c.request_id == request_id)
        .order_by(audit_events.c.seq)
    ).mappings()
    return [AuditEvent.model_validate(dict(row)) for row in rows]
