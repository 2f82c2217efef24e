"""Escalation and SLA timers in real time: a live server with second-scale durations, and a
server process killed with SIGKILL while timers are pending. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from signoff import Client, Status, Verdict
from signoff_server.db import Database
from signoff_server.identity import create_agent_key
from signoff_server.policy.tables import escalations
from signoff_server.settings import Settings
from signoff_server.timers import timers

from .conftest import ServerThread, free_port

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo" / "signoff.yaml"
APPROVERS = {"alice@example.com", "bob@example.com"}
INVOICE: dict[str, Any] = {
    "action": {
        "name": "payments.release",
        "arguments": {"invoice_id": "INV-1042", "amount": "12500.00", "currency": "EUR"},
    },
    "business_object": {"type": "invoice", "id": "INV-1042"},
}


def fast_config(tmp_path: Path, *, wait: str, sla: str) -> Path:
    """The demo file with the large-payment escalation after `wait` and the SLA `sla`."""
    text = DEMO.read_text()
    assert "    - wait: PT30M\n" in text
    assert "    sla: PT2H\n" in text
    path = tmp_path / "signoff.yaml"
    path.write_text(
        text.replace("wait: PT30M", f"wait: {wait}").replace("sla: PT2H", f"sla: {sla}")
    )
    return path


def test_escalation_and_timeout_on_a_live_server(store_url: str, tmp_path: Path) -> None:
    config = fast_config(tmp_path, wait="PT2S", sla="PT5S")
    settings = Settings(database_url=store_url, timer_interval=0.1, config_path=str(config))
    db = Database(store_url)
    try:
        with ServerThread(settings) as server:
            with db.write() as conn:
                key = create_agent_key(conn, "finance-agent")
            with Client(base_url=server.url, api_key=key) as agent:
                request = agent.create_request(INVOICE)
                assert set(request.assignees) <= APPROVERS
                closed = agent.wait(request.id, timeout=30)
                events = agent.timeline(request.id)
    finally:
        db.dispose()
    assert closed.status is Status.EXPIRED
    final = closed.final_decision
    assert final is not None
    assert (final.verdict, final.via.value) == (Verdict.REJECT, "timeout")
    assert closed.route.role == "finance-manager"
    assert closed.escalation_level == 1
    kinds = [e.type for e in events]
    assert kinds == [
        "request.created",
        "request.routed",
        "request.notified",
        "request.escalated",
        "request.notified",
        "request.expired",
    ]
    created, escalated, expired = events[0], events[3], events[5]
    assert set(cast(list[str], events[2].data["people"])) <= APPROVERS
    assert escalated.data["to_role"] == "finance-manager"
    assert escalated.data["on_shift"] == ["carol@example.com"]
    assert events[4].data["people"] == ["carol@example.com"]
    # Second-scale durations, with generous margins for a busy machine.
    assert 1.9 <= (escalated.at - created.at).total_seconds() < 10
    assert 4.9 <= (expired.at - created.at).total_seconds() < 15
    assert expired.data["verdict"] == "reject"


class ServerProcess:
    """`signoff serve` as a child process, for crash tests."""

    def __init__(self, store_url: str, config: Path, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "HOME": str(workdir),
            "XDG_DATA_HOME": str(workdir / "data"),
            "SIGNOFF_LOG_LEVEL": "warning",
        }
        self.log = (workdir / f"server-{self.port}.log").open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "signoff_server",
                "serve",
                "--db",
                store_url,
                "--config",
                str(config),
                "--port",
                str(self.port),
                "--webhook-keys",
                str(workdir / "webhook-keys.json"),
                "--audit-key",
                str(workdir / "audit.key"),
            ],
            cwd=workdir,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=1) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the server exited with {self.process.returncode}")
                try:
                    if http.get("/healthz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise RuntimeError("the server did not answer /healthz in time")

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=20)
        self.log.close()


@contextmanager
def running(store_url: str, config: Path, workdir: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(store_url, config, workdir)
    try:
        server.wait_ready()
        yield server
    finally:
        server.kill(signal.SIGTERM)


@pytest.mark.slow
def test_timers_survive_sigkill_and_fire_once(store_url: str, tmp_path: Path) -> None:
    config = fast_config(tmp_path, wait="PT3S", sla="PT8S")
    db = Database(store_url)
    try:
        with db.write() as conn:
            key = create_agent_key(conn, "finance-agent")
        first = ServerProcess(store_url, config, tmp_path)
        try:
            first.wait_ready()
            with Client(base_url=first.url, api_key=key) as agent:
                made = [agent.create_request(INVOICE).id for _ in range(4)]
            with db.read() as conn:
                pending = conn.execute(timers.select().where(timers.c.request_id.in_(made))).all()
            assert len(pending) == 8  # an escalation step and a deadline each
        finally:
            first.kill(signal.SIGKILL)  # no shutdown: leases, timers and all stay as they are
        time.sleep(4)  # the escalations fall due while no server runs
        with (
            running(store_url, config, tmp_path) as second,
            Client(base_url=second.url, api_key=key) as agent,
        ):
            for request_id in made:
                closed = agent.wait(request_id, timeout=40)
                assert closed.status is Status.EXPIRED, request_id
            timelines = {request_id: agent.timeline(request_id) for request_id in made}
        with db.read() as conn:
            left = conn.execute(timers.select().where(timers.c.request_id.in_(made))).all()
            chains = conn.execute(escalations.select().where(escalations.c.request_id.in_(made)))
            steps = {row.request_id: row.next_step for row in chains}
    finally:
        db.dispose()
    assert left == []
    assert steps == dict.fromkeys(made, 2)  # both steps of the chain ran
    for request_id, events in timelines.items():
        kinds = [e.type for e in events]
        assert kinds.count("request.escalated") == 1, (request_id, kinds)
        assert kinds.count("request.expired") == 1, (request_id, kinds)
        assert kinds.count("request.notified") == 2, (request_id, kinds)
        assert kinds[-1] == "request.expired"
