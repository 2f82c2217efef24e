"""PostgreSQL: two dependent writes of the lifecycle in one statement, one round trip less.

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
    BindParameter,
    Insert,
    String,
    Table,
    Update,
    bindparam,
    insert,
    select,
    union_all,
)
from sqlalchemy.dialects import postgresql

from signoff_server.schema import decisions, request_roles, requests

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


def _row_of(table: Table, name: str = "{}") -> dict[str, BindParameter[Any]]:
    return {c.name: bindparam(name.format(c.name), type_=c.type) for c in table.c}


@functools.cache
def request_with_roles(count: int) -> Insert:
    """Insert a request (nothing if its idempotency key is in use) and its `count` routed
    roles; returns the roles inserted, none when the key was in use.

    Parameters: every `requests` column as `REQUEST_PARAM`, the roles as `ROLE_PARAM`."""
    if count < 1:
        raise ValueError("a request is routed to at least one role")
    stored = (
        postgresql.insert(requests)
        .values(_row_of(requests, REQUEST_PARAM))
        .on_conflict_do_nothing()
        .returning(requests.c.id)
        .cte("stored")
    )
    rows = [
        select(stored.c.id, bindparam(ROLE_PARAM.format(n), type_=String())) for n in range(count)
    ]
    return (
        insert(request_roles)
        .from_select(["request_id", "role"], rows[0] if count == 1 else union_all(*rows))
        .add_cte(stored)
        .returning(request_roles.c.role)
    )


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
