"""Signed checkpoints of the audit log (C2SP tlog-checkpoint in a C2SP signed note, Ed25519).

The signing key is not in the database: it is a key file (signed-note `PRIVATE+KEY+…` line,
mode 0600) created on first start. Every replica of one deployment must use the same file; the
checkpointer refuses to sign after a checkpoint that this key did not sign.

Before signing a new checkpoint of size n over the previous one of size m, the checkpointer
checks the stored log against it: the previous note verifies with this key; the stored tree
nodes rebuild the previous root; every entry in [m, n) hashes to its recorded leaf and matches
its readable columns; those leaves extend the previous tree to the current frontier; and the
RFC 6962 consistency proof from m to n verifies. Only then is the note signed and stored (with
its consistency proof) and, optionally, published to a directory outside the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from signoff.audit import Checkpoint, NoteError, SignerKey, VerifierKey, sign_note
from signoff.merkle import Frontier, consistency_proof, leaf_hash, subtree_hash, verify_consistency
from signoff_server import audit
from signoff_server.db import Database
from signoff_server.files import create_exclusive
from signoff_server.schema import audit_checkpoints, audit_events

__all__ = [
    "CheckpointRecord",
    "Checkpointer",
    "default_key_path",
    "load_or_create_key",
]

log = logging.getLogger("signoff.audit")

_PG_LOCK = 0x5160FF_A0D17  # pg_advisory_xact_lock key: one checkpoint writer at a time


def default_key_path(database_url: str) -> Path:
    """Next to a SQLite database file; else `signoff-audit.key` in the working directory."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        db_file = Path(str(url.database))
        return db_file.with_name(db_file.name + ".audit.key")
    return Path("signoff-audit.key")


def load_or_create_key(path: str | Path, origin: str | None = None) -> SignerKey:
    """The log's signing key from `path`; created (mode 0600) if the file does not exist.

    A new key is named `origin`, or `signoff/<random>`; an existing key keeps its name, and a
    different `origin` is refused (a log's origin never changes).
    """
    path = Path(path)
    if not path.exists():
        import secrets

        key = SignerKey.generate(origin or f"signoff/{secrets.token_hex(6)}")
        # Replicas starting together race here: one key wins, the others read it (complete).
        if create_exclusive(path, (str(key) + "\n").encode()):
            log.info("created the audit log signing key %s (%s)", path, key.verifier())
            return key
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning(
            "the audit signing key %s is readable by others (mode %o); use 0600", path, mode
        )
    try:
        key = SignerKey.parse(path.read_text())
    except NoteError as exc:
        raise ValueError(f"{path} is not an audit signing key: {exc}") from exc
    if origin is not None and origin != key.name:
        raise ValueError(
            f"the audit key {path} belongs to the log {key.name!r}, not {origin!r}: a log's "
            "origin cannot change"
        )
    return key


@dataclass(frozen=True, slots=True)
class CheckpointRecord:
    """A stored checkpoint."""

    size: int
    root_hash: str
    note: str
    prev_size: int | None
    consistency: list[str]
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> CheckpointRecord:
        """From an audit_checkpoints row."""
        return cls(
            int(row.size),
            str(row.root_hash),
            str(row.note),
            None if row.prev_size is None else int(row.prev_size),
            list(row.consistency),
            row.created_at,
        )


def latest(conn: Connection) -> CheckpointRecord | None:
    """The newest checkpoint, if any."""
    row = conn.execute(
        select(audit_checkpoints).order_by(audit_checkpoints.c.size.desc()).limit(1)
    ).first()
    return None if row is None else CheckpointRecord.from_row(row)


def all_checkpoints(conn: Connection) -> list[CheckpointRecord]:
    """Every checkpoint, oldest first."""
    rows = conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.size))
    return [CheckpointRecord.from_row(r) for r in rows]


