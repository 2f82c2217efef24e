"""The approval MCP server through the `mcp` SDK's own client, against a real signoff server.

Approve (with progress notifications), edit, reject, respond and a server-side timeout through
this client are in test_conformance.py, named after the conformance scenarios; this module has
pending-then-wait, failing closed, and the two transports of the console script.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from tests.integrations.mcp.conftest import (
    INVOICE,
    result_of,
    reviewer_deciding,
    server_for,
    unique_action,
)
from tests.support.server import World, free_port

import signoff
from signoff_mcp import create_server

pytestmark = pytest.mark.anyio


async def test_tools_are_listed_with_keep_waiting_instructions(signoff_world: World) -> None:
    async with Client(server_for(signoff_world)) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == {"request_approval", "wait_for_approval", "get_request"}
    assert "wait_for_approval" in (tools["request_approval"].description or "")
    assert "pending" in (tools["wait_for_approval"].description or "")


async def test_pending_then_wait_for_approval(signoff_world: World) -> None:
    action = unique_action()
    async with Client(server_for(signoff_world)) as client:
        first = result_of(
            await client.call_tool(
                "request_approval", {"action": action, "arguments": INVOICE, "wait_seconds": 0.5}
            )
        )
        assert first["status"] == "pending"
        assert first["approved"] is False
        assert "wait_for_approval" in first["instruction"]
        # Asking again with the same call is the same request, not a second one.
        again = result_of(
            await client.call_tool(
                "request_approval", {"action": action, "arguments": INVOICE, "wait_seconds": 0}
            )
        )
        assert again["request_id"] == first["request_id"]
        with reviewer_deciding(signoff_world, "approve", action=action):
            waited = result_of(
                await client.call_tool(
                    "wait_for_approval",
                    {"request_id": first["request_id"], "wait_seconds": 25},
                )
            )
        read = result_of(await client.call_tool("get_request", {"request_id": first["request_id"]}))
    assert waited["status"] == "approved"
    assert waited["approved"] is True
    assert read["approved"] is True


async def test_signoff_down_fails_closed() -> None:
    server = create_server(
        lambda: signoff.AsyncClient(base_url="http://127.0.0.1:9", api_key="sk_x", retries=0)
    )
    async with Client(server) as client:
        data = result_of(await client.call_tool("request_approval", {"action": "payments.release"}))
    assert data["status"] == "error"
    assert data["approved"] is False


async def test_stdio_console_script(signoff_world: World) -> None:
    action = unique_action()
    env = {
        **os.environ,
        "SIGNOFF_URL": signoff_world.url,
        "SIGNOFF_API_KEY": signoff_world.agent_key(),
    }
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "signoff_mcp.cli", "serve"], env=env
    )
    with reviewer_deciding(signoff_world, "approve", action=action):
        async with Client(params) as client:
            data = result_of(
                await client.call_tool(
                    "request_approval",
                    {"action": action, "arguments": INVOICE, "wait_seconds": 25},
                )
            )
    assert data["approved"] is True


@contextmanager
def http_server(env: dict[str, str]) -> Iterator[str]:
    """`signoff-mcp serve --transport http` on a free port; its MCP URL. Terminated on exit."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "signoff_mcp.cli", "serve", "--transport", "http",
         "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, "the server exited"
                assert time.monotonic() < deadline, "the server never listened"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_streamable_http_console_script(signoff_world: World) -> None:
    action = unique_action()
    env = {
        **os.environ,
        "SIGNOFF_URL": signoff_world.url,
        "SIGNOFF_API_KEY": signoff_world.agent_key(),
    }
    with (
        http_server(env) as url,
        reviewer_deciding(signoff_world, "reject", action=action, comment="no"),
    ):
        async with Client(url) as client:
            data = result_of(
                await client.call_tool(
                    "request_approval",
                    {"action": action, "arguments": INVOICE, "wait_seconds": 25},
                )
            )
    assert data["status"] == "rejected"
    assert data["approved"] is False
