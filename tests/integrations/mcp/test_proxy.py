"""`signoff-mcp proxy`: an upstream MCP server's tools gated by signoff, through the mcp client."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations
from tests.integrations.mcp.conftest import reviewer_deciding
from tests.support.server import World

import signoff
from signoff import Risk
from signoff_mcp import ProxyOptions, create_proxy, risk_for

pytestmark = pytest.mark.anyio


def upstream(deleted: list[str]) -> MCPServer:
    """A git-hosting MCP server: one destructive tool, one read-only tool."""
    server = MCPServer("git")

    @server.tool(annotations=ToolAnnotations(destructive_hint=True))
    def delete_branch(branch: str) -> str:
        """Delete a branch."""
        deleted.append(branch)
        return f"deleted {branch}"

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    def list_branches() -> str:
        """List branches."""
        return "main, dev"

    return server


def proxy_for(world: World, deleted: list[str], **options: Any) -> Any:
    key = world.agent_key()
    name = f"git{uuid.uuid4().hex[:6]}"
    return create_proxy(
        upstream(deleted),
        ProxyOptions(name=name, **options),
        lambda: signoff.AsyncClient(base_url=world.url, api_key=key),
    ), f"mcp.{name}.delete_branch"


def text(result: Any) -> str:
    return "".join(getattr(part, "text", "") for part in result.content)


async def test_gated_tool_is_refused_until_approved_and_approval_is_used_once(
    signoff_world: World,
) -> None:
    deleted: list[str] = []
    proxy, action = proxy_for(signoff_world, deleted, wait_seconds=1)
    async with Client(proxy) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert names == {"delete_branch", "list_branches"}
        first = await client.call_tool("delete_branch", {"branch": "old"})
        assert first.is_error
        assert "pending" in text(first)
        assert deleted == []
        with reviewer_deciding(signoff_world, "approve", action=action) as decided:
            again = await client.call_tool("delete_branch", {"branch": "old"})
            for _ in range(60):  # each call waits 1 s: keep calling, as the model is told to
                if not again.is_error:
                    break
                assert "pending" in text(again)
                again = await client.call_tool("delete_branch", {"branch": "old"})
        assert decided
        assert not again.is_error, text(again)
        assert text(again) == "deleted old"
        assert deleted == ["old"]
        # The approval is used up: the same call needs a new one.
        third = await client.call_tool("delete_branch", {"branch": "old"})
        assert third.is_error
        assert deleted == ["old"]


async def test_rejected_call_is_not_forwarded(signoff_world: World) -> None:
    deleted: list[str] = []
    proxy, action = proxy_for(signoff_world, deleted, wait_seconds=25)
    with reviewer_deciding(signoff_world, "reject", action=action, comment="that is main's twin"):
        async with Client(proxy) as client:
            result = await client.call_tool("delete_branch", {"branch": "main2"})
    assert result.is_error
    assert "that is main's twin" in text(result)
    assert deleted == []


async def test_allow_listed_tool_runs_without_a_request() -> None:
    deleted: list[str] = []
    proxy = create_proxy(
        upstream(deleted),
        ProxyOptions(name="git", allow=frozenset({"list_branches"})),
        lambda: signoff.AsyncClient(base_url="http://127.0.0.1:9", api_key="sk_x", retries=0),
    )
    async with Client(proxy) as client:
        listed = await client.call_tool("list_branches", {})
        gated = await client.call_tool("delete_branch", {"branch": "x"})
    assert text(listed) == "main, dev"
    assert gated.is_error  # signoff unreachable: fail closed
    assert deleted == []


def test_annotations_only_raise_risk() -> None:
    import mcp_types as types

    read_only = types.Tool(
        name="t", input_schema={"type": "object"},
        annotations=types.ToolAnnotations(read_only_hint=True),
    )  # fmt: skip
    plain = types.Tool(name="t", input_schema={"type": "object"})
    untrusted = ProxyOptions(name="x")
    trusted = ProxyOptions(name="x", trusted=True)
    assert risk_for(read_only, untrusted) is Risk.HIGH
    assert risk_for(plain, trusted) is Risk.HIGH
    assert risk_for(read_only, trusted) is Risk.MEDIUM
    assert risk_for(read_only, ProxyOptions(name="x", trusted=True, base_risk=Risk.CRITICAL)) is (
        Risk.CRITICAL
    )


async def test_proxy_console_script_over_stdio(signoff_world: World, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    name = f"git{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "SIGNOFF_URL": signoff_world.url,
        "SIGNOFF_API_KEY": signoff_world.agent_key(),
        "UPSTREAM_LEDGER": str(ledger),
    }
    upstream_script = str(Path(__file__).with_name("upstream_server.py"))
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "signoff_mcp.cli", "proxy", "--name", name, "--wait-seconds", "25",
              "--", sys.executable, upstream_script],
        env=env,
    )  # fmt: skip
    async with Client(params) as client:
        with reviewer_deciding(signoff_world, "reject", action=f"mcp.{name}.delete_branch"):
            refused = await client.call_tool("delete_branch", {"branch": "main"})
        with reviewer_deciding(signoff_world, "approve", action=f"mcp.{name}.delete_branch"):
            done = await client.call_tool("delete_branch", {"branch": "dev"})
    assert refused.is_error
    assert not done.is_error, text(done)
    assert ledger.read_text().split() == ["dev"]


async def test_edited_arguments_are_forwarded(signoff_world: World) -> None:
    deleted: list[str] = []
    proxy, action = proxy_for(signoff_world, deleted, wait_seconds=25)
    with reviewer_deciding(
        signoff_world, "edit", action=action, arguments={"branch": "feature-old"}
    ):
        async with Client(proxy) as client:
            result = await client.call_tool("delete_branch", {"branch": "feature"})
    assert not result.is_error, text(result)
    assert deleted == ["feature-old"]
