"""Engines for SQLite (embedded default, WAL) and PostgreSQL, and Alembic migrations.

Work on the request path runs through `Database.run`, which keeps it off the thread pool where
it can: on SQLite a transaction of one request takes well under a millisecond, and handing it
to a worker thread and back costs more CPU than the transaction itself (the GIL changes hands
for every statement). So `run` first tries the work on the event loop, on connections that
never wait for SQLite's lock; if the lock is taken (a timer or the audit checkpointer in this
process, the CLI or a second server), that attempt rolls back before anything committed and
the work runs again in the thread pool, where it waits as long as the busy timeout allows.

Faults of the store itself (a PostgreSQL connection lost or terminated, the server shutting
down, SQLite's disk full or its lock held too long, the pool exhausted) leave `Database.write()`
and `read()` as `Unavailable`: a 503 with a JSON error naming the fault (`disk_full`,
`database_unavailable`, `database_busy`, `database_io_error`) and one log line, instead of an
"internal error". Nothing in such a transaction committed, or (connection lost during COMMIT)
its outcome is unknown; retrying is safe (idempotency keys; a second decision is a 409). The
first statement that finds a PostgreSQL connection dead fails that one transaction, and
SQLAlchemy then invalidates the whole pool, so the server recovers on its own once the database
is back (no ping before every checkout: that would cost a round trip per transaction).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Generator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import psycopg
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import NullPool
from starlette.concurrency import run_in_threadpool

from signoff_server.errors import Unavailable

__all__ = [
    "AFTER_COMMIT",
    "APPLICATION_NAME",
    "BEFORE_COMMIT",
    "STORE_OPTION",
    "TRANSACTION_PREFIX",
    "Database",
    "migrate",
    "normalize_url",
    "unavailable",
]

log = logging.getLogger("signoff.db")
_P = ParamSpec("_P")
_T = TypeVar("_T")

APPLICATION_NAME = "signoff"
"""The `application_name` of the server's PostgreSQL connections (see `pg_stat_activity`)."""

TRANSACTION_PREFIX = "signoff_tx_"
"""`conn.info` keys with this prefix live for one `Database.write()` transaction only."""
BEFORE_COMMIT = TRANSACTION_PREFIX + "before_commit"
AFTER_COMMIT = TRANSACTION_PREFIX + "after_commit"

MIGRATIONS = Path(__file__).parent / "migrations"


