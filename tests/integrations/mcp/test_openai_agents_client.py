"""The signoff MCP server (`signoff-mcp serve`, stdio) through the OpenAI Agents SDK's own MCP
client, with a scripted model that follows the tools' instructions (tests/integrations/mcp/
agent.py) and a real gated `release_payment` tool, against a real signoff server over HTTP:
approve, reject, pending-then-wait and a server-side timeout."""

from __future__ import annotations

import os
import sys
import uuid

import pytest

pytest.importorskip("agents", reason="the OpenAI Agents SDK is not installed")

from agents.mcp import MCPServerStdio
from tests.integrations.mcp.agent import ApprovalAgent
from tests.integrations.mcp.conftest import reviewer_deciding
from tests.support.server import World

pytestmark = pytest.mark.anyio
INVOICE = {"invoice_id": "INV-1042", "amount": "12500.00", "currency": "EUR"}


def signoff_server(world: World) -> MCPServerStdio:
    """`signoff-mcp serve` on stdio, as the Agents SDK starts it.

    The SDK's MCP client gives one tool call 5 s by default; the approval tools wait up to
    `wait_seconds` (≤ 25 s), so the session timeout must be longer.
    """
    env = {**os.environ, "SIGNOFF_URL": world.url, "SIGNOFF_API_KEY": world.agent_key()}
    return MCPServerStdio(
        params={"command": sys.executable, "args": ["-m", "signoff_mcp.cli", "serve"], "env": env},
        client_session_timeout_seconds=60,
        name="signoff",
    )


def unique_action() -> str:
    return f"payments.release_{uuid.uuid4().hex[:6]}"


async def test_approve_then_the_agent_releases_the_payment(signoff_world: World) -> None:
    agent = ApprovalAgent(unique_action(), INVOICE)
    with reviewer_deciding(signoff_world, "approve", action=agent.action, comment="checked"):
        async with signoff_server(signoff_world) as server:
            final = await agent.run(server)
    assert agent.calls == ["request_approval"]
    assert agent.read[-1]["approved"] is True
    assert agent.released == [INVOICE]
    assert final.startswith("released")


async def test_reject_and_the_agent_reads_why(signoff_world: World) -> None:
    agent = ApprovalAgent(unique_action(), INVOICE)
    with reviewer_deciding(
        signoff_world, "reject", action=agent.action, comment="vendor bank details changed"
    ):
        async with signoff_server(signoff_world) as server:
            final = await agent.run(server)
    [answer] = agent.read
    assert (answer["status"], answer["approved"]) == ("rejected", False)
    assert agent.released == []
    assert "vendor bank details changed" in final


async def test_pending_then_wait_for_approval(signoff_world: World) -> None:
    # request_approval waits 1 s and answers pending; the reviewer decides only after the model
    # has read that, while it waits with wait_for_approval.
    agent = ApprovalAgent(unique_action(), INVOICE, ask_wait_seconds=1)
    with reviewer_deciding(
        signoff_world, "approve", action=agent.action, after=agent.saw_pending, delay=1.0
    ) as decided:
        async with signoff_server(signoff_world) as server:
            await agent.run(server)
    assert agent.calls[0] == "request_approval"
    assert agent.read[0]["status"] == "pending"
    assert agent.read[0]["approved"] is False
    assert "wait_for_approval" in agent.read[0]["instruction"]
    assert set(agent.calls[1:]) == {"wait_for_approval"}
    assert {answer["request_id"] for answer in agent.read} == set(decided)
    assert agent.read[-1]["status"] == "approved"
    assert agent.released == [INVOICE]


async def test_server_side_timeout_fails_closed(deadline_world: World) -> None:
    # Nobody decides; the policy's 3 s SLA closes the request while request_approval waits.
    agent = ApprovalAgent(unique_action(), INVOICE, ask_wait_seconds=1)
    async with signoff_server(deadline_world) as server:
        final = await agent.run(server)
    assert agent.read[0]["status"] == "pending"
    answer = agent.read[-1]
    assert (answer["status"], answer["approved"]) == ("expired", False)
    assert answer["verdict"] == "reject"
    assert "arguments" not in answer
    assert agent.released == [], "the gated action never ran"
    assert "deadline" in final
