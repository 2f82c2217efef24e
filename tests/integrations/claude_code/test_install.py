"""`signoff-claude-code install`: merging the hook into Claude Code's settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from signoff_claude_code.install import main


def test_install_merges_and_is_idempotent(tmp_path: Path) -> None:
    settings = tmp_path / ".claude" / "settings.json"
    settings.parent.mkdir()
    other = {"matcher": "Write", "hooks": [{"type": "command", "command": "lint.sh"}]}
    settings.write_text(json.dumps({"model": "opus", "hooks": {"PreToolUse": [other]}}))
    assert main(["install", "--project", "--dir", str(tmp_path)]) == 0
    assert main(["install", "--project", "--dir", str(tmp_path), "--timeout", "300"]) == 0
    data = json.loads(settings.read_text())
    assert data["model"] == "opus"
    pre = data["hooks"]["PreToolUse"]
    assert pre[0] == other
    assert len(pre) == 2
    [handler] = pre[1]["hooks"]
    assert handler["type"] == "command"
    assert handler["onFailure"] == "block"
    assert handler["timeout"] == 300
    assert handler["command"] == "signoff-claude-hook --wait 270"
    assert handler["statusMessage"]


def test_user_scope_writes_under_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["install", "--user"]) == 0
    data = json.loads((tmp_path / ".claude" / "settings.json").read_text())
    assert data["hooks"]["PreToolUse"][0]["hooks"][0]["onFailure"] == "block"


def test_refuses_to_overwrite_a_broken_file(tmp_path: Path) -> None:
    settings = tmp_path / ".claude" / "settings.json"
    settings.parent.mkdir()
    settings.write_text("[1, 2]")
    assert main(["install", "--dir", str(tmp_path)]) == 1
    assert settings.read_text() == "[1, 2]"
