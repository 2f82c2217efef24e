"""A Hypothesis state machine over the request lifecycle, against a real server over HTTP.

Rules create requests (a two-approver quorum or a single approver, with or without an
initiator, sometimes asking to be approved on timeout), decide them as every kind of reviewer
(approve, edit, reject, respond; the initiator, a reviewer twice, a role that only holds the
request after escalation, an outsider), cancel them (own agent, another agent, an admin, a
reviewer), report outcomes, replay idempotent creates, move the server's clock and fire its
timers (escalation after 10 minutes, the SLA deadline after 30), and race several of these
at once. A model predicts what each call must do; races are checked for linearizability (the
outcome must be that of some order of the racing calls).

After every step, DESIGN.md §1's invariants are checked through the API, for every request:

- at most one final decision: one closing event (decided / expired / cancelled) in the
  timeline of a closed request, none while pending; every decision before the closing one is
  a partial quorum approval;
- a closed request never changes (only its outcome and callback state may be added);
- fail closed: a request whose deadline passed while pending is expired with the timeout
  outcome (reject), and no reviewer decision is recorded at or after its deadline;
- approvers are distinct people, never the initiator, never an agent, each in a role the
  request was routed to when they decided, and an approval closes only with the quorum met;
- each timeline is append-only and ordered; the audit log is gap-free, every entry hashes to
  its leaf, and the newest signed checkpoint covers exactly the entries seen (`audit verify`
  on an export runs after every example).

The clock is the server's test seam: `Settings.clock` is a manual clock, and timers are fired
by calling the server's own `Scheduler.tick()` (the loop is off, so "the deadline passed but
its timer has not fired yet" is a state the machine can reach, as a busy or restarting server
can: it found that a reviewer could still approve then, which lifecycle.py now refuses).

Scripted paths run first (every outcome, escalation, the deadline, races), then Hypothesis
explores. Bounded by default: 8 examples of 40 steps on SQLite, 5 on PostgreSQL, derandomized
(about 15 s each on an idle 2-core machine). `SIGNOFF_SOAK=1` runs a long randomized soak (300
examples of 60 steps); `SIGNOFF_STATEFUL_EXAMPLES` / `SIGNOFF_STATEFUL_STEPS` set the counts and
`SIGNOFF_STATEFUL_SHRINK=1` shrinks a failure (slow: every step is HTTP).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select
from tests.support.server import ServerThread
from tests.support.stores import BACKENDS, fresh_store

from signoff.audit import Checkpoint, VerifierKey, verify_export
from signoff.merkle import root_from_leaves
from signoff_server.app import create_app
from signoff_server.audit_cli import export_log
from signoff_server.db import Database
from signoff_server.identity import create_agent_key, create_token
from signoff_server.settings import Settings
from signoff_server.timers import Scheduler, timers

# The world ------------------------------------------------------------------------------------

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
SLA = timedelta(minutes=30)
ESCALATE_AFTER = timedelta(minutes=10)

APPROVERS = "approvers"
MANAGERS = "managers"
ROLES: dict[str, frozenset[str]] = {
    "alice@example.com": frozenset({APPROVERS}),
    "bob@example.com": frozenset({APPROVERS}),
    "dan@example.com": frozenset({APPROVERS}),
    "ivy@example.com": frozenset({APPROVERS}),  # starts agent runs: the initiator
    "carol@example.com": frozenset({MANAGERS}),  # decides only once a request escalated
    "sam@example.com": frozenset({"sales"}),  # never holds a request
    "ada@example.com": frozenset({"admin"}),  # cancels; reads the audit log
}
INITIATOR = "ivy@example.com"
ADMIN = "ada@example.com"
REVIEWERS = sorted(set(ROLES) - {ADMIN})
AGENT = "finance-agent"
OTHER_AGENT = "other-agent"

PEOPLE = "".join(f"  - email: {email}\n" for email in ROLES)
CONFIG = f"""
version: 1
timezone: UTC
people:
{PEOPLE}
roles:
  {APPROVERS}:
    members: [alice@example.com, bob@example.com, dan@example.com, ivy@example.com]
  {MANAGERS}:
    members: [carol@example.com]
  sales:
    members: [sam@example.com]
  admin:
    members: [ada@example.com]
escalations:
  up:
    - wait: PT10M
    - escalate_to: {MANAGERS}
policies:
  - name: pair
    match:
      action: payments.release
    route: {APPROVERS}
    approvals: {{mode: threshold, required: 2}}
    sla: PT30M
    on_timeout: reject
    escalation: up
  - name: solo
    match:
      action: payments.refund
    route: {APPROVERS}
    sla: PT30M
    on_timeout: reject
    escalation: up
default:
  route: admin
  sla: P1D
  on_timeout: reject
