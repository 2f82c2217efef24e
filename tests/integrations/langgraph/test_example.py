"""examples/langgraph_invoice_payment.py end to end, as a reader runs it: the demo server
(`signoff serve --demo`, its policy and people), the agent paused by one process, the receiver
in another resuming from the server's own signed callbacks."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests.support.server import free_port

from signoff import Client

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "langgraph_invoice_payment.py"

pytestmark = pytest.mark.slow


@dataclass
class Demo:
    url: str
    db: str
    agent_key: str
    alice: str


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def _wait_for(check: object, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    """`signoff serve --demo` in a process of its own."""
    port = free_port()
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    err = tmp_path / "server.err"
    with err.open("wb") as stderr, (tmp_path / "server.out").open("wb") as stdout:
        process = subprocess.Popen(
            [sys.executable, "-m", "signoff_server", "serve", "--demo", "--db", db],
            env={**os.environ, "SIGNOFF_PORT": str(port)},
            stdout=stdout,
            stderr=stderr,
        )
    try:
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            try:
                return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return process.poll() is not None

        _wait_for(ready, "the demo server")
        assert process.poll() is None, err.read_text()
        text = err.read_text()
        agent_key = re.search(r"agent key \(finance-agent\):\s+(sk_\S+)", text)
        alice = re.search(r"reviewer token \(alice@example.com\):\s+(pt_\S+)", text)
        assert agent_key, text
        assert alice, text
        yield Demo(url, db, agent_key.group(1), alice.group(1))
    finally:
        _stop(process)


def test_invoice_example_pauses_in_one_process_and_resumes_in_another(
    demo: Demo, tmp_path: Path
) -> None:
    bob = subprocess.run(
        [sys.executable, "-m", "signoff_server", "tokens", "create", "--user", "bob@example.com"],
        env={**os.environ, "SIGNOFF_DATABASE_URL": demo.db},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.strip()
    env = {**os.environ, "SIGNOFF_URL": demo.url, "SIGNOFF_API_KEY": demo.agent_key}
    state = tmp_path / "agent"
    port = free_port()
    log = tmp_path / "receiver.out"
    example = [sys.executable, str(EXAMPLE), "--state", str(state)]
    with log.open("wb") as out:
        receiver = subprocess.Popen(
            [*example, "receive", "--port", str(port), "--count", "2"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for(lambda: _listening(port) or receiver.poll() is not None, "the receiver")
        assert receiver.poll() is None, log.read_text()

        def start(thread: str) -> str:
            callback = f"http://127.0.0.1:{port}/"
            done = subprocess.run(
                [*example, "start", "--thread", thread, "--callback-url", callback],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, done.stdout + done.stderr
            found = re.search(r"request: (req_\S+)", done.stdout)
            assert found, done.stdout
            return found.group(1)

        approved, rejected = start("inv-approve"), start("inv-reject")
        with (
            Client(base_url=demo.url, api_key=demo.alice) as alice,
            Client(base_url=demo.url, api_key=bob) as bob_client,
        ):
            # The demo policy: above EUR 10,000 takes two distinct finance approvers.
            alice.decide(approved, "approve", comment="matches PO-7781")
            bob_client.decide(approved, "approve")
            alice.decide(rejected, "reject", comment="vendor bank details changed last week")
        receiver.wait(timeout=120)
    finally:
        _stop(receiver)
    output = log.read_text()
    assert receiver.returncode == 0, output
    assert "inv-approve: Done. Released EUR 12500.00" in output
    assert "inv-reject: Payment not released; I wrote to the vendor" in output
    assert "vendor bank details changed last week" in output
    payments = (state / "payments.jsonl").read_text().splitlines()
    assert len(payments) == 1, "paid once, for the approved run only"
    with Client(base_url=demo.url, api_key=demo.agent_key) as agent:
        assert agent.get_request(approved).outcome is not None
        assert agent.get_request(approved).outcome.status.value == "executed"  # type: ignore[union-attr]
        assert agent.get_request(rejected).outcome.status.value == "skipped"  # type: ignore[union-attr]
