"""The audit log: an RFC 6962 Merkle log in the database, appended in the change's transaction.

Every event is one leaf. Its entry is the RFC 8785 canonical JSON of
`{actor, at, data, request_id, seq, type}`; its leaf hash is SHA-256(0x00 || entry); `seq` is
its leaf index, gap-free.

How an append works: `append` encodes the event at once (outside any lock) and queues it on the
transaction. Just before the transaction commits (`Database.write` runs the hook), the queued
events are written as one batch: the single `audit_log` row is locked (`SELECT … FOR UPDATE` on
PostgreSQL; SQLite write transactions are serialized already), each event gets seq = the log's
size, the stored frontier advances in O(log n) per event, the rows are inserted together with
the interior tree nodes each leaf completes, and the new size and frontier are stored. So the
lock is held only from that point to the commit, appends of concurrent transactions are never
interleaved, and a transaction that rolls back leaves no trace (and no gap). A process that
remembers the frontier of its own last commit skips the read: `UPDATE … WHERE size = <the
remembered size>` moves the row on and locks it, and only when another writer came between
(the update matches nothing) is the row read. On PostgreSQL a transaction's last write can carry
the events queued before it (`execute_with_events`, e.g. a decision's compare-and-set): that
same advance and insert then run in the write's statement, only if the write happened, and the
lock is held from that statement to the commit.

Queued events are not visible to plain SELECTs on `audit_events` before that point; `timeline`
flushes the queue first, and `flush(conn)` does so on demand. A connection that did not come from
`Database.write` (a migration, a script) gets the write at once instead.

The pure tree math lives in `signoff.merkle`; checkpoints (signed tree heads) in
`signoff_server.checkpoints`; evidence packets in `signoff_server.evidence`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import rfc8785
from sqlalchemy import (
    CTE,
    Connection,
    Insert,
    Select,
    Selectable,
    Update,
    bindparam,
    exists,
    func,
    insert,
    select,
    union_all,
    update,
)

from signoff.audit import i_json
from signoff.merkle import Frontier, inclusion_proof, perfect_subtrees, subtree_hash
from signoff.models import AuditEvent
from signoff_server.db import AFTER_COMMIT, BEFORE_COMMIT, STORE_OPTION, TRANSACTION_PREFIX
from signoff_server.identity import Principal
from signoff_server.schema import audit_events, audit_log

__all__ = [
    "AUDITOR_ROLE",
    "AuditIntegrityError",
    "EntryRow",
    "append",
    "canonical_json",
    "encode_entry",
    "entries",
    "entry_matches_row",
    "execute_with_events",
    "flush",
    "frontier",
    "frontier_at",
    "inclusion_proofs",
    "is_auditor",
    "log_size",
    "perfect_nodes",
    "timeline",
]

LOG_ID = 1
AUDITOR_ROLE = "auditor"
"""People holding this role may read the whole log and every request's evidence."""

_PENDING = TRANSACTION_PREFIX + "audit_pending"
_SAFE = 2**53 - 1


class AuditIntegrityError(RuntimeError):
    """The stored log disagrees with itself or with a signed checkpoint: never sign over it."""


def is_auditor(principal: Principal) -> bool:
    """Admins and people holding the `auditor` role."""
    return principal.is_admin or (not principal.is_agent and AUDITOR_ROLE in principal.roles)


# Canonical JSON -------------------------------------------------------------------------------


