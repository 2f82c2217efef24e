"""A real signoff server for tests outside tests/server: uvicorn in a thread, on a free port.

The same idea as tests/server/conftest.py's `ServerThread` / `World`, in a plain module so any
test directory can import it (`from tests.support.server import ...`) without importing another
directory's conftest.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import uvicorn

from signoff import Client
from signoff_server.app import create_app
from signoff_server.db import Database, migrate
from signoff_server.identity import create_agent_key, create_token, set_user
from signoff_server.settings import Settings

__all__ = ["ServerThread", "World", "free_port", "sqlite_world"]


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerThread:
    """An ASGI app served by uvicorn on a free loopback port, in a thread; stopped on exit."""

    def __init__(
        self, settings: Settings | None = None, *, app: Any = None, port: int | None = None
    ) -> None:
        """Serve `create_app(settings)`, or any ASGI `app`; on `port` when one was chosen
        beforehand (e.g. for `settings.public_url`), else on a free one."""
        if app is None and settings is None:
            raise ValueError("pass settings (the signoff app) or an ASGI app")
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app if app is not None else create_app(settings or Settings()),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)


@dataclass
class World:
    """A running server and helpers to mint the identities a test needs."""

    url: str
    db: Database
    settings: Settings | None = None
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

    def client(self, secret: str | None = None, **kwargs: Any) -> Client:
        """A core Client against this server, closed with the world."""
        client = Client(base_url=self.url, api_key=secret or "", **kwargs)
        self.clients.append(client)
        return client

    def close(self) -> None:
        """Close every client this world handed out."""
        for client in self.clients:
            client.close()


@contextmanager
def sqlite_world(directory: Path, **settings: Any) -> Iterator[World]:
    """A real signoff server on a fresh SQLite store in `directory`, with fast timers.

    Extra keyword arguments are `Settings` fields (those the server in this tree knows).
    """
    url = f"sqlite:///{directory / 'signoff.db'}"
    migrate(url)
    base = Settings(database_url=url, timer_interval=0.1, wait_recheck=5.0)
    known = {k: v for k, v in settings.items() if k in Settings.__dataclass_fields__}
    config = replace(base, **known)
    db = Database(url)
    try:
        with ServerThread(config) as server:
            world = World(server.url, db, config)
            try:
                yield world
            finally:
                world.close()
    finally:
        db.dispose()