class Checkpointer:
    """Signs a checkpoint every `every_entries` entries, or after `every_seconds` when the log
    grew; `run()` polls every `interval` seconds until cancelled."""

    def __init__(
        self,
        db: Database,
        key: SignerKey,
        *,
        every_entries: int = 1000,
        every_seconds: float = 60.0,
        interval: float = 1.0,
        publish_dir: str | Path | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.db = db
        self.key = key
        self.verifier: VerifierKey = key.verifier()
        self.every_entries = max(1, every_entries)
        self.every_seconds = every_seconds
        self.interval = interval
        self.publish_dir = Path(publish_dir) if publish_dir else None
        self.clock = clock

    @property
    def origin(self) -> str:
        """The log's name (the key's name)."""
        return self.key.name

    def _due(self, size: int, last: CheckpointRecord | None, now: datetime) -> bool:
        if size == 0 or (last is not None and last.size >= size):
            return False
        if last is None or size - last.size >= self.every_entries:
            return True
        return now - last.created_at >= timedelta(seconds=self.every_seconds)

    def tick(self) -> CheckpointRecord | None:
        """Sign a checkpoint if one is due; returns it (None if none was due)."""
        with self.db.read() as conn:
            size = audit.log_size(conn)
            last = latest(conn)
        if not self._due(size, last, self.clock()):
            return None
        return self.checkpoint(force=False)

    def ensure(self, covering: int) -> CheckpointRecord | None:
        """A checkpoint of at least `covering` entries, signing one now if needed."""
        with self.db.read() as conn:
            last = latest(conn)
        if last is not None and last.size >= covering:
            return last
        return self.checkpoint(force=True)

    def checkpoint(self, *, force: bool = True) -> CheckpointRecord | None:
        """Check the log against the last checkpoint and sign its current size (if it grew)."""
        try:
            with self.db.write() as conn:
                if not self.db.is_sqlite:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})
                last = latest(conn)
                size = audit.log_size(conn)
                if size == 0 or (last is not None and last.size >= size):
                    return last
                if not force and not self._due(size, last, self.clock()):
                    return last
                record = self._sign(conn, last, size)
                conn.execute(
                    insert(audit_checkpoints).values(
                        size=record.size,
                        root_hash=record.root_hash,
                        note=record.note,
                        prev_size=record.prev_size,
                        consistency=record.consistency,
                        created_at=record.created_at,
                    )
                )
        except IntegrityError:
            # Another writer (without the advisory lock: SQLite) stored this size first.
            with self.db.read() as conn:
                return latest(conn)
        self._publish(record)
        return record

    def _sign(self, conn: Connection, last: CheckpointRecord | None, size: int) -> CheckpointRecord:
        start = 0 if last is None else last.size
        if last is None:
            old = Frontier()
        else:
            try:
                signed = Checkpoint.open(last.note, [self.verifier])
            except NoteError as exc:
                raise audit.AuditIntegrityError(
                    f"the checkpoint of size {last.size} was not signed by this log's key "
                    f"({self.verifier}): {exc}"
                ) from exc
            if signed.size != last.size or signed.root.hex() != last.root_hash:
                raise audit.AuditIntegrityError(f"the stored checkpoint {last.size} was altered")
            old = audit.frontier_at(conn, start)
            if old.root() != signed.root:
                raise audit.AuditIntegrityError(
                    f"the stored tree no longer has the signed root of size {last.size}"
                )
        tree = old.copy()
        known: dict[tuple[int, int], bytes] = {(lv, ix): h for lv, ix, h in old.subtrees()}
        for seq, leaf, stored in self._checked_leaves(conn, start, size):
            known[(0, seq)] = leaf
            completed = tree.append(leaf)
            if [h.hex() for _, _, h in completed] != (stored or []):
                raise audit.AuditIntegrityError(f"the tree nodes stored with entry {seq} are wrong")
            for level, idx, h in completed:
                known[(level, idx)] = h
        current = audit.frontier(conn)
        if current.size < size or (current.size == size and current.hashes != tree.hashes):
            raise audit.AuditIntegrityError("the stored frontier disagrees with the entries")
        root = tree.root()

        def node(level: int, idx: int) -> bytes:
            if (level, idx) not in known:
                known.update(audit.perfect_nodes(conn, [(level, idx)]))
            return known[(level, idx)]

        proof: list[bytes] = []
        if last is not None:
            proof = consistency_proof(start, size, lambda a, b: subtree_hash(a, b, node))
            if not verify_consistency(start, size, old.root(), root, proof):
                raise audit.AuditIntegrityError(
                    f"the log of size {size} is not consistent with the checkpoint of size {start}"
                )
        note = sign_note(Checkpoint(self.origin, size, root).text(), self.key)
        log.info("signed audit checkpoint %s size %d root %s", self.origin, size, root.hex())
        return CheckpointRecord(
            size=size,
            root_hash=root.hex(),
            note=note,
            prev_size=None if last is None else start,
            consistency=[p.hex() for p in proof],
            created_at=self.clock(),
        )

    @staticmethod
    def _checked_leaves(
        conn: Connection, start: int, end: int
    ) -> list[tuple[int, bytes, list[str] | None]]:
        """Leaves [start, end), each checked against its entry bytes and readable columns."""
        rows = conn.execute(
            select(audit_events)
            .where(audit_events.c.seq >= start, audit_events.c.seq < end)
            .order_by(audit_events.c.seq)
        )
        leaves: list[tuple[int, bytes, list[str] | None]] = []
        expected = start
        for row in rows:
            if row.seq != expected:
                raise audit.AuditIntegrityError(f"the audit log has no entry {expected}")
            entry = str(row.entry).encode()
            leaf = leaf_hash(entry)
            if leaf.hex() != row.leaf_hash:
                raise audit.AuditIntegrityError(f"entry {row.seq} does not hash to its leaf")
            if not audit.entry_matches_row(entry, row):
                raise audit.AuditIntegrityError(f"entry {row.seq} differs from its columns")
            leaves.append((row.seq, leaf, row.nodes))
            expected += 1
        if expected != end:
            raise audit.AuditIntegrityError(f"the audit log has no entry {expected}")
        return leaves

    def _publish(self, record: CheckpointRecord) -> None:
        if self.publish_dir is None:
            return
        try:
            directory = self.publish_dir
            (directory / "checkpoints").mkdir(parents=True, exist_ok=True)
            _atomic_write(directory / "checkpoints" / str(record.size), record.note)
            _atomic_write(directory / "checkpoint", record.note)
            _atomic_write(directory / "verifier.key", f"{self.verifier}\n")
        except OSError:
            log.exception("could not publish the audit checkpoint of size %d", record.size)

    async def run(self) -> None:
        """Sign checkpoints as they fall due, until cancelled."""
        while True:
            try:
                await run_in_threadpool(self.tick)
            except Exception:
                log.exception("audit checkpoint failed; the log is not being signed")
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        """A last checkpoint over whatever was appended since the previous one."""
        with contextlib.suppress(Exception):
            await run_in_threadpool(self.checkpoint)


def _atomic_write(path: Path, content: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(content)
    tmp.replace(path)
