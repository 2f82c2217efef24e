"""`signoff audit export` / `verify`: an export verifies with only the public key, and every kind
of tampering fails verification and names the first entry that does not verify."""

from __future__ import annotations

import base64
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from signoff.audit import (
    Checkpoint,
    SignerKey,
    VerifierKey,
    sign_note,
    verify_export,
)
from signoff.merkle import leaf_hash, root_from_leaves
from signoff_server import audit
from signoff_server.audit_cli import export_log
from signoff_server.checkpoints import Checkpointer
from signoff_server.cli import app
from signoff_server.db import Database, migrate

SIZE = 300
EVERY = 50  # a checkpoint after every 50 entries: sizes 50, 100, ..., 300
T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def _build_log(url: str, directory: Path) -> str:
    migrate(url)
    db = Database(url)
    key = SignerKey.generate("audit.example.com/signoff")
    signer = Checkpointer(db, key, every_entries=EVERY, every_seconds=3600)
    try:
        for i in range(SIZE):
            with db.write() as conn:
                audit.append(
                    conn,
                    type="request.decided" if i % 3 else "request.created",
                    actor=f"user:r{i % 5}@example.com",
                    at=T0 + timedelta(seconds=i),
                    request_id=f"req_{i % 7}",
                    data={"i": i, "verdict": "approve", "comment": "matches PO-7781"},
                )
            if (i + 1) % EVERY == 0:
                signer.checkpoint()
        export_log(signer, directory)
    finally:
        db.dispose()
    return str(key.verifier())


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """An export of a 300-entry log with six checkpoints, and its verifier key."""
    base = tmp_path_factory.mktemp("audit")
    directory = base / "export"
    vkey = _build_log(f"sqlite:///{base / 'log.db'}", directory)
    return directory, vkey


@pytest.fixture
def export(pristine: tuple[Path, str], tmp_path: Path) -> Path:
    """A private copy of the export to tamper with."""
    copy = tmp_path / "export"
    shutil.copytree(pristine[0], copy)
    return copy


def _verify(directory: Path, vkey: str, **kwargs: object):
    return verify_export(directory, [VerifierKey.parse(vkey)], **kwargs)  # type: ignore[arg-type]


def _lines(directory: Path, name: str = "entries.jsonl") -> list[bytes]:
    return (directory / name).read_bytes().splitlines(keepends=True)


def _write(directory: Path, lines: list[bytes], name: str = "entries.jsonl") -> None:
    (directory / name).write_bytes(b"".join(lines))


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout


def test_export_layout_and_a_clean_verify(pristine: tuple[Path, str]) -> None:
    directory, vkey = pristine
    assert sorted(p.name for p in directory.iterdir()) == [
        "checkpoints.jsonl", "entries.jsonl", "leaf_hashes.txt", "manifest.json", "verifier.key",
    ]  # fmt: skip
    entries = _lines(directory)
    assert len(entries) == SIZE
    first = json.loads(entries[0])
    assert list(first) == ["actor", "at", "data", "request_id", "seq", "type"]  # RFC 8785 order
    assert first["seq"] == 0
    assert first["at"] == "2026-11-27T09:00:00.000000Z"
    checkpoints = [json.loads(x) for x in _lines(directory, "checkpoints.jsonl")]
    assert [c["size"] for c in checkpoints] == list(range(EVERY, SIZE + 1, EVERY))
    report = _verify(directory, vkey)
    assert report.ok, report.error
    assert (report.entries, report.checkpoints, report.verified_size) == (SIZE, 6, SIZE)
    assert report.warnings == []
    code, out = _cli("audit", "verify", str(directory), "--key", vkey)
    assert code == 0, out
    assert out.startswith(f"OK: {SIZE} entries and 6 checkpoints")


def _assert_fails_at(directory: Path, vkey: str, seq: int, words: str) -> None:
    report = _verify(directory, vkey)
    assert not report.ok
    assert report.first_bad_seq == seq, report.error
    assert words in (report.error or ""), report.error
    code, out = _cli("audit", "verify", str(directory), "--key", vkey)
    assert code == 1
    assert f"first entry that does not verify: seq {seq}\n" in out


@pytest.mark.parametrize("seq", [0, 137, 149, 150, 299])
def test_one_changed_byte_names_that_entry(
    export: Path, pristine: tuple[Path, str], seq: int
) -> None:
    lines = _lines(export)
    lines[seq] = lines[seq].replace(b"matches PO-7781", b"matches PO-7782")
    _write(export, lines)
    _assert_fails_at(export, pristine[1], seq, f"entry {seq} was changed")


def test_a_changed_seq_names_that_entry(export: Path, pristine: tuple[Path, str]) -> None:
    lines = _lines(export)
    lines[77] = lines[77].replace(b'"seq":77', b'"seq":78')
    _write(export, lines)
    _assert_fails_at(export, pristine[1], 77, "holds seq 78, not seq 77")


def test_a_dropped_entry_is_named(export: Path, pristine: tuple[Path, str]) -> None:
    lines = _lines(export)
    del lines[42]
    _write(export, lines)
    leaves = _lines(export, "leaf_hashes.txt")
    del leaves[42]  # even with the leaf list kept in step
    _write(export, leaves, "leaf_hashes.txt")
    _assert_fails_at(export, pristine[1], 42, "holds seq 43, not seq 42")


def test_swapped_entries_are_named(export: Path, pristine: tuple[Path, str]) -> None:
    lines = _lines(export)
    lines[10], lines[20] = lines[20], lines[10]
    _write(export, lines)
    _assert_fails_at(export, pristine[1], 10, "holds seq 20, not seq 10")


