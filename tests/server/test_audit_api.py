"""The audit log over HTTP: timeline leaf hashes, checkpoint, entries, evidence packets and who
may read them. Runs against a real server on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from signoff import OutcomeStatus, Verdict
from signoff.audit import Checkpoint, EvidenceReport, VerifierKey, verify_evidence
from signoff.merkle import leaf_hash
from signoff_server.cli import app

from .conftest import World

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
    "route": {"role": "finance-approver"},
    "correlation": {"thread_id": "t-1"},
}


def _get(world: World, path: str, secret: str, **headers: str) -> httpx.Response:
    return httpx.get(
        f"{world.url}{path}", headers={"authorization": f"Bearer {secret}", **headers}, timeout=30
    )


def _decided_request(world: World) -> tuple[str, str, str, str]:
    """A request created, approved by alice and reported executed: (id, agent, alice, key)."""
    agent_key = world.agent_key("finance-agent")
    alice = world.reviewer_token("finance-approver", email="alice@example.com")
    agent = world.client(agent_key)
    created = agent.create_request(INVOICE)
    world.client(alice).decide(created.id, Verdict.APPROVE, comment="matches PO-7781")
    agent.report_outcome(created.id, OutcomeStatus.EXECUTED, detail="paid")
    vkey = httpx.get(f"{world.url}/v1/keys", timeout=30).json()["audit_key"]
    return created.id, agent_key, alice, vkey


def test_evidence_packet_verifies_offline(world: World, tmp_path: Path) -> None:
    request_id, agent_key, alice, vkey = _decided_request(world)
    key = [VerifierKey.parse(vkey)]

    packet = world.client(agent_key).evidence(request_id)  # the core Client's method
    report = verify_evidence(packet, key)
    assert report.ok, report.error
    assert [e["type"] for e in report.events] == [
        "request.created",
        "request.routed",
        "request.decided",
        "request.outcome_reported",
    ]
    assert packet["assignees_at_routing"] == ["alice@example.com"]
    assert packet["decisions"][0]["decided_by"] == {
        "user": "alice@example.com",
        "role": "finance-approver",
    }
    assert packet["outcome"]["status"] == "executed"
    assert packet["events_after_checkpoint"] == 0
    assert packet["checkpoint"]["size"] >= 4

    # Same packet from the reviewer, and through the CLI verifier.
    assert verify_evidence(world.client(alice).evidence(request_id), key).ok
    path = tmp_path / "evidence.json"
    path.write_text(json.dumps(packet))
    result = CliRunner().invoke(app, ["audit", "verify-evidence", str(path), "--key", vkey])
    assert result.exit_code == 0, result.stdout
    assert f"OK: 4 events of {request_id}" in result.stdout


def test_a_tampered_evidence_packet_fails(world: World, tmp_path: Path) -> None:
    request_id, agent_key, _, vkey = _decided_request(world)
    key = [VerifierKey.parse(vkey)]
    packet = world.client(agent_key).evidence(request_id)

    def tampered(change: Any) -> EvidenceReport:
        forged = copy.deepcopy(packet)
        change(forged)
        return verify_evidence(forged, key)

    def other_signer(p: dict[str, Any]) -> None:
        p["decisions"][0]["decided_by"]["user"] = "mallory@example.com"

    def edit_entry(p: dict[str, Any]) -> None:
        event = p["events"][2]
        event["entry"] = event["entry"].replace("alice@example.com", "mallory@example.com")
        event["leaf_hash"] = leaf_hash(event["entry"].encode()).hex()

    def edit_readable(p: dict[str, Any]) -> None:
        p["events"][2]["event"]["actor"] = "user:mallory@example.com"

    def edit_proof(p: dict[str, Any]) -> None:
        p["events"][1]["inclusion_proof"][0] = "00" * 32

    def other_assignees(p: dict[str, Any]) -> None:
        p["assignees_at_routing"] = ["mallory@example.com"]

    def other_outcome(p: dict[str, Any]) -> None:
        p["outcome"]["status"] = "skipped"

    def other_amount(p: dict[str, Any]) -> None:
        p["request"]["action"]["arguments"]["amount"] = "125000.00"

    def forged_checkpoint(p: dict[str, Any]) -> None:
        p["checkpoint"]["note"] = p["checkpoint"]["note"].replace("\n4\n", "\n5\n", 1)

    assert "decision" in (tampered(other_signer).error or "")
    assert tampered(edit_entry).bad_seq == packet["events"][2]["seq"]
    assert "readable copy differs" in (tampered(edit_readable).error or "")
    assert tampered(edit_proof).bad_seq == packet["events"][1]["seq"]
    assert "assignees" in (tampered(other_assignees).error or "")
    assert "outcome" in (tampered(other_outcome).error or "")
    assert "action" in (tampered(other_amount).error or "")
    assert not tampered(forged_checkpoint).ok

    forged = copy.deepcopy(packet)
    edit_entry(forged)
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(forged))
    result = CliRunner().invoke(app, ["audit", "verify-evidence", str(path), "--key", vkey])
    assert result.exit_code == 1
    assert result.stdout.startswith(f"FAILED (seq {packet['events'][2]['seq']})")


def test_who_may_read_evidence_and_entries(world: World) -> None:
    request_id, agent_key, alice, _ = _decided_request(world)
    other_agent = world.agent_key("other-agent")
    outsider = world.reviewer_token("legal-approver")
    auditor = world.reviewer_token("auditor")
    admin = world.reviewer_token("admin")
    evidence = f"/v1/requests/{request_id}/evidence"

    for secret in (agent_key, alice, auditor, admin):
        assert _get(world, evidence, secret).status_code == 200
    assert _get(world, evidence, other_agent).status_code == 404
    assert _get(world, evidence, outsider).status_code == 403
    assert httpx.get(f"{world.url}{evidence}", timeout=30).status_code == 401

    for secret in (auditor, admin):
        assert _get(world, "/v1/audit/entries", secret).status_code == 200
    for secret in (agent_key, alice, outsider):
        response = _get(world, "/v1/audit/entries", secret)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"
    for secret in (agent_key, alice, auditor):
        assert _get(world, "/v1/audit/checkpoint", secret).status_code == 200


def test_timeline_entries_and_checkpoint_agree(world: World) -> None:
    request_id, _, alice, vkey = _decided_request(world)
    auditor = world.reviewer_token("auditor")
    timeline = world.client(alice).timeline(request_id)
    assert [e.seq for e in timeline] == sorted(e.seq for e in timeline)

    page = _get(world, "/v1/audit/entries?from=0&to=2", auditor).json()
    assert [e["seq"] for e in page["entries"]] == [0, 1]
    assert page["next"] is None  # the asked range is complete; pages stop at 1000 entries
    everything = _get(world, "/v1/audit/entries", auditor).json()
    assert everything["next"] is None
    by_seq = {e["seq"]: e for e in everything["entries"]}
    assert len(by_seq) == everything["size"]
    for event in timeline:
        entry = by_seq[event.seq]
        assert event.leaf_hash == entry["leaf_hash"] == leaf_hash(entry["entry"].encode()).hex()
        assert json.loads(entry["entry"])["type"] == event.type

    checkpoint = _get(world, "/v1/audit/checkpoint", alice).json()
    assert checkpoint["verifier_key"] == vkey
    signed = Checkpoint.open(checkpoint["note"], [VerifierKey.parse(vkey)])
    assert signed.size == checkpoint["size"]
    assert signed.root.hex() == checkpoint["root_hash"]
    note = _get(world, "/v1/audit/checkpoint", alice, accept="text/plain")
    assert note.headers["content-type"].startswith("text/plain")
    assert note.text.count("\n") == 5  # origin, size, root, blank line, signature


@pytest.mark.parametrize("query", ["from=-1", "from=5&to=2", "to=x"])
def test_bad_entry_ranges_are_422(world: World, query: str) -> None:
    auditor = world.reviewer_token("auditor")
    response = _get(world, f"/v1/audit/entries?{query}", auditor)
    assert response.status_code == 422
    assert "error" in response.json()


def test_evidence_and_checkpoint_commands_read_the_database(world: World, tmp_path: Path) -> None:
    request_id, _, _, vkey = _decided_request(world)
    key_file = str(tmp_path / "audit.key")  # the server's key (see the `world` fixture)
    out = tmp_path / "packet.json"
    runner = CliRunner()
    made = runner.invoke(
        app, ["evidence", request_id, "--db", world.db.url, "--audit-key", key_file, "-o", str(out)]
    )
    assert made.exit_code == 0, made.output
    assert verify_evidence(json.loads(out.read_text()), [VerifierKey.parse(vkey)]).ok
    signed = runner.invoke(
        app, ["audit", "checkpoint", "--db", world.db.url, "--audit-key", key_file]
    )
    assert signed.exit_code == 0, signed.output
    assert Checkpoint.open(signed.stdout, [VerifierKey.parse(vkey)]).size >= 4
    missing = runner.invoke(
        app, ["evidence", "req_nope", "--db", world.db.url, "--audit-key", key_file]
    )
    assert missing.exit_code == 2
