"""PostgreSQL: dependent writes (and reads) of the lifecycle in one statement, round trips less.

Each statement is a data-modifying CTE. The first write runs in the CTE; the second inserts
one row per row the first returned, so when the first matched nothing (an idempotency key in
use, a request that another decision moved on) neither writes anything, and the second's
RETURNING, not a rowcount (SQLAlchemy reports none for these statements), tells the caller.
SQLite has no data-modifying CTEs: there the lifecycle runs the two writes one after the
other, in the same transaction.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import (
    Insert,
    Select,
    String,
    Table,
    Update,
    bindparam,
    func,
    insert,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import aggregate_order_by

from signoff_server.schema import decisions, request_roles, requests, user_roles

__all__ = [
    "DECISION_PARAM",
    "REQUEST_PARAM",
    "ROLE_PARAM",
    "request_with_roles",
    "update_then_decision",
]

REQUEST_PARAM = "r_{}"
"""The parameter name of a `requests` column in `request_with_roles`' statement."""
ROLE_PARAM = "role_{}"
"""The parameter name of the n-th role in `request_with_roles`' statement."""
DECISION_PARAM = "d_{}"
"""The parameter name of a `decisions` column in `update_then_decision`'s statement (a column's
own name would also set that column in the compare-and-set's UPDATE)."""


def _row_of(table: Table, name: str = "{}") -> dict[str, Any]:
    return {c.name: bindparam(name.format(c.name), type_=c.type) for c in table.c}


@functools.cache
def request_with_roles(count: int, *, members_assigned: bool = False) -> Select[tuple[Any]]:
    """Insert a request (nothing if its idempotency key is in use) and its `count` routed
    roles; returns the stored request's assignees (one row), no row when the key was in use.

    With `members_assigned` the assignees are everyone holding the request's route role, read
    in this statement (ordered by email) instead of a round trip before it.

    Parameters: every `requests` column as `REQUEST_PARAM` (but `assignees` when
    `members_assigned`), the roles as `ROLE_PARAM`."""
    row = _row_of(requests, REQUEST_PARAM)
    if members_assigned:
        emails = func.json_agg(aggregate_order_by(user_roles.c.email, user_roles.c.email))
        row["assignees"] = (
            select(func.coalesce(emails, literal_column("'[]'::json")))
            .where(user_roles.c.role == row["route_role"])
            .scalar_subquery()
        )
    stored = (
        postgresql.insert(requests)
        .values(row)
        .on_conflict_do_nothing()
        .returning(requests.c.id, requests.c.assignees)
        .cte("stored")
    )
    answer = select(stored.c.assignees).add_cte(stored)
    if count < 1:
        return answer
    rows = [
        select(stored.c.id, bindparam(ROLE_PARAM.format(n), type_=String())) for n in range(count)
    ]
    routed = (
        insert(request_roles)
        .from_select(["request_id", "role"], rows[0] if count == 1 else union_all(*rows))
        .cte("routed")
    )
    return answer.add_cte(routed)  # a data-modifying CTE runs whether or not it is read


def update_then_decision(moving: Update) -> Insert:
    """Run `moving` (a compare-and-set on a request), then insert the decision if it matched;
    returns the decision's id, nothing when the request had moved on.

    Parameters: those of `moving`, and every `decisions` column as `DECISION_PARAM`. Whatever
    `moving` returns (e.g. a `pg_notify(...)`) is evaluated for the row it changed."""
    moved = moving.cte("moved")
    source = select(*_row_of(decisions, DECISION_PARAM).values()).select_from(moved)
    return (
        insert(decisions)
        .from_select([c.name for c in decisions.c], source)
        .add_cte(moved)
        .returning(decisions.c.id)
    )