def test_a_changed_entry_with_a_recomputed_leaf_list_fails_its_checkpoint_range(
    export: Path, pristine: tuple[Path, str]
) -> None:
    # The forger also rewrites leaf_hashes.txt: the entry can then only be narrowed down to the
    # checkpoint interval it lies in; the first entry that does not verify is that interval's.
    lines = _lines(export)
    lines[137] = lines[137].replace(b"matches PO-7781", b"matches PO-7782")
    _write(export, lines)
    leaves = _lines(export, "leaf_hashes.txt")
    leaves[137] = leaf_hash(lines[137].rstrip(b"\n")).hex().encode() + b"\n"
    _write(export, leaves, "leaf_hashes.txt")
    _assert_fails_at(export, pristine[1], 100, "entries 100..149 do not match")


def test_without_the_leaf_list_a_change_is_narrowed_to_its_checkpoint_range(
    export: Path, pristine: tuple[Path, str]
) -> None:
    (export / "leaf_hashes.txt").unlink()
    lines = _lines(export)
    lines[260] = lines[260].replace(b"approve", b"reject!")
    _write(export, lines)
    _assert_fails_at(export, pristine[1], 250, "entries 250..299 do not match")


def _checkpoint_lines(directory: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in _lines(directory, "checkpoints.jsonl")]


def _write_checkpoints(directory: Path, records: list[dict[str, object]]) -> None:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    (directory / "checkpoints.jsonl").write_text(text)


def test_truncated_and_re_rooted_without_the_key_fails(
    export: Path, pristine: tuple[Path, str]
) -> None:
    # Keep entries 0..119, drop the checkpoints after 100, and sign a new checkpoint for size
    # 120 over the recomputed root with a key of the same name (the real one is not at hand).
    keep = 120
    lines = _lines(export)[:keep]
    _write(export, lines)
    _write(export, _lines(export, "leaf_hashes.txt")[:keep], "leaf_hashes.txt")
    root = root_from_leaves([leaf_hash(x.rstrip(b"\n")) for x in lines])
    forger = SignerKey.generate("audit.example.com/signoff")
    note = sign_note(Checkpoint("audit.example.com/signoff", keep, root).text(), forger)
    records = [r for r in _checkpoint_lines(export) if int(str(r["size"])) <= 100]
    records.append({"size": keep, "note": note, "consistency": None})
    _write_checkpoints(export, records)
    (export / "verifier.key").write_text(f"{forger.verifier()}\n")  # swapped in, too
    _assert_fails_at(export, pristine[1], 100, "checkpoint 3 in checkpoints.jsonl does not verify")


def test_truncated_at_a_checkpoint_needs_a_trusted_checkpoint_to_be_caught(
    export: Path, pristine: tuple[Path, str]
) -> None:
    latest = _checkpoint_lines(export)[-1]["note"]
    _write(export, _lines(export)[:200])
    _write(export, _lines(export, "leaf_hashes.txt")[:200], "leaf_hashes.txt")
    _write_checkpoints(export, _checkpoint_lines(export)[:4])
    # On its own the shortened export is a valid, older log...
    assert _verify(export, pristine[1]).ok
    # ...but not against the checkpoint the server published.
    report = _verify(export, pristine[1], trusted_checkpoints=[str(latest)])
    assert report.first_bad_seq == 200
    assert "entries from 200 on are missing" in (report.error or "")
    trusted = export.parent / "published-checkpoint"
    trusted.write_text(str(latest))
    code, out = _cli(
        "audit", "verify", str(export), "--key", pristine[1], "--checkpoint", str(trusted)
    )
    assert code == 1
    assert "seq 200" in out


def test_a_replaced_checkpoint_signature_fails(export: Path, pristine: tuple[Path, str]) -> None:
    records = _checkpoint_lines(export)
    note = str(records[3]["note"])  # size 200
    body, _, sig_line = note.rstrip("\n").rpartition("\n")
    name, blob = sig_line.rsplit(" ", 1)
    raw = base64.b64decode(blob)
    other = str(records[2]["note"]).rstrip("\n").rsplit(" ", 1)[1]  # a real signature, wrong note
    for replacement in (raw[:4] + bytes(64), base64.b64decode(other)):
        records[3]["note"] = f"{body}\n{name} {base64.b64encode(replacement).decode()}\n"
        _write_checkpoints(export, records)
        _assert_fails_at(export, pristine[1], 150, "checkpoint 4 in checkpoints.jsonl")


def test_an_appended_entry_is_not_covered(export: Path, pristine: tuple[Path, str]) -> None:
    lines = _lines(export)
    forged = lines[-1].replace(b'"seq":299', b'"seq":300')
    _write(export, [*lines, forged])
    _assert_fails_at(export, pristine[1], 300, "not covered by any valid signed checkpoint")


def test_an_inconsistent_checkpoint_chain_fails(export: Path, pristine: tuple[Path, str]) -> None:
    records = _checkpoint_lines(export)
    consistency = records[2]["consistency"]
    assert isinstance(consistency, dict)
    proof = list(consistency["proof"])  # type: ignore[arg-type]
    proof[0] = "00" * 32
    records[2]["consistency"] = {"from": 100, "proof": proof}
    _write_checkpoints(export, records)
    _assert_fails_at(export, pristine[1], 100, "not consistent with the checkpoint of size 100")


def test_the_wrong_key_verifies_nothing(export: Path) -> None:
    other = str(SignerKey.generate("audit.example.com/signoff").verifier())
    _assert_fails_at(export, other, 0, "checkpoint 1 in checkpoints.jsonl does not verify")


def test_export_of_a_postgres_or_sqlite_log_verifies(store_url: str, tmp_path: Path) -> None:
    vkey = _build_log(store_url, tmp_path / "export")
    assert _verify(tmp_path / "export", vkey).ok