def _plain(value: Any) -> bool:
    """Whether the stdlib encoder writes `value` exactly as RFC 8785 does: no floats (their
    number formatting differs), integers within ±(2**53 - 1), string keys without characters
    beyond U+FFFF (RFC 8785 sorts keys by UTF-16 code units, Python by code points). Exact
    types only: anything else (subclasses included) takes the `rfc8785` path."""
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        kind: type = type(cast(object, item))
        if kind is str or item is None or kind is bool:
            continue
        if kind is int:
            if -_SAFE <= item <= _SAFE:
                continue
            return False
        if kind is dict:
            for key, child in cast(dict[Any, Any], item).items():
                if type(key) is not str or not (key.isascii() or max(map(ord, key)) <= 0xFFFF):
                    return False
                stack.append(child)
            continue
        if kind is list or kind is tuple:
            stack.extend(cast(Iterable[Any], item))
            continue
        return False
    return True


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical JSON of `value` (a ValueError if it has values outside I-JSON).

    The `rfc8785` package is the encoder; values where the stdlib's C encoder is byte-for-byte
    the same (most audit data: strings, small integers, booleans, null) take that fast path,
    which a property test checks against `rfc8785`.
    """
    if _plain(value):
        try:
            return json.dumps(
                value, ensure_ascii=False, separators=(",", ":"), sort_keys=True
            ).encode()
        except UnicodeEncodeError:  # an unpaired surrogate: rfc8785 says what to do
            pass
    return rfc8785.dumps(value)


def _timestamp(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class _Prepared:
    """An event encoded up to its seq: entry = head + seq + tail."""

    at: datetime
    type: str
    request_id: str | None
    actor: str
    data: dict[str, Any]
    head: bytes
    tail: bytes

    def entry(self, seq: int) -> bytes:
        return b'%s,"seq":%d,%s' % (self.head, seq, self.tail)


def _prepare(
    at: datetime, type: str, request_id: str | None, actor: str, data: Mapping[str, Any]
) -> _Prepared:
    # RFC 8785 sorts keys, and "seq" falls between "request_id" and "type": the entry is the
    # canonical form of the other four fields, then seq, then type.
    recorded = dict(data)
    fields = {"actor": actor, "at": _timestamp(at), "data": recorded, "request_id": request_id}
    try:
        head = canonical_json(fields)
    except rfc8785.CanonicalizationError:
        recorded = cast(dict[str, Any], i_json(recorded))
        head = canonical_json({**fields, "data": recorded})
    tail = canonical_json({"type": type})[1:]
    return _Prepared(at, type, request_id, actor, recorded, head[:-1], tail)


def encode_entry(
    *,
    seq: int,
    at: datetime,
    type: str,
    request_id: str | None,
    actor: str,
    data: Mapping[str, Any],
) -> tuple[bytes, dict[str, Any]]:
    """The canonical entry bytes of one event, and `data` as recorded in them.

    Values outside RFC 8785's domain (integers beyond 2**53, NaN) are recorded as strings.
    """
    prepared = _prepare(at, type, request_id, actor, data)
    return prepared.entry(seq), prepared.data


# Appending --------------------------------------------------------------------------------------


def append(
    conn: Connection,
    *,
    type: str,
    actor: str,
    at: datetime,
    request_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Record one event. Call it with the connection of the change, so both commit or neither."""
    prepared = _prepare(at, type, request_id, actor, data or {})
    hooks: list[Any] | None = conn.info.get(BEFORE_COMMIT)
    if hooks is None:  # not a Database.write() transaction: write at once
        _store(conn, [prepared])
        return
    pending: list[_Prepared] | None = conn.info.get(_PENDING)
    if pending is None:
        pending = conn.info[_PENDING] = []
        hooks.append(flush)
    pending.append(prepared)


def flush(conn: Connection) -> None:
    """Write the events queued in this transaction now (they get their seq here)."""
    pending: list[_Prepared] | None = conn.info.pop(_PENDING, None)
    if pending:
        _store(conn, pending)


# Built once: the statements of every audited transaction (see views.py for why).
_FRONTIER = (
    select(audit_log.c.size, audit_log.c.frontier).where(audit_log.c.id == LOG_ID).with_for_update()
)
_INSERT_EVENTS = insert(audit_events)
_SET_FRONTIER = (
    update(audit_log)
    .where(audit_log.c.id == LOG_ID)
    .values(size=bindparam("b_size"), frontier=bindparam("b_frontier"))
)


_ADVANCE_FRONTIER = _SET_FRONTIER.where(audit_log.c.size == bindparam("b_was"))

# The frontier as of this process's last committed append, per store (a `Database`, which its
# engines share; an engine made elsewhere stands for itself). The log only grows, so
# its size names its state: `_ADVANCE_FRONTIER` moves the row on only if the size is still the
# cached one, and that saves reading the row in every audited transaction. When another process
# or replica appended meanwhile, the update matches nothing and the row is read (and locked).
_known: weakref.WeakKeyDictionary[object, Frontier] = weakref.WeakKeyDictionary()


def _store_of(conn: Connection) -> object:
    return conn.get_execution_options().get(STORE_OPTION, conn.engine)


_TREE = TRANSACTION_PREFIX + "audit_tree"


