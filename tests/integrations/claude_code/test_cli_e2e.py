"""The real Claude Code CLI (bundled in the claude-agent-sdk wheel) with the installed hook.

The CLI runs headless (`claude -p`) against a scripted Messages API on loopback that asks for
one Bash call; the hook, installed by `signoff-claude-code install`, asks a real signoff server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("claude_agent_sdk", reason="claude-agent-sdk is absent")

import claude_agent_sdk
from tests.integrations.claude_code.messages_api import ScriptedMessagesApi
from tests.support.server import ServerThread, World

import signoff
from signoff_claude_code.install import main as install_main

CLI = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
COMMAND = {"command": "echo approved > marker.txt", "description": "write the marker"}

pytestmark = pytest.mark.skipif(not CLI.exists(), reason="the bundled Claude Code CLI is absent")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project directory with the signoff hook installed in `.claude/settings.json`."""
    directory = tmp_path / "project"
    directory.mkdir()
    hook = f"{sys.executable} -m signoff_claude_code.hook"
    args = ["install", "--project", "--dir", str(directory), "--timeout", "300"]
    assert install_main([*args, "--command", hook]) == 0
    return directory


@pytest.fixture
def messages_api() -> Iterator[tuple[ScriptedMessagesApi, str]]:
    """The scripted model, served on loopback."""
    api = ScriptedMessagesApi("Bash", COMMAND)
    with ServerThread(app=api.app) as server:
        yield api, server.url


def run_claude(
    project: Path, api_url: str, world: World, key: str, *args: str, **env: str
) -> dict[str, Any]:
    """`claude -p ... --output-format json` in `project`; its final result object."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC", "CLAUDE"))}
    environ.update(
        ANTHROPIC_BASE_URL=api_url, ANTHROPIC_API_KEY="sk-ant-test",
        HOME=str(project.parent / "home"), CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        DISABLE_TELEMETRY="1", DISABLE_AUTOUPDATER="1", SIGNOFF_URL=world.url,
        SIGNOFF_API_KEY=key, **env,
    )  # fmt: skip
    (project.parent / "home").mkdir(exist_ok=True)
    # `-p` first: a prompt or `--resume SESSION` follows.
    proc = subprocess.run(
        [str(CLI), "-p", *args, "--output-format", "json"],
        cwd=project, env=environ, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert proc.stdout.strip(), proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def reviewer(world: World, verdict: str, **kwargs: Any) -> tuple[threading.Thread, threading.Event]:
    """Decide every pending claude_code.Bash request as it appears, until stopped."""
    token = world.reviewer_token("default")
    stop = threading.Event()

    def work() -> None:
        with signoff.Client(base_url=world.url, api_key=token) as client:
            while not stop.is_set():
                for request in client.list_requests(status="pending").items:
                    if request.action.name == "claude_code.Bash":
                        client.decide(request.id, verdict, **kwargs)
                stop.wait(0.1)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread, stop


def test_approved_call_runs(
    signoff_world: World, project: Path, messages_api: tuple[ScriptedMessagesApi, str]
) -> None:
    api, url = messages_api
    thread, stop = reviewer(signoff_world, "approve")
    try:
        result = run_claude(project, url, signoff_world, signoff_world.agent_key(), "write it")
    finally:
        stop.set()
        thread.join(timeout=15)
    assert (project / "marker.txt").read_text().strip() == "approved", result
    assert api.tool_results
    assert not api.tool_results[0].get("is_error")


def test_rejected_call_is_blocked_with_the_reason(
    signoff_world: World, project: Path, messages_api: tuple[ScriptedMessagesApi, str]
) -> None:
    api, url = messages_api
    thread, stop = reviewer(signoff_world, "reject", comment="no writes today")
    try:
        run_claude(project, url, signoff_world, signoff_world.agent_key(), "write it")
    finally:
        stop.set()
        thread.join(timeout=15)
    assert not (project / "marker.txt").exists()
    assert api.tool_results
    assert "no writes today" in json.dumps(api.tool_results[0])


def test_signoff_down_blocks_the_call(
    project: Path, messages_api: tuple[ScriptedMessagesApi, str], signoff_world: World
) -> None:
    api, url = messages_api
    down = World(url="http://127.0.0.1:9", db=signoff_world.db)
    run_claude(project, url, down, "sk_nothing", "write it")
    assert not (project / "marker.txt").exists()
    assert api.tool_results
    assert api.tool_results[0].get("is_error")


def test_headless_defers_then_resume_runs_after_approval(
    signoff_world: World, project: Path, messages_api: tuple[ScriptedMessagesApi, str]
) -> None:
    api, url = messages_api
    key = signoff_world.agent_key()
    first = run_claude(project, url, signoff_world, key, "write it", SIGNOFF_CLAUDE_HEADLESS="1")
    assert first["stop_reason"] == "tool_deferred", first
    assert not (project / "marker.txt").exists()
    token = signoff_world.reviewer_token("default")
    with signoff.Client(base_url=signoff_world.url, api_key=token) as client:
        pending = [
            r for r in client.list_requests(status="pending").items
            if r.correlation.get("session_id") == first["session_id"]
        ]  # fmt: skip
        assert len(pending) == 1
        client.decide(pending[0].id, "approve")
    resumed = run_claude(
        project, url, signoff_world, key, "--resume", first["session_id"],
        SIGNOFF_CLAUDE_HEADLESS="1",
    )  # fmt: skip
    assert resumed["session_id"] == first["session_id"]
    assert (project / "marker.txt").read_text().strip() == "approved"
    assert api.tool_results
    assert not api.tool_results[-1].get("is_error")
