"""The policy engine in a live server, on the demo signoff.yaml, with a manual clock.

Time only moves when a test advances the clock; the scheduler (ticking every 50 ms of real
time) then fires whatever became due. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypedDict

import httpx
import pytest

import signoff
from signoff import Client, Status, Verdict
from signoff.models import AuditEvent
from signoff_server.db import Database
from signoff_server.identity import create_agent_key, create_token, set_user
from signoff_server.policy.clock import ManualClock
from signoff_server.schema import user_roles
from signoff_server.settings import Settings
from signoff_server.timers import timers

from .conftest import ServerThread

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "demo" / "signoff.yaml"
MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # 10:00 in Berlin: Alice's turn (daily rotation)

INVOICE: dict[str, Any] = {
    "action": {
        "name": "payments.release",
        "arguments": {
            "invoice_id": "INV-1042",
            "amount": "12500.00",
            "currency": "EUR",
            "vendor_account": "DE89370400440532013000",
        },
    },
    "business_object": {
        "type": "invoice",
        "id": "INV-1042",
        "attributes": {"amount": "12500.00", "currency": "EUR", "vendor": "Acme GmbH"},
    },
    "summary": "Release EUR 12,500.00 to Acme GmbH",
}


def invoice(amount: str = "12500.00", **overrides: Any) -> dict[str, Any]:
    """The reference scenario's request for `amount`."""
    action = {
        **INVOICE["action"],
        "arguments": {**INVOICE["action"]["arguments"], "amount": amount},
    }
    return {**INVOICE, "action": action, **overrides}


