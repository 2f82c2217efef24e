"""A real signoff server for the OpenAI Agents SDK adapter tests (SQLite is enough here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("agents", reason="the OpenAI Agents SDK is not installed")

from tests.server.conftest import ServerThread, World

from signoff_server.db import Database, migrate
from signoff_server.settings import Settings


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """A real signoff server over HTTP on a fresh SQLite store."""
    url = f"sqlite:///{tmp_path / 'signoff.db'}"
    migrate(url)
    db = Database(url)
    try:
        with ServerThread(Settings(database_url=url, timer_interval=0.1)) as server:
            world = World(server.url, db)
            try:
                yield world
            finally:
                world.close()
    finally:
        db.dispose()
