"""The real Claude Code CLI (bundled in the claude-agent-sdk wheel), run headless (`claude -p`)
in a project with the signoff hook installed, against a scripted Messages API on loopback.

Import it only from a test module that has already skipped itself without `claude_agent_sdk`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import claude_agent_sdk
from tests.integrations.claude_code.messages_api import ScriptedMessagesApi
from tests.support.server import ServerThread, World

import signoff
from signoff_claude_code.install import main as install_main

__all__ = ["CLI", "Decide", "install_project", "requests_of", "reviewer", "run_claude", "scripted"]

CLI = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
Decide = Callable[[signoff.Request], tuple[str, dict[str, Any]] | None]
"""What a reviewer does with a pending request: (verdict, decide() keyword arguments) or None."""


def install_project(tmp_path: Path, *, timeout: int = 300) -> Path:
    """A project directory with the hook installed by `signoff-claude-code install --project`.

    The installed command is `<this python> -m signoff_claude_code.hook --wait <timeout - 30>`.
    """
    directory = tmp_path / "project"
    directory.mkdir()
    hook = f"{sys.executable} -m signoff_claude_code.hook"
    args = ["install", "--project", "--dir", str(directory), "--timeout", str(timeout)]
    assert install_main([*args, "--command", hook]) == 0
    return directory


@contextmanager
def scripted(*tool_inputs: dict[str, Any]) -> Iterator[tuple[ScriptedMessagesApi, str]]:
    """A scripted model asking for these Bash calls (in one message), served on loopback."""
    api = ScriptedMessagesApi("Bash", *tool_inputs)
    with ServerThread(app=api.app) as server:
        yield api, server.url


def run_claude(
    project: Path, api_url: str, signoff_url: str, key: str, *args: str, **env: str
) -> dict[str, Any]:
    """`claude -p ... --output-format json` in `project`; its final result object."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC", "CLAUDE"))}
    environ = {k: v for k, v in environ.items() if not k.startswith("SIGNOFF_")}
    environ.update(
        ANTHROPIC_BASE_URL=api_url, ANTHROPIC_API_KEY="sk-ant-test",
        HOME=str(project.parent / "home"), CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        DISABLE_TELEMETRY="1", DISABLE_AUTOUPDATER="1", SIGNOFF_URL=signoff_url,
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


def requests_of(world: World, agent: str) -> list[signoff.Request]:
    """Every request the agent `agent` made, oldest first."""
    token = world.reviewer_token("default")
    with signoff.Client(base_url=world.url, api_key=token) as client:
        return sorted(client.iter_requests(agent=agent), key=lambda r: r.created_at)


@contextmanager
def reviewer(world: World, agent: str, decide: Decide) -> Iterator[list[signoff.Request]]:
    """A reviewer in a thread deciding each pending request of `agent` as it appears."""
    token = world.reviewer_token("default")
    decided: list[signoff.Request] = []
    stop = threading.Event()

    def work() -> None:
        with signoff.Client(base_url=world.url, api_key=token) as client:
            while not stop.is_set():
                for request in client.list_requests(status="pending", agent=agent).items:
                    choice = decide(request)
                    if choice is not None:
                        verdict, kwargs = choice
                        decided.append(client.decide(request.id, verdict, **kwargs))
                stop.wait(0.1)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        yield decided
    finally:
        stop.set()
        thread.join(timeout=15)
