"""The audit log in the database: gap-free seq, Merkle state, append-only triggers, checkpoints.

Runs on SQLite and PostgreSQL (`store_url`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import stat
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from psycopg import sql
from sqlalchemy import JSON, Insert, column, create_engine, insert, select, table, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from signoff.audit import Checkpoint, SignerKey, VerifierKey
from signoff.merkle import leaf_hash, root_from_leaves, verify_consistency
from signoff_server import audit
from signoff_server.checkpoints import Checkpointer, load_or_create_key
from signoff_server.db import Database, migrate, normalize_url
from signoff_server.schema import (
    UTCDateTime,
    agents,
    audit_checkpoints,
    audit_events,
    audit_log,
)

from .conftest import _pg_admin, _pg_url  # pyright: ignore[reportPrivateUsage]

NOW = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)


def _append(db: Database, i: int, request_id: str | None = None) -> None:
    with db.write() as conn:
        audit.append(
            conn, type="test.event", actor="system", at=NOW, request_id=request_id, data={"i": i}
        )


def _failed_change(db: Database, i: int) -> None:
    with db.write() as conn:
        audit.append(conn, type="lost", actor="system", at=NOW, data={"i": i})
        audit.flush(conn)  # written (and the log row advanced) inside the transaction...
        raise RuntimeError("the change failed: its event must vanish with it")


def _stored(db: Database) -> tuple[list[int], list[bytes]]:
    with db.read() as conn:
        rows = list(conn.execute(select(audit_events).order_by(audit_events.c.seq)))
    for row in rows:
        assert row.leaf_hash == leaf_hash(row.entry.encode()).hex()
        assert json.loads(row.entry)["seq"] == row.seq
        assert audit.entry_matches_row(row.entry, row)
    return [r.seq for r in rows], [bytes.fromhex(r.leaf_hash) for r in rows]


def _check_tree(db: Database) -> None:
    seqs, leaves = _stored(db)
    assert seqs == list(range(len(seqs)))
    with db.read() as conn:
        tree = audit.frontier(conn)
        assert tree.size == len(seqs)
        assert tree.root() == root_from_leaves(leaves)
        # every stored interior node is the hash of the leaves it covers
        for row in conn.execute(select(audit_events.c.seq, audit_events.c.nodes)):
            for level, h in enumerate(row.nodes or [], start=1):
                span = leaves[row.seq + 1 - (1 << level) : row.seq + 1]
                assert bytes.fromhex(h) == root_from_leaves(span)
            assert len(row.nodes or []) == (row.seq + 1 & -(row.seq + 1)).bit_length() - 1


def test_appends_are_gap_free_hashed_and_rolled_back_with_their_change(store_url: str) -> None:
    db = Database(store_url)
    try:
        for i in range(40):
            if i % 7 == 3:
                with pytest.raises(RuntimeError, match="vanish"):
                    _failed_change(db, i)
            _append(db, i)
        _check_tree(db)
        seqs, _ = _stored(db)
        assert len(seqs) == 40
        with db.read() as conn:
            assert not conn.execute(select(audit_events).where(audit_events.c.type == "lost")).all()
    finally:
        db.dispose()


def test_concurrent_appends_stay_gap_free(store_url: str) -> None:
    db = Database(store_url)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        rng = random.Random(n)
        try:
            for i in range(25):
                try:
                    with db.write() as conn:
                        audit.append(conn, type="w", actor=f"w{n}", at=NOW, data={"i": i})
                        audit.append(conn, type="w2", actor=f"w{n}", at=NOW, data={"i": i})
                        if rng.random() < 0.2:
                            raise LookupError("rolled back")
                except LookupError:
                    pass
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        _check_tree(db)
        with db.read() as conn:
            rows = list(conn.execute(select(audit_events.c.type).order_by(audit_events.c.seq)))
        # each transaction's two events are adjacent: appends serialize whole transactions
        assert all(rows[i].type == "w" and rows[i + 1].type == "w2" for i in range(0, len(rows), 2))
    finally:
        db.dispose()


def test_two_replicas_appending_in_turn_and_at_once_stay_gap_free(store_url: str) -> None:
    """Each process remembers the log's frontier after its own appends; when another replica
    appended meanwhile, that memory is stale and must never be written over the newer row."""
    replicas = [Database(store_url), Database(store_url)]
    try:
        for i in range(12):  # in turn: every append after the first finds its memory stale
            _append(replicas[i % 2], i)
        _check_tree(replicas[0])
        errors: list[BaseException] = []

        def worker(n: int) -> None:
            try:
                for i in range(15):
                    _append(replicas[(n + i) % 2], 100 * n + i)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        _check_tree(replicas[1])
        seqs, _ = _stored(replicas[1])
        assert len(seqs) == 12 + 4 * 15
    finally:
        for db in replicas:
            db.dispose()


def _new_agent(db: Database, agent_id: str) -> Insert:
    """A write that happens (returns its row) unless the agent exists already."""
    dialect = sqlite if db.is_sqlite else postgresql
    add = dialect.insert(agents).values(id=agent_id, created_at=NOW)
    return add.on_conflict_do_nothing().returning(agents.c.id)


def _types(db: Database) -> list[str]:
    with db.read() as conn:
        return list(
            conn.execute(select(audit_events.c.type).order_by(audit_events.c.seq)).scalars()
        )


def _write_that_did_not_happen(db: Database) -> None:
    with db.write() as conn:  # as a lost compare-and-set does
        audit.append(conn, type="not-written", actor="system", at=NOW)
        assert audit.execute_with_events(conn, _new_agent(db, "agent-1"), {}) == 0
        raise LookupError("the write did not happen: the change is rolled back")


def test_a_write_carries_the_queued_events_only_if_it_happened(store_url: str) -> None:
    """`execute_with_events`: on PostgreSQL the write and the events queued before it go in one
    statement; a write that did not happen appends nothing; events queued after it (a close
    hook's) follow it; a replica's append in between leaves the events to the commit."""
    db, replica = Database(store_url), Database(store_url)
    try:
        _append(db, 0)  # this process now knows the log's frontier
        with db.write() as conn:
            audit.append(conn, type="carried", actor="system", at=NOW)
            assert audit.execute_with_events(conn, _new_agent(db, "agent-1"), {}) == 1
            written = conn.execute(select(audit_events.c.type)).scalars().all()
            # PostgreSQL wrote the event with the write; SQLite queues it for the commit
            assert ("carried" in written) is (not db.is_sqlite)
            audit.append(conn, type="after", actor="system", at=NOW)
        assert _types(db) == ["test.event", "carried", "after"]
        _check_tree(db)

        with pytest.raises(LookupError):
            _write_that_did_not_happen(db)
        assert _types(db) == ["test.event", "carried", "after"]

        _append(replica, 1)  # what `db` remembers of the log is stale now
        with db.write() as conn:
            audit.append(conn, type="late", actor="system", at=NOW)
            assert audit.execute_with_events(conn, _new_agent(db, "agent-2"), {}) == 1
        assert _types(db) == ["test.event", "carried", "after", "test.event", "late"]
        _check_tree(db)
        with db.read() as conn:
            assert set(conn.execute(select(agents.c.id)).scalars()) == {"agent-1", "agent-2"}
    finally:
        db.dispose()
        replica.dispose()


@pytest.mark.parametrize("table", ["audit_events", "audit_checkpoints"])
def test_the_database_refuses_update_and_delete(store_url: str, table: str) -> None:
    db = Database(store_url)
    try:
        for i in range(4):
            _append(db, i)
        Checkpointer(db, SignerKey.generate("test/log")).checkpoint()
        column = {"audit_events": "actor", "audit_checkpoints": "note"}[table]
        statements = [f"UPDATE {table} SET {column} = 'x'", f"DELETE FROM {table}"]
        if not db.is_sqlite:
            statements.append(f"TRUNCATE {table}")
        for statement in statements:
            with pytest.raises(DBAPIError, match="append-only"), db.write() as conn:
                conn.execute(text(statement))
        _check_tree(db)
        with db.read() as conn:
            assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() > 0
    finally:
        db.dispose()


def test_values_outside_rfc8785_are_recorded_as_strings(store_url: str) -> None:
    db = Database(store_url)
    try:
        with db.write() as conn:
            audit.append(conn, type="t", actor="a", at=NOW, data={"big": 2**64, "ok": 7})
        with db.read() as conn:
            row = conn.execute(select(audit_events)).one()
        assert row.data == {"big": str(2**64), "ok": 7}
        assert json.loads(row.entry)["data"] == row.data
        _check_tree(db)
    finally:
        db.dispose()


def test_integral_doubles_beyond_2_53_match_their_entry(store_url: str) -> None:
    # RFC 8785 writes these doubles as integers whose exact value the double does not hold
    # (found by the API fuzzer: an evidence packet for such arguments failed as "tampered").
    values = [-5.107996766869553e16, 2.0**60 + 2**8, 1e300, 12.0]
    db = Database(store_url)
    try:
        with db.write() as conn:
            audit.append(conn, type="t", actor="a", at=NOW, data={"n": values})
        with db.read() as conn:
            row = conn.execute(select(audit_events)).one()
        assert row.data == {"n": values}
        assert json.loads(row.entry)["data"]["n"][0] == -51079967668695530
        assert audit.entry_matches_row(row.entry, row)
        changed = SimpleNamespace(**{**row._asdict(), "data": {"n": [*values[:3], 13.0]}})
        assert not audit.entry_matches_row(row.entry, changed)
        _check_tree(db)
    finally:
        db.dispose()


# --- migration of a log written before revision 0003 --------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def old_store(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    """A database migrated only to revision 0002 (before the Merkle log)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
        migrate(url, "0002")
        yield url
        return
    try:
        admin = _pg_admin()
    except Exception as exc:
        pytest.skip(f"PostgreSQL is not reachable: {exc}")
    name = f"signoff_old_{uuid.uuid4().hex[:10]}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = _pg_url(name)
    migrate(url, "0002")
    yield url
    with _pg_admin() as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def test_migration_renumbers_and_hashes_existing_events(old_store: str) -> None:
    engine = create_engine(normalize_url(old_store), poolclass=NullPool)
    # Written the pre-0003 way: seq left to the database (autoincrement, from 1).
    old_events = table(
        "audit_events", column("at", UTCDateTime()), column("type"), column("request_id"),
        column("actor"), column("data", JSON()),
    )  # fmt: skip
    with engine.begin() as conn:
        for i in range(5):
            conn.execute(
                insert(old_events).values(
                    at=NOW, type="old.event", request_id=None, actor="system", data={"i": i}
                )
            )
        if engine.dialect.name == "postgresql":  # a rolled-back transaction left a gap
            conn.execute(text("SELECT nextval('audit_events_seq_seq')"))
            conn.execute(
                insert(old_events).values(
                    at=NOW, type="old.event", request_id=None, actor="system", data={"i": 5}
                )
            )
    engine.dispose()
    migrate(old_store)
    db = Database(old_store)
    try:
        _check_tree(db)
        seqs, _ = _stored(db)
        with db.read() as conn:
            data = [r.data["i"] for r in conn.execute(select(audit_events).order_by("seq"))]
        assert data == list(range(len(seqs)))  # original order kept, renumbered from 0
        _append(db, 99)
        _check_tree(db)
        with pytest.raises(DBAPIError), db.write() as conn:
            conn.execute(text("DELETE FROM audit_events"))
    finally:
        db.dispose()


# --- checkpoints -------------------------------------------------------------------------------


def test_key_file_is_created_0600_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "audit.key"
    key = load_or_create_key(path, "audit.example.com/signoff")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("PRIVATE+KEY+audit.example.com/signoff+")
    assert load_or_create_key(path) == key
    with pytest.raises(ValueError, match="origin cannot change"):
        load_or_create_key(path, "another/log")


def _start_together(load: Callable[[], object], starters: int = 8) -> list[object]:
    """What `starters` threads released at once each got from `load()`."""
    start = threading.Barrier(starters)
    results: list[object] = []
    errors: list[BaseException] = []

    def starter() -> None:
        start.wait()
        try:
            results.append(load())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=starter) for _ in range(starters)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    return results


