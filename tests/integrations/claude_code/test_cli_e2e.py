"""The real Claude Code CLI (bundled in the claude-agent-sdk wheel) with the installed hook: the
failure paths and the allow-list.

The CLI runs headless (`claude -p`) against a scripted Messages API on loopback that asks for a
Bash call; the hook, installed by `signoff-claude-code install`, asks a real signoff server.
Approve, edit, reject, respond, timeout, two calls in one step and defer/resume with the real
CLI are in test_conformance.py, named after the conformance scenarios.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

pytest.importorskip("claude_agent_sdk", reason="claude-agent-sdk is absent")

from tests.integrations.claude_code.cli import (
    CLI,
    install_project,
    requests_of,
    run_claude,
    scripted,
)
from tests.support.server import World

pytestmark = pytest.mark.skipif(not CLI.exists(), reason="the bundled Claude Code CLI is absent")

WRITE = {"command": "echo approved > marker.txt", "description": "write the marker"}


def test_signoff_down_blocks_the_call(tmp_path: Path) -> None:
    project = install_project(tmp_path)
    with scripted(WRITE) as (api, url):
        run_claude(project, url, "http://127.0.0.1:9", "sk_nothing", "write it")
    assert not (project / "marker.txt").exists()
    result = api.result_for(WRITE)
    assert result.get("is_error")
    assert "could not approve" in json.dumps(result["content"])


def test_killed_hook_blocks_the_call(signoff_world: World, tmp_path: Path) -> None:
    # Claude Code gives the hook 10 s; this hook would wait 120 s for a reviewer who never
    # comes, so Claude Code kills it. The installer's `onFailure: block` (and the hook's own
    # deny on SIGTERM) keep the call from falling through to the permission rules.
    project = install_project(tmp_path, timeout=10)
    settings = project / ".claude" / "settings.json"
    text = settings.read_text()
    assert "--wait 1" in text
    settings.write_text(text.replace("--wait 1", "--wait 120"))
    agent = f"claude-{uuid.uuid4().hex[:8]}"
    key = signoff_world.agent_key(agent)
    started = time.monotonic()
    with scripted(WRITE) as (api, url):
        run_claude(project, url, signoff_world.url, key, "write it")
    assert time.monotonic() - started < 100, "the hook was not stopped at its timeout"
    assert not (project / "marker.txt").exists()
    assert api.result_for(WRITE).get("is_error")
    [request] = requests_of(signoff_world, agent)  # the hook had asked, then was killed
    # Close it, so the server is not left holding the dead hook's long-poll until it times out.
    signoff_world.client(key).cancel(request.id, reason="test over")


def test_allow_listed_call_is_not_delayed(signoff_world: World, tmp_path: Path) -> None:
    # Nobody reviews here: a gated call would wait 270 s. The allow-listed one runs at once,
    # and no request is made for it.
    touch = {"command": "touch marker.txt", "description": "touch the marker"}
    project = install_project(tmp_path)
    agent = f"claude-{uuid.uuid4().hex[:8]}"
    key = signoff_world.agent_key(agent)
    started = time.monotonic()
    with scripted(touch) as (api, url):
        run_claude(
            project, url, signoff_world.url, key, "touch it",
            SIGNOFF_CLAUDE_ALLOW="Read,Bash(touch marker.txt)",
        )  # fmt: skip
    assert time.monotonic() - started < 90
    assert (project / "marker.txt").exists()
    assert not api.result_for(touch).get("is_error")
    assert requests_of(signoff_world, agent) == []
