"""A real signoff server, and running `signoff-claude-hook` the way Claude Code does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.support.server import World, sqlite_world

import signoff

DEADLINE_SECONDS = 3
DEADLINE_POLICY = f"""\
version: 1
people:
  - {{email: reviewer@example.com, name: Rita Reviewer}}
roles:
  default:
    members: [reviewer@example.com]
default:            # every request expires, rejected, {DEADLINE_SECONDS} s after it was made
  route: default
  sla: PT{DEADLINE_SECONDS}S
  on_timeout: reject
"""


@pytest.fixture(scope="module")
def signoff_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One real signoff server (SQLite) per test module."""
    with sqlite_world(tmp_path_factory.mktemp("signoff")) as world:
        yield world


@pytest.fixture(scope="module")
def deadline_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A real signoff server whose policy expires every request after `DEADLINE_SECONDS`."""
    directory = tmp_path_factory.mktemp("deadline")
    config = directory / "signoff.yaml"
    config.write_text(DEADLINE_POLICY, encoding="utf-8")
    with sqlite_world(directory, config_path=str(config)) as world:
        yield world


@dataclass
class HookResult:
    """What the hook printed, parsed."""

    decision: str
    reason: str
    updated_input: dict[str, Any] | None
    returncode: int


def hook_env(url: str, key: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The hook's environment: signoff's address and key, and no stray config file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
    env.update(SIGNOFF_URL=url, SIGNOFF_API_KEY=key, HOME=str(tmp_path), **extra)
    return env


def start_hook(event: dict[str, Any], env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """The hook as a subprocess with `event` written to its stdin (which is then closed)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "signoff_claude_code.hook", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(event))
    proc.stdin.close()
    return proc


def finish(proc: subprocess.Popen[str], timeout: float = 90.0) -> HookResult:
    """Wait for the hook and parse its one line of output."""
    assert proc.stdout is not None
    assert proc.stderr is not None
    try:
        proc.wait(timeout=timeout)  # the answer is one short line: no pipe can fill up
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stdout = proc.stdout.read()
        stderr = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert len(lines) == 1, (stdout, stderr)
    specific = json.loads(lines[0])["hookSpecificOutput"]
    assert specific["hookEventName"] == "PreToolUse"
    return HookResult(
        specific["permissionDecision"],
        specific["permissionDecisionReason"],
        specific.get("updatedInput"),
        proc.returncode,
    )


def run_hook(event: dict[str, Any], env: dict[str, str], *args: str) -> HookResult:
    """Run the hook to completion."""
    return finish(start_hook(event, env, *args))


@contextmanager
def reviewer_deciding(
    world: World, verdict: str, *, session_id: str, **kwargs: Any
) -> Iterator[list[signoff.Request]]:
    """A reviewer in a thread who decides the first pending request of `session_id`."""
    token = world.reviewer_token("default")
    decided: list[signoff.Request] = []
    stop = threading.Event()

    def work() -> None:
        with signoff.Client(base_url=world.url, api_key=token) as reviewer:
            while not stop.is_set() and not decided:
                for request in reviewer.list_requests(status="pending").items:
                    if request.correlation.get("session_id") == session_id:
                        decided.append(reviewer.decide(request.id, verdict, **kwargs))
                        break
                stop.wait(0.05)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        yield decided
    finally:
        stop.set()
        thread.join(timeout=15)
