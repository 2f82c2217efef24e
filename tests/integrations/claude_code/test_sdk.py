"""The Claude Agent SDK callbacks against a real signoff server (skipped without the SDK)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

pytest.importorskip("claude_agent_sdk", reason="claude-agent-sdk is not installed")

from claude_agent_sdk import PermissionResultAllow, PermissionResultDeny, ToolPermissionContext
from tests.integrations.claude_code.conftest import reviewer_deciding
from tests.support.server import World

from signoff_claude_code import HookConfig
from signoff_claude_code.sdk import (
    signoff_can_use_tool,
    signoff_hook_matcher,
    signoff_pre_tool_use,
)

pytestmark = pytest.mark.anyio


def config_for(world: World) -> HookConfig:
    return HookConfig(url=world.url, api_key=world.agent_key(), wait_seconds=60)


async def test_can_use_tool_allows_on_approve(signoff_world: World) -> None:
    session = f"sdk-{uuid.uuid4().hex[:8]}"
    callback = signoff_can_use_tool(config_for(signoff_world), session_id=session)
    context = ToolPermissionContext(tool_use_id="toolu_1")
    with reviewer_deciding(signoff_world, "approve", session_id=session):
        result = await callback("Bash", {"command": "make deploy"}, context)
    assert isinstance(result, PermissionResultAllow)


async def test_can_use_tool_denies_on_reject(signoff_world: World) -> None:
    session = f"sdk-{uuid.uuid4().hex[:8]}"
    callback = signoff_can_use_tool(config_for(signoff_world), session_id=session)
    context = ToolPermissionContext(tool_use_id="toolu_2")
    with reviewer_deciding(signoff_world, "reject", session_id=session, comment="no deploys"):
        result = await callback("Bash", {"command": "make deploy"}, context)
    assert isinstance(result, PermissionResultDeny)
    assert "no deploys" in result.message


async def test_pre_tool_use_hook_denies_when_signoff_is_down() -> None:
    hook = signoff_pre_tool_use(HookConfig(url="http://127.0.0.1:9", api_key="sk_x"))
    event: Any = {
        "session_id": "s", "transcript_path": "t", "cwd": "/", "hook_event_name": "PreToolUse",
        "tool_name": "Bash", "tool_input": {"command": "ls"}, "tool_use_id": "toolu_3",
    }  # fmt: skip
    output: Any = await hook(event, "toolu_3", {"signal": None})
    assert output["hookSpecificOutput"]["permissionDecision"] == "deny"


def test_matcher_blocks_on_failure() -> None:
    matcher = signoff_hook_matcher(HookConfig(url="http://127.0.0.1:9"))
    assert matcher.on_failure == "block"
    assert matcher.matcher == "*"
