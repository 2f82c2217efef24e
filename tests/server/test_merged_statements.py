"""PostgreSQL's two-writes-in-one statements (merged.py): the second write happens only when the
first one did, and the compare-and-set's NOTIFY goes out with the decision, not without it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from sqlalchemy import func, insert, select

from signoff_server import merged
from signoff_server.db import Database
from signoff_server.identity import set_user
from signoff_server.lifecycle import _CAS_CLOSE, NOTIFY_CHANNEL  # pyright: ignore[reportPrivateUsage]
from signoff_server.schema import agents, decisions, request_roles, requests

pytestmark = pytest.mark.parametrize(
    "store_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(store_url: str) -> Iterator[Database]:
    database = Database(store_url)
    with database.write() as conn:
        conn.execute(insert(agents).values(id="agent-1", created_at=NOW))
    yield database
    database.dispose()


def _request(key: str) -> dict[str, Any]:
    return {
        "id": f"req_{uuid.uuid4().hex[:20]}",
        "agent_id": "agent-1",
        "status": "pending",
        "version": 1,
        "route_role": "finance",
        "risk": "medium",
        "object_type": "invoice",
        "object_id": "INV-1",
        "idempotency_key": key,
        "body_hash": "0" * 64,
        "payload": {"action": {"name": "payments.release", "arguments": {"amount": "1"}}},
        "policy": None,
        "assignees": ["alice@example.com"],
        "escalation_level": 0,
        "callback_status": None,
        "outcome": None,
        "created_at": NOW,
        "due_at": None,
        "closed_at": None,
    }


def _store(
    db: Database, values: dict[str, Any], roles: list[str], *, members: bool = False
) -> list[list[str]]:
    """The assignees the statement returns: one row if it stored the request, none if not."""
    params = {
        merged.REQUEST_PARAM.format(k): v
        for k, v in values.items()
        if not (members and k == "assignees")
    }
    params.update((merged.ROLE_PARAM.format(n), r) for n, r in enumerate(roles))
    statement = merged.request_with_roles(len(roles), members_assigned=members)
    with db.write() as conn:
        return [r.assignees for r in conn.execute(statement, params)]


def test_a_request_and_its_roles_go_in_together_and_a_taken_key_adds_neither(db: Database) -> None:
    first = _request("key-1")
    assert _store(db, first, ["finance", "controller"]) == [["alice@example.com"]]
    again = _request("key-1")  # another id, the same agent and key: a retry
    assert _store(db, again, ["finance", "auditor"]) == []
    with db.read() as conn:
        stored = conn.execute(select(requests.c.id)).scalars().all()
        roles = conn.execute(select(request_roles.c.request_id, request_roles.c.role)).all()
    assert stored == [first["id"]]
    assert sorted(roles) == [(first["id"], "controller"), (first["id"], "finance")]


def test_the_assignees_can_be_everyone_holding_the_role_read_in_the_same_statement(
    db: Database,
) -> None:
    with db.write() as conn:
        set_user(conn, "zoe@example.com", ["finance"])
        set_user(conn, "bob@example.com", ["finance", "controller"])
        set_user(conn, "carol@example.com", ["controller"])
    assert _store(db, _request("key-m1"), ["finance"], members=True) == [
        ["bob@example.com", "zoe@example.com"]
    ]
    nobody = {**_request("key-m2"), "route_role": "treasury"}
    assert _store(db, nobody, ["treasury"], members=True) == [[]]
    taken = _request("key-m1")
    assert _store(db, taken, ["finance"], members=True) == []  # nothing stored, nothing read
    with db.read() as conn:
        stored = dict(conn.execute(select(requests.c.idempotency_key, requests.c.assignees)).all())
    assert stored == {"key-m1": ["bob@example.com", "zoe@example.com"], "key-m2": []}


def _decision(request_id: str) -> dict[str, Any]:
    return {
        "id": f"dec_{uuid.uuid4().hex[:20]}",
        "request_id": request_id,
        "verdict": "approve",
        "arguments": None,
        "comment": None,
        "reason_code": None,
        "decided_by": "alice@example.com",
        "role": "finance",
        "via": "api",
        "closing": True,
        "at": NOW,
    }


def _close_and_decide(db: Database, request_id: str, version: int, decision: dict[str, Any]) -> int:
    statement = merged.update_then_decision(
        _CAS_CLOSE.returning(func.pg_notify(NOTIFY_CHANNEL, requests.c.id))
    )
    params: dict[str, Any] = {
        "b_id": request_id,
        "b_version": version,
        "b_next": version + 1,
        "b_status": "approved",
        "b_at": NOW,
    }
    params.update((merged.DECISION_PARAM.format(k), v) for k, v in decision.items())
    with db.write() as conn:
        return len(conn.execute(statement, params).all())


def test_a_stale_version_records_no_decision_and_notifies_nobody(db: Database) -> None:
    values = _request("key-2")
    _store(db, values, ["finance"])
    listener = psycopg.connect(db.url.replace("+psycopg", ""), autocommit=True)
    try:
        listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        stale = _decision(values["id"])
        assert _close_and_decide(db, values["id"], version=7, decision=stale) == 0
        assert list(listener.notifies(timeout=0.5)) == []

        winner = _decision(values["id"])
        assert _close_and_decide(db, values["id"], version=1, decision=winner) == 1
        heard = list(listener.notifies(timeout=5, stop_after=1))
        assert [(n.channel, n.payload) for n in heard] == [(NOTIFY_CHANNEL, values["id"])]

        loser = _decision(values["id"])  # the version it read is gone now
        assert _close_and_decide(db, values["id"], version=1, decision=loser) == 0
    finally:
        listener.close()
    with db.read() as conn:
        recorded = conn.execute(select(decisions.c.id, decisions.c.verdict)).all()
        row = conn.execute(select(requests.c.status, requests.c.version)).one()
    assert recorded == [(winner["id"], "approve")]
    assert (row.status, row.version) == ("approved", 2)
