"""`Settings.database_threads` (`signoff serve --database-threads`) sizes the pool that runs the
API's database work, and a small pool still serves concurrent callers."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from anyio import to_thread
from typer.testing import CliRunner

from signoff import Client, Status
from signoff_server.app import create_app
from signoff_server.cli import app as cli
from signoff_server.db import Database, migrate
from signoff_server.settings import DEFAULT_DATABASE_THREADS, Settings

from .conftest import ServerThread, World
from .test_lifecycle_e2e import invoice


def test_the_setting_sizes_the_event_loops_thread_pool(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'signoff.db'}"
    migrate(url)

    async def tokens(threads: int) -> float:
        app = create_app(Settings(database_url=url, database_threads=threads, run_timers=False))
        async with app.router.lifespan_context(app):
            return to_thread.current_default_thread_limiter().total_tokens

    assert asyncio.run(tokens(2)) == 2
    assert asyncio.run(tokens(DEFAULT_DATABASE_THREADS)) == DEFAULT_DATABASE_THREADS


def test_one_thread_serves_sixteen_concurrent_cycles(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'signoff.db'}"
    migrate(url)
    db = Database(url)
    try:
        with ServerThread(Settings(database_url=url, database_threads=1)) as server:
            world = World(server.url, db)
            key, reviewer = world.agent_key(), world.reviewer_token("finance-approver")

            def cycle(n: int) -> Status:
                with (
                    Client(base_url=server.url, api_key=key) as agent,
                    Client(base_url=server.url, api_key=reviewer) as person,
                ):
                    request = agent.create_request(invoice(idempotency_key=f"k{n}"))
                    person.decide(request.id, "approve")
                    return agent.wait(request.id, timeout=10).status

            with ThreadPoolExecutor(16) as pool:
                assert list(pool.map(cycle, range(16))) == [Status.APPROVED] * 16
    finally:
        db.dispose()


def test_serve_refuses_a_pool_of_no_threads() -> None:
    result = CliRunner().invoke(cli, ["serve", "--database-threads", "0"])
    assert result.exit_code == 2
    assert "--database-threads" in result.output
