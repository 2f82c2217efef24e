"""An OpenAI Agents SDK agent that uses the signoff MCP server the way its tools tell a model to.

The model is the SDK's own `ScriptedModel`, each step a responder that reads what the last tool
returned: it asks with `request_approval`, keeps calling `wait_for_approval` while the answer is
`pending`, calls the gated `release_payment` tool only when `approved` is true (with the returned
arguments), and otherwise ends the run with the instruction it was given. `release_payment` is a
real function tool that records each payment it made.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from agents import Agent, FunctionTool, RunConfig, Runner, function_tool
from agents.mcp import MCPServer
from agents.testing import ModelCall, ModelStep, ScriptedModel, assistant_message, function_call
from agents.testing.model import ModelStepResult

__all__ = ["ApprovalAgent", "decision_in"]


def decision_in(raw: Any) -> dict[str, Any]:
    """The signoff tool's JSON answer inside a `function_call_output` item's output."""
    value: Any = json.loads(raw) if isinstance(raw, str) else raw
    if isinstance(value, list) and value:
        value = value[0]  # the SDK hands MCP text content over as input_text parts
    while isinstance(value, dict) and "approved" not in value and "text" in value:
        value = json.loads(value["text"])
    assert isinstance(value, dict), raw
    return value  # pyright: ignore[reportUnknownVariableType]


@dataclass
class ApprovalAgent:
    """A finance agent that releases one payment only with signoff's approval, via MCP."""

    action: str
    arguments: dict[str, Any]
    ask_wait_seconds: float = 25.0
    wait_seconds: float = 25.0
    read: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    """Every answer of a signoff tool the model read, in order."""
    calls: list[str] = field(default_factory=list[str])
    """The signoff tools the model called, in order."""
    released: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    """The payments `release_payment` really made."""
    saw_pending: threading.Event = field(default_factory=threading.Event)
    """Set once the model has read a `pending` answer."""
    final: str | None = None
    model: ScriptedModel = field(init=False)
    _tools_by_call: dict[str, str] = field(default_factory=dict[str, str])

    def __post_init__(self) -> None:
        self.model = ScriptedModel([ModelStep.respond(self._step)])

    def _call(self, name: str, arguments: dict[str, Any]) -> ModelStepResult:
        call_id = f"call_{len(self._tools_by_call) + 1}"
        self._tools_by_call[call_id] = name
        if name != "release_payment":
            self.calls.append(name)
        self.model.enqueue(ModelStep.respond(self._step))
        return [function_call(name, arguments, call_id=call_id)]

    def _finish(self, text: str) -> ModelStepResult:
        self.final = text
        return [assistant_message(text)]

    def _step(self, call: ModelCall) -> ModelStepResult:
        outputs = [
            item
            for item in call.input
            if isinstance(item, dict) and item.get("type") == "function_call_output"
        ]
        if not outputs:
            return self._call(
                "request_approval",
                {"action": self.action, "arguments": self.arguments,
                 "business_object": {"type": "invoice", "id": str(self.arguments["invoice_id"])},
                 "summary": "Release the invoice payment", "wait_seconds": self.ask_wait_seconds},
            )  # fmt: skip
        last: Any = outputs[-1]
        tool = self._tools_by_call[str(last["call_id"])]
        if tool == "release_payment":
            return self._finish(f"released: {last['output']}")
        answer = decision_in(last["output"])
        self.read.append(answer)
        if answer.get("status") == "pending":
            self.saw_pending.set()
            return self._call(
                "wait_for_approval",
                {"request_id": answer["request_id"], "wait_seconds": self.wait_seconds},
            )
        if answer.get("approved") is True:
            return self._call("release_payment", dict(answer["arguments"]))
        return self._finish(f"not released: {answer.get('instruction')}")

    def release_tool(self) -> FunctionTool:
        """The gated action: a real tool that records the payment it makes."""

        @function_tool
        def release_payment(invoice_id: str, amount: str, currency: str) -> str:
            """Release an approved invoice payment."""
            self.released.append({"invoice_id": invoice_id, "amount": amount, "currency": currency})
            return f"released {currency} {amount} for {invoice_id}"

        return release_payment

    async def run(self, server: MCPServer) -> str:
        """Run the agent with the signoff MCP server; its final output."""
        agent = Agent(name="finance-agent", mcp_servers=[server])
        return await self.run_as(agent)

    async def run_as(self, agent: Agent[Any]) -> str:
        """Run `agent` (its MCP servers connected) with this model and the gated tool."""
        scripted = agent.clone(model=self.model, tools=[*agent.tools, self.release_tool()])
        result = await Runner.run(
            scripted, "pay INV-1042", run_config=RunConfig(tracing_disabled=True), max_turns=30
        )
        return str(result.final_output)