"""

CLOSING_EVENTS = {"request.decided", "request.expired", "request.cancelled"}
AFTER_CLOSE_EVENTS = {"request.outcome_reported"}  # and callback.* (none here: no callback URL)


class ManualClock:
    """The server's clock: moves when the test says so, and by a microsecond per reading, so
    that one request's events and decisions never share an instant (their order is their
    `at`, as on a real clock)."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            self._now += timedelta(microseconds=1)
            return self._now

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._now += delta


@dataclass
class World:
    """A running server on one backend, its clock, scheduler, and a client per principal."""

    url: str
    db: Database
    clock: ManualClock
    scheduler: Scheduler
    checkpointer: Any
    audit_key: VerifierKey
    clients: dict[str, httpx.Client]
    workdir: Path
    leaves: list[bytes] = field(default_factory=list[bytes])
    entries: list[str] = field(default_factory=list[str])
    checked_roots: dict[int, bytes] = field(default_factory=dict[int, bytes])
    seen: Counter[str] = field(default_factory=Counter[str])
    exports: int = 0

    def as_(self, who: str) -> httpx.Client:
        return self.clients[who]

    def drain_timers(self) -> None:
        """Fire every timer due by the server's clock, as the scheduler loop would."""
        deadline = time.monotonic() + 30
        while True:
            self.scheduler.tick()
            with self.db.read() as conn:
                due = conn.execute(
                    select(func.count()).select_from(timers).where(timers.c.due_at <= self.clock())
                ).scalar_one()
            if due == 0:
                return
            assert time.monotonic() < deadline, f"{due} timers stay due"
            time.sleep(0.01)


@contextmanager
def lifecycle_world(backend: str, directory: Path) -> Iterator[World]:
    """The policy file above on a live server with a manual clock and no timer loop."""
    config = directory / "signoff.yaml"
    config.write_text(CONFIG)
    clock = ManualClock(START)
    with fresh_store(backend, directory) as url:
        server_settings = Settings(
            database_url=url,
            config_path=str(config),
            clock=clock,
            run_timers=False,
            audit_key_file=str(directory / "audit.key"),
            webhook_keys_path=str(directory / "webhook-keys.json"),
            secret_key_file=str(directory / "secret.key"),
            audit_checkpoint_seconds=0.2,
            audit_checkpoint_interval=0.1,
        )
        app = create_app(server_settings)
        state = app.state.signoff
        db = Database(url)
        clients: dict[str, httpx.Client] = {}
        try:
            with ServerThread(app=app) as server:
                with db.write() as conn:  # the people were synced from the file at start
                    secrets = {email: create_token(conn, email) for email in ROLES}
                    secrets[AGENT] = create_agent_key(conn, AGENT)
                    secrets[OTHER_AGENT] = create_agent_key(conn, OTHER_AGENT)
                for who, secret in secrets.items():
                    clients[who] = httpx.Client(
                        base_url=server.url,
                        headers={"Authorization": f"Bearer {secret}"},
                        timeout=60,
                    )
                keys = clients[AGENT].get("/v1/keys")
                assert keys.status_code == 200, keys.text
                yield World(
                    url=server.url,
                    db=db,
                    clock=clock,
                    scheduler=state.scheduler,
                    checkpointer=state.checkpointer,
                    audit_key=VerifierKey.parse(keys.json()["audit_key"]),
                    clients=clients,
                    workdir=directory,
                )
        finally:
            for client in clients.values():
                client.close()
            db.dispose()


# The model ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """What does not change about a request: its kind, initiator and deadlines."""

    id: str
    required: int
    initiator: str | None
    created_at: datetime
    due_at: datetime
    idempotency_key: str | None
    body: dict[str, Any]

    @property
    def escalate_at(self) -> datetime:
        return self.created_at + ESCALATE_AFTER


@dataclass(frozen=True)
class State:
    """What the model expects of a request now."""

    status: str = "pending"
    approvers: tuple[str, ...] = ()
    escalated: bool = False
    outcome: bool = False
    closed_by: str | None = None  # "decision" | "timeout" | "cancel"


Call = tuple[str, str, str]
"""("decide", reviewer, verdict) | ("cancel", who, "") | ("outcome", agent, status) |
("escalate", "", "") | ("expire", "", "")."""

Expected = tuple[State, frozenset[int] | None]
"""The state after a call, and None if it is accepted, else the status codes it may refuse."""


