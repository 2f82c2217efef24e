"""`signoff audit …` and `signoff evidence`: export, verify, checkpoint, evidence packets.

`verify` and `verify-evidence` need no database: only the export (or packet) and the log's
public key. Everything else reads the database given by `--db`.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.console import Console
from sqlalchemy.exc import OperationalError

from signoff.audit import (
    CHECKPOINTS_FILE,
    ENTRIES_FILE,
    EXPORT_FORMAT,
    LEAF_HASHES_FILE,
    MANIFEST_FILE,
    VERIFIER_KEY_FILE,
    NoteError,
    VerifierKey,
    verify_evidence,
    verify_export,
)
from signoff_server import audit, checkpoints, evidence
from signoff_server.checkpoints import Checkpointer, default_key_path, load_or_create_key
from signoff_server.db import Database, migrate
from signoff_server.errors import ServiceError
from signoff_server.settings import DEFAULT_DATABASE_URL
from signoff_server.views import load_request

__all__ = ["audit_app", "evidence_command", "export_log"]

audit_app = typer.Typer(
    help="The tamper-evident audit log: export it, verify an export offline, sign checkpoints.",
    no_args_is_help=True,
)
err = Console(stderr=True, soft_wrap=True)

DbOption = Annotated[
    str,
    typer.Option("--db", envvar="SIGNOFF_DATABASE_URL", help="Database URL.", show_default=True),
]
AuditKeyOption = Annotated[
    str | None,
    typer.Option(
        "--audit-key",
        envvar="SIGNOFF_AUDIT_KEY",
        help="The audit signing key file (default: next to a SQLite database, else "
        "./signoff-audit.key).",
        show_default=False,
    ),
]
VerifierOption = Annotated[
    list[str] | None,
    typer.Option(
        "--key",
        help="The log's verifier key (`<name>+<id>+<key>`) or a file holding it; repeatable. "
        "Get it from GET /v1/keys or the published checkpoint directory, not from the export.",
        show_default=False,
    ),
]

_BATCH = 10_000


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code=code)


def _open_database(db_url: str) -> Database:
    try:
        migrate(db_url)
    except (ValueError, OperationalError) as exc:
        raise _fail(f"cannot open the database {db_url}: {exc}") from exc
    return Database(db_url)


def _open_signer(db_url: str, key_file: str | None) -> tuple[Database, Checkpointer]:
    database = _open_database(db_url)
    path = Path(key_file) if key_file else default_key_path(database.url)
    try:
        key = load_or_create_key(path)
    except (OSError, ValueError) as exc:
        database.dispose()
        raise _fail(f"cannot load the audit signing key {path}: {exc}") from exc
    return database, Checkpointer(database, key)


def _verifier_keys(given: list[str] | None, fallback: str | None, where: str) -> list[VerifierKey]:
    texts: list[str] = []
    for item in given or []:
        path = Path(item)
        texts.append(path.read_text().strip() if "+" not in item and path.exists() else item)
    if not texts:
        if not fallback:
            raise _fail("no verifier key: pass --key")
        err.print(
            f"[yellow]warning:[/yellow] no --key given: using the key shipped in {where}, which "
            "proves only that the export is self-consistent. Compare it with the published key:"
        )
        err.print(f"  {fallback.strip()}")
        texts.append(fallback)
    try:
        return [VerifierKey.parse(t) for t in texts]
    except NoteError as exc:
        raise _fail(f"bad verifier key: {exc}") from exc


def export_log(checkpointer: Checkpointer, directory: Path) -> dict[str, Any]:
    """Sign a checkpoint over everything, then write the export; returns its manifest."""
    db = checkpointer.db
    last = checkpointer.checkpoint(force=True)
    if last is None:
        raise _fail("the audit log is empty: nothing to export")
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        raise _fail(f"{directory} is not empty")
    with db.read() as conn:
        records = [c for c in checkpoints.all_checkpoints(conn) if c.size <= last.size]
    with (
        (directory / ENTRIES_FILE).open("wb") as entries_file,
        (directory / LEAF_HASHES_FILE).open("w") as leaves_file,
    ):
        for start in range(0, last.size, _BATCH):
            with db.read() as conn:
                rows = audit.entries(conn, start, min(start + _BATCH, last.size))
            for _, entry, leaf in rows:
                entries_file.write(entry.encode() + b"\n")
                leaves_file.write(leaf + "\n")
    with (directory / CHECKPOINTS_FILE).open("w") as f:
        for record in records:
            consistency = (
                None
                if record.prev_size is None
                else {"from": record.prev_size, "proof": record.consistency}
            )
            line = {
                "size": record.size,
                "created_at": record.created_at.isoformat(),
                "note": record.note,
                "consistency": consistency,
            }
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    (directory / VERIFIER_KEY_FILE).write_text(f"{checkpointer.verifier}\n")
    manifest = {
        "format": EXPORT_FORMAT,
        "origin": checkpointer.origin,
        "size": last.size,
        "root_hash": last.root_hash,
        "checkpoints": len(records),
        "exported_at": datetime.now(UTC).isoformat(),
        "verifier_key": str(checkpointer.verifier),
    }
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


@audit_app.command("export")
def export_command(
    directory: Annotated[Path, typer.Argument(help="An empty or new directory.")],
    db: DbOption = DEFAULT_DATABASE_URL,
    audit_key: AuditKeyOption = None,
) -> None:
    """Sign a checkpoint over the whole log, then write entries, checkpoints and the verifier
    key to DIRECTORY."""
    database, checkpointer = _open_signer(db, audit_key)
    try:
        manifest = export_log(checkpointer, directory)
    except audit.AuditIntegrityError as exc:
        raise _fail(f"the stored log does not verify, nothing was signed: {exc}", 1) from exc
    finally:
        database.dispose()
    err.print(
        f"exported {manifest['size']} entries and {manifest['checkpoints']} checkpoints of "
        f"{manifest['origin']} to {directory}"
    )


@audit_app.command("verify")
def verify_command(
    directory: Annotated[Path, typer.Argument(help="An export written by `signoff audit export`.")],
    key: VerifierOption = None,
    checkpoint: Annotated[
        list[Path] | None,
        typer.Option(
            help="A signed checkpoint obtained elsewhere (published copy, witness) the export "
            "must contain; repeatable.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Recompute every leaf and root of an export, check every checkpoint's signature and the
    consistency between consecutive checkpoints. Exits 1 and names the first entry that does
    not verify. Needs no database."""
    shipped = directory / VERIFIER_KEY_FILE
    keys = _verifier_keys(key, shipped.read_text() if shipped.exists() else None, str(shipped))
    trusted = [p.read_text() for p in checkpoint or []]
    report = verify_export(directory, keys, trusted_checkpoints=trusted)
    for warning in report.warnings:
        err.print(f"[yellow]warning:[/yellow] {warning}")
    if not report.ok:
        sys.stdout.write(f"FAILED: first entry that does not verify: seq {report.first_bad_seq}\n")
        sys.stdout.write(f"  {report.error}\n")
        raise typer.Exit(code=1)
    sys.stdout.write(
        f"OK: {report.entries} entries and {report.checkpoints} checkpoints of "
        f"{report.origin} verify (signed size {report.verified_size})\n"
    )


