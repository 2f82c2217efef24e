"""Every SQLite connection runs in WAL mode, and a momentarily locked file does not fail it."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from signoff_server.db import Database, _ensure_wal  # pyright: ignore[reportPrivateUsage]


class _Cursor:
    """Answers PRAGMA journal_mode like SQLite, failing the first `locked` calls as locked."""

    def __init__(self, locked: int, mode: str = "delete", error: str = "database is locked"):
        self.locked, self.mode, self.error, self.calls = locked, mode, error, 0

    def execute(self, sql: str) -> Any:
        self.calls += 1
        if self.locked:
            self.locked -= 1
            raise sqlite3.OperationalError(self.error)
        if sql.endswith("=WAL"):
            self.mode = "wal"
        return self

    def fetchone(self) -> tuple[str]:
        return (self.mode,)


def test_a_new_file_is_put_in_wal_mode(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'signoff.db'}")
    try:
        with db.read() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    finally:
        db.dispose()


def test_a_locked_file_is_retried_until_it_frees() -> None:
    cursor = _Cursor(locked=3)
    _ensure_wal(cursor)  # type: ignore[arg-type]
    assert cursor.mode == "wal"
    assert cursor.calls == 5  # three refusals, then the read and the switch


def test_a_file_in_wal_mode_is_not_switched_again() -> None:
    cursor = _Cursor(locked=0, mode="wal")
    _ensure_wal(cursor)  # type: ignore[arg-type]
    assert cursor.calls == 1


def test_other_errors_and_a_lock_that_outlasts_patience_still_fail() -> None:
    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        _ensure_wal(_Cursor(locked=1, error="disk I/O error"))  # type: ignore[arg-type]
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        _ensure_wal(_Cursor(locked=1000), patience=0.05)  # type: ignore[arg-type]