def apply(spec: Spec, state: State, call: Call, now: datetime) -> Expected:
    """What `call` does to a request in `state` at time `now` (the server's rules)."""
    kind, who, arg = call
    pending = state.status == "pending"
    if kind == "escalate":
        if pending and now >= spec.escalate_at and not state.escalated:
            return replace(state, escalated=True), None
        return state, None
    if kind == "expire":
        if pending and now >= spec.due_at:
            return replace(state, status="expired", closed_by="timeout"), None
        return state, None
    if kind == "outcome":
        if who != AGENT:
            return state, frozenset({403, 404})
        if pending or state.outcome:
            return state, frozenset({409})
        return replace(state, outcome=True), None
    if kind == "cancel":
        if who == OTHER_AGENT:
            return state, frozenset({404})
        if who not in (AGENT, ADMIN):
            return state, frozenset({403})
        if not pending:
            return state, frozenset({409})
        return replace(state, status="cancelled", closed_by="cancel"), None
    assert kind == "decide"
    routed = {APPROVERS} | ({MANAGERS} if state.escalated else set())
    if not ROLES[who] & routed:
        return state, frozenset({403})
    if not pending:
        return state, frozenset({409})
    if now >= spec.due_at:  # fail closed: past the deadline, only the timeout outcome applies
        return state, frozenset({409})
    if arg in ("approve", "edit"):
        if who in state.approvers:
            return state, frozenset({409})
        if who == spec.initiator:
            return state, frozenset({403})
        approvers = (*state.approvers, who)
        if len(approvers) >= spec.required:
            return replace(
                state, status="approved", approvers=approvers, closed_by="decision"
            ), None
        if arg == "edit":
            return state, frozenset({422})  # an edit only as the approval completing the quorum
        return replace(state, approvers=approvers), None
    status = {"reject": "rejected", "respond": "responded"}[arg]
    return replace(state, status=status, closed_by="decision"), None


def fire(spec: Spec, state: State, now: datetime) -> State:
    """The timers of one request firing at `now`: escalation first (it is due earlier)."""
    for call in (("escalate", "", ""), ("expire", "", "")):
        state = apply(spec, state, call, now)[0]
    return state


def decision_body(verdict: str) -> dict[str, Any]:
    if verdict == "edit":
        return {"verdict": "edit", "arguments": {"invoice_id": "INV-1042", "amount": "12250.00"}}
    if verdict == "respond":
        return {"verdict": "respond", "comment": "ask for the 2% early-payment discount first"}
    return {"verdict": verdict, "comment": f"{verdict} in the state machine"}


def send(world: World, call: Call, request_id: str) -> httpx.Response:
    """The HTTP call for `call` on `request_id` (not for timer calls)."""
    kind, who, arg = call
    client = world.as_(who)
    if kind == "decide":
        return client.post(f"/v1/requests/{request_id}/decisions", json=decision_body(arg))
    if kind == "cancel":
        return client.post(f"/v1/requests/{request_id}/cancel", json={"reason": "withdrawn"})
    assert kind == "outcome"
    return client.post(f"/v1/requests/{request_id}/outcome", json={"status": arg})


