"""The request lifecycle: create, decide, cancel, expire, report outcome.

Every change runs in one write transaction together with its audit events. A change that closes
a request is a compare-and-set on the row's `version`, so of several concurrent decisions the
database lets exactly one through; the others get a Conflict.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from signoff.durations import parse_duration
from signoff.ids import new_id
from signoff.models import (
    CommentRequired,
    DecisionCreate,
    DecisionVia,
    OutcomeReport,
    Request,
    RequestCreate,
    Status,
    TimeoutOutcome,
    Verdict,
)
from signoff_server import audit, merged, timers
from signoff_server.db import Database
from signoff_server.errors import Conflict, Forbidden, Invalid
from signoff_server.identity import Principal
from signoff_server.quorum import Approval, eligible_roles, quorum_met, role_to_decide_in
from signoff_server.routing import RequestRouter, Router, Routing, members_of
from signoff_server.schema import agents, decisions, request_roles, requests
from signoff_server.views import (
    changed_row,
    check_visible,
    decision_rows,
    load_request,
    load_row,
    load_row_with_roles,
    render,
    render_decision,
    row_with_roles_query,
)

__all__ = ["DEADLINE_TIMER", "NOTIFY_CHANNEL", "CloseHook", "Created", "Lifecycle"]

NOTIFY_CHANNEL = "signoff_request_closed"
DEADLINE_TIMER = "request.deadline"

CloseHook = Callable[[Connection, Request, datetime], None]
"""Runs inside the transaction that closes a request (e.g. to write the callback outbox row)."""

# Statements built once (see views.py): executing a prebuilt statement with parameters skips
# the construction and cache-key work that dominate a fresh statement's cost.
_INSERT_ROLE = insert(request_roles)
_INSERT_DECISION = insert(decisions)
_OPEN_VERSION = (requests.c.id == bindparam("b_id"), requests.c.version == bindparam("b_version"))
_CAS_CLOSE = (
    update(requests)
    .where(*_OPEN_VERSION, requests.c.status == Status.PENDING.value)
    .values(version=bindparam("b_next"), status=bindparam("b_status"), closed_at=bindparam("b_at"))
)
_CAS_BUMP = (
    update(requests)
    .where(*_OPEN_VERSION, requests.c.status == Status.PENDING.value)
    .values(version=bindparam("b_next"))
)
_SET_OUTCOME = (
    update(requests)
    .where(*_OPEN_VERSION)
    .values(outcome=bindparam("b_outcome"), version=bindparam("b_next"))
)

_CLOSING_STATUS = {
    Verdict.APPROVE: Status.APPROVED,
    Verdict.EDIT: Status.APPROVED,
    Verdict.REJECT: Status.REJECTED,
    Verdict.RESPOND: Status.RESPONDED,
}


def _asked(payload: RequestCreate) -> dict[str, Any]:
    """The request as the agent asked for it: what is hashed, stored and audited."""
    return payload.model_dump(mode="json", exclude={"idempotency_key"})


def _body_hash(asked: dict[str, Any]) -> str:
    canonical = json.dumps(asked, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _auto_status(routing: Routing) -> Status | None:
    """The status a policy's `auto` verdict closes a new request with, if it has one."""
    if routing.auto is None:
        return None
    if routing.auto is Verdict.APPROVE:
        return Status.APPROVED
    if routing.auto is Verdict.REJECT:
        return Status.REJECTED
    raise ValueError(f"a policy can only auto-approve or auto-reject, not {routing.auto}")


class _KeyTaken(Exception):
    """The request's idempotency key is in use: nothing was inserted."""


@dataclass(frozen=True, slots=True)
class Created:
    """The result of a create: the request and whether this call made it (False on replay)."""

    request: Request
    created: bool


