"""Reading requests: rows into the wire model, visibility rules, filtered cursor pages."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import JSON, Connection, Row, Select, bindparam, exists, func, select

from signoff.models import Decision, Outcome, Page, Request, Status
from signoff_server.errors import Forbidden, Invalid, NotFound
from signoff_server.identity import Principal
from signoff_server.schema import decisions, request_roles, requests

__all__ = [
    "ListFilters",
    "changed_row",
    "check_visible",
    "decision_rows",
    "list_requests",
    "load_request",
    "load_row",
    "load_row_with_roles",
    "render",
    "render_decision",
    "request_query",
    "routed_roles",
    "row_with_roles_query",
]

MAX_PAGE = 200

# Built once: a statement object memoizes its cache key, so executing it again skips both the
# construction and the key computation that a fresh `select(...)` costs on every call.
_REQUEST = select(requests).where(requests.c.id == bindparam("id"))
_REQUEST_FOR_UPDATE = _REQUEST.with_for_update()
_DECISIONS = (
    select(decisions)
    .where(decisions.c.request_id == bindparam("id"))
    .order_by(decisions.c.at, decisions.c.id)
)
_ROLES = select(request_roles.c.role).where(request_roles.c.request_id == bindparam("id"))


@dataclass(frozen=True, slots=True)
class ListFilters:
    """Query filters of `GET /v1/requests`."""

    status: Status | None = None
    role: str | None = None
    agent: str | None = None
    object_type: str | None = None
    object_id: str | None = None


def render_decision(row: Any) -> Decision:
    """The wire model of one decision row (or an object with the same attributes)."""
    return Decision.model_validate(
        {
            "id": row.id,
            "request_id": row.request_id,
            "verdict": row.verdict,
            "arguments": row.arguments,
            "comment": row.comment,
            "reason_code": row.reason_code,
            "decided_by": {"user": row.decided_by, "role": row.role},
            "via": row.via,
            "at": row.at,
        }
    )


def render(row: Any, decision_rows: list[Any]) -> Request:
    """The wire model of one request row and its decision rows (rows, or objects with the
    same attributes)."""
    payload: dict[str, Any] = dict(row.payload)
    payload.pop("idempotency_key", None)
    return Request.model_validate(
        {
            **payload,
            "id": row.id,
            "status": row.status,
            "created_at": row.created_at,
            "due_at": row.due_at,
            "closed_at": row.closed_at,
            "idempotency_key": row.idempotency_key,
            "route": {"role": row.route_role},
            "risk": row.risk,
            "policy": row.policy,
            "assignees": row.assignees,
            "escalation_level": row.escalation_level,
            "callback_status": row.callback_status,
            "decisions": [render_decision(d) for d in decision_rows],
            "outcome": Outcome.model_validate(row.outcome) if row.outcome else None,
        }
    )


def changed_row(row: Any, **changes: Any) -> SimpleNamespace:
    """A request row (a database row or one built in memory) with some columns changed: the
    row a re-read after an update would give, without the re-read."""
    return SimpleNamespace(**({c.name: getattr(row, c.name) for c in requests.columns} | changes))


def _decision_rows(conn: Connection, request_ids: list[str]) -> dict[str, list[Row[Any]]]:
    grouped: dict[str, list[Row[Any]]] = {rid: [] for rid in request_ids}
    if request_ids:
        rows = conn.execute(
            select(decisions)
            .where(decisions.c.request_id.in_(request_ids))
            .order_by(decisions.c.at, decisions.c.id)
        )
        for row in rows:
            grouped[row.request_id].append(row)
    return grouped


def decision_rows(conn: Connection, row: Any) -> list[Row[Any]]:
    """The decision rows of the request in `row`, in order."""
    if row.version == 1:
        # Every decision is recorded by a compare-and-set that bumps the version: a request
        # still at its first version has none, and the query can be skipped.
        return []
    return list(conn.execute(_DECISIONS, {"id": row.id}))


def routed_roles(conn: Connection, request_id: str) -> set[str]:
    """The roles a request is routed to (including roles it escalated from)."""
    return {r.role for r in conn.execute(_ROLES, {"id": request_id})}


def check_visible(
    conn: Connection, principal: Principal, row: Row[Any], *, roles: set[str] | None = None
) -> None:
    """Refuse callers who may not see this request.

    Another agent's request is a 404, so agents cannot learn what others asked; a reviewer who
    holds none of the request's roles gets a 403 that says so. `roles`: the request's routed
    roles, when the caller has read them already.
    """
    if principal.is_agent:
        if row.agent_id != principal.id:
            raise NotFound(f"no request {row.id}")
        return
    if principal.is_admin:
        return
    if roles is None:
        roles = routed_roles(conn, row.id)
    if not principal.roles & roles:
        raise Forbidden(f"{row.id} is routed to roles you do not hold", code="role_required")


def load_row(conn: Connection, request_id: str, *, for_update: bool = False) -> Row[Any]:
    """One request's row (locked for the transaction with `for_update`), or NotFound."""
    query = _REQUEST_FOR_UPDATE if for_update else _REQUEST
    row = conn.execute(query, {"id": request_id}).first()
    if row is None:
        raise NotFound(f"no request {request_id}")
    return row


def _routed_roles(*, sqlite: bool) -> Any:
    """The request's routed roles (incl. roles escalated from) as a JSON list, for `routed`."""
    aggregate = func.json_group_array if sqlite else func.json_agg
    return (
        select(aggregate(request_roles.c.role, type_=JSON))
        .where(request_roles.c.request_id == requests.c.id)
        .scalar_subquery()
        .label("routed")
    )


