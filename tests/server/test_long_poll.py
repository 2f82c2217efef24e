"""A long-poll whose client went away stops waiting, so it holds neither a slot nor a shutdown."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from signoff import Client
from signoff_server.db import Database, migrate
from signoff_server.identity import create_agent_key
from signoff_server.settings import Settings

from .conftest import ServerThread
from .test_lifecycle_e2e import invoice


def _abandon_wait(port: int, key: str, request_id: str) -> None:
    """Start `GET /wait?timeout=60` on a raw socket, then hang up without reading the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            (
                f"GET /v1/requests/{request_id}/wait?timeout=60 HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n\r\n"
            ).encode()
        )
        time.sleep(0.5)  # the server has read the request and is waiting


def test_abandoned_long_poll_ends_and_does_not_hold_shutdown(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'signoff.db'}"
    migrate(url)
    db = Database(url)
    with db.write() as conn:
        key = create_agent_key(conn, "poller")
    db.dispose()
    settings = Settings(
        database_url=url,
        wait_recheck=30.0,  # no periodic re-read that would end the wait by chance
        webhook_keys_path=str(tmp_path / "webhook-keys.json"),
        audit_key_file=str(tmp_path / "audit.key"),
    )
    server = ServerThread(settings)
    with server, Client(base_url=server.url, api_key=key) as client:
        pending = client.create_request(invoice())
        _abandon_wait(server.port, key, pending.id)
        time.sleep(2.0)  # the disconnect is noticed within a second
        hung_up_at = time.monotonic()
    # uvicorn's shutdown waits for every running request: a wait still sleeping until its
    # 60 s timeout would hold it (ServerThread gives up joining after 15 s).
    assert time.monotonic() - hung_up_at < 8