@pytest.mark.parametrize("kind", ["audit key", "link secret"])
def test_replicas_starting_together_all_read_the_one_complete_key(
    tmp_path: Path, kind: str
) -> None:
    """Every starter either creates the file or reads the winner's, never a half-written one."""
    from signoff_server.notifications.secret import load_secret

    for attempt in range(15):
        path = tmp_path / f"{attempt}.key"
        if kind == "audit key":
            results = _start_together(lambda p=path: str(load_or_create_key(p, "test/log")))
        else:
            results = _start_together(lambda p=path: load_secret(p))
        assert len(results) == 8
        assert len(set(map(str, results))) == 1
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_checkpoints_every_n_entries_with_consistency_proofs(
    store_url: str, tmp_path: Path
) -> None:
    db = Database(store_url)
    key = SignerKey.generate("test/log")
    published = tmp_path / "published"
    signer = Checkpointer(db, key, every_entries=10, every_seconds=3600, publish_dir=published)
    try:
        assert signer.tick() is None  # empty log: nothing to sign
        for i in range(35):
            _append(db, i)
            signer.tick()
        assert signer.tick() is None  # 5 entries since the last one, an hour not passed
        with db.read() as conn:
            rows = list(conn.execute(select(audit_checkpoints).order_by("size")))
        assert [r.size for r in rows] == [1, 11, 21, 31]
        _, leaves = _stored(db)
        vkey = [VerifierKey.parse(str(key.verifier()))]
        for before, after in itertools.pairwise(rows):
            cp = Checkpoint.open(after.note, vkey)
            assert cp.root == root_from_leaves(leaves[: after.size])
            assert after.prev_size == before.size
            proof = [bytes.fromhex(h) for h in after.consistency]
            assert verify_consistency(
                before.size, after.size, bytes.fromhex(before.root_hash), cp.root, proof
            )
        assert (published / "checkpoint").read_text() == rows[-1].note
        assert sorted(int(p.name) for p in (published / "checkpoints").iterdir()) == [1, 11, 21, 31]
        assert (published / "verifier.key").read_text().strip() == str(key.verifier())
        final = signer.checkpoint()
        assert final is not None
        assert final.size == 35
    finally:
        db.dispose()