def normalize_url(url: str) -> str:
    """Accept the URLs people write (`postgresql://`, `postgres://`) and pick our drivers."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.drivername not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
        raise ValueError(
            f"unsupported database URL scheme {parsed.drivername!r}: use sqlite:/// or postgresql://"
        )
    return parsed.render_as_string(hide_password=False)


BUSY_TIMEOUT = 30.0
"""Seconds a SQLite writer waits for the lock (another process's transaction) before a 503."""


STORE_OPTION = "signoff_store"
"""Execution option naming the `Database` a connection belongs to: the same object for each of
its engines, so that what one engine learned of the store (the audit log's frontier) serves the
other."""


class _Store:
    """The identity of one `Database`, whichever of its engines a connection came from."""


def _sqlite_engine(
    url: str, store: _Store, *, busy_timeout: float = BUSY_TIMEOUT, checkpoints: bool = True
) -> Engine:
    engine = create_engine(
        url,
        connect_args={"timeout": busy_timeout, "check_same_thread": False},
        execution_options={STORE_OPTION: store},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, say when transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        _ensure_wal(cursor, busy_timeout)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        if not checkpoints:  # see Database.keep_wal_short
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Writers take the write lock up front: a deferred transaction that reads and then
        # writes can deadlock against another one doing the same, and SQLite answers "busy".
        options = connection.get_execution_options()
        if options.get("signoff_single_statement", False):
            return  # one statement is its own transaction: no BEGIN, and COMMIT is a no-op
        connection.exec_driver_sql("BEGIN IMMEDIATE" if options.get("signoff_write") else "BEGIN")

    return engine


def _ensure_wal(cursor: sqlite3.Cursor, patience: float = 30.0) -> None:
    """Put the database file in WAL mode (the mode is stored in the file: usually it is already).

    Switching takes a lock SQLite's busy handler does not always wait for: a connection opened
    while another one closed or checkpointed the log once failed at once with "database is
    locked" (CI, a test opening its own connection next to a busy server). Retry for as long as
    the busy timeout would have waited."""
    deadline = time.monotonic() + patience
    pause = 0.005
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause >= deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)


WAL_CHECKPOINT_SECONDS = 1.0
"""How often the server checkpoints SQLite's write-ahead log (`Database.keep_wal_short`)."""

LOOP_LOCK_WAIT = 0.005
"""Seconds `Database.run`'s attempt on the event loop waits for a write of this process's
threads to finish, before it runs in the thread pool instead."""


class _WouldWait(BaseException):
    """Raised in `Database.run`'s attempt on the event loop where SQLite would have to wait for
    its lock. Nothing committed; `run` repeats the work in the thread pool. A BaseException, so
    that no `except Exception` in the work can take it for an error of its own."""


@dataclass
class _OnLoop:
    """The state of one `Database.run` attempt on the event loop."""

    committed: bool = False


_on_loop: ContextVar[_OnLoop | None] = ContextVar("signoff_db_on_loop", default=None)


@contextmanager
def _releasing(lock: threading.RLock) -> Generator[None]:
    """For a lock acquired already: release it when the block ends."""
    try:
        yield
    finally:
        lock.release()


def _is_busy(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "sqlite_errorcode", -1) & 0xFF
    return isinstance(orig, sqlite3.OperationalError) and code in (
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
    )


_SQLITE_FAULTS = {
    sqlite3.SQLITE_FULL: "disk_full",
    sqlite3.SQLITE_IOERR: "database_io_error",
    sqlite3.SQLITE_BUSY: "database_busy",
    sqlite3.SQLITE_LOCKED: "database_busy",
    sqlite3.SQLITE_CANTOPEN: "database_unavailable",
    sqlite3.SQLITE_READONLY: "database_unavailable",
    sqlite3.SQLITE_NOMEM: "database_unavailable",
    sqlite3.SQLITE_PROTOCOL: "database_busy",
}
_MESSAGES = {
    "disk_full": "the database's disk is full: this change was not recorded; retry once the "
    "operator has freed space",
    "database_io_error": "the database could not read or write its files; retry later",
    "database_busy": "the database is busy; retry shortly",
    "database_unavailable": "the database connection was lost; retry (a retry is safe: "
    "creates are idempotent by key, and a decision that did land makes a retry a 409)",
}


def _fault(exc: BaseException) -> str | None:
    """The kind of store fault `exc` is, or None for any other error (a constraint, a bug)."""
    if isinstance(exc, PoolTimeout):
        return "database_busy"
    if not isinstance(exc, DBAPIError):
        return None
    orig = exc.orig
    if isinstance(orig, sqlite3.Error):
        return _SQLITE_FAULTS.get(getattr(orig, "sqlite_errorcode", -1) & 0xFF)
    if isinstance(orig, psycopg.Error):
        state = orig.sqlstate or ""
        if state == "53100":
            return "disk_full"
        if state.startswith("58"):  # system errors, e.g. 58030 io_error
            return "database_io_error"
        if state == "57014" or state.startswith(("53", "55P03")):  # canceled, resources, lock
            return "database_busy"
        if state.startswith(("08", "57P")) or (
            not state and isinstance(orig, psycopg.OperationalError | psycopg.InterfaceError)
        ):  # connection failures, administrator or crash shutdown, connection closed under us
            return "database_unavailable"
    return "database_unavailable" if exc.connection_invalidated else None


class _Throttle:
    """At most one log line per fault kind per `every` seconds; counts what it held back."""

    def __init__(self, every: float = 5.0) -> None:
        self.every = every
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def due(self, kind: str) -> int | None:
        """None: stay quiet; else log now, mentioning this many held-back repeats."""
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(kind, -self.every) < self.every:
                self._held[kind] = self._held.get(kind, 0) + 1
                return None
            self._last[kind] = now
            return self._held.pop(kind, 0)


_throttle = _Throttle()


def unavailable(exc: BaseException) -> Unavailable | None:
    """The 503 for a store fault (logged, at most every few seconds per kind), else None."""
    kind = _fault(exc)
    if kind is None:
        return None
    held = _throttle.due(kind)
    if held is not None:
        cause = getattr(exc, "orig", None) or exc
        more = f" ({held} more since the last report)" if held else ""
        if kind == "disk_full":
            log.error(
                "database disk full: writes are refused (503 disk_full) until space is freed: %s%s",
                cause,
                more,
                extra={"alert": "disk_full"},
            )
        else:
            log.warning("database fault %s: %s%s", kind, str(cause).strip(), more)
    return Unavailable(_MESSAGES[kind], code=kind)


class Database:
    """One engine and its transaction helpers. `write()` for changes, `read()` for queries.

    Store faults inside either leave it as `Unavailable` (see the module docstring).
    """

    def __init__(self, url: str, *, pool_size: int = 20) -> None:
        self.url = normalize_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        # SQLite has one writer at a time, and a writer waiting in BEGIN IMMEDIATE sleeps in
        # SQLite's busy handler (backing off to 100 ms) however soon the lock frees. Queueing
        # this process's writers on a lock of our own hands the turn over at once; other
        # processes (the CLI, a second server) still wait on the busy timeout.
        self._writer_lock = threading.RLock()
        self._writer = self._writer_lock if self.is_sqlite else contextlib.nullcontext()
        store = _Store()
        if self.is_sqlite:
            self.engine = _sqlite_engine(self.url, store)
            # For `run`'s attempts on the event loop: these connections never wait, and never
            # copy the log into the database file (see keep_wal_short).
            self._loop_engine = _sqlite_engine(self.url, store, busy_timeout=0, checkpoints=False)
        else:
            self.engine = create_engine(
                self.url,
                pool_size=pool_size,
                max_overflow=pool_size,
                connect_args={"application_name": APPLICATION_NAME},
                execution_options={STORE_OPTION: store},
            )
            self._loop_engine = self.engine  # `run` uses the thread pool here (see there)

    @contextmanager
    def write(self) -> Generator[Connection]:
        """A write transaction: committed when the block ends, rolled back on an exception.

        Functions in `conn.info[BEFORE_COMMIT]` run, in order, just before the commit (the
        audit log writes its batch of events there, so its lock is held only briefly); those in
        `conn.info[AFTER_COMMIT]` (no arguments) run once the commit succeeded.
        """
        committed: list[Callable[[], None]] = []
        engine, lock = self.engine, self._writer
        on_loop = _on_loop.get()
        if on_loop is not None and on_loop.committed:
            on_loop = None  # a second transaction in one run: it can no longer start over
        if on_loop is not None:
            # A thread of ours may be writing: its transaction takes well under a millisecond,
            # unless it waits for another process's lock; then do not hold the loop up.
            if not self._writer_lock.acquire(timeout=LOOP_LOCK_WAIT):
                raise _WouldWait
            lock, engine = _releasing(self._writer_lock), self._loop_engine
        try:
            with (
                lock,
                engine.connect().execution_options(signoff_write=True) as conn,
                conn.begin(),
            ):
                hooks: list[Callable[[Connection], None]] = []
                # Held here: once a lost connection invalidated the transaction, `conn.info`
                # itself raises PendingRollbackError, which would hide the real error.
                info = conn.info
                info[BEFORE_COMMIT] = hooks
                info[AFTER_COMMIT] = committed
                try:
                    yield conn
                    while hooks:
                        hooks.pop(0)(conn)
                finally:
                    for key in [k for k in info if str(k).startswith(TRANSACTION_PREFIX)]:
                        del info[key]
        except (DBAPIError, PoolTimeout) as exc:
            if on_loop is not None and _is_busy(exc):
                raise _WouldWait from exc
            mapped = unavailable(exc)
            if mapped is None:
                raise
            raise mapped from exc
        if on_loop is not None:
            on_loop.committed = True
        for run in committed:
            run()

    @contextmanager
    def read(self, *, single_statement: bool = False) -> Generator[Connection]:
        """A read-only transaction.

        On PostgreSQL the reads run in autocommit: under READ COMMITTED every statement sees its
        own snapshot anyway, and BEGIN and COMMIT would be two more round trips. On SQLite the
        transaction keeps one WAL snapshot for every read in the block; with
        `single_statement` (the block runs one statement, which is consistent on its own) there
        is no BEGIN and COMMIT around it.
        """
        on_loop = _on_loop.get()
        if on_loop is not None and on_loop.committed:
            on_loop = None  # after a commit the run can no longer start over: wait if need be
        engine = self.engine if on_loop is None else self._loop_engine
        try:
            if self.is_sqlite and single_statement:
                single = engine.connect().execution_options(signoff_single_statement=True)
                with single as conn:
                    yield conn
            elif self.is_sqlite:
                with engine.connect() as conn, conn.begin():
                    yield conn
            else:
                autocommit = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                with autocommit as conn:
                    yield conn
        except (DBAPIError, PoolTimeout) as exc:
            if on_loop is not None and _is_busy(exc):
                raise _WouldWait from exc
            mapped = unavailable(exc)
            if mapped is None:
                raise
            raise mapped from exc

    async def run(self, work: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Run `work` (sync code using `write()` and `read()`) for a request being served.

        On SQLite, first on the event loop itself, unless SQLite would have to wait for its
        lock: then, after that attempt rolled back, in the thread pool (see the module
        docstring); `work` must be short and must not block otherwise (no network, no sleeps).
        On PostgreSQL every statement waits for a round trip, so `work` runs in the thread pool.
        (psycopg's asyncio connections driven from a greenlet on the loop measured no less CPU
        per request than the threads.)
        """
        if self.is_sqlite:
            token = _on_loop.set(_OnLoop())
            try:
                return work(*args, **kwargs)
            except _WouldWait:
                pass
            finally:
                _on_loop.reset(token)
        return await run_in_threadpool(work, *args, **kwargs)

    async def keep_wal_short(self, every: float = WAL_CHECKPOINT_SECONDS) -> None:
        """On SQLite, until cancelled: every `every` seconds, copy the write-ahead log into the
        database file, on a thread. `run`'s connections on the event loop never do it at
        commit (SQLite's default every 1,000 pages): a checkpoint writes and syncs megabytes,
        which stalled every call the loop served for up to 20 ms."""
        while True:
            await asyncio.sleep(every)
            await run_in_threadpool(self.checkpoint_wal)

    def checkpoint_wal(self) -> None:
        """Copy what the write-ahead log holds into the database file, as far as no reader
        needs it still (SQLite's PASSIVE checkpoint: it waits for nobody)."""
        try:
            single = self.engine.connect().execution_options(signoff_single_statement=True)
            with single as conn:  # no transaction: a checkpoint cannot run inside one
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except DBAPIError as exc:
            log.warning("could not checkpoint the SQLite log: %s", exc.orig)

    @property
    def engines(self) -> tuple[Engine, ...]:
        """Every engine of this database: `engine`, and on SQLite the one `run` uses on the
        event loop (attach connection-level event listeners to each)."""
        return (
            (self.engine,) if self._loop_engine is self.engine else (self.engine, self._loop_engine)
        )

    def dispose(self) -> None:
        """Close every pooled connection."""
        for engine in self.engines:
            engine.dispose()


_MIGRATION_LOCK = 0x5160FF_316A7E  # pg_advisory_xact_lock key: one migrator at a time


def migrate(url: str, revision: str = "heads") -> None:
    """Bring the database at `url` to `revision` (the same migrations for SQLite and PostgreSQL).

    On PostgreSQL, concurrent migrators (replicas whose `signoff serve` starts at the same time)
    take turns on an advisory lock held until their transaction commits: the first upgrades, the
    others then find the schema current. Without it they raced into "duplicate key … pg_type"
    and all but one replica failed to start.
    """
    engine = create_engine(normalize_url(url), poolclass=NullPool)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK}
                )
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def make_revision(url: str, message: str, rev_id: str, head: str = "head") -> None:
    """Developer helper: autogenerate a migration from the schema (not part of the CLI).

    Run it against a scratch database: it first migrates that database to `head`.
    """
    migrate(url, head)
    engine = create_engine(normalize_url(url), poolclass=NullPool)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.revision(config, message=message, autogenerate=True, rev_id=rev_id, head=head)
