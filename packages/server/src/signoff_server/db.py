"""Engines for SQLite (embedded default, WAL) and PostgreSQL, and Alembic migrations."""

from __future__ import annotations

from collections.abc import Callable, Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

__all__ = ["BEFORE_COMMIT", "TRANSACTION_PREFIX", "Database", "migrate", "normalize_url"]

TRANSACTION_PREFIX = "signoff_tx_"
"""`conn.info` keys with this prefix live for one `Database.write()` transaction only."""
BEFORE_COMMIT = TRANSACTION_PREFIX + "before_commit"

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


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, say when transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Writers take the write lock up front: a deferred transaction that reads and then
        # writes can deadlock against another one doing the same, and SQLite answers "busy".
        write = connection.get_execution_options().get("signoff_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


class Database:
    """One engine and its transaction helpers. `write()` for changes, `read()` for queries."""

    def __init__(self, url: str, *, pool_size: int = 20) -> None:
        self.url = normalize_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        if self.is_sqlite:
            self.engine = _sqlite_engine(self.url)
        else:
            self.engine = create_engine(
                self.url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
            )

    @contextmanager
    def write(self) -> Generator[Connection]:
        """A write transaction: committed when the block ends, rolled back on an exception.

        Functions in `conn.info[BEFORE_COMMIT]` run, in order, just before the commit (the
        audit log writes its batch of events there, so its lock is held only briefly).
        """
        with self.engine.connect().execution_options(signoff_write=True) as conn, conn.begin():
            hooks: list[Callable[[Connection], None]] = []
            conn.info[BEFORE_COMMIT] = hooks
            try:
                yield conn
                while hooks:
                    hooks.pop(0)(conn)
            finally:
                for key in [k for k in conn.info if str(k).startswith(TRANSACTION_PREFIX)]:
                    del conn.info[key]

    @contextmanager
    def read(self) -> Generator[Connection]:
        """A read-only transaction."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def migrate(url: str, revision: str = "heads") -> None:
    """Bring the database at `url` to `revision` (the same migrations for SQLite and PostgreSQL)."""
    engine = create_engine(normalize_url(url), poolclass=NullPool)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as connection:
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