def eventually(check: Callable[[], bool], timeout: float = 15.0) -> None:
    """Poll `check` until it holds (real time; the scheduler ticks every 50 ms)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def types(events: list[AuditEvent]) -> list[str]:
    return [e.type for e in events]


@dataclass
class PolicyWorld:
    """A server on a policy file with a manual clock, and helpers for its people."""

    url: str
    db: Database
    clock: ManualClock
    clients: list[Client]

    def client(self, secret: str) -> Client:
        client = Client(base_url=self.url, api_key=secret)
        self.clients.append(client)
        return client

    def agent_key(self, agent_id: str = "finance-agent") -> str:
        with self.db.write() as conn:
            return create_agent_key(conn, agent_id)

    def token(self, email: str) -> str:
        """A token for someone the file (or the CLI) already made a user."""
        with self.db.write() as conn:
            return create_token(conn, email)

    def agent(self, agent_id: str = "finance-agent") -> Client:
        return self.client(self.agent_key(agent_id))

    def person(self, email: str) -> Client:
        return self.client(self.token(email))


@contextmanager
def serve(store_url: str, config: Path, start: datetime = MONDAY) -> Iterator[PolicyWorld]:
    clock = ManualClock(start)
    keys = Path(tempfile.mkdtemp(prefix="signoff-keys-"))
    settings = Settings(
        database_url=store_url,
        timer_interval=0.05,
        config_path=str(config),
        clock=clock,
        **_key_files(keys),
    )
    db = Database(store_url)
    clients: list[Client] = []
    try:
        with ServerThread(settings) as server:
            world = PolicyWorld(server.url, db, clock, clients)
            try:
                yield world
            finally:
                for client in clients:
                    client.close()
    finally:
        db.dispose()
        shutil.rmtree(keys, ignore_errors=True)


class _KeyFiles(TypedDict):
    audit_key_file: str
    webhook_keys_path: str
    secret_key_file: str


def _key_files(directory: Path) -> _KeyFiles:
    """Settings that keep the server's key files in `directory`: on PostgreSQL their default
    place is the working directory, which would be the checkout."""
    return {
        "audit_key_file": str(directory / "audit.key"),
        "webhook_keys_path": str(directory / "webhook-keys.json"),
        "secret_key_file": str(directory / "secret.key"),
    }


@pytest.fixture
def demo(store_url: str) -> Iterator[PolicyWorld]:
    """The demo file, at Monday 2 March 2026 10:00 Berlin time."""
    with serve(store_url, DEMO) as world:
        yield world


def test_large_payment_routes_to_two_finance_approvers_on_shift_first(demo: PolicyWorld) -> None:
    agent = demo.agent()
    request = agent.create_request(invoice(route={"role": "someone-else"}, risk="low"))
    assert request.status is Status.PENDING
    assert request.route.role == "finance-approver"  # the policy routes, not the caller
    assert (request.approvals.mode.value, request.approvals.required) == ("threshold", 2)
    assert request.sla == "PT2H"
    assert request.risk.value == "high"  # raised by the policy
    assert request.assignees == ["alice@example.com"]  # on shift now
    assert request.policy is not None
    assert request.policy.name == "large-payment"
    assert request.policy.version is not None
    assert len(request.policy.version) == 64
    assert request.policy.rule is not None
    assert "double(request.action.arguments.amount) > 10000.0" in request.policy.rule
    events = agent.timeline(request.id)
    assert types(events) == ["request.created", "request.routed", "request.notified"]
    notified = events[-1].data
    assert notified["people"] == ["alice@example.com"]
    assert notified["on_shift"] == ["alice@example.com"]
    assert notified["shift"] == "rotation:daily"

    # The next day at 09:00 Berlin time it is Bob's turn.
    demo.clock.set(datetime(2026, 3, 3, 8, 0, tzinfo=UTC))
    assert agent.create_request(invoice()).assignees == ["bob@example.com"]


def test_quorum_partial_approvals_and_separation_of_duties(demo: PolicyWorld) -> None:
    agent = demo.agent()
    alice, bob, carol = (demo.person(f"{n}@example.com") for n in ("alice", "bob", "carol"))
    request = agent.create_request(invoice(initiator="bob@example.com"))

    with pytest.raises(signoff.Forbidden) as info:
        bob.decide(request.id, "approve")  # he started the agent run
    assert info.value.code == "separation_of_duties"
    with pytest.raises(signoff.Forbidden):
        agent.decide(request.id, "approve")  # an agent key never decides

    assert alice.decide(request.id, "approve").status is Status.PENDING
    with pytest.raises(signoff.Conflict):
        alice.decide(request.id, "approve")  # distinct approvers
    closed = carol.decide(request.id, "approve")
    assert closed.status is Status.APPROVED
    assert [d.decided_by.user for d in closed.decisions] == [
        "alice@example.com",
        "carol@example.com",
    ]
    assert types(agent.timeline(request.id))[-2:] == [
        "request.approval_recorded",
        "request.decided",
    ]

    # Any reject closes it, even after a partial approval.
    second = agent.create_request(invoice())
    alice.decide(second.id, "approve")
    assert bob.decide(second.id, "reject").status is Status.REJECTED


def test_small_payment_is_auto_approved_unless_more_was_asked(demo: PolicyWorld) -> None:
    agent = demo.agent()
    small = agent.create_request(invoice("42.00"))
    assert small.status is Status.APPROVED
    final = small.final_decision
    assert final is not None
    assert (final.via.value, final.decided_by.user) == ("policy", "policy:small-payment")
    assert small.policy is not None
    assert small.policy.name == "small-payment"

    asked = agent.create_request(invoice("42.00", approvals={"mode": "threshold", "required": 2}))
    assert asked.status is Status.PENDING
    assert asked.policy is not None
    assert asked.policy.name == "payment"
    assert asked.approvals.required == 2  # the caller's larger quorum wins


def test_unmatched_and_unreadable_requests_fail_closed(demo: PolicyWorld) -> None:
    agent = demo.agent()
    other = agent.create_request(
        {**invoice(), "action": {"name": "crm.delete_customer", "arguments": {"id": "C-77"}}}
    )
    assert (other.route.role, other.sla, other.status) == ("admin", "P1D", Status.PENDING)
    assert other.policy is not None
    assert other.policy.name == "default"

    garbled = agent.create_request(invoice("twelve thousand"))
    assert garbled.status is Status.PENDING  # never auto-approved
    assert garbled.route.role == "admin"
    assert garbled.policy is not None
    assert garbled.policy.rule is not None
    assert "condition of 'large-payment' failed" in garbled.policy.rule


def test_caller_settings_are_tightened_never_loosened(demo: PolicyWorld) -> None:
    agent = demo.agent()
    request = agent.create_request(
        invoice(
            "500.00",
            sla="PT1H",
            on_timeout="approve",
            allowed=["approve", "reject"],
            comment_required="always",
        )
    )
    assert request.policy is not None
    assert request.policy.name == "payment"
    assert request.sla == "PT1H"  # shorter than the policy's PT8H
    assert request.on_timeout.value == "reject"  # the policy says reject
    assert [v.value for v in request.allowed] == ["approve", "reject"]
    assert request.comment_required.value == "always"
    assert request.due_at == MONDAY + timedelta(hours=1)


def test_escalation_then_timeout_on_the_manual_clock(demo: PolicyWorld) -> None:
    agent = demo.agent()
    alice = demo.person("alice@example.com")
    request = agent.create_request(invoice())
    demo.clock.advance(timedelta(minutes=29))
    time.sleep(0.3)
    assert agent.get_request(request.id).escalation_level == 0

    demo.clock.advance(timedelta(minutes=2))
    eventually(lambda: agent.get_request(request.id).escalation_level == 1)
    escalated = agent.get_request(request.id)
    assert escalated.route.role == "finance-manager"
    assert escalated.assignees == ["carol@example.com"]
    events = agent.timeline(request.id)
    assert types(events) == [
        "request.created",
        "request.routed",
        "request.notified",
        "request.escalated",
        "request.notified",
    ]
    step = events[3]
    assert step.at == MONDAY + timedelta(minutes=31)  # when it ran (the clock jumped past it)
    assert step.data["due_at"] == (MONDAY + timedelta(minutes=30)).isoformat()
    assert step.data["from_role"] == "finance-approver"
    assert step.data["to_role"] == "finance-manager"
    assert step.data["on_shift"] == ["carol@example.com"]
    assert events[4].data["people"] == ["carol@example.com"]

    # The original role may still decide after the escalation.
    assert alice.decide(request.id, "approve").status is Status.PENDING

    demo.clock.advance(timedelta(hours=2))
    closed = agent.wait(request.id, timeout=15)
    assert closed.status is Status.EXPIRED
    final = closed.final_decision
    assert final is not None
    assert (final.verdict, final.via.value) == (Verdict.REJECT, "timeout")
    events = agent.timeline(request.id)
    assert types(events).count("request.escalated") == 1  # fired once
    assert events[-1].type == "request.expired"
    assert events[-1].data["assignees"] == ["carol@example.com"]


def test_decided_request_stops_its_chain(demo: PolicyWorld) -> None:
    agent = demo.agent()
    alice, bob = demo.person("alice@example.com"), demo.person("bob@example.com")
    request = agent.create_request(invoice())
    alice.decide(request.id, "approve")
    bob.decide(request.id, "approve")
    demo.clock.advance(timedelta(hours=3))
    time.sleep(0.5)
    with demo.db.read() as conn:
        left = conn.execute(timers.select().where(timers.c.request_id == request.id)).all()
    assert left == []
    assert "request.escalated" not in types(agent.timeline(request.id))


def test_control_map_for_admins(demo: PolicyWorld) -> None:
    admin, alice = demo.token("admin@example.com"), demo.token("alice@example.com")
    with httpx.Client(base_url=demo.url) as http:
        answer = http.get("/v1/control-map", headers={"authorization": f"Bearer {admin}"})
        assert answer.status_code == 200
        control = answer.json()
        refused = http.get("/v1/control-map", headers={"authorization": f"Bearer {alice}"})
        assert refused.status_code == 403
    assert control["ok"] is True
    roles = {r["role"]: r for r in control["roles"]}
    approver = roles["finance-approver"]
    assert approver["on_shift_now"] == ["alice@example.com"]
    assert approver["coverage"][0]["on_shift"] == ["alice@example.com"]
    assert approver["gaps"] == []
    assert {(p["policy"], p["via"]) for p in roles["finance-manager"]["policies"]} == {
        ("large-payment", "escalation"),
        ("payment", "escalation"),
    }
    policies = {p["name"]: p for p in control["policies"]}
    assert policies["large-payment"]["satisfiable"] is True
    assert policies["large-payment"]["needed"] == 2


def test_people_are_synced_from_the_file(store_url: str, tmp_path: Path) -> None:
    db = Database(store_url)
    try:
        with db.write() as conn:  # someone added with the CLI, and an outdated demo role
            set_user(conn, "dave@example.com", ["finance-approver"])
            set_user(conn, "alice@example.com", ["admin", "finance-approver"])

        def roles() -> dict[str, set[str]]:
            with db.read() as conn:
                found: dict[str, set[str]] = {}
                for row in conn.execute(user_roles.select()):
                    found.setdefault(row.email, set()).add(row.role)
                return found

        with serve(store_url, DEMO):
            pass
        held = roles()
        assert held["alice@example.com"] == {"finance-approver"}  # the file's, exactly
        assert held["carol@example.com"] == {"finance-approver", "finance-manager"}
        assert held["dave@example.com"] == {"finance-approver"}  # not in the file: untouched

        smaller = tmp_path / "signoff.yaml"
        smaller.write_text(
            DEMO.read_text()
            .replace("  - email: bob@example.com\n    name: Bob Approver\n", "")
            .replace("    timezone: Europe/Berlin\n    slack: U0BOB0001\n", "", 1)
            .replace(", bob@example.com, carol", ", carol")
            .replace("groups: [alice@example.com, bob@example.com]", "groups: [alice@example.com]")
        )
        with serve(store_url, smaller):
            pass
        held = roles()
        assert "bob@example.com" not in held  # removed from the file: no roles left
        assert held["dave@example.com"] == {"finance-approver"}
    finally:
        db.dispose()


def test_delegation_routes_to_the_delegate(store_url: str, tmp_path: Path) -> None:
    config = tmp_path / "signoff.yaml"
    config.write_text(
        DEMO.read_text().replace(
            "    slack: U0ALICE01\n",
            "    slack: U0ALICE01\n"
            "    out_of_office:\n"
            "      - from: 2026-03-01T00:00\n"
            "        until: 2026-03-07T00:00\n"
            "        delegate: bob@example.com\n",
        )
    )
    with serve(store_url, config) as world:
        agent = world.agent()
        request = agent.create_request(invoice())
        assert request.assignees == ["bob@example.com"]
        notified = agent.timeline(request.id)[-1]
        assert notified.type == "request.notified"
        assert notified.data["on_shift"] == ["alice@example.com"]
        assert notified.data["people"] == ["bob@example.com"]
        assert notified.data["delegations"] == [
            {"absent": "alice@example.com", "delegate": "bob@example.com"}
        ]


def test_gap_escalates_at_once(store_url: str, tmp_path: Path) -> None:
    config = tmp_path / "signoff.yaml"
    config.write_text(
        DEMO.read_text()
        .replace(
            "          groups: [alice@example.com, bob@example.com]\n",
            "          groups: [alice@example.com, bob@example.com]\n"
            "          windows: [{days: [mon, tue, wed, thu, fri], from: '09:00', to: '17:00'}]\n",
        )
        .replace(
            "    gap_policy:\n      fallback: [carol@example.com]\n", "    gap_policy: escalate\n"
        )
    )
    saturday = datetime(2026, 3, 7, 12, tzinfo=UTC)
    with serve(store_url, config, start=saturday) as world:
        agent = world.agent()
        request = agent.create_request(invoice())
        assert request.route.role == "finance-manager"
        assert request.escalation_level == 1
        assert request.assignees == ["carol@example.com"]
        events = agent.timeline(request.id)
        assert types(events) == [
            "request.created",
            "request.routed",
            "request.escalated",
            "request.notified",
        ]
        assert events[2].data["from_role"] == "finance-approver"
        assert "nobody on shift" in str(events[2].data["reason"])
        # The chain's escalation step was used up: nothing escalates again later.
        world.clock.advance(timedelta(minutes=45))
        time.sleep(0.4)
        assert types(agent.timeline(request.id)).count("request.escalated") == 1
        # Approvers may still decide: the request went to their role first.
        alice = world.person("alice@example.com")
        assert alice.decide(request.id, "approve").status is Status.PENDING


def test_server_without_policy_file_has_no_control_map(store_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=store_url, timer_interval=0.1, **_key_files(tmp_path))
    db = Database(store_url)
    try:
        with ServerThread(settings) as server:
            with db.write() as conn:
                set_user(conn, "root@example.com", ["admin"])
                token = create_token(conn, "root@example.com")
            with httpx.Client(base_url=server.url) as http:
                answer = http.get("/v1/control-map", headers={"authorization": f"Bearer {token}"})
            assert answer.status_code == 404
            assert answer.json()["error"]["code"] == "no_policy_config"
    finally:
        db.dispose()


def test_two_replicas_share_the_timers_and_fire_each_once(store_url: str, tmp_path: Path) -> None:
    clock = ManualClock(MONDAY)
    settings = Settings(
        database_url=store_url,
        timer_interval=0.02,
        config_path=str(DEMO),
        clock=clock,
        **_key_files(tmp_path),  # one set of keys, as replicas share
    )
    db = Database(store_url)
    try:
        with ServerThread(settings) as one, ServerThread(settings) as two:
            with db.write() as conn:
                key = create_agent_key(conn, "finance-agent")
            with (
                Client(base_url=one.url, api_key=key) as agent_one,
                Client(base_url=two.url, api_key=key) as agent_two,
            ):
                made = [
                    (agent_one if n % 2 else agent_two).create_request(invoice()).id
                    for n in range(12)
                ]
                clock.advance(timedelta(hours=3))  # escalations and deadlines all due at once
                for request_id in made:
                    assert agent_one.wait(request_id, timeout=30).status is Status.EXPIRED
                timelines = [agent_two.timeline(request_id) for request_id in made]
            with db.read() as conn:
                left = conn.execute(timers.select().where(timers.c.request_id.in_(made))).all()
    finally:
        db.dispose()
    assert left == []
    for events in timelines:
        kinds = types(events)
        assert kinds.count("request.escalated") == 1, kinds
        assert kinds.count("request.expired") == 1, kinds
        assert kinds[-1] == "request.expired"


def test_chain_steps_notify_and_repeat(store_url: str, tmp_path: Path) -> None:
    config = tmp_path / "signoff.yaml"
    config.write_text(
        DEMO.read_text().replace(
            "  payments:\n    - wait: PT30M\n    - escalate_to: finance-manager\n",
            "  payments:\n"
            "    - wait: PT10M\n"
            "    - notify: on_shift\n"
            "    - wait: PT10M\n"
            "    - notify: {people: [admin@example.com]}\n"
            "    - repeat: 1\n",
        )
    )
    with serve(store_url, config) as world:
        agent = world.agent()
        request = agent.create_request(invoice())
        world.clock.advance(timedelta(minutes=45))
        eventually(lambda: len(agent.timeline(request.id)) == 7)
        time.sleep(0.3)  # nothing more is due
        events = agent.timeline(request.id)
    notified = [e.data for e in events if e.type == "request.notified"]
    assert [(n["reason"], n["people"]) for n in notified] == [
        ("created", ["alice@example.com"]),
        ("step", ["alice@example.com"]),
        ("step", ["admin@example.com"]),
        ("step", ["alice@example.com"]),
        ("step", ["admin@example.com"]),
    ]
    assert [n.get("step") for n in notified[1:]] == [1, 3, 5, 7]
    assert [e.at - MONDAY for e in events if e.type == "request.notified"][1:] == [
        timedelta(minutes=45)
    ] * 4  # all ran on the one tick after the jump; each wait counted from the step's due time
