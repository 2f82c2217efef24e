"""A scripted Anthropic Messages API on loopback, for running the real Claude Code CLI.

Each `POST /v1/messages` gets the next scripted answer: while no tool result has come back the
model asks for `tool_use` (the calls the test chose, all in one assistant message), afterwards it
answers with text. Requests are recorded so a test can read what the CLI sent back (e.g. the
hook's deny reason).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

__all__ = ["ScriptedMessagesApi"]


def _tool_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, list):
            found.extend(
                block for block in content
                if isinstance(block, dict) and block.get("type") == "tool_result"
            )  # fmt: skip
    return found


class ScriptedMessagesApi:
    """An ASGI app answering like the Messages API, asking for one or more calls of one tool.

    `ScriptedMessagesApi("Bash", a)` asks for one Bash call; `ScriptedMessagesApi("Bash", a, b)`
    asks for two in the same assistant message (one step, two gated calls).
    """

    def __init__(self, tool_name: str, *tool_inputs: dict[str, Any]) -> None:
        if not tool_inputs:
            raise ValueError("give at least one tool input")
        self.tool_name = tool_name
        self.tool_inputs = tool_inputs
        self.requests: list[dict[str, Any]] = []
        self.issued: dict[str, dict[str, Any]] = {}
        """tool_use id → the input asked for under it."""
        self.app = Starlette(
            routes=[
                Route("/v1/messages", self.messages, methods=["POST"]),
                Route("/v1/messages/count_tokens", self.count_tokens, methods=["POST"]),
            ]
        )

    @property
    def tool_results(self) -> list[dict[str, Any]]:
        """Every tool_result block the CLI sent back, in order."""
        results: list[dict[str, Any]] = []
        for body in self.requests:
            for block in _tool_results(body):
                if block not in results:
                    results.append(block)
        return results

    def result_for(self, tool_input: dict[str, Any]) -> dict[str, Any]:
        """The last tool_result the CLI sent back for a call asked with `tool_input`."""
        found = [
            r for r in self.tool_results if self.issued.get(r.get("tool_use_id", "")) == tool_input
        ]
        assert found, f"no tool result for {tool_input}: {self.tool_results}"
        return found[-1]

    async def count_tokens(self, _request: Request) -> Response:
        return JSONResponse({"input_tokens": 10})

    async def messages(self, request: Request) -> Response:
        body: dict[str, Any] = await request.json()
        self.requests.append(body)
        tools = {t.get("name") for t in body.get("tools", []) if isinstance(t, dict)}
        if _tool_results(body) or self.tool_name not in tools:
            blocks: list[dict[str, Any]] = [{"type": "text", "text": "Done."}]
            stop = "end_turn"
        else:
            blocks = []
            for tool_input in self.tool_inputs:
                tool_use_id = f"toolu_{uuid.uuid4().hex[:20]}"
                self.issued[tool_use_id] = tool_input
                blocks.append({"type": "tool_use", "id": tool_use_id, "name": self.tool_name,
                               "input": tool_input})  # fmt: skip
            stop = "tool_use"
        message = {
            "id": f"msg_{uuid.uuid4().hex[:20]}", "type": "message", "role": "assistant",
            "model": body.get("model", "claude"), "content": blocks, "stop_reason": stop,
            "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 5},
        }  # fmt: skip
        if not body.get("stream"):
            return JSONResponse(message)
        return StreamingResponse(_sse(message), media_type="text/event-stream")


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n"


async def _sse(message: dict[str, Any]) -> AsyncIterator[str]:
    start = {**message, "content": [], "stop_reason": None}
    yield _event("message_start", {"message": start})
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            yield _event("content_block_start", {"index": index,
                         "content_block": {"type": "text", "text": ""}})  # fmt: skip
            yield _event("content_block_delta", {"index": index,
                         "delta": {"type": "text_delta", "text": block["text"]}})  # fmt: skip
        else:
            yield _event("content_block_start", {"index": index,
                         "content_block": {**block, "input": {}}})  # fmt: skip
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
            yield _event("content_block_delta", {"index": index, "delta": delta})
        yield _event("content_block_stop", {"index": index})
    yield _event("message_delta", {"delta": {"stop_reason": message["stop_reason"],
                 "stop_sequence": None}, "usage": {"output_tokens": 5}})  # fmt: skip
    yield _event("message_stop", {})