def _frontier_known(conn: Connection) -> Frontier | None:
    """The frontier to append to without reading the row: this transaction's own appends so
    far (it holds the row's lock since the first), else this process's last commit."""
    own: Frontier | None = conn.info.get(_TREE)
    return own if own is not None else _known.get(_store_of(conn))


def _remember(conn: Connection, tree: Frontier, committed: list[Any] | None) -> None:
    """`tree` is the log's frontier in this transaction, and once it commits, the store's."""
    if committed is None:
        return
    conn.info[_TREE] = tree
    store = _store_of(conn)
    committed.append(lambda: _known.__setitem__(store, tree))


def _store(conn: Connection, events: list[_Prepared]) -> None:
    committed: list[Any] | None = conn.info.get(AFTER_COMMIT)
    known = _frontier_known(conn) if committed is not None else None
    tree = _advance(conn, known, events) if known is not None else None
    if tree is None:  # nothing remembered, or another writer appended meanwhile
        state = conn.execute(_FRONTIER).one()
        tree = Frontier(int(state.size), [bytes.fromhex(h) for h in state.frontier])
        rows = _rows(tree, events)
        frontier = [h.hex() for h in tree.hashes]
        conn.execute(_SET_FRONTIER, {"b_size": tree.size, "b_frontier": frontier})
        conn.execute(_INSERT_EVENTS, rows)
    _remember(conn, tree, committed)


def _advance(conn: Connection, known: Frontier, events: list[_Prepared]) -> Frontier | None:
    """Append `events` to the remembered frontier (the row moved on, the events stored); None,
    with nothing written, if the stored log is not at that size any more."""
    tree, rows, moving = _appended(known, events)
    if conn.dialect.name == "postgresql":
        # One round trip instead of two: the audit_log row is locked from this statement to
        # COMMIT, and every audited transaction of every replica queues on that lock.
        inserted = conn.execute(_advance_and_insert(len(rows)), moving | _numbered(rows)).all()
        return tree if len(inserted) == len(rows) else None
    if conn.execute(_ADVANCE_FRONTIER, moving).rowcount != 1:
        return None
    conn.execute(_INSERT_EVENTS, rows)
    return tree


def _appended(
    known: Frontier, events: list[_Prepared]
) -> tuple[Frontier, list[dict[str, Any]], dict[str, Any]]:
    """`events` appended to `known`: the new frontier, the events' rows, and the parameters
    of `_ADVANCE_FRONTIER` that move the stored row from `known` to it."""
    tree = known.copy()
    rows = _rows(tree, events)
    frontier = [h.hex() for h in tree.hashes]
    return tree, rows, {"b_size": tree.size, "b_frontier": frontier, "b_was": known.size}


