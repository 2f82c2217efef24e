"""Hook configuration: environment variables over a small JSON file over defaults.

The file is the first of `$SIGNOFF_CLAUDE_CONFIG`, `<cwd>/.claude/signoff.json` and
`~/.config/signoff/claude-code.json` that exists. Keys (all optional)::

    {"url": "http://127.0.0.1:8080", "api_key": "sk_...", "allow": ["Read", "Bash(git status*)"],
     "wait_seconds": 570, "headless": false, "headless_wait_seconds": 5, "route": "dev-lead",
     "risk": "medium"}

Environment: `SIGNOFF_URL`, `SIGNOFF_API_KEY`, `SIGNOFF_CLAUDE_ALLOW` (comma-separated
patterns, replacing the file's list), `SIGNOFF_CLAUDE_WAIT`, `SIGNOFF_CLAUDE_HEADLESS` (1/0).
An allow pattern is a tool-name glob (`Read`, `mcp__docs__*`), optionally with a glob for the
call's main argument in parentheses: `Bash(git status*)`, `Edit(src/*)`.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from signoff import Risk

__all__ = ["DEFAULT_ALLOW", "DEFAULT_WAIT_SECONDS", "HookConfig", "is_allowed", "load_config"]

DEFAULT_ALLOW: tuple[str, ...] = ("Read", "Glob", "Grep", "LS", "TodoWrite")
"""Read-only tools that need no approval unless the configuration says otherwise."""

DEFAULT_WAIT_SECONDS = 570.0
"""How long the hook waits: inside Claude Code's default 600 s hook timeout, with a margin."""

_PATTERN = re.compile(r"^(?P<tool>[^()]+?)(?:\((?P<arg>.*)\))?$")

_MAIN_ARGUMENT = ("command", "file_path", "path", "notebook_path", "url", "pattern", "query")


@dataclass(frozen=True, kw_only=True)
class HookConfig:
    """Everything the hook needs to know besides the event itself."""

    url: str | None = None
    api_key: str | None = None
    allow: tuple[str, ...] = DEFAULT_ALLOW
    wait_seconds: float = DEFAULT_WAIT_SECONDS
    headless: bool = False
    headless_wait_seconds: float = 5.0
    route: str | None = None
    risk: Risk = Risk.MEDIUM
    source: str | None = field(default=None, compare=False)


def _truthy(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _config_file(cwd: str | None) -> Path | None:
    candidates: list[Path] = []
    if explicit := os.environ.get("SIGNOFF_CLAUDE_CONFIG"):
        candidates.append(Path(explicit))
    if cwd:
        candidates.append(Path(cwd) / ".claude" / "signoff.json")
    candidates.append(Path.home() / ".config" / "signoff" / "claude-code.json")
    return next((path for path in candidates if path.is_file()), None)


def load_config(cwd: str | None = None, *, wait_override: float | None = None) -> HookConfig:
    """The configuration for a hook run in `cwd`. Raises ValueError on a malformed file."""
    raw: dict[str, Any] = {}
    path = _config_file(cwd)
    if path is not None:
        loaded = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a JSON object")
        raw = dict(loaded)  # pyright: ignore[reportUnknownArgumentType]
    env = os.environ
    allow: Any = raw.get("allow", list(DEFAULT_ALLOW))
    if "SIGNOFF_CLAUDE_ALLOW" in env:
        allow = [p.strip() for p in env["SIGNOFF_CLAUDE_ALLOW"].split(",") if p.strip()]
    if not isinstance(allow, list) or not all(isinstance(p, str) for p in allow):  # pyright: ignore[reportUnknownVariableType]
        raise ValueError("'allow' must be a list of strings")
    wait_raw: Any = raw.get("wait_seconds", DEFAULT_WAIT_SECONDS)
    wait_env = env.get("SIGNOFF_CLAUDE_WAIT")
    wait = float(wait_env) if wait_env is not None else float(wait_raw)
    if wait_override is not None:
        wait = wait_override
    headless = bool(raw.get("headless", False))
    if "SIGNOFF_CLAUDE_HEADLESS" in env:
        headless = _truthy(env["SIGNOFF_CLAUDE_HEADLESS"])
    return HookConfig(
        url=env.get("SIGNOFF_URL") or raw.get("url"),
        api_key=env.get("SIGNOFF_API_KEY") or raw.get("api_key"),
        allow=tuple(allow),  # pyright: ignore[reportUnknownArgumentType]
        wait_seconds=max(0.0, wait),
        headless=headless,
        headless_wait_seconds=max(0.0, float(raw.get("headless_wait_seconds", 5.0))),
        route=raw.get("route"),
        risk=Risk(raw.get("risk", "medium")),
        source=str(path) if path else None,
    )


def _main_argument(tool_input: Mapping[str, Any]) -> str | None:
    for name in _MAIN_ARGUMENT:
        value = tool_input.get(name)
        if isinstance(value, str):
            return value
    return None


def is_allowed(tool_name: str, tool_input: Mapping[str, Any], patterns: tuple[str, ...]) -> bool:
    """True when a pattern of the local allow-list matches this call."""
    for pattern in patterns:
        match = _PATTERN.match(pattern.strip())
        if match is None or not fnmatch.fnmatchcase(tool_name, match["tool"].strip()):
            continue
        wanted = match["arg"]
        if wanted is None:
            return True
        argument = _main_argument(tool_input)
        # A command joined with `;`, `&&`, `|`, `$(`, backticks or newlines is never allowed by
        # a prefix pattern: `git status; rm -rf /` must not ride on `Bash(git status*)`.
        if (
            argument is not None
            and not re.search(r"[;&|`\n<>]|\$\(", argument)
            and fnmatch.fnmatchcase(argument, wanted)
        ):
            return True
    return False
