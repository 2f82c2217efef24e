"""What the inbox pages read: my queue, closed history, roles and their members.

Visibility is the API's (`views.list_requests`): an admin sees everything; anyone else sees the
requests routed to a role they hold, including roles a request escalated to or from.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, exists, or_, select

from signoff.models import Request, Risk, Status
from signoff_server.identity import Principal
from signoff_server.schema import decisions, request_roles, requests, user_roles, users
from signoff_server.views import render

__all__ = ["HistoryFilters", "QueueFilters", "history", "queue", "role_members"]

QUEUE_LIMIT = 200
HISTORY_PAGE = 50


@dataclass(frozen=True, slots=True)
class QueueFilters:
    """Narrowing my queue: by risk, role, agent, or a business-object search."""

    risk: Risk | None = None
    role: str | None = None
    agent: str | None = None
    q: str | None = None


@dataclass(frozen=True, slots=True)
class HistoryFilters:
    """Searching closed requests: business object text, agent, final status, page."""

    q: str | None = None
    agent: str | None = None
    status: Status | None = None
    page: int = 1


def _visible(query: Select[Any], principal: Principal) -> Select[Any]:
    if principal.is_admin:
        return query
    return query.where(
        exists()
        .where(request_roles.c.request_id == requests.c.id)
        .where(request_roles.c.role.in_(sorted(principal.roles)))
    )


def _object_search(query: Select[Any], q: str | None) -> Select[Any]:
    if not q:
        return query
    return query.where(
        or_(
            requests.c.object_id.contains(q, autoescape=True),
            requests.c.object_type.contains(q, autoescape=True),
        )
    )


def _render_all(conn: Connection, rows: list[Any]) -> list[Request]:
    grouped: dict[str, list[Any]] = defaultdict(list)
    ids = [r.id for r in rows]
    if ids:
        for d in conn.execute(
            select(decisions)
            .where(decisions.c.request_id.in_(ids))
            .order_by(decisions.c.at, decisions.c.id)
        ):
            grouped[d.request_id].append(d)
    return [render(r, grouped[r.id]) for r in rows]


def queue(conn: Connection, principal: Principal, filters: QueueFilters) -> list[Request]:
    """Pending requests I may decide, soonest deadline first (no deadline last)."""
    query = select(requests).where(requests.c.status == Status.PENDING.value)
    query = _visible(query, principal)
    if filters.risk is not None:
        query = query.where(requests.c.risk == filters.risk.value)
    if filters.role:
        query = query.where(requests.c.route_role == filters.role)
    if filters.agent:
        query = query.where(requests.c.agent_id == filters.agent)
    query = _object_search(query, filters.q)
    query = query.order_by(
        requests.c.due_at.is_(None), requests.c.due_at, requests.c.created_at
    ).limit(QUEUE_LIMIT)
    return _render_all(conn, list(conn.execute(query)))


def history(
    conn: Connection, principal: Principal, filters: HistoryFilters
) -> tuple[list[Request], bool]:
    """Closed requests I may see, most recently closed first; and whether more pages follow."""
    query = select(requests).where(requests.c.status != Status.PENDING.value)
    query = _visible(query, principal)
    if filters.status is not None:
        query = query.where(requests.c.status == filters.status.value)
    if filters.agent:
        query = query.where(requests.c.agent_id.contains(filters.agent, autoescape=True))
    query = _object_search(query, filters.q)
    page = max(1, min(filters.page, 1000))
    query = (
        query.order_by(requests.c.closed_at.desc(), requests.c.id.desc())
        .offset((page - 1) * HISTORY_PAGE)
        .limit(HISTORY_PAGE + 1)
    )
    rows = list(conn.execute(query))
    return _render_all(conn, rows[:HISTORY_PAGE]), len(rows) > HISTORY_PAGE


def role_members(conn: Connection) -> dict[str, list[tuple[str, str | None]]]:
    """Every role with its members (email, name), from the users tables."""
    found: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
    rows = conn.execute(
        select(user_roles.c.role, users.c.email, users.c.name)
        .join(users, users.c.email == user_roles.c.email)
        .order_by(user_roles.c.role, users.c.email)
    )
    for row in rows:
        found[row.role].append((row.email, row.name))
    return dict(found)
