"""examples/openai_agents_invoice_payment.py runs unattended against a real server."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from tests.support.server import World, free_port

EXAMPLE = Path(__file__).parents[3] / "examples" / "openai_agents_invoice_payment.py"


def run_example(*args: str, timeout: float = 120) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize(
    ("verdict", "expected"),
    [
        ("approve", "PAID 12500.00 EUR for INV-1042"),
        ("edit", "PAID 12250.00 EUR for INV-1042"),
        ("reject", "drafting a reply to Acme GmbH"),
        ("respond", "early-payment discount"),
    ],
)
def test_wait_style(world: World, verdict: str, expected: str) -> None:
    out = run_example(
        "wait",
        "--url",
        world.url,
        "--key",
        world.agent_key("finance-agent"),
        "--reviewer-token",
        world.reviewer_token("finance-approver"),
        "--decide",
        verdict,
    )
    assert expected in out
    assert ("PAID" in out) == (verdict in ("approve", "edit"))


def test_durable_style_pauses_here_and_resumes_in_the_receiver(
    world: World, tmp_path: Path
) -> None:
    key = world.agent_key("finance-agent")
    port = free_port()
    store = str(tmp_path / "runs.db")
    receiver = subprocess.Popen(
        [
            sys.executable,
            str(EXAMPLE),
            "receive",
            "--url",
            world.url,
            "--key",
            key,
            "--store",
            store,
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the receiver did not start"
                time.sleep(0.2)
        out = run_example(
            "pause",
            "--url",
            world.url,
            "--key",
            key,
            "--store",
            store,
            "--callback-url",
            f"http://127.0.0.1:{port}/",
            "--reviewer-token",
            world.reviewer_token("finance-approver"),
            "--decide",
            "approve",
        )
        assert "PAUSED" in out
        assert "PAID" not in out, "nothing is paid in the pausing process"
        with world.client(world.reviewer_token("admin")) as admin:
            deadline = time.monotonic() + 90
            while admin.list_requests(status="approved").items[0].outcome is None:
                assert time.monotonic() < deadline, "the run was not resumed"
                time.sleep(0.2)
    finally:
        receiver.terminate()
        out, err = receiver.communicate(timeout=30)
    assert "PAID 12500.00 EUR for INV-1042" in out, err
    assert "RESUMED: Payment of INV-1042 released" in out, err
