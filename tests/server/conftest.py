"""Server test fixtures: a fresh store per test on SQLite and on PostgreSQL, and a real server.

`store_url` is parametrized over both backends, so every test that uses it (directly or through
`server`) runs twice. PostgreSQL tests create their own databases from a migrated template and
drop them afterwards; the template itself is dropped at the end of the session.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from tests.support.server import ServerThread as ServerThread  # re-exported for this directory
from tests.support.server import free_port as free_port

from signoff import Client
from signoff_server.app import create_app
from signoff_server.db import Database, migrate
from signoff_server.identity import create_agent_key, create_token, set_user
from signoff_server.settings import Settings

PG_ADMIN = os.environ.get("SIGNOFF_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_admin() -> psycopg.Connection:
    return psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)


def _pg_url(name: str) -> str:
    base = PG_ADMIN.rsplit("/", 1)[0]
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated PostgreSQL database that per-test databases are copied from."""
    try:
        admin = _pg_admin()
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN}: {exc}")
    name = f"signoff_tmpl_{uuid.uuid4().hex[:10]}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    migrate(_pg_url(name))
    yield name
    with _pg_admin() as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database URL: a SQLite file, or a PostgreSQL database of its own."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'signoff.db'}"
        migrate(url)
        yield url
        return
    template: str = request.getfixturevalue("pg_template")
    name = f"signoff_test_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    yield _pg_url(name)
    with _pg_admin() as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@dataclass
class World:
    """A running server and helpers to mint the identities a test needs."""

    url: str
    db: Database
    clients: list[Client] = field(default_factory=list[Client])

    def agent_key(self, agent: str | None = None) -> str:
        """A key for `agent` (a fresh agent id when omitted)."""
        with self.db.write() as conn:
            return create_agent_key(conn, agent or f"agent-{uuid.uuid4().hex[:8]}")

    def reviewer_token(self, *roles: str, email: str | None = None) -> str:
        """A personal token for a (new) reviewer holding `roles`."""
        email = email or f"r-{uuid.uuid4().hex[:8]}@example.com"
        with self.db.write() as conn:
            set_user(conn, email, list(roles))
            return create_token(conn, email)

    def client(self, secret: str | None = None, **kwargs: object) -> Client:
        """A core Client against this server."""
        client = Client(base_url=self.url, api_key=secret or "", **kwargs)  # type: ignore[arg-type]
        self.clients.append(client)
        return client

    def close(self) -> None:
        """Close every client this world handed out."""
        for client in self.clients:
            client.close()


@pytest.fixture
def world(store_url: str, tmp_path: Path) -> Iterator[World]:
    """A real signoff server over HTTP on a fresh store (runs on SQLite and PostgreSQL)."""
    settings = Settings(
        database_url=store_url,
        timer_interval=0.1,
        wait_recheck=5.0,
        webhook_keys_path=str(tmp_path / "webhook-keys.json"),
        audit_key_file=str(tmp_path / "audit.key"),
    )
    db = Database(store_url)
    try:
        with ServerThread(settings) as server:
            world = World(server.url, db)
            try:
                yield world
            finally:
                world.close()
    finally:
        db.dispose()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def module_store_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Like `store_url`, but one fresh, migrated store per test module and backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'signoff.db'}"
        migrate(url)
        yield url
        return
    template: str = request.getfixturevalue("pg_template")
    name = f"signoff_test_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    yield _pg_url(name)
    with _pg_admin() as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="module")
def module_world(
    module_store_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """One server shared by the tests of a module (per backend), for tests that only add
    fresh requests of their own and so cannot disturb each other: much faster than `world`."""
    keys = tmp_path_factory.mktemp("keys")
    settings = Settings(
        database_url=module_store_url,
        timer_interval=0.1,
        wait_recheck=5.0,
        auth_failure_limit=0,  # modules here send unknown keys on purpose (tests/security: on)
        webhook_keys_path=str(keys / "webhook-keys.json"),
        audit_key_file=str(keys / "audit.key"),
    )
    db = Database(module_store_url)
    try:
        with ServerThread(settings) as server:
            world = World(server.url, db)
            try:
                yield world
            finally:
                world.close()
    finally:
        db.dispose()


def openapi_document() -> dict[str, object]:
    """The OpenAPI document the app generates, made without starting it. The app's database
    is a SQLite file in a directory removed afterwards, so that nothing the app might put next
    to its database (keys) lands in the working directory."""
    import tempfile

    with tempfile.TemporaryDirectory() as store:
        return create_app(Settings(database_url=f"sqlite:///{store}/openapi.db")).openapi()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give each schemathesis operation item a node id of its own.

    schemathesis names them `test_every_operation[GET /path]` but gives them all one node id,
    and pytest-xdist schedules by node id: it would run a single operation of the fuzz suite.
    """
    from _pytest.nodeid import coerce_node_id  # pytest 9 derives `nodeid` from `_id`

    for item in items:
        label = getattr(item, "operation_label", None)
        if isinstance(label, str) and not item.nodeid.endswith("]"):
            setattr(item, "_id", coerce_node_id(f"{item.nodeid}[{label}]"))  # noqa: B010
