"""docs/claude-code.md's Python snippet (Claude Agent SDK helpers), run as written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("claude_agent_sdk", reason="claude-agent-sdk is absent")

from claude_agent_sdk import ClaudeAgentOptions, HookMatcher

DOC = Path(__file__).resolve().parents[3] / "docs" / "claude-code.md"
PLACEHOLDER_URL = "http://127.0.0.1:8080"


def snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_the_page_has_the_snippet_it_promises() -> None:
    assert len(snippets()) == 1


async def denied_when_signoff_is_down(options: ClaudeAgentOptions) -> dict[str, Any]:
    [matcher] = (options.hooks or {})["PreToolUse"]
    [hook] = matcher.hooks
    event: Any = {
        "session_id": "s", "transcript_path": "t", "cwd": "/", "hook_event_name": "PreToolUse",
        "tool_name": "Bash", "tool_input": {"command": "make deploy"}, "tool_use_id": "toolu_1",
    }  # fmt: skip
    output: Any = await hook(event, "toolu_1", {"signal": None})
    return output["hookSpecificOutput"]


@pytest.mark.anyio
async def test_sdk_snippet_builds_options_that_fail_closed() -> None:
    namespace: dict[str, Any] = {"__name__": "claude_code_docs"}
    code = snippets()[0]
    assert PLACEHOLDER_URL in code
    # Nothing listens on port 9: the hook below must deny, never allow.
    code = code.replace(PLACEHOLDER_URL, "http://127.0.0.1:9")
    exec(compile(code, f"{DOC}:sdk", "exec"), namespace)  # noqa: S102
    options = namespace["options"]
    assert isinstance(options, ClaudeAgentOptions)
    assert callable(options.can_use_tool)
    [matcher] = (options.hooks or {})["PreToolUse"]
    assert isinstance(matcher, HookMatcher)
    assert matcher.on_failure == "block"
    specific = await denied_when_signoff_is_down(options)
    assert specific["permissionDecision"] == "deny"
