"""`signoff-claude-code install [--project|--user]`: add the hook to Claude Code's settings.

Writes one `hooks.PreToolUse` entry into `.claude/settings.json` (project, the default) or
`~/.claude/settings.json` (user), keeping everything else in the file. The handler has
`"onFailure": "block"`, so a hook that crashes or times out blocks the call instead of falling
through to the normal permission rules, a timeout, and a status message. Running it again
replaces the earlier signoff entry rather than adding a second one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

__all__ = ["HOOK_COMMAND", "hook_entry", "install", "main", "settings_path"]

HOOK_COMMAND = "signoff-claude-hook"
DEFAULT_TIMEOUT = 600
"""Seconds Claude Code gives the hook; the hook itself stops waiting 30 s earlier."""


def settings_path(scope: str, project_dir: Path | None = None) -> Path:
    """The settings file for `scope` ("project" or "user")."""
    if scope == "user":
        return Path.home() / ".claude" / "settings.json"
    return (project_dir or Path.cwd()) / ".claude" / "settings.json"


def hook_entry(
    *, command: str = HOOK_COMMAND, timeout: int = DEFAULT_TIMEOUT, matcher: str = "*"
) -> dict[str, Any]:
    """The `PreToolUse` entry signoff installs."""
    wait = max(1, timeout - 30)
    return {
        "matcher": matcher,
        "hooks": [
            {
                "type": "command",
                "command": f"{command} --wait {wait}",
                "timeout": timeout,
                "onFailure": "block",
                "statusMessage": "Waiting for approval in signoff…",
            }
        ],
    }


def _is_ours(entry: Any) -> bool:
    if not isinstance(entry, dict):
        return False
    hooks = cast(dict[str, Any], entry).get("hooks")
    if not isinstance(hooks, list):
        return False
    return any(
        isinstance(h, dict)
        and any(
            mark in str(cast(dict[str, Any], h).get("command", ""))
            for mark in (HOOK_COMMAND, "signoff_claude_code.hook")
        )
        for h in cast(list[Any], hooks)
    )


def install(path: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """Merge `entry` into the settings file at `path` (atomically) and return the new settings.

    Raises ValueError if the existing file is not a JSON object; it is then left untouched.
    """
    settings: dict[str, Any] = {}
    if path.exists():
        text = path.read_text(encoding="utf-8")
        if text.strip():
            loaded = json.loads(text)
            if not isinstance(loaded, dict):
                raise ValueError(f"{path} does not hold a JSON object")
            settings = cast(dict[str, Any], loaded)
    hooks = settings.setdefault("hooks", {})
    if not isinstance(hooks, dict):
        raise ValueError(f"{path}: 'hooks' is not an object")
    hooks = cast(dict[str, Any], hooks)
    pre = hooks.setdefault("PreToolUse", [])
    if not isinstance(pre, list):
        raise ValueError(f"{path}: 'hooks.PreToolUse' is not a list")
    hooks["PreToolUse"] = [e for e in cast(list[Any], pre) if not _is_ours(e)] + [entry]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".settings.", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(settings, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `signoff-claude-code`."""
    parser = argparse.ArgumentParser(prog="signoff-claude-code", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    cmd = commands.add_parser("install", help="add the signoff PreToolUse hook")
    scope = cmd.add_mutually_exclusive_group()
    scope.add_argument("--project", dest="scope", action="store_const", const="project")
    scope.add_argument("--user", dest="scope", action="store_const", const="user")
    cmd.add_argument("--dir", type=Path, default=None, help="project directory (default: cwd)")
    cmd.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT, help="hook timeout, seconds")
    cmd.add_argument("--matcher", default="*", help="which tools the hook sees (default: all)")
    cmd.add_argument("--command", dest="hook_command", default=HOOK_COMMAND)
    args = parser.parse_args(argv)
    path = settings_path(args.scope or "project", args.dir)
    entry = hook_entry(command=args.hook_command, timeout=args.timeout, matcher=args.matcher)
    try:
        install(path, entry)
    except (ValueError, OSError) as exc:
        print(f"signoff-claude-code: {exc}", file=sys.stderr)
        return 1
    print(f"signoff hook installed in {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
