"""Fresh stores for tests outside tests/server: a SQLite file, or a PostgreSQL database of its own.

The same idea as tests/server/conftest.py's `store_url` fixture, as a context manager any test
directory can import (`from tests.support.stores import BACKENDS, fresh_store`). PostgreSQL is
the server at `SIGNOFF_TEST_PG` (default postgresql://postgres@127.0.0.1:5432/postgres, trust
auth); the test is skipped when it is not reachable, and its database is dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from signoff_server.db import migrate

__all__ = ["BACKENDS", "PG_ADMIN", "fresh_store"]

PG_ADMIN = os.environ.get("SIGNOFF_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
"""Parameters for `@pytest.mark.parametrize("backend", BACKENDS)`."""


@contextmanager
def fresh_store(backend: str, directory: Path) -> Iterator[str]:
    """The URL of a fresh, migrated store on `backend` ("sqlite" or "postgres")."""
    if backend == "sqlite":
        url = f"sqlite:///{directory / 'signoff.db'}"
        migrate(url)
        yield url
        return
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN}: {exc}")
    name = f"signoff_t_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"
    try:
        migrate(url)
        yield url
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