def _disable_triggers(db: Database) -> None:
    with db.write() as conn:
        if db.is_sqlite:
            conn.execute(text("DROP TRIGGER audit_events_no_update"))
        else:
            conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))


def test_a_tampered_database_is_never_signed(store_url: str) -> None:
    db = Database(store_url)
    signer = Checkpointer(db, SignerKey.generate("test/log"), every_entries=5)
    try:
        for i in range(8):
            _append(db, i)
        signer.checkpoint()
        for i in range(8, 12):
            _append(db, i)
        # Someone with database rights switches the trigger off and rewrites history.
        _disable_triggers(db)
        with db.write() as conn:
            conn.execute(text("UPDATE audit_events SET data = '{\"i\": 1000}' WHERE seq = 9"))
        with pytest.raises(audit.AuditIntegrityError, match="entry 9 differs"):
            signer.checkpoint()
        # Rewriting the entry, its columns and its leaf hash consistently breaks the tree.
        with db.write() as conn:
            row = conn.execute(select(audit_events).where(audit_events.c.seq == 10)).one()
            forged = row.entry.replace('"i":10', '"i":11')
            conn.execute(
                text("UPDATE audit_events SET entry = :e, leaf_hash = :h, data = :d WHERE seq=10"),
                {"e": forged, "h": hashlib.sha256(b"\x00" + forged.encode()).hexdigest(),
                 "d": '{"i": 11}'},
            )  # fmt: skip
            conn.execute(text("UPDATE audit_events SET data = '{\"i\": 9}' WHERE seq = 9"))
        with pytest.raises(
            audit.AuditIntegrityError, match="tree nodes stored with entry 11 are wrong"
        ):
            signer.checkpoint()
        with db.read() as conn:
            assert [r.size for r in conn.execute(select(audit_checkpoints.c.size))] == [8]
    finally:
        db.dispose()


