"""Webhook signing keys: the key file, `GET /v1/keys`, rotation with overlap, retirement."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from signoff import CallbackStatus, Verdict, Verifier
from signoff.errors import SignatureError
from signoff_server.callbacks.keys import (
    KeyFileError,
    KeyRing,
    create_key_file,
    default_key_path,
    read_key_file,
    retire_key,
    rotate_keys,
)
from signoff_server.cli import app as cli
from signoff_server.schema import audit_events

from .callback_support import Receiver, callback_world, invoice, wait_for

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def _public_keys(url: str) -> list[dict[str, str | None]]:
    keys: list[dict[str, str | None]] = httpx.get(f"{url}/v1/keys").json()["webhook_keys"]
    return keys


def test_rotation_overlap_then_retirement(store_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    key_file = str(tmp_path / "webhook-keys.json")
    cli_args = ["--db", store_url, "--webhook-keys", key_file]
    with callback_world(store_url, tmp_path) as world:
        agent = world.client(world.agent_key())
        reviewer = world.client(world.reviewer_token("finance-approver"))
        ((old_id, old),) = [(k["id"], k["public_key"]) for k in _public_keys(world.url)]
        assert old is not None

        def callback() -> tuple[bytes, dict[str, str]]:
            with Receiver(answer=lambda _n: 200) as receiver:
                created = agent.create_request(invoice(receiver.url))
                reviewer.decide(created.id, Verdict.APPROVE)
                wait_for(
                    "the delivery",
                    lambda: (
                        agent.get_request(created.id).callback_status is CallbackStatus.DELIVERED
                    ),
                )
            (delivery,) = receiver.deliveries
            return delivery.body, delivery.headers

        # Rotate: the new public key is printed alone on stdout.
        rotated = runner.invoke(cli, ["webhook-keys", "rotate", "--overlap", "P2D", *cli_args])
        assert rotated.exit_code == 0, rotated.output
        new = rotated.stdout.strip()
        assert new.startswith("whpk_")
        assert new != old

        # During the overlap both keys are published and both sign every callback.
        published = _public_keys(world.url)
        assert [k["public_key"] for k in published] == [old, new]
        assert published[0]["valid_until"] is not None  # the old key's retirement
        assert published[1]["valid_until"] is None
        body, headers = callback()
        assert [s.split(",")[0] for s in headers["webhook-signature"].split()] == ["v1a", "v1a"]
        assert Verifier([old]).verify(body, headers).id == headers["webhook-id"]
        assert Verifier([new]).verify(body, headers).id == headers["webhook-id"]

        # After retirement (here: at once, as for a leaked key) only the new key signs.
        retired = runner.invoke(cli, ["webhook-keys", "retire", str(old_id), *cli_args])
        assert retired.exit_code == 0, retired.output
        assert [k["public_key"] for k in _public_keys(world.url)] == [new]
        body, headers = callback()
        assert len(headers["webhook-signature"].split()) == 1
        assert Verifier([new]).verify(body, headers).id == headers["webhook-id"]
        with pytest.raises(SignatureError):
            Verifier([old]).verify(body, headers)

        listed = runner.invoke(cli, ["webhook-keys", "list", *cli_args])
        assert listed.exit_code == 0
        assert f"{old_id}  {old}  retired" in listed.stdout
        assert "whsk_" not in listed.output

        # The key history is in the audit log (public halves only).
        with world.db.read() as conn:
            rows = conn.execute(
                audit_events.select().where(audit_events.c.type.like("webhook_keys.%"))
            ).all()
        assert [r.type for r in rows] == ["webhook_keys.rotated", "webhook_keys.retired"]
        assert "whsk_" not in json.dumps([r.data for r in rows])


def test_retirement_happens_at_the_end_of_the_overlap(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    clock = [T0]
    ring = KeyRing(path, clock=lambda: clock[0])
    ring.ensure()
    (first,) = ring.signing_keys()
    new, _ = rotate_keys(path, T0 + timedelta(minutes=1), timedelta(days=7))

    clock[0] = T0 + timedelta(days=7)  # inside the overlap: both sign
    assert [k.id for k in ring.signing_keys()] == [first.id, new.id]
    clock[0] = T0 + timedelta(days=7, minutes=1)  # the instant it ends: only the new one
    assert [k.id for k in ring.signing_keys()] == [new.id]


def test_the_key_file_is_created_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "data" / "keys.json"
    results: list[str] = []

    def start() -> None:
        keys, _created = create_key_file(path, T0)
        results.append(keys[0].public)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1  # concurrent first starts agree on one key
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["keys.json"]  # no temporary files left
    (key,) = read_key_file(path)
    assert "whsk_" not in repr(key)  # the secret never shows in logs by accident


def test_a_broken_key_file_keeps_the_last_good_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    ring = KeyRing(path, clock=lambda: T0)
    ring.ensure()
    before = ring.signing_keys()
    path.write_text("{ half an edit")
    assert ring.signing_keys() == before
    with pytest.raises(KeyFileError, match="not JSON"):
        read_key_file(path)


def test_key_file_errors_are_clear(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    with pytest.raises(KeyFileError, match="no webhook key file"):
        read_key_file(path)
    path.write_text(json.dumps({"format": "signoff-webhook-keys/1", "keys": [{"id": "k"}]}))
    with pytest.raises(KeyFileError, match=r"keys\[0\]\.secret is not a whsk_ key"):
        read_key_file(path)
    path.write_text(
        json.dumps(
            {
                "format": "signoff-webhook-keys/1",
                "keys": [{"id": "k", "secret": "whsk_AAAA", "created_at": T0.isoformat()}],
            }
        )
    )
    with pytest.raises(KeyFileError, match="32 or 64 bytes") as caught:
        read_key_file(path)
    assert "AAAA" not in str(caught.value)


def test_the_last_active_key_cannot_be_retired(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    (key,), _ = create_key_file(path, T0)
    with pytest.raises(KeyFileError, match="only active key"):
        retire_key(path, key.id, T0 + timedelta(seconds=1))
    with pytest.raises(KeyFileError, match="no key"):
        retire_key(path, "whk_nope", T0)


def test_default_key_path_sits_next_to_a_sqlite_database(tmp_path: Path) -> None:
    assert default_key_path(f"sqlite:///{tmp_path}/prod.db") == tmp_path / "prod.webhook-keys.json"
    assert default_key_path("sqlite:///./signoff.db") == Path("signoff.webhook-keys.json")
    assert default_key_path("postgresql://db/signoff") == Path("signoff-webhook-keys.json")


def test_cli_refuses_bad_input(tmp_path: Path) -> None:
    runner = CliRunner()
    db = f"sqlite:///{tmp_path}/x.db"
    keys = str(tmp_path / "keys.json")
    bad = runner.invoke(cli, ["webhook-keys", "rotate", "--overlap", "soon", "--db", db])
    assert bad.exit_code == 2
    assert "--overlap" in bad.output
    missing = runner.invoke(cli, ["webhook-keys", "list", "--db", db, "--webhook-keys", keys])
    assert missing.exit_code == 2
    assert "no webhook key file" in missing.output
    # rotate on a fresh install creates the file with its first key
    first = runner.invoke(cli, ["webhook-keys", "rotate", "--db", db, "--webhook-keys", keys])
    assert first.exit_code == 0, first.output
    assert os.stat(keys).st_mode & 0o777 == 0o600
    nobody = runner.invoke(cli, ["webhook-keys", "hmac-create", "--agent", "ghost", "--db", db])
    assert nobody.exit_code == 2
    assert "no agent 'ghost'" in nobody.output
    assert nobody.stdout == ""