def error_code(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    return str(body["error"]["code"])


# The machine ----------------------------------------------------------------------------------

PICK = st.integers(min_value=0, max_value=1000)
VERDICTS = st.sampled_from(["approve", "approve", "approve", "reject", "reject", "edit", "respond"])
DECIDERS = st.sampled_from([*REVIEWERS, "alice@example.com", "bob@example.com", "dan@example.com"])
RACING_DECISION = st.tuples(st.just("decide"), DECIDERS, VERDICTS)
RACE_CALLS: st.SearchStrategy[Call] = st.one_of(
    RACING_DECISION,
    RACING_DECISION,
    RACING_DECISION,
    st.tuples(st.just("cancel"), st.sampled_from([AGENT, ADMIN]), st.just("")),
    st.tuples(st.just("outcome"), st.just(AGENT), st.just("executed")),
)


class LifecycleMachine(RuleBasedStateMachine):
    """See the module docstring."""

    world: ClassVar[World | None] = None

    def __init__(self) -> None:
        super().__init__()
        assert self.world is not None
        self.w: World = self.world
        self.specs: dict[str, Spec] = {}
        self.states: dict[str, State] = {}
        self.closed_snapshots: dict[str, dict[str, Any]] = {}
        self.timelines: dict[str, list[dict[str, Any]]] = {}

    # helpers --------------------------------------------------------------------------------

    def now(self) -> datetime:
        return self.w.clock()

    def pick(self, choice: int) -> str:
        """A request: mostly a pending one (where calls do something), else any."""
        pending = [rid for rid, state in self.states.items() if state.status == "pending"]
        pool = pending if pending and choice % 5 else list(self.specs)
        return pool[(choice // 5) % len(pool)]

    def call(self, request_id: str, call: Call) -> None:
        """Make one HTTP call and check its answer and effect against the model."""
        self.expect(request_id, call, send(self.w, call, request_id))

    def expect(self, request_id: str, call: Call, response: httpx.Response) -> None:
        spec, state = self.specs[request_id], self.states[request_id]
        after, refused = apply(spec, state, call, self.now())
        if call[0] == "decide" and state.status == "pending" and self.now() >= spec.due_at:
            self.w.seen["decided past the deadline"] += 1
        if refused is None:
            assert response.status_code == 200, (call, state, response.text)
            self.w.seen[f"{call[0]}:{call[2] or call[1]}:accepted"] += 1
        else:
            assert response.status_code in refused, (call, state, refused, response.text)
            error_code(response)
            self.w.seen[f"refused:{response.status_code}"] += 1
        self.states[request_id] = after
        if after.status != state.status:
            self.w.seen[after.status] += 1

    # rules ----------------------------------------------------------------------------------

    @initialize()
    def settle(self) -> None:
        """Examples share one server: start with no timer of an earlier example due."""
        self.w.drain_timers()

    @precondition(
        lambda self: (
            len(self.specs) < 8
            and sum(state.status == "pending" for state in self.states.values()) < 3
        )
    )
    @rule(
        pair=st.booleans(),
        initiator=st.booleans(),
        ask_approve_on_timeout=st.booleans(),
        idempotent=st.booleans(),
    )
    def create(
        self, pair: bool, initiator: bool, ask_approve_on_timeout: bool, idempotent: bool
    ) -> None:
        self.create_request(pair, initiator, ask_approve_on_timeout, idempotent)

    def create_request(
        self,
        pair: bool,
        initiator: bool = False,
        ask_approve_on_timeout: bool = False,
        idempotent: bool = False,
    ) -> str:
        """POST a request as the agent; the policy's routing checked, the model told."""
        body: dict[str, Any] = {
            "action": {
                "name": "payments.release" if pair else "payments.refund",
                "arguments": {"invoice_id": "INV-1042", "amount": "12500.00"},
            },
            "business_object": {"type": "invoice", "id": f"INV-{uuid.uuid4().hex[:8]}"},
            # The agent asks for a one-approver, approve-on-timeout gate: the policy tightens it.
            "on_timeout": "approve" if ask_approve_on_timeout else "reject",
            "approvals": {"mode": "single", "separation_of_duties": False},
            "sla": "P1D",
        }
        if initiator:
            body["initiator"] = INITIATOR
        if idempotent:
            body["idempotency_key"] = f"run-{uuid.uuid4().hex[:12]}"
        response = self.w.as_(AGENT).post("/v1/requests", json=body)
        assert response.status_code == 201, response.text
        made = response.json()
        assert made["status"] == "pending"
        assert made["on_timeout"] == "reject", "the policy's reject wins over the agent's ask"
        assert made["approvals"]["required"] == (2 if pair else 1), made["approvals"]
        assert made["approvals"]["separation_of_duties"] is True, "the agent cannot waive it"
        assert made["route"]["role"] == APPROVERS
        created = datetime.fromisoformat(made["created_at"])
        assert created < self.now()
        assert datetime.fromisoformat(made["due_at"]) == created + SLA, "the shorter SLA wins"
        spec = Spec(
            id=made["id"],
            required=2 if pair else 1,
            initiator=INITIATOR if initiator else None,
            created_at=created,
            due_at=created + SLA,
            idempotency_key=body.get("idempotency_key"),
            body=body,
        )
        self.specs[spec.id] = spec
        self.states[spec.id] = State()
        self.w.seen["created"] += 1
        return spec.id

    @precondition(lambda self: self.specs)
    @rule(choice=PICK, who=DECIDERS, verdict=VERDICTS)
    def decide(self, choice: int, who: str, verdict: str) -> None:
        self.call(self.pick(choice), ("decide", who, verdict))

    @precondition(lambda self: self.specs)
    @rule(choice=PICK, who=DECIDERS, verdict=VERDICTS)
    def decide_again(self, choice: int, who: str, verdict: str) -> None:
        """As `decide` (rules are drawn evenly: decisions are what the machine is about)."""
        self.decide(choice, who, verdict)

    @precondition(lambda self: self.specs)
    @rule(choice=PICK, who=st.sampled_from([AGENT, ADMIN, OTHER_AGENT, "alice@example.com"]))
    def cancel(self, choice: int, who: str) -> None:
        self.call(self.pick(choice), ("cancel", who, ""))

    @precondition(lambda self: self.specs)
    @rule(choice=PICK, status=st.sampled_from(["executed", "skipped"]))
    def report_outcome(self, choice: int, status: str) -> None:
        self.call(self.pick(choice), ("outcome", AGENT, status))

    @precondition(lambda self: self.specs)
    @rule(choice=PICK, same_body=st.booleans())
    def replay_create(self, choice: int, same_body: bool) -> None:
        self.replay(self.pick(choice), same_body)

    def replay(self, request_id: str, same_body: bool) -> None:
        """Idempotency (§1.7): the same key and body give the same request, whatever its state;
        the same key with another body is a 409 and creates nothing."""
        spec = self.specs[request_id]
        if spec.idempotency_key is None:
            return
        body = spec.body if same_body else {**spec.body, "summary": "a different body"}
        response = self.w.as_(AGENT).post("/v1/requests", json=body)
        if same_body:
            assert response.status_code == 200, response.text
            assert response.json()["id"] == request_id
            assert response.json()["status"] == self.states[request_id].status
        else:
            assert response.status_code == 409, response.text
            assert error_code(response) == "idempotency_key_reused"
        self.w.seen["replayed"] += 1

    @rule(minutes=st.sampled_from([1, 4, 9, 11, 20, 29, 31, 45]))
    def advance_clock(self, minutes: int) -> None:
        """Time passes; the timers have not fired yet (a busy or restarting server)."""
        self.w.clock.advance(timedelta(minutes=minutes))

    @rule()
    def fire_timers(self) -> None:
        """The scheduler fires every due timer: escalations, then SLA deadlines."""
        self.w.drain_timers()
        now = self.now()
        for request_id, spec in self.specs.items():
            before = self.states[request_id]
            after = fire(spec, before, now)
            self.states[request_id] = after
            if after.escalated and not before.escalated:
                self.w.seen["escalated"] += 1
            if after.status != before.status:
                self.w.seen[after.status] += 1

    @precondition(lambda self: self.specs)
    @rule(
        choice=PICK,
        calls=st.lists(RACE_CALLS, min_size=2, max_size=4),
        with_timers=st.booleans(),
    )
    def race(self, choice: int, calls: list[Call], with_timers: bool) -> None:
        self.race_on(self.pick(choice), calls, with_timers)

    def race_on(self, request_id: str, calls: list[Call], with_timers: bool) -> None:
        """Several calls at the same moment (and the scheduler, if asked): the result must be
        that of some order of them (linearizable)."""
        spec, start, now = self.specs[request_id], self.states[request_id], self.now()
        barrier = threading.Barrier(len(calls) + (1 if with_timers else 0))
        responses: list[httpx.Response | BaseException | None] = [None] * len(calls)
        secrets = {who: c.headers["Authorization"] for who, c in self.w.clients.items()}

        def run(index: int) -> None:
            kind, who, arg = calls[index]
            try:
                with httpx.Client(
                    base_url=self.w.url, headers={"Authorization": secrets[who]}, timeout=60
                ) as http:
                    http.get("/healthz").raise_for_status()  # connected before the race
                    barrier.wait(timeout=30)
                    if kind == "decide":
                        path, body = "decisions", decision_body(arg)
                    elif kind == "cancel":
                        path, body = "cancel", {"reason": "raced"}
                    else:
                        path, body = "outcome", {"status": arg}
                    responses[index] = http.post(f"/v1/requests/{request_id}/{path}", json=body)
            except BaseException as exc:  # reported below
                barrier.abort()
                responses[index] = exc

        def tick() -> None:
            try:
                barrier.wait(timeout=30)
            except threading.BrokenBarrierError:
                return
            self.w.drain_timers()

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
        if with_timers:
            threads.append(threading.Thread(target=tick))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not any(t.is_alive() for t in threads), "a racing call never returned"
        got = [r for r in responses if isinstance(r, httpx.Response)]
        assert len(got) == len(calls), responses
        observed = self.read(request_id)[0]

        timer_calls: list[Call] = [("escalate", "", ""), ("expire", "", "")] if with_timers else []
        everything = [*range(len(calls)), *(["escalate", "expire"] if with_timers else [])]
        matches: list[State] = []
        for order in itertools.permutations(everything):
            if with_timers and order.index("escalate") > order.index("expire"):
                continue  # the escalation timer is due before the deadline: it fires first
            state, ok = start, True
            for item in order:
                if isinstance(item, str):
                    state = apply(spec, state, timer_calls[0 if item == "escalate" else 1], now)[0]
                    continue
                state, refused = apply(spec, state, calls[item], now)
                code = got[item].status_code
                if (code != 200) if refused is None else (code not in refused):
                    ok = False
                    break
            if ok and self.matches(observed, state):
                matches.append(state)
        assert matches, (
            f"no order of {calls} (timers: {with_timers}) from {start} explains "
            f"{[(r.status_code, r.text[:120]) for r in got]} and {self.summary(observed)}"
        )
        self.states[request_id] = matches[0]
        if with_timers:  # the scheduler fired every due timer of the other requests too
            for other, other_spec in self.specs.items():
                if other != request_id:
                    self.states[other] = fire(other_spec, self.states[other], now)
        self.w.seen["race"] += 1
        if sum(1 for r in got if r.status_code == 200) > 1:
            self.w.seen["race:several accepted"] += 1
        if matches[0].status != start.status:
            self.w.seen[f"race:{matches[0].status}"] += 1
            self.w.seen[matches[0].status] += 1

    # reading and checking -------------------------------------------------------------------

    def read(self, request_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        admin = self.w.as_(ADMIN)
        request = admin.get(f"/v1/requests/{request_id}")
        assert request.status_code == 200, request.text
        timeline = admin.get(f"/v1/requests/{request_id}/timeline")
        assert timeline.status_code == 200, timeline.text
        return request.json(), timeline.json()

    @staticmethod
    def approvals(request: dict[str, Any]) -> list[dict[str, Any]]:
        return [d for d in request["decisions"] if d["verdict"] in ("approve", "edit")]

    def matches(self, request: dict[str, Any], state: State) -> bool:
        return (
            request["status"] == state.status
            and tuple(d["decided_by"]["user"] for d in self.approvals(request)) == state.approvers
            and request["escalation_level"] == (1 if state.escalated else 0)
            and (request["outcome"] is not None) == state.outcome
        )

    @staticmethod
    def summary(request: dict[str, Any]) -> dict[str, Any]:
        return {
            "status": request["status"],
            "decisions": [(d["verdict"], d["decided_by"]["user"]) for d in request["decisions"]],
            "escalation_level": request["escalation_level"],
            "outcome": request["outcome"],
        }

    @invariant()
    def requests_keep_their_promises(self) -> None:
        if not self.specs:
            return
        # This example's requests are the agent's newest: one list call reads them all.
        listed = self.w.as_(ADMIN).get(
            "/v1/requests", params={"agent": AGENT, "limit": len(self.specs)}
        )
        assert listed.status_code == 200, listed.text
        requests = {item["id"]: item for item in listed.json()["items"]}
        assert set(requests) == set(self.specs), "the list lost or invented a request"
        for request_id, spec in self.specs.items():
            request = requests[request_id]
            timeline = self.w.as_(ADMIN).get(f"/v1/requests/{request_id}/timeline")
            assert timeline.status_code == 200, timeline.text
            self.check_one(spec, request, timeline.json())

    def check_one(
        self, spec: Spec, request: dict[str, Any], timeline: list[dict[str, Any]]
    ) -> None:
        state = self.states[spec.id]
        assert self.matches(request, state), (state, self.summary(request))
        self.check_decisions(spec, request)
        self.check_timeline(spec.id, request, timeline)
        self.check_closed_never_changes(spec.id, request)

    def check_decisions(self, spec: Spec, request: dict[str, Any]) -> None:
        status, decisions = request["status"], request["decisions"]
        due = datetime.fromisoformat(request["due_at"])
        assert due == spec.due_at
        people = [d for d in decisions if d["via"] != "timeout"]
        # Fail closed: nobody decides at or after the deadline; a timeout is a rejection.
        for decision in people:
            assert datetime.fromisoformat(decision["at"]) < due, (decision, due)
            assert decision["decided_by"]["user"] in ROLES, decision  # a person, never an agent
        if status == "expired":
            final = decisions[-1]
            assert (final["via"], final["verdict"]) == ("timeout", "reject"), final
            assert datetime.fromisoformat(request["closed_at"]) >= due
        else:
            assert all(d["via"] != "timeout" for d in decisions), decisions
        if status == "approved":
            assert datetime.fromisoformat(request["closed_at"]) < due
        # Every decision but a closing one is a partial quorum approval.
        closing = 1 if status in ("approved", "rejected", "responded", "expired") else 0
        partial = decisions[: len(decisions) - closing]
        assert all(d["verdict"] == "approve" for d in partial), decisions
        assert len(partial) < spec.required, decisions
        if closing and status != "expired":
            final = decisions[-1]["verdict"]
            expected = {"approved": ("approve", "edit"), "rejected": ("reject",)}
            assert final in expected.get(status, ("respond",)), (status, final)
        # Approvers: distinct, never the initiator, each in a role the request was routed to.
        approvers = [d["decided_by"]["user"] for d in self.approvals(request)]
        assert len(approvers) == len(set(approvers)), approvers
        assert spec.initiator not in approvers
        assert (len(approvers) >= spec.required) == (status == "approved"), (status, approvers)
        routed = {APPROVERS} | ({MANAGERS} if request["escalation_level"] else set())
        for decision in people:
            role = decision["decided_by"]["role"]
            assert role in routed, decision
            assert role in ROLES[decision["decided_by"]["user"]], decision

    def check_timeline(
        self, request_id: str, request: dict[str, Any], timeline: list[dict[str, Any]]
    ) -> None:
        before = self.timelines.get(request_id, [])
        assert timeline[: len(before)] == before, "the timeline was rewritten"
        self.timelines[request_id] = timeline
        seqs = [event["seq"] for event in timeline]
        assert seqs == sorted(seqs)
        assert len(set(seqs)) == len(seqs)
        times = [datetime.fromisoformat(event["at"]) for event in timeline]
        assert times == sorted(times), "timeline out of time order"
        types = [event["type"] for event in timeline]
        assert types[:2] == ["request.created", "request.routed"], types
        closing = [i for i, t in enumerate(types) if t in CLOSING_EVENTS]
        if request["status"] == "pending":
            assert closing == [], types
            assert request["closed_at"] is None
        else:
            assert len(closing) == 1, f"{len(closing)} final decisions: {types}"
            expected = {"expired": "request.expired", "cancelled": "request.cancelled"}
            assert types[closing[0]] == expected.get(request["status"], "request.decided")
            after = types[closing[0] + 1 :]
            assert all(t in AFTER_CLOSE_EVENTS or t.startswith("callback.") for t in after), types
        assert types.count("request.escalated") == request["escalation_level"], types
        recorded = types.count("request.approval_recorded")
        closing_approval = request["status"] == "approved"
        assert recorded == len(self.approvals(request)) - closing_approval, types

    def check_closed_never_changes(self, request_id: str, request: dict[str, Any]) -> None:
        if request["status"] == "pending":
            assert request_id not in self.closed_snapshots, "a closed request reopened"
            return
        frozen = {k: v for k, v in request.items() if k not in ("outcome", "callback_status")}
        first = self.closed_snapshots.setdefault(request_id, frozen)
        assert frozen == first, "a closed request changed"

    @invariant()
    def audit_log_verifies(self) -> None:
        """Gap-free, every entry hashes to its leaf, entries never change, and the newest
        signed checkpoint's root is the root of exactly the entries seen."""
        admin, world = self.w.as_(ADMIN), self.w
        checkpoint = admin.get("/v1/audit/checkpoint")
        assert checkpoint.status_code == 200, checkpoint.text
        signed = Checkpoint.open(checkpoint.json()["note"], [world.audit_key])
        start = max(0, len(world.entries) - 1)  # re-read the last entry seen: unchanged
        while True:
            page = admin.get("/v1/audit/entries", params={"from": start})
            assert page.status_code == 200, page.text
            for item in page.json()["entries"]:
                entry: str = item["entry"]
                leaf = hashlib.sha256(b"\x00" + entry.encode()).digest()
                assert item["leaf_hash"] == leaf.hex(), item
                if item["seq"] < len(world.entries):
                    assert world.entries[item["seq"]] == entry, "an audit entry changed"
                    continue
                assert item["seq"] == len(world.entries), "the audit log has a gap"
                world.entries.append(entry)
                world.leaves.append(leaf)
            start = page.json()["next"]
            if start is None:
                break
        assert signed.size <= len(world.leaves)
        if world.checked_roots.get(signed.size) != signed.root:
            assert signed.root == root_from_leaves(world.leaves[: signed.size])
            world.checked_roots[signed.size] = signed.root

    def verify(self) -> None:
        """Every invariant, for scripted runs (Hypothesis calls them itself after each rule)."""
        self.requests_keep_their_promises()
        self.audit_log_verifies()

    def teardown(self) -> None:
        """`signoff audit export` + `audit verify`, with only the published verifier key."""
        world = self.w
        world.exports += 1
        directory = world.workdir / f"export-{world.exports}"
        export_log(world.checkpointer, directory)
        report = verify_export(directory, [world.audit_key])
        assert report.ok, report.error
        assert report.entries >= len(world.entries)


def machine_settings(backend: str) -> settings:
    soak = os.environ.get("SIGNOFF_SOAK") == "1"
    examples = {"sqlite": 8, "postgres": 5}[backend]
    steps = 40
    if soak:
        examples, steps = 300, 60
    return settings(
        max_examples=int(os.environ.get("SIGNOFF_STATEFUL_EXAMPLES", examples)),
        stateful_step_count=int(os.environ.get("SIGNOFF_STATEFUL_STEPS", steps)),
        deadline=None,
        database=None,
        derandomize=not soak,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        # Shrinking replays steps over HTTP for minutes; a failure prints its full sequence
        # anyway. SIGNOFF_STATEFUL_SHRINK=1 shrinks it.
        phases=[Phase.explicit, Phase.generate]
        + ([Phase.shrink] if os.environ.get("SIGNOFF_STATEFUL_SHRINK") == "1" else []),
        report_multiple_bugs=False,
    )


# Scripted paths ------------------------------------------------------------------------------
#
# Paths every run takes whatever the exploration draws: each script is a machine of its own, and
# every invariant is checked after every step, as in the random runs.

ALICE, BOB, CAROL, DAN, SAM = (
    f"{name}@example.com" for name in ("alice", "bob", "carol", "dan", "sam")
)


def _quorum_and_separation(m: LifecycleMachine) -> None:
    rid = m.create_request(pair=True, initiator=True, idempotent=True)
    for call in (
        ("decide", INITIATOR, "approve"),  # 403: the initiator of the run
        ("decide", ALICE, "approve"),  # one of two
        ("decide", ALICE, "approve"),  # 409: already approved
        ("decide", SAM, "approve"),  # 403: not routed to sales
        ("decide", CAROL, "approve"),  # 403: not escalated yet
        ("decide", BOB, "edit"),  # completes the quorum, with edited arguments
        ("decide", DAN, "reject"),  # 409: closed
        ("cancel", AGENT, ""),  # 409: closed
        ("outcome", AGENT, "executed"),
        ("outcome", AGENT, "executed"),  # 409: reported already
    ):
        m.call(rid, call)
        m.verify()
    m.replay(rid, same_body=True)
    m.replay(rid, same_body=False)
    m.verify()


def _escalation(m: LifecycleMachine) -> None:
    rid = m.create_request(pair=False, ask_approve_on_timeout=True)
    m.call(rid, ("decide", CAROL, "approve"))  # 403: routed to approvers only
    m.advance_clock(11)
    m.fire_timers()
    m.verify()
    m.call(rid, ("decide", CAROL, "approve"))  # the manager, after the escalation
    m.verify()


def _deadline(m: LifecycleMachine) -> None:
    rid = m.create_request(pair=True, ask_approve_on_timeout=True)
    m.call(rid, ("decide", ALICE, "approve"))
    m.advance_clock(31)  # past the deadline; its timer has not fired yet
    m.verify()
    m.call(rid, ("decide", BOB, "approve"))  # 409: fail closed, not approved
    m.call(rid, ("cancel", OTHER_AGENT, ""))  # 404: another agent's request
    m.verify()
    m.fire_timers()  # escalates, then expires (rejected)
    m.verify()
    m.call(rid, ("decide", CAROL, "approve"))  # 409: expired
    m.verify()


def _verdicts_and_cancels(m: LifecycleMachine) -> None:
    m.call(m.create_request(pair=False), ("decide", BOB, "reject"))
    m.call(m.create_request(pair=False), ("decide", DAN, "respond"))
    partly = m.create_request(pair=True)
    m.call(partly, ("decide", ALICE, "approve"))
    m.call(partly, ("cancel", ALICE, ""))  # 403: a reviewer cannot cancel
    m.call(partly, ("cancel", AGENT, ""))
    m.verify()
    m.call(m.create_request(pair=False), ("cancel", ADMIN, ""))
    m.verify()


def _races(m: LifecycleMachine) -> None:
    rid = m.create_request(pair=True)
    m.race_on(
        rid,
        [("decide", ALICE, "approve"), ("decide", BOB, "approve"), ("decide", DAN, "reject")],
        with_timers=False,
    )
    m.verify()
    late = m.create_request(pair=False)
    m.advance_clock(31)
    m.race_on(late, [("decide", ALICE, "approve"), ("cancel", AGENT, "")], with_timers=True)
    m.verify()


SCRIPTS = (_quorum_and_separation, _escalation, _deadline, _verdicts_and_cancels, _races)


def run_scripts() -> None:
    for script in SCRIPTS:
        machine = LifecycleMachine()
        machine.settle()
        machine.verify()
        script(machine)
        machine.teardown()


# Every outcome the machine must reach in a default run, or it tests less than it claims.
MUST_SEE = {
    "created",
    "approved",
    "rejected",
    "responded",
    "cancelled",
    "expired",
    "escalated",
    "race",
    "replayed",
    "refused:403",
    "refused:409",
    "decided past the deadline",
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_lifecycle_state_machine(backend: str, tmp_path: Path) -> None:
    with lifecycle_world(backend, tmp_path) as world:
        LifecycleMachine.world = world
        try:
            run_scripts()
            scripted = Counter(world.seen)
            run_state_machine_as_test(LifecycleMachine, settings=machine_settings(backend))
        finally:
            LifecycleMachine.world = None
    missing = MUST_SEE - set(scripted)
    assert not missing, f"the scripts never reached {sorted(missing)}: {dict(scripted)}"
    explored = world.seen - scripted  # the random part did explore, too
    assert explored["created"] > 0, dict(explored)
    assert explored["race"] > 0, dict(explored)
    assert {"approved", "rejected", "cancelled"} & set(explored), dict(explored)


# The machine can fail --------------------------------------------------------------------------

BROKEN: dict[str, tuple[str, Any]] = {
    # bug → (attribute of signoff_server.lifecycle to replace, replacement)
    "a quorum of one": ("quorum_met", lambda approvals, given: len(given) >= 1),
    "no separation of duties": ("Lifecycle._check_separation", staticmethod(lambda *_: None)),
}


@pytest.mark.parametrize("bug", list(BROKEN))
def test_the_machine_catches_a_broken_server(
    bug: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from signoff_server import lifecycle

    name, replacement = BROKEN[bug]
    owner, _, attribute = name.rpartition(".")
    monkeypatch.setattr(getattr(lifecycle, owner) if owner else lifecycle, attribute, replacement)
    with lifecycle_world("sqlite", tmp_path) as world:
        LifecycleMachine.world = world
        try:
            machine = LifecycleMachine()
            with pytest.raises(AssertionError):
                _quorum_and_separation(machine)
        finally:
            LifecycleMachine.world = None
