"""docs/inbox.md: its snippets work — the Python settings, every environment variable block,
the Slack manifest's request URL, and every `signoff queue` / `signoff decide` command line."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import typer
import yaml

from signoff_server.cli import app
from signoff_server.notifications.config import from_environment

DOC = Path(__file__).parents[2] / "docs" / "inbox.md"


def _blocks(language: str) -> list[str]:
    text = DOC.read_text()
    return [
        re.sub(r"^ {3}", "", block, flags=re.MULTILINE)
        for block in re.findall(rf"```{language}\n(.*?)```", text, re.DOTALL)
    ]


def test_the_python_snippet_builds_settings() -> None:
    (snippet,) = _blocks("python")
    scope: dict[str, Any] = {}
    exec(compile(snippet, str(DOC), "exec"), scope)  # noqa: S102 - our own documentation
    settings = scope["settings"]
    assert settings.smtp.security == "starttls"
    assert settings.slack.users == {"alice@example.com": "U012ABCDEF"}


def test_the_environment_variables_are_the_ones_the_server_reads() -> None:
    env: dict[str, str] = {}
    for block in _blocks("bash"):
        for line in block.splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = value
    found = from_environment(env)
    assert found["public_url"] == "https://signoff.example.com"
    smtp = found["smtp"]
    assert (smtp.host, smtp.port, smtp.security, smtp.username) == (
        "smtp.example.com",
        587,
        "starttls",
        "signoff",
    )
    assert (smtp.sender, smtp.link_hours) == ("signoff@example.com", 24.0)
    assert found["slack"].users == {
        "alice@example.com": "U012ABCDEF",
        "bob@example.com": "U034GHIJKL",
    }


def test_the_slack_manifest_points_at_the_interactivity_endpoint() -> None:
    (manifest,) = _blocks("yaml")
    parsed = yaml.safe_load(manifest)
    url = parsed["settings"]["interactivity"]["request_url"]
    assert url.endswith("/slack/interactions")
    assert "chat:write" in parsed["oauth_config"]["scopes"]["bot"]


def test_every_terminal_command_parses() -> None:
    group = typer.main.get_command(app)
    lines = [
        line.removeprefix("$ ")
        for block in _blocks("console")
        for line in block.splitlines()
        if line.startswith("$ signoff ")
    ]
    assert any(" queue" in line for line in lines)
    assert any(" decide" in line for line in lines)
    for line in lines:
        _, name, *args = shlex.split(line)
        if name not in ("queue", "decide"):
            continue
        command = group.get_command(group.make_context("signoff", [name]), name)  # type: ignore[attr-defined]
        assert command is not None, line
        command.make_context(name, list(args))  # raises on an unknown option or a missing value
