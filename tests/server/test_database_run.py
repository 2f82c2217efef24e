"""`Database.run` on SQLite: the work runs on the event loop when the lock is free, and in the
thread pool, once, when it is not; the loop is never held up by another process's lock."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from signoff_server.db import LOOP_LOCK_WAIT, Database


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'signoff.db'}")
    with database.write() as conn:
        conn.execute(text("CREATE TABLE runs (n INTEGER NOT NULL, thread INTEGER NOT NULL)"))
    try:
        yield database
    finally:
        database.dispose()


def _record(db: Database, n: int) -> int:
    """One write transaction; returns the thread it ran in."""
    with db.write() as conn:
        conn.execute(text("INSERT INTO runs VALUES (:n, :t)"), {"n": n, "t": threading.get_ident()})
    return threading.get_ident()


def _rows(db: Database) -> list[int]:
    with db.read() as conn:
        return [int(n) for n in conn.execute(text("SELECT n FROM runs ORDER BY n")).scalars()]


def _other_process_holds_lock(path: Path, seconds: float) -> threading.Thread:
    """What the CLI or a second server does: hold SQLite's write lock for `seconds`."""
    held = threading.Event()

    def hold() -> None:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        held.set()
        time.sleep(seconds)
        other.execute("COMMIT")
        other.close()

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(5)
    return thread


def test_with_the_lock_free_the_work_runs_on_the_loop(db: Database) -> None:
    async def main() -> tuple[int, int]:
        return threading.get_ident(), await db.run(_record, db, 1)

    loop_thread, ran_in = asyncio.run(main())
    assert ran_in == loop_thread
    assert _rows(db) == [1]


def test_another_process_holding_the_lock_sends_the_work_to_a_thread_and_the_loop_runs_on(
    db: Database, tmp_path: Path
) -> None:
    holder = _other_process_holds_lock(tmp_path / "signoff.db", 0.5)

    async def main() -> tuple[int, int, int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        ran_in = await db.run(_record, db, 1)
        ticker.cancel()
        return threading.get_ident(), ran_in, ticks

    loop_thread, ran_in, ticks = asyncio.run(main())
    holder.join()
    assert ran_in != loop_thread  # waited for the lock in the thread pool
    assert ticks >= 10  # while the loop went on serving (0.5 s of 10 ms ticks, give or take)
    assert _rows(db) == [1]  # written once: the attempt on the loop wrote nothing


def test_a_long_write_of_our_own_threads_sends_the_work_to_a_thread(db: Database) -> None:
    started, release = threading.Event(), threading.Event()

    def long_write() -> None:
        with db.write() as conn:
            conn.execute(text("INSERT INTO runs VALUES (0, 0)"))
            started.set()
            release.wait(5)

    writer = threading.Thread(target=long_write)
    writer.start()
    started.wait(5)

    async def main() -> tuple[int, int]:
        attempt = asyncio.create_task(db.run(_record, db, 1))
        await asyncio.sleep(LOOP_LOCK_WAIT * 20)  # the loop is free while the run waits
        release.set()
        return threading.get_ident(), await attempt

    loop_thread, ran_in = asyncio.run(main())
    writer.join()
    assert ran_in != loop_thread
    assert _rows(db) == [0, 1]


def test_the_fallback_cannot_be_swallowed_by_the_work(db: Database, tmp_path: Path) -> None:
    def careless() -> str:
        try:
            _record(db, 1)
        except Exception:  # the point: this must not catch the fallback
            return "swallowed"
        return "written"

    holder = _other_process_holds_lock(tmp_path / "signoff.db", 0.2)
    assert asyncio.run(db.run(careless)) == "written"
    holder.join()
    assert _rows(db) == [1]


def test_after_a_commit_the_run_is_not_started_over(db: Database, tmp_path: Path) -> None:
    """A second transaction in one run, finding the lock taken, waits for it (rather than
    repeating the first, committed, transaction in the thread pool)."""
    path = tmp_path / "signoff.db"
    holders: list[threading.Thread] = []

    def two_writes() -> None:
        _record(db, 1)
        holders.append(_other_process_holds_lock(path, 0.2))
        _record(db, 2)

    asyncio.run(db.run(two_writes))
    holders[0].join()
    assert _rows(db) == [1, 2]


def test_commits_on_the_loop_leave_the_log_to_keep_wal_short(db: Database, tmp_path: Path) -> None:
    """SQLite would copy its log into the database file at the commit that passes 1,000 pages,
    stalling the loop; on the loop it does not, and `keep_wal_short` does it on a thread."""
    path = tmp_path / "signoff.db"
    page = "x" * 4000

    def pragma() -> int:
        with db.read(single_statement=True) as conn:
            return int(conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())

    def write_page(n: int) -> None:
        with db.write() as conn:
            conn.execute(text("INSERT INTO runs VALUES (:n, 0)"), {"n": n})
            conn.execute(text("INSERT INTO pad VALUES (:v)"), {"v": page})

    async def main() -> tuple[int, int, int]:
        on_loop = await db.run(pragma)
        with db.write() as conn:
            conn.execute(text("CREATE TABLE pad (v TEXT)"))
        for n in range(2000):  # about 2,000 pages: twice SQLite's checkpoint threshold
            await db.run(write_page, n)
        before = path.stat().st_size
        keeper = asyncio.create_task(db.keep_wal_short(every=0.01))
        await asyncio.sleep(0.5)
        keeper.cancel()
        return on_loop, before, path.stat().st_size

    on_loop, before, after = asyncio.run(main())
    assert on_loop == 0
    assert pragma() == 1000  # the threads' connections keep SQLite's default
    assert before < 1_000_000  # 8 MB committed, all of it still in the log
    assert after > 7_000_000  # and then copied into the database file
