"""A crash between commit and delivery loses no callback.

`signoff serve` runs as a subprocess. The receiver is down when the decisions commit, so the
callbacks are queued and their first attempts fail; the server is SIGKILLed; the receiver comes
up; the server restarts and delivers every callback, each under the id it was queued with.
Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from signoff import CallbackStatus, Client, Verdict, Verifier
from signoff_server.db import Database
from signoff_server.identity import create_agent_key, create_token, set_user

from .callback_support import Receiver, events_of, invoice, wait_for
from .conftest import free_port


@contextmanager
def serve(
    store_url: str, key_file: Path, log: Path
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`signoff serve` in a subprocess, ready to answer; killed (if still alive) on exit."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "signoff_server",
        "serve",
        "--db",
        store_url,
        "--port",
        str(port),
        "--webhook-keys",
        str(key_file),
        "--log-level",
        "warning",
    ]
    with log.open("ab") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"signoff serve exited:\n{log.read_text()}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"signoff serve did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield process, url
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)


@pytest.mark.slow
def test_sigkill_between_commit_and_delivery_loses_nothing(store_url: str, tmp_path: Path) -> None:
    db = Database(store_url)
    try:
        with db.write() as conn:
            agent_key = create_agent_key(conn, "finance-agent")
            set_user(conn, "alice@example.com", ["finance-approver"])
            token = create_token(conn, "alice@example.com")
    finally:
        db.dispose()
    key_file = tmp_path / "webhook-keys.json"
    log = tmp_path / "server.log"
    receiver_port = free_port()

    with (
        serve(store_url, key_file, log) as (process, url),
        Client(base_url=url, api_key=agent_key) as agent,
        Client(base_url=url, api_key=token) as reviewer,
    ):
        public = [k["public_key"] for k in agent.keys()["webhook_keys"]]
        ids = []
        for n in range(5):
            created = agent.create_request(
                invoice(f"http://127.0.0.1:{receiver_port}/cb", correlation={"thread_id": f"t-{n}"})
            )
            reviewer.decide(created.id, Verdict.APPROVE)  # committed; the receiver is down
            ids.append(created.id)
        wait_for(
            "every first attempt to fail",
            lambda: all(events_of(agent, i, "callback.attempted") for i in ids),
        )
        queued = {i: events_of(agent, i, "callback.queued")[0]["event_id"] for i in ids}
        assert all(agent.get_request(i).callback_status is CallbackStatus.PENDING for i in ids)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=15)
        assert process.returncode == -signal.SIGKILL

    with (
        Receiver(Verifier(public), port=receiver_port) as receiver,
        serve(store_url, key_file, log) as (_process, url),
        Client(base_url=url, api_key=agent_key) as agent,
    ):
        # The first retry is due about 5 s after the first attempt (± 20%).
        wait_for(
            "every callback delivered after the restart",
            lambda: all(
                agent.get_request(i).callback_status is CallbackStatus.DELIVERED for i in ids
            ),
            timeout=60,
        )
        assert public == [k["public_key"] for k in agent.keys()["webhook_keys"]]

    assert all(d.answered == 200 for d in receiver.deliveries)  # every one verified
    delivered = {e.data.request.id: e.id for e in receiver.events}
    assert delivered == queued  # each request's callback, under the id it was queued with
    for request_id, event_id in queued.items():
        # Duplicates (if any) carry the same id; the receiver's dedupe handled each id once.
        assert {d.webhook_id for d in receiver.of(event_id)} == {event_id}
        assert sum(e.data.request.id == request_id for e in receiver.events) == 1