@audit_app.command("verify-evidence")
def verify_evidence_command(
    file: Annotated[Path, typer.Argument(help="An evidence packet (JSON).")],
    key: VerifierOption = None,
) -> None:
    """Verify one request's evidence packet: the checkpoint signature, each event's inclusion
    proof, and that the packet's summary matches the proven events. Needs no database."""
    try:
        packet = json.loads(file.read_bytes())
    except (OSError, ValueError) as exc:
        raise _fail(f"cannot read {file}: {exc}") from exc
    if not isinstance(packet, dict):
        raise _fail(f"{file} is not an evidence packet")
    packet = cast(dict[str, Any], packet)
    shipped = packet.get("verifier_key")
    keys = _verifier_keys(key, shipped if isinstance(shipped, str) else None, str(file))
    report = verify_evidence(packet, keys)
    if not report.ok:
        where = f" (seq {report.bad_seq})" if report.bad_seq is not None else ""
        sys.stdout.write(f"FAILED{where}: {report.error}\n")
        raise typer.Exit(code=1)
    assert report.checkpoint is not None
    sys.stdout.write(
        f"OK: {len(report.events)} events of {report.request_id} are in {report.checkpoint.origin}"
        f" at size {report.checkpoint.size}\n"
    )
    for event in report.events:
        sys.stdout.write(
            f"  {event['seq']:>8}  {event['at']}  {event['type']:<28} {event['actor']}\n"
        )


@audit_app.command("checkpoint")
def checkpoint_command(
    db: DbOption = DEFAULT_DATABASE_URL, audit_key: AuditKeyOption = None
) -> None:
    """Sign a checkpoint of the log now (if it grew) and print it."""
    database, checkpointer = _open_signer(db, audit_key)
    try:
        record = checkpointer.checkpoint(force=True)
    except audit.AuditIntegrityError as exc:
        raise _fail(f"the stored log does not verify, nothing was signed: {exc}", 1) from exc
    finally:
        database.dispose()
    if record is None:
        raise _fail("the audit log is empty")
    sys.stdout.write(record.note)


def evidence_command(
    request_id: Annotated[str, typer.Argument(help="The request (req_…).")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    db: DbOption = DEFAULT_DATABASE_URL,
    audit_key: AuditKeyOption = None,
) -> None:
    """Write a request's evidence packet (verify it with `signoff audit verify-evidence`)."""
    database, checkpointer = _open_signer(db, audit_key)
    try:
        with database.read() as conn:
            load_request(conn, None, request_id)
            last = evidence.last_seq(conn, request_id)
        record = checkpointer.ensure(0 if last is None else last + 1)
        if record is None:
            raise _fail(f"{request_id} has no audit events")
        with database.read() as conn:
            _, request = load_request(conn, None, request_id)
            packet = evidence.build_packet(conn, request, record, checkpointer.verifier)
    except ServiceError as exc:
        raise _fail(exc.message) from exc
    finally:
        database.dispose()
    text = json.dumps(packet, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        err.print(f"wrote the evidence packet of {request_id} to {output}")
