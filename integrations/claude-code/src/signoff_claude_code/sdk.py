"""Claude Agent SDK helpers: a `can_use_tool` callback and a PreToolUse hook callback.

Both ask signoff exactly like the command hook (same action names, redaction, allow-list and
idempotency keys) but in-process with an `AsyncClient`, and both fail closed::

    options = ClaudeAgentOptions(
        can_use_tool=signoff_can_use_tool(config),
        hooks={"PreToolUse": [signoff_hook_matcher(config)]},
    )

Needs `claude-agent-sdk` (`pip install signoff-claude-code[sdk]`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, cast

from claude_agent_sdk import (
    HookContext,
    HookInput,
    HookJSONOutput,
    HookMatcher,
    PermissionResultAllow,
    PermissionResultDeny,
    ToolPermissionContext,
)
from claude_agent_sdk.types import CanUseTool, HookCallback

import signoff
from signoff import AsyncClient, Status
from signoff_claude_code.config import HookConfig, is_allowed
from signoff_claude_code.hook import Answer, answer_for, build_request

__all__ = ["adecide", "signoff_can_use_tool", "signoff_hook_matcher", "signoff_pre_tool_use"]


async def adecide(event: Mapping[str, Any], config: HookConfig) -> Answer:
    """The async twin of `hook.decide`: the answer to one PreToolUse event."""
    tool_name = event.get("tool_name")
    if not isinstance(tool_name, str) or not tool_name:
        raise ValueError("the event has no tool_name")
    tool_input: Any = event.get("tool_input") or {}
    if isinstance(tool_input, dict) and is_allowed(
        tool_name, cast(dict[str, Any], tool_input), config.allow
    ):
        return ("allow", f"{tool_name} is on signoff's local allow-list.", None)
    payload, redacted = build_request(event, config)
    async with AsyncClient(base_url=config.url, api_key=config.api_key or "") as client:
        request = await client.create_request(payload)
        if request.status is Status.PENDING:
            try:
                request = await client.wait(request.id, timeout=config.wait_seconds)
            except signoff.TimeoutError:
                try:
                    request = await client.cancel(request.id, reason="the agent stopped waiting")
                except signoff.Conflict:
                    request = await client.get_request(request.id)
        return answer_for(request, redacted)


async def _safe(event: Mapping[str, Any], config: HookConfig) -> Answer:
    try:
        return await adecide(event, config)
    except Exception as exc:  # every failure is a deny
        return ("deny", f"Not run: signoff could not approve this call ({exc}).", None)


def signoff_can_use_tool(config: HookConfig, *, session_id: str | None = None) -> CanUseTool:
    """A `can_use_tool` callback: allow only what signoff approves (or the allow-list allows)."""
    session = session_id or f"sdk-{uuid.uuid4().hex}"

    async def can_use_tool(
        tool_name: str, tool_input: dict[str, Any], context: ToolPermissionContext
    ) -> PermissionResultAllow | PermissionResultDeny:
        event = {
            "session_id": session,
            "tool_use_id": context.tool_use_id or f"anon-{uuid.uuid4().hex}",
            "tool_name": tool_name,
            "tool_input": tool_input,
        }
        decision, reason, updated = await _safe(event, config)
        if decision == "allow":
            return PermissionResultAllow(updated_input=updated)
        return PermissionResultDeny(message=reason)

    return can_use_tool


def signoff_pre_tool_use(config: HookConfig) -> HookCallback:
    """A PreToolUse hook callback answering allow / deny from signoff."""

    async def pre_tool_use(
        hook_input: HookInput, tool_use_id: str | None, _context: HookContext
    ) -> HookJSONOutput:
        event = dict(cast(Mapping[str, Any], hook_input))
        if tool_use_id and not event.get("tool_use_id"):
            event["tool_use_id"] = tool_use_id
        decision, reason, updated = await _safe(event, config)
        specific: dict[str, Any] = {
            "hookEventName": "PreToolUse",
            "permissionDecision": "allow" if decision == "allow" else "deny",
            "permissionDecisionReason": reason,
        }
        if updated is not None:
            specific["updatedInput"] = updated
        return cast(HookJSONOutput, {"hookSpecificOutput": specific})

    return pre_tool_use


def signoff_hook_matcher(
    config: HookConfig, *, matcher: str = "*", timeout: float = 600.0
) -> HookMatcher:
    """The PreToolUse `HookMatcher` with `on_failure="block"`: a crash never lets a call by."""
    return HookMatcher(
        matcher=matcher, hooks=[signoff_pre_tool_use(config)], timeout=timeout, on_failure="block"
    )