def row_with_roles_query(*, sqlite: bool) -> Select[Any]:
    """One request's row locked for update, with its routed roles (incl. roles escalated from)
    as a JSON list in `routed`: one statement for what deciding needs, instead of two."""
    return (
        select(requests, _routed_roles(sqlite=sqlite))
        .where(requests.c.id == bindparam("id"))
        .with_for_update()
    )


def load_row_with_roles(
    conn: Connection, query: Select[Any], request_id: str
) -> tuple[Row[Any], set[str]]:
    """`query` (from `row_with_roles_query`) for `request_id`: the row and its routed roles."""
    row = conn.execute(query, {"id": request_id}).first()
    if row is None:
        raise NotFound(f"no request {request_id}")
    return row, set(row.routed or ())


def _request_query(*, sqlite: bool) -> Select[Any]:
    if sqlite:
        aggregate, build = func.json_group_array, func.json_object
        arguments: Any = func.json(decisions.c.arguments)  # stored as text: embed it as JSON
    else:
        aggregate, build, arguments = func.json_agg, func.json_build_object, decisions.c.arguments
    fields = [
        *(("id", decisions.c.id), ("request_id", decisions.c.request_id)),
        *(("verdict", decisions.c.verdict), ("arguments", arguments)),
        *(("comment", decisions.c.comment), ("reason_code", decisions.c.reason_code)),
        *(("decided_by", decisions.c.decided_by), ("role", decisions.c.role)),
        *(("via", decisions.c.via), ("at", decisions.c.at)),
    ]
    decided = (
        select(aggregate(build(*(part for pair in fields for part in pair)), type_=JSON))
        .where(decisions.c.request_id == requests.c.id)
        .scalar_subquery()
    )
    return select(requests, decided.label("decided"), _routed_roles(sqlite=sqlite)).where(
        requests.c.id == bindparam("id")
    )


_REQUEST_QUERIES = {True: _request_query(sqlite=True), False: _request_query(sqlite=False)}


def request_query(conn: Connection) -> Select[Any]:
    """One request's row with its decisions (`decided`) and routed roles (`routed`) as JSON
    lists: all that reading a request needs, in one statement."""
    return _REQUEST_QUERIES[conn.dialect.name == "sqlite"]


def _utc(value: str) -> datetime:
    at = datetime.fromisoformat(value)  # SQLite: "2026-01-01 10:00:00.000001", stored in UTC
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _aggregated_decisions(found: list[dict[str, Any]] | None) -> list[SimpleNamespace]:
    rows = [SimpleNamespace(**{**d, "at": _utc(d["at"])}) for d in found or ()]
    rows.sort(key=lambda d: (d.at, d.id))  # the aggregates' own order is unspecified
    return rows


def load_request(
    conn: Connection, principal: Principal | None, request_id: str, *, for_update: bool = False
) -> tuple[Row[Any], Request]:
    """The row and wire model of one request, checked against the caller's visibility.

    Without `for_update` this is one statement (`request_query`), so on SQLite it needs no
    transaction of its own (`Database.read(single_statement=True)`)."""
    if for_update:
        row = load_row(conn, request_id, for_update=True)
        if principal is not None:
            check_visible(conn, principal, row)
        return row, render(row, decision_rows(conn, row))
    row = conn.execute(request_query(conn), {"id": request_id}).first()
    if row is None:
        raise NotFound(f"no request {request_id}")
    if principal is not None:
        check_visible(conn, principal, row, roles=set(row.routed or ()))
    return row, render(row, _aggregated_decisions(row.decided))


def _decode_cursor(cursor: str) -> str:
    try:
        value = base64.urlsafe_b64decode(cursor.encode() + b"==").decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise Invalid("not a cursor this server issued", field="cursor") from exc
    if not value.startswith("req_") or "\x00" in value:  # NUL: PostgreSQL text cannot hold it
        raise Invalid("not a cursor this server issued", field="cursor")
    return value


def _encode_cursor(request_id: str) -> str:
    return base64.urlsafe_b64encode(request_id.encode()).decode().rstrip("=")


def list_requests(
    conn: Connection,
    principal: Principal,
    filters: ListFilters,
    *,
    cursor: str | None,
    limit: int,
) -> Page[Request]:
    """Newest first; `next_cursor` continues after the last item of this page."""
    query = select(requests).order_by(requests.c.id.desc()).limit(limit + 1)
    if principal.is_agent:
        query = query.where(requests.c.agent_id == principal.id)
    elif not principal.is_admin:
        query = query.where(
            exists()
            .where(request_roles.c.request_id == requests.c.id)
            .where(request_roles.c.role.in_(sorted(principal.roles)))
        )
    if filters.status is not None:
        query = query.where(requests.c.status == filters.status.value)
    if filters.role is not None:
        query = query.where(requests.c.route_role == filters.role)
    if filters.agent is not None:
        query = query.where(requests.c.agent_id == filters.agent)
    if filters.object_type is not None:
        query = query.where(requests.c.object_type == filters.object_type)
    if filters.object_id is not None:
        query = query.where(requests.c.object_id == filters.object_id)
    if cursor is not None:
        query = query.where(requests.c.id < _decode_cursor(cursor))
    rows = list(conn.execute(query))
    more = len(rows) > limit
    rows = rows[:limit]
    grouped = _decision_rows(conn, [r.id for r in rows])
    return Page[Request](
        items=[render(r, grouped[r.id]) for r in rows],
        next_cursor=_encode_cursor(rows[-1].id) if more and rows else None,
    )
