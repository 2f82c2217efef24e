"""examples/crewai_invoice_payment.py end to end, as a reader runs it: the demo server
(`signoff serve --demo`, its policy and people); the crew whose gated payment waits for two
approvals; the Flow paused by one process and resumed by the receiver in another from the
server's own signed callbacks."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.server import free_port

from signoff import Client

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "crewai_invoice_payment.py"

pytestmark = pytest.mark.slow


@dataclass
class Demo:
    url: str
    db: str
    agent_key: str
    alice: str
    bob: str


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    """`signoff serve --demo` in a process of its own, and bob's token."""
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
        bob = subprocess.run(
            [
                sys.executable,
                "-m",
                "signoff_server",
                "tokens",
                "create",
                "--user",
                "bob@example.com",
            ],
            env={**os.environ, "SIGNOFF_DATABASE_URL": db},
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout.strip()
        yield Demo(url, db, agent_key.group(1), alice.group(1), bob)
    finally:
        _stop(process)


def _example(demo: Demo, state: Path, *args: str) -> list[str]:
    return [sys.executable, str(EXAMPLE), "--state", str(state), *args]


def _env(demo: Demo) -> dict[str, str]:
    return {**os.environ, "SIGNOFF_URL": demo.url, "SIGNOFF_API_KEY": demo.agent_key}


def _decide_when_pending(demo: Demo, verdicts: list[tuple[str, str, dict[str, Any]]]) -> str:
    """Wait for the agent's pending request; the named reviewers decide it in order."""
    tokens = {"alice": demo.alice, "bob": demo.bob}
    with Client(base_url=demo.url, api_key=demo.agent_key) as agent:
        found: list[str] = []

        def pending() -> bool:
            found[:] = [r.id for r in agent.list_requests(status="pending").items]
            return bool(found)

        _wait_for(pending, "the gated payment's request")
        for who, verdict, kwargs in verdicts:
            with Client(base_url=demo.url, api_key=tokens[who]) as reviewer:
                reviewer.decide(found[0], verdict, **kwargs)
        return found[0]


def test_crew_pays_after_two_approvals(demo: Demo, tmp_path: Path) -> None:
    state = tmp_path / "agent"
    with (tmp_path / "crew.out").open("wb") as out:
        crew = subprocess.Popen(
            _example(demo, state, "crew", "--function-calling"), env=_env(demo), stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        request_id = _decide_when_pending(
            demo, [("alice", "approve", {"comment": "matches PO-7781"}), ("bob", "approve", {})]
        )
        crew.wait(timeout=180)
    finally:
        _stop(crew)
    output = (tmp_path / "crew.out").read_text()
    assert crew.returncode == 0, output
    assert "crew: Done. released EUR 12500.00 for INV-1042" in output
    payments = (state / "payments.jsonl").read_text().splitlines()
    assert [json.loads(p)["amount"] for p in payments] == ["12500.00"]
    with Client(base_url=demo.url, api_key=demo.agent_key) as agent:
        outcome = agent.get_request(request_id).outcome
    assert outcome is not None
    assert outcome.status.value == "executed"


def test_crew_writes_to_the_vendor_after_a_rejection(demo: Demo, tmp_path: Path) -> None:
    state = tmp_path / "agent"
    with (tmp_path / "crew.out").open("wb") as out:
        crew = subprocess.Popen(
            _example(demo, state, "crew"), env=_env(demo), stdout=out, stderr=subprocess.STDOUT
        )
    try:
        _decide_when_pending(
            demo, [("alice", "reject", {"comment": "vendor bank details changed last week"})]
        )
        crew.wait(timeout=180)
    finally:
        _stop(crew)
    output = (tmp_path / "crew.out").read_text()
    assert crew.returncode == 0, output
    assert "crew: Payment not released; I wrote to the vendor." in output
    assert not (state / "payments.jsonl").exists()
    (email,) = (state / "emails.jsonl").read_text().splitlines()
    assert "vendor bank details changed last week" in json.loads(email)["message"]


def test_flow_pauses_in_one_process_and_resumes_in_another(demo: Demo, tmp_path: Path) -> None:
    state = tmp_path / "agent"
    port = free_port()
    log = tmp_path / "receiver.out"
    with log.open("wb") as out:
        receiver = subprocess.Popen(
            _example(demo, state, "receive", "--port", str(port), "--count", "2"),
            env=_env(demo), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait_for(lambda: _listening(port) or receiver.poll() is not None, "the receiver")
        assert receiver.poll() is None, log.read_text()

        def start() -> str:
            done = subprocess.run(
                _example(demo, state, "start", "--callback-url", f"http://127.0.0.1:{port}/"),
                env=_env(demo), capture_output=True, text=True, timeout=180, check=False,
            )  # fmt: skip
            assert done.returncode == 0, done.stdout + done.stderr
            found = re.search(r"request: (req_\S+)", done.stdout)
            assert found, done.stdout
            return found.group(1)

        approved, rejected = start(), start()
        with (
            Client(base_url=demo.url, api_key=demo.alice) as alice,
            Client(base_url=demo.url, api_key=demo.bob) as bob,
        ):
            # The demo policy: above EUR 10,000 takes two distinct finance approvers.
            alice.decide(approved, "approve", comment="matches PO-7781")
            bob.decide(approved, "approve")
            alice.decide(rejected, "reject", comment="vendor bank details changed last week")
        receiver.wait(timeout=180)
    finally:
        _stop(receiver)
    output = log.read_text()
    assert receiver.returncode == 0, output
    assert "Done. released EUR 12500.00 for INV-1042" in output
    assert "Payment not released; I wrote to the vendor" in output
    assert "vendor bank details changed last week" in output
    payments = (state / "payments.jsonl").read_text().splitlines()
    assert len(payments) == 1, "paid once, for the approved flow only"
    with Client(base_url=demo.url, api_key=demo.agent_key) as agent:
        outcomes = [agent.get_request(r).outcome for r in (approved, rejected)]
    assert [o.status.value if o else None for o in outcomes] == ["executed", "skipped"]