def _numbered(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The rows as the parameters of `_event_rows` (`<column>_<n>`)."""
    return {f"{key}_{n}": value for n, row in enumerate(rows) for key, value in row.items()}


def _event_rows(moved: CTE, count: int) -> Selectable:
    """The `count` events' parameters as rows, present only if `moved` returned a row."""
    columns = list(audit_events.c)
    rows = [
        select(*(bindparam(f"{c.name}_{n}", type_=c.type) for c in columns)).where(
            exists(select(moved.c.size))
        )
        for n in range(count)
    ]
    return rows[0] if count == 1 else union_all(*rows)


@functools.cache
def _advance_and_insert(count: int) -> Insert:
    """PostgreSQL: `_ADVANCE_FRONTIER` and the insert of `count` events in one statement; the
    events are inserted only if the frontier moved; it returns their seqs (none otherwise: the
    RETURNING of the CTE leaves SQLAlchemy no rowcount to tell)."""
    moved = _ADVANCE_FRONTIER.returning(audit_log.c.size).cte("moved")
    return (
        insert(audit_events)
        .from_select([c.name for c in audit_events.c], _event_rows(moved, count))
        .add_cte(moved)
        .returning(audit_events.c.seq)
    )


def execute_with_events(
    conn: Connection, statement: Insert | Update, params: Mapping[str, Any]
) -> int:
    """Run `statement` (a write whose RETURNING rows say whether it happened) and answer how
    many rows it returned; on PostgreSQL the events queued in this transaction are appended in
    the same statement, one round trip instead of two, if the write happened.

    Where that cannot be done (SQLite, a connection not from `Database.write`, a frontier
    this process does not know or that another writer moved on, no queued events) the events
    stay queued and are written before the commit as usual. The audit_log row is locked from
    this statement to the commit: call it for the transaction's last write."""
    pending: list[_Prepared] | None = conn.info.get(_PENDING)
    committed: list[Any] | None = conn.info.get(AFTER_COMMIT)
    known = _frontier_known(conn) if committed is not None else None
    if not pending or known is None or conn.dialect.name != "postgresql":
        return len(conn.execute(statement, params).all())
    tree, rows, moving = _appended(known, pending)
    statement_with_events = _with_events(statement, len(rows))
    answer = conn.execute(statement_with_events, {**params, **moving, **_numbered(rows)})
    written = answer.all()
    if written and getattr(written[0], _LOGGED) == len(rows):
        del conn.info[_PENDING]
        _remember(conn, tree, committed)
    return len(written)


_LOGGED = "audit_logged"


@functools.cache
def _with_events(statement: Insert | Update, count: int) -> Select[Any]:
    """`statement` and, if it returned a row, `_ADVANCE_FRONTIER` and the insert of `count`
    events, as one statement: its rows are `statement`'s, plus how many events it logged."""
    written = statement.cte("audited_write")
    happened = exists().select_from(written)
    moved = _ADVANCE_FRONTIER.where(happened).returning(audit_log.c.size).cte("audit_moved")
    logged = (
        insert(audit_events)
        .from_select([c.name for c in audit_events.c], _event_rows(moved, count))
        .returning(audit_events.c.seq)
        .cte("audit_logged")
    )
    how_many = select(func.count()).select_from(logged).scalar_subquery().label(_LOGGED)
    return select(written, how_many)


def _rows(tree: Frontier, events: list[_Prepared]) -> list[dict[str, Any]]:
    """The rows of `events` appended to `tree` (which advances past them)."""
    rows: list[dict[str, Any]] = []
    for event in events:
        seq = tree.size
        entry = event.entry(seq)
        leaf = hashlib.sha256(b"\x00" + entry).digest()
        completed = tree.append(leaf)
        rows.append(
            {
                "seq": seq,
                "at": event.at,
                "type": event.type,
                "request_id": event.request_id,
                "actor": event.actor,
                "data": event.data,
                "leaf_hash": leaf.hex(),
                "entry": entry.decode(),
                "nodes": [h.hex() for _, _, h in completed] or None,
            }
        )
    return rows


# Reading the log -------------------------------------------------------------------------------


def timeline(conn: Connection, request_id: str) -> list[AuditEvent]:
    """A request's events in the order they were appended."""
    flush(conn)
    rows = conn.execute(
        select(
            audit_events.c.seq,
            audit_events.c.at,
            audit_events.c.type,
            audit_events.c.request_id,
            audit_events.c.actor,
            audit_events.c.data,
            audit_events.c.leaf_hash,
        )
        .where(audit_events.c.request_id == request_id)
        .order_by(audit_events.c.seq)
    ).mappings()
    return [AuditEvent.model_validate(dict(row)) for row in rows]


def log_size(conn: Connection) -> int:
    """How many entries the log holds."""
    return int(conn.execute(select(audit_log.c.size).where(audit_log.c.id == LOG_ID)).scalar_one())


def frontier(conn: Connection) -> Frontier:
    """The current frontier (size and perfect-subtree roots)."""
    row = conn.execute(
        select(audit_log.c.size, audit_log.c.frontier).where(audit_log.c.id == LOG_ID)
    ).one()
    return Frontier(int(row.size), [bytes.fromhex(h) for h in row.frontier])


EntryRow = tuple[int, str, str]
"""(seq, entry as canonical JSON text, leaf hash hex)."""


def entries(conn: Connection, start: int, end: int) -> list[EntryRow]:
    """Entries with start <= seq < end, in order."""
    rows = conn.execute(
        select(audit_events.c.seq, audit_events.c.entry, audit_events.c.leaf_hash)
        .where(audit_events.c.seq >= start, audit_events.c.seq < end)
        .order_by(audit_events.c.seq)
    )
    return [(int(r.seq), str(r.entry), str(r.leaf_hash)) for r in rows]


def perfect_nodes(
    conn: Connection, keys: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], bytes]:
    """Stored hashes of aligned perfect subtrees, by (level, index).

    Level 0 is a leaf hash; the node at (level, index) is stored with the leaf that completed
    it, the last one it covers (seq = ((index + 1) << level) - 1), at `nodes[level - 1]`.
    """
    wanted = set(keys)
    holder = {key: ((key[1] + 1) << key[0]) - 1 for key in wanted}
    rows: dict[int, Any] = {}
    seqs = sorted(set(holder.values()))
    for i in range(0, len(seqs), 500):
        chunk = seqs[i : i + 500]
        for row in conn.execute(
            select(audit_events.c.seq, audit_events.c.leaf_hash, audit_events.c.nodes).where(
                audit_events.c.seq.in_(chunk)
            )
        ):
            rows[int(row.seq)] = row
    found: dict[tuple[int, int], bytes] = {}
    for (level, idx), seq in holder.items():
        row = rows.get(seq)
        stored: list[str] = (row.nodes or []) if row is not None else []
        if row is None or (level > 0 and len(stored) < level):
            raise AuditIntegrityError(f"the audit log lacks tree node ({level}, {idx})")
        found[(level, idx)] = bytes.fromhex(row.leaf_hash if level == 0 else stored[level - 1])
    return found


