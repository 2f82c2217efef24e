"""The signoff MCP server through the OpenAI Agents SDK's own MCP client (stdio), with a
scripted model: the agent asks for approval and reads the decision as the tool's output."""

from __future__ import annotations

import json
import os
import sys
import uuid
from typing import Any

import pytest

pytest.importorskip("agents", reason="the OpenAI Agents SDK is not installed")

from agents import Agent, RunConfig, Runner
from agents.mcp import MCPServerStdio
from agents.testing import ScriptedModel, assistant_message, function_call
from tests.integrations.mcp.conftest import reviewer_deciding
from tests.support.server import World

pytestmark = pytest.mark.anyio
INVOICE = {"invoice_id": "INV-1042", "amount": "12500.00", "currency": "EUR"}


def tool_output(model: ScriptedModel) -> dict[str, Any]:
    """The decision the model read back from `request_approval`."""
    last = model.last_call
    assert last is not None
    outputs = [
        item
        for item in last.input
        if isinstance(item, dict) and item.get("type") == "function_call_output"
    ]
    assert outputs, "the model saw no tool output"
    raw: Any = outputs[-1]["output"]  # pyright: ignore[reportUnknownVariableType]
    value: Any = json.loads(raw) if isinstance(raw, str) else raw
    if isinstance(value, list) and value:
        value = value[0]  # the SDK hands MCP text content over as input_text parts
    while isinstance(value, dict) and "approved" not in value and "text" in value:
        value = json.loads(value["text"])
    assert isinstance(value, dict), raw
    return value  # pyright: ignore[reportUnknownVariableType]


@pytest.mark.parametrize(("verdict", "approved"), [("approve", True), ("reject", False)])
async def test_agent_asks_through_the_sdks_mcp_client(
    signoff_world: World, verdict: str, approved: bool
) -> None:
    action = f"payments.release_{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "SIGNOFF_URL": signoff_world.url,
        "SIGNOFF_API_KEY": signoff_world.agent_key(),
    }
    server = MCPServerStdio(
        params={"command": sys.executable, "args": ["-m", "signoff_mcp.cli", "serve"], "env": env},
        client_session_timeout_seconds=60,
        name="signoff",
    )
    model = ScriptedModel(
        [
            [
                function_call(
                    "request_approval",
                    {"action": action, "arguments": INVOICE, "wait_seconds": 25},
                    call_id="call_mcp_1",
                )
            ],
            [assistant_message("done")],
        ]
    )
    async with server:
        agent = Agent(name="finance-agent", model=model, mcp_servers=[server])
        with reviewer_deciding(signoff_world, verdict, action=action, comment="checked"):
            result = await Runner.run(
                agent, "pay INV-1042", run_config=RunConfig(tracing_disabled=True)
            )
    assert result.final_output == "done"
    decision = tool_output(model)
    assert decision["approved"] is approved