class Lifecycle:
    """Changes to requests.

    `router` decides routing at creation; every `close_hooks` function runs inside the
    transaction that closes a request; `on_closed(request)` runs after that commit.
    """

    def __init__(
        self,
        db: Database,
        *,
        on_closed: Callable[[Request], None],
        router: Router | None = None,
        close_hooks: list[CloseHook] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.db = db
        self.on_closed = on_closed
        self.router: Router = router or RequestRouter()
        self.close_hooks: list[CloseHook] = list(close_hooks or [])
        self.clock = clock
        self._agents: set[str] = set()  # agent rows known to be committed (never deleted)
        dialect = sqlite if db.is_sqlite else postgresql
        self._insert_agent = dialect.insert(agents).on_conflict_do_nothing()
        # A taken idempotency key inserts nothing (rowcount 0) instead of raising, so PostgreSQL
        # logs no error for an ordinary retry.
        self._insert_request = dialect.insert(requests).on_conflict_do_nothing()
        self._row_with_roles = row_with_roles_query(sqlite=db.is_sqlite)
        # On PostgreSQL the closing compare-and-set also queues the NOTIFY that wakes long-polls
        # on every replica (delivered at commit): one round trip instead of two.
        self._cas_close = (
            _CAS_CLOSE
            if db.is_sqlite
            else _CAS_CLOSE.returning(func.pg_notify(NOTIFY_CHANNEL, requests.c.id))
        )
        # PostgreSQL: the compare-and-set and the decision it lets through, in one round trip;
        # the request row and its roles likewise (see merged.py).
        self._close_and_decide = merged.update_then_decision(self._cas_close)
        self._bump_and_decide = merged.update_then_decision(_CAS_BUMP.returning(requests.c.id))

    def _now(self) -> datetime:
        # In UTC, as the store gives datetimes back: results built in memory then match a re-read.
        return self.clock().astimezone(UTC)

    def _closed(self, conn: Connection, result: Request, now: datetime) -> Request:
        """In the closing transaction (after `_cas` closed the row, which notified the other
        replicas): run the hooks, return the result."""
        for hook in self.close_hooks:
            hook(conn, result, now)
        return result

    # create -----------------------------------------------------------------------------

    def create(self, principal: Principal, payload: RequestCreate) -> Created:
        """Create a request for the calling agent; an idempotent replay returns the first one."""
        if not principal.is_agent or "requests:create" not in principal.scopes:
            raise Forbidden("only an agent key with the requests:create scope can create requests")
        if payload.agent.id is not None and payload.agent.id != principal.id:
            raise Forbidden(
                f"this key belongs to agent {principal.id!r}, not {payload.agent.id!r}",
                code="agent_mismatch",
            )
        asked = _asked(payload)
        body_hash = _body_hash(asked)
        # Optimistic: insert first, and only when the idempotency key is taken (a retry, a
        # re-run node, or a concurrent create that won) read back the request it names. The
        # common case, a new key, so costs no read transaction before the write.
        try:
            with self.db.write() as conn:
                request, closed = self._insert(conn, principal, payload, asked, body_hash)
            self._agents.add(principal.id)
        except (_KeyTaken, IntegrityError):
            if payload.idempotency_key is None:
                raise
            replay = self._replay(principal, payload.idempotency_key, body_hash)
            if replay is None:
                raise
            return Created(replay, created=False)
        if closed:
            self.on_closed(request)
        return Created(request, created=True)

    def _replay(self, principal: Principal, key: str, body_hash: str) -> Request | None:
        with self.db.read() as conn:
            row = conn.execute(
                select(requests.c.id, requests.c.body_hash).where(
                    requests.c.agent_id == principal.id, requests.c.idempotency_key == key
                )
            ).first()
            if row is None:
                return None
            if row.body_hash != body_hash:
                raise Conflict(
                    f"idempotency key {key!r} was used for a different request ({row.id})",
                    code="idempotency_key_reused",
                    details={"request_id": row.id},
                )
            return load_request(conn, principal, row.id)[1]

    def _insert(
        self,
        conn: Connection,
        principal: Principal,
        payload: RequestCreate,
        asked: dict[str, Any],
        body_hash: str,
    ) -> tuple[Request, bool]:
        now = self._now()
        request_id = new_id("req")
        if principal.id not in self._agents:
            conn.execute(self._insert_agent, {"id": principal.id, "created_at": now})
        routing = self.router.route(conn, payload, principal.id, now)
        stored = {
            **asked,
            "agent": {**asked["agent"], "id": principal.id},
            "sla": routing.sla,
            "on_timeout": routing.on_timeout.value,
            "approvals": routing.approvals.model_dump(mode="json"),
            "allowed": [v.value for v in routing.allowed],
            "comment_required": routing.comment_required.value,
        }
        stored.pop("route", None)
        stored.pop("risk", None)
        due_at = now + parse_duration(routing.sla) if routing.sla else None
        auto = _auto_status(routing)
        values: dict[str, Any] = {
            "id": request_id,
            "agent_id": principal.id,
            # A request the policy decides at once is written closed, at the version its
            # decision gives it: no update, and no waiter can exist yet to be notified.
            "status": (auto or Status.PENDING).value,
            "version": 1 if auto is None else 2,
            "route_role": routing.role,
            "risk": routing.risk.value,
            "object_type": payload.business_object.type,
            "object_id": payload.business_object.id,
            "idempotency_key": payload.idempotency_key,
            "body_hash": body_hash,
            "payload": stored,
            "policy": routing.policy.model_dump(mode="json") if routing.policy else None,
            "assignees": routing.assignees,
            "escalation_level": 0,
            "callback_status": None,
            "outcome": None,
            "created_at": now,
            "due_at": due_at,
            "closed_at": None if auto is None else now,
        }
        roles = eligible_roles(routing.role, routing.approvals)
        assignees = self._store_request(conn, values, roles)
        if assignees is None:
            raise _KeyTaken  # rolls the transaction back; create() answers with the replay
        values["assignees"] = assignees
        self._audit_created(conn, principal, request_id, asked, routing, assignees, now)
        row = SimpleNamespace(**values)  # what a re-read would give
        if auto is not None:
            return self._auto_decide(conn, row, routing, now), True
        if due_at is not None:
            timers.arm(conn, kind=DEADLINE_TIMER, due_at=due_at, now=now, request_id=request_id)
        request = render(row, [])
        self.router.after_create(conn, request, routing, now)
        return request, False

    def _store_request(
        self, conn: Connection, values: dict[str, Any], roles: list[str]
    ) -> list[str] | None:
        """Insert the request row and the roles it is routed to, and return its assignees
        (everyone holding its route role where `values["assignees"]` is None); None, with
        nothing written, if its idempotency key is in use."""
        members = values["assignees"] is None
        if self.db.is_sqlite:
            if members:
                values = {**values, "assignees": members_of(conn, values["route_role"])}
            if conn.execute(self._insert_request, values).rowcount == 0:
                return None
            if roles:
                conn.execute(_INSERT_ROLE, [{"request_id": values["id"], "role": r} for r in roles])
            return values["assignees"]
        # One round trip: the request, its roles and (if asked) its assignees.
        statement = merged.request_with_roles(len(roles), members_assigned=members)
        params = {
            merged.REQUEST_PARAM.format(k): v
            for k, v in values.items()
            if not (members and k == "assignees")
        }
        params.update((merged.ROLE_PARAM.format(n), r) for n, r in enumerate(roles))
        stored = conn.execute(statement, params).first()
        return None if stored is None else list(stored.assignees)

    @staticmethod
    def _audit_created(
        conn: Connection,
        principal: Principal,
        request_id: str,
        asked: dict[str, Any],
        routing: Routing,
        assignees: list[str],
        now: datetime,
    ) -> None:
        audit.append(
            conn,
            type="request.created",
            actor=f"agent:{principal.id}",
            at=now,
            request_id=request_id,
            data={
                "action": asked["action"],
                "business_object": asked["business_object"],
                "risk": asked["risk"],
                "correlation": asked["correlation"],
                "asked": {k: asked[k] for k in ("route", "sla", "on_timeout", "approvals")},
            },
        )
        audit.append(
            conn,
            type="request.routed",
            actor="system",
            at=now,
            request_id=request_id,
            data={
                "role": routing.role,
                "assignees": assignees,
                "risk": routing.risk.value,
                "sla": routing.sla,
                "on_timeout": routing.on_timeout.value,
                "approvals": routing.approvals.model_dump(mode="json"),
                "policy": routing.policy.model_dump(mode="json") if routing.policy else None,
            },
        )

    def _auto_decide(
        self, conn: Connection, row: SimpleNamespace, routing: Routing, now: datetime
    ) -> Request:
        """Record the policy's decision on a request `_insert` wrote closed already."""
        verdict = routing.auto
        assert verdict is not None
        request_id: str = row.id
        policy = routing.policy.name if routing.policy else "policy"
        decision: dict[str, Any] = {
            "id": new_id("dec"),
            "request_id": request_id,
            "verdict": verdict.value,
            "arguments": None,
            "comment": f"decided by policy {policy!r}",
            "reason_code": "policy",
            "decided_by": f"policy:{policy}",
            "role": None,
            "via": DecisionVia.POLICY.value,
            "closing": True,
            "at": now,
        }
        conn.execute(_INSERT_DECISION, decision)
        audit.append(
            conn,
            type="request.decided",
            actor=f"policy:{policy}",
            at=now,
            request_id=request_id,
            data={"verdict": verdict.value, "via": "policy"},
        )
        return self._closed(conn, render(row, [SimpleNamespace(**decision)]), now)

    # decide -----------------------------------------------------------------------------

    def decide(
        self,
        principal: Principal,
        request_id: str,
        decision: DecisionCreate,
        *,
        via: DecisionVia = DecisionVia.API,
    ) -> Request:
        """Record a reviewer's decision; close the request when it is final."""
        if principal.is_agent:
            raise Forbidden("an agent key can never decide", code="agents_cannot_decide")
        with self.db.write() as conn:
            row, routed = load_row_with_roles(conn, self._row_with_roles, request_id)
            check_visible(conn, principal, row, roles=routed)
            earlier = decision_rows(conn, row)
            request = render(row, earlier)
            self._check_decidable(request, decision)
            now = self._now()
            if request.due_at is not None and now >= request.due_at:  # fail closed (DESIGN §1.2)
                raise Conflict(
                    f"{request_id} is past its deadline; its timeout outcome applies",
                    code="deadline_passed",
                )
            given = [
                Approval(d.decided_by.user, d.decided_by.role)
                for d in request.decisions
                if d.verdict in (Verdict.APPROVE, Verdict.EDIT)
            ]
            role = role_to_decide_in(
                principal.roles,
                request.route.role,
                request.approvals,
                given,
                also=sorted(routed),
            )
            if role is None:  # e.g. an admin: sees every request, decides only in a routed role
                raise Forbidden(
                    f"{request_id} is routed to roles you do not hold", code="role_required"
                )
            self._check_separation(principal, request, given, decision.verdict)
            approving = decision.verdict in (Verdict.APPROVE, Verdict.EDIT)
            if approving:
                given.append(Approval(principal.id, role))
            closing = not approving or quorum_met(request.approvals, given)
            if decision.verdict is Verdict.EDIT and not closing:
                raise Invalid(
                    "edit is only possible as the approval that completes the quorum",
                    field="verdict",
                    code="edit_needs_final_approval",
                )
            status = _CLOSING_STATUS[decision.verdict] if closing else None
            recorded: dict[str, Any] = {
                "id": new_id("dec"),
                "request_id": request_id,
                "verdict": decision.verdict.value,
                "arguments": decision.arguments,
                "comment": decision.comment,
                "reason_code": decision.reason_code,
                "decided_by": principal.id,
                "role": role,
                "via": via.value,
                "closing": closing,
                "at": now,
            }
            audit.append(  # queued first: on PostgreSQL the compare-and-set writes it too
                conn,
                type="request.decided" if closing else "request.approval_recorded",
                actor=f"user:{principal.id}",
                at=now,
                request_id=request_id,
                data={
                    "verdict": decision.verdict.value,
                    "role": role,
                    "via": via.value,
                    "comment": decision.comment,
                    "reason_code": decision.reason_code,
                    "arguments": decision.arguments,
                },
            )
            self._cas(conn, row, status, now, decision=recorded)
            # What a re-read would render, from the request rendered above (a copy, not a
            # second validation of the whole stored request).
            changed: dict[str, Any] = {
                "decisions": sorted(
                    [*request.decisions, render_decision(SimpleNamespace(**recorded))],
                    key=lambda d: (d.at, d.id),
                )
            }
            if status is not None:
                changed.update(status=status, closed_at=now)
            result = request.model_copy(update=changed)
            if closing:
                self._closed(conn, result, now)
        if closing:
            self.on_closed(result)
        return result

    @staticmethod
    def _check_decidable(request: Request, decision: DecisionCreate) -> None:
        if request.status.is_terminal:
            raise Conflict(f"{request.id} is already {request.status.value}", code="request_closed")
        if decision.verdict not in request.allowed:
            allowed = ", ".join(v.value for v in request.allowed)
            raise Invalid(
                f"verdict {decision.verdict.value!r} is not allowed here (allowed: {allowed})",
                field="verdict",
                code="verdict_not_allowed",
            )
        needs_comment = request.comment_required is CommentRequired.ALWAYS or (
            request.comment_required is CommentRequired.ON_REJECT
            and decision.verdict is Verdict.REJECT
        )
        if needs_comment and not (decision.comment or "").strip():
            raise Invalid(
                "this request needs a comment with the decision",
                field="comment",
                code="comment_required",
            )

    @staticmethod
    def _check_separation(
        principal: Principal, request: Request, given: list[Approval], verdict: Verdict
    ) -> None:
        if verdict not in (Verdict.APPROVE, Verdict.EDIT):
            return
        if any(a.user == principal.id for a in given):
            raise Conflict("you already approved this request", code="already_approved")
        initiator = (request.initiator or "").strip().lower()  # emails are stored lower-case
        if request.approvals.separation_of_duties and initiator == principal.id.lower():
            raise Forbidden(
                "separation of duties: the person who started the agent run cannot approve it",
                code="separation_of_duties",
            )

    def _cas(
        self,
        conn: Connection,
        row: Any,
        status: Status | None,
        now: datetime,
        *,
        decision: dict[str, Any] | None = None,
    ) -> None:
        """Move the request on from the version in `row`, closing it with `status` (which
        notifies waiters on other replicas), and record `decision` (a `decisions` row) if
        given; a Conflict, with nothing written, if someone else moved the request first."""
        params: dict[str, Any] = {
            "b_id": row.id,
            "b_version": row.version,
            "b_next": row.version + 1,
        }
        if status is not None:
            params.update(b_status=status.value, b_at=now)
        if decision is not None and not self.db.is_sqlite:
            statement = self._bump_and_decide if status is None else self._close_and_decide
            params.update((merged.DECISION_PARAM.format(k), v) for k, v in decision.items())
            # The events queued so far go into the same statement (one round trip less).
            moved = audit.execute_with_events(conn, statement, params)
        else:
            moving = _CAS_BUMP if status is None else self._cas_close
            moved = conn.execute(moving, params).rowcount
            if moved == 1 and decision is not None:
                conn.execute(_INSERT_DECISION, decision)
        if moved != 1:
            raise Conflict(
                f"{row.id} was changed concurrently; it is no longer open", code="request_closed"
            )

    # cancel, expire, outcome ------------------------------------------------------------

    def cancel(self, principal: Principal, request_id: str, reason: str | None) -> Request:
        """Withdraw a pending request: its own agent, or an admin."""
        with self.db.write() as conn:
            row, request = load_request(conn, principal, request_id, for_update=True)
            if not (principal.is_agent or principal.is_admin):
                raise Forbidden("only the request's agent or an admin can cancel it")
            if request.status.is_terminal:
                raise Conflict(
                    f"{request_id} is already {request.status.value}", code="request_closed"
                )
            now = self.clock()
            self._cas(conn, row, Status.CANCELLED, now)
            actor = f"agent:{principal.id}" if principal.is_agent else f"user:{principal.id}"
            audit.append(
                conn,
                type="request.cancelled",
                actor=actor,
                at=now,
                request_id=request_id,
                data={"reason": reason},
            )
            result = self._closed(conn, load_request(conn, None, request_id)[1], now)
        self.on_closed(result)
        return result

    def fire_deadline(self, timer: timers.Timer, now: datetime) -> None:
        """Timer handler: apply the timeout outcome if the request is still pending at `due_at`."""
        assert timer.request_id is not None
        with self.db.write() as conn:
            timers.complete(conn, timer)
            row, request = load_request(conn, None, timer.request_id, for_update=True)
            if request.status.is_terminal or request.due_at is None or request.due_at > now:
                return  # decided in time (or the deadline moved): nothing to do
            self._cas(conn, row, Status.EXPIRED, now)
            verdict = (
                Verdict.APPROVE if request.on_timeout is TimeoutOutcome.APPROVE else Verdict.REJECT
            )
            conn.execute(
                insert(decisions).values(
                    id=new_id("dec"),
                    request_id=request.id,
                    verdict=verdict.value,
                    arguments=None,
                    comment="no decision before the deadline",
                    reason_code="timeout",
                    decided_by="timeout",
                    role=None,
                    via=DecisionVia.TIMEOUT.value,
                    closing=True,
                    at=now,
                )
            )
            audit.append(
                conn,
                type="request.expired",
                actor="system",
                at=now,
                request_id=request.id,
                data={
                    "on_timeout": request.on_timeout.value,
                    "verdict": verdict.value,
                    "due_at": request.due_at.isoformat(),
                    "assignees": request.assignees,
                },
            )
            result = self._closed(conn, load_request(conn, None, request.id)[1], now)
        self.on_closed(result)

    def report_outcome(
        self, principal: Principal, request_id: str, report: OutcomeReport
    ) -> Request:
        """The agent reports what it did after the decision; once per request."""
        request = self._record_outcome(principal, request_id, report, answer=True)
        assert request is not None
        return request

    def record_outcome(self, principal: Principal, request_id: str, report: OutcomeReport) -> None:
        """`report_outcome` for a caller that wants no answer (`Prefer: return=minimal`): the
        same checks and record, without reading the decisions back to render the request."""
        self._record_outcome(principal, request_id, report, answer=False)

    def _record_outcome(
        self, principal: Principal, request_id: str, report: OutcomeReport, *, answer: bool
    ) -> Request | None:
        if not principal.is_agent or "requests:outcome" not in principal.scopes:
            raise Forbidden("only the request's agent can report its outcome")
        with self.db.write() as conn:
            row = load_row(conn, request_id, for_update=True)
            check_visible(conn, principal, row)
            if Status(row.status) is Status.PENDING:
                raise Conflict(
                    f"{request_id} is still pending; report the outcome after the decision",
                    code="request_pending",
                )
            if row.outcome is not None:
                raise Conflict(
                    f"the outcome of {request_id} was already reported", code="outcome_reported"
                )
            now = self._now()
            outcome = {
                "status": report.status.value,
                "detail": report.detail,
                "at": now.isoformat(),
            }
            params = {"b_id": row.id, "b_version": row.version, "b_next": row.version + 1}
            result = conn.execute(_SET_OUTCOME, {**params, "b_outcome": outcome})
            if result.rowcount != 1:
                raise Conflict(f"{request_id} was changed concurrently", code="conflict")
            audit.append(
                conn,
                type="request.outcome_reported",
                actor=f"agent:{principal.id}",
                at=now,
                request_id=request_id,
                data={"status": report.status.value, "detail": report.detail},
            )
            if not answer:
                return None
            updated = changed_row(row, outcome=outcome, version=row.version + 1)
            return render(updated, decision_rows(conn, row))