def inclusion_proofs(conn: Connection, seqs: Iterable[int], size: int) -> dict[int, list[bytes]]:
    """The RFC 6962 inclusion proof of each entry in `seqs` in the tree of `size` entries."""
    seqs = list(seqs)
    ranges: set[tuple[int, int]] = set()

    def record(a: int, b: int) -> bytes:
        ranges.add((a, b))
        return b""

    for seq in seqs:
        inclusion_proof(seq, size, record)
    needed: set[tuple[int, int]] = set()

    def note(level: int, idx: int) -> bytes:
        needed.add((level, idx))
        return b""

    for a, b in ranges:
        subtree_hash(a, b, note)
    nodes = perfect_nodes(conn, needed)
    hashes = {(a, b): subtree_hash(a, b, lambda lv, ix: nodes[(lv, ix)]) for a, b in ranges}
    return {seq: inclusion_proof(seq, size, lambda a, b: hashes[(a, b)]) for seq in seqs}


def frontier_at(conn: Connection, size: int) -> Frontier:
    """The frontier of the tree's first `size` leaves, rebuilt from stored nodes."""
    keys = perfect_subtrees(0, size)
    nodes = perfect_nodes(conn, keys)
    return Frontier(size, [nodes[k] for k in keys])


def parse_entry(entry: str | bytes) -> dict[str, Any]:
    """The fields of a canonical entry."""
    return cast(dict[str, Any], json.loads(entry))


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: numbers by value (RFC 8785 writes 1.0 as 1), booleans apart from numbers.

    Python's `==` is no shortcut either way: it is looser (True == 1), and stricter where an
    entry's integer stands for a double (RFC 8785 writes -5.107996766869553e16 as
    -51079967668695530, a different integer than that double holds exactly)."""
    with contextlib.suppress(TypeError, ValueError):
        # The common case in one C-speed step: the same JSON text is the same JSON value.
        if json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True):
            return True
    return _json_equal_slow(a, b)


def _json_equal_slow(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return _same_type(a, b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b) if isinstance(a, float) or isinstance(b, float) else a == b
    if isinstance(a, dict) and isinstance(b, dict):
        x, y = cast(dict[str, Any], a), cast(dict[str, Any], b)
        return x.keys() == y.keys() and all(_json_equal_slow(x[k], y[k]) for k in x)
    if isinstance(a, list) and isinstance(b, list):
        x, y = cast(list[Any], a), cast(list[Any], b)
        return len(x) == len(y) and all(_json_equal_slow(i, j) for i, j in zip(x, y, strict=True))
    return _same_type(cast(object, a), cast(object, b)) and bool(a == b)


def _same_type(a: object, b: object) -> bool:
    return type(a) is type(b)


def entry_matches_row(entry: str | bytes, row: Any) -> bool:
    """Whether an audit_events row's readable columns say what its canonical entry says."""
    fields = parse_entry(entry)
    return (
        fields.get("seq") == row.seq
        and fields.get("at") == _timestamp(row.at)
        and fields.get("type") == row.type
        and fields.get("request_id") == row.request_id
        and fields.get("actor") == row.actor
        and _json_equal(fields.get("data"), row.data)
    )