def test_refuses_to_continue_a_log_signed_by_another_key(store_url: str) -> None:
    db = Database(store_url)
    try:
        _append(db, 0)
        Checkpointer(db, SignerKey.generate("test/log")).checkpoint()
        _append(db, 1)
        with pytest.raises(audit.AuditIntegrityError, match="not signed by this log's key"):
            Checkpointer(db, SignerKey.generate("test/log")).checkpoint()
    finally:
        db.dispose()


def test_log_row_is_locked_for_update_on_postgres(store_url: str) -> None:
    """The lock that makes seq gap-free: a second appender waits for the first to commit."""
    db = Database(store_url)
    if db.is_sqlite:
        db.dispose()
        pytest.skip("SQLite serializes write transactions itself (BEGIN IMMEDIATE)")
    try:
        started, order = threading.Event(), []

        def second() -> None:
            started.wait()
            _append(db, 2)
            order.append("second")

        t = threading.Thread(target=second)
        t.start()
        with db.write() as conn:
            audit.append(conn, type="first", actor="a", at=NOW, data={})
            audit.flush(conn)  # writes the queued event now: takes the log lock until commit
            started.set()
            t.join(timeout=1.0)
            assert t.is_alive()  # blocked on the audit_log row
            order.append("first")
        t.join(timeout=10)
        assert order == ["first", "second"]
        with db.read() as conn:
            assert conn.execute(select(audit_log.c.size)).scalar_one() == 2
        _check_tree(db)
    finally:
        db.dispose()
