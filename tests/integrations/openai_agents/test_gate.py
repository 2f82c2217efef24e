"""The OpenAI Agents SDK adapter with the real SDK, its ScriptedModel, and a real signoff server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from agents import Agent, FunctionTool, RunConfig, Runner, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call
from signoff_openai_agents import gate
from tests.support.server import World

import signoff
from signoff import AsyncClient, Status

pytestmark = pytest.mark.anyio
RUN = RunConfig(tracing_disabled=True)
INVOICE = {"invoice_id": "INV-1042", "amount": "12500.00", "currency": "EUR"}


class Payments:
    """The side effect under the gate: records what it was asked to pay."""

    def __init__(self) -> None:
        self.paid: list[dict[str, Any]] = []

    def tool(self) -> FunctionTool:
        @function_tool
        def release_payment(invoice_id: str, amount: str, currency: str) -> str:
            """Release the payment of an invoice."""
            self.paid.append({"invoice_id": invoice_id, "amount": amount, "currency": currency})
            return f"paid {amount} {currency} for {invoice_id}"

        return release_payment


@contextmanager
def reviewer_deciding(
    world: World, verdict: str, count: int = 1, **kwargs: Any
) -> Iterator[list[str]]:
    """A reviewer in a thread who decides the next `count` pending requests as they arrive."""
    token = world.reviewer_token("finance-approver", "default")
    decided: list[str] = []
    stop = threading.Event()

    def work() -> None:
        with signoff.Client(base_url=world.url, api_key=token) as reviewer:
            while not stop.is_set() and len(decided) < count:
                for request in reviewer.list_requests(status="pending").items:
                    reviewer.decide(request.id, verdict, **kwargs)
                    decided.append(request.id)
                time.sleep(0.05)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        yield decided
    finally:
        stop.set()
        thread.join(timeout=10)


def agent_with(tool: FunctionTool, *steps: Any) -> tuple[Agent[Any], ScriptedModel]:
    model = ScriptedModel(steps)
    return Agent(name="finance-agent", model=model, tools=[tool]), model


def tool_output(model: ScriptedModel) -> str:
    """What the model was shown as the gated tool's output, on its last call."""
    last = model.last_call
    assert last is not None
    outputs = [
        i for i in last.input if isinstance(i, dict) and i.get("type") == "function_call_output"
    ]  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    assert outputs, "the model saw no tool output"
    return str(outputs[-1]["output"])  # pyright: ignore[reportUnknownArgumentType]


async def test_wait_mode_approve_runs_the_tool_and_reports_executed(world: World) -> None:
    payments = Payments()
    async with AsyncClient(base_url=world.url, api_key=world.agent_key()) as client:
        tool = gate(
            payments.tool(), client=client, action="payments.release", route="finance-approver"
        )
        agent, model = agent_with(
            tool,
            [function_call("release_payment", INVOICE, call_id="call_a1")],
            [assistant_message("Payment released.")],
        )
        with reviewer_deciding(world, "approve") as decided:
            result = await Runner.run(agent, "pay INV-1042", run_config=RUN)
        assert result.final_output == "Payment released."
        assert payments.paid == [INVOICE]
        assert tool_output(model) == "paid 12500.00 EUR for INV-1042"
        request = await client.get_request(decided[0])
        assert request.action.name == "payments.release"
        assert request.correlation == {"call_id": "call_a1", "tool": "release_payment"}
        assert request.outcome is not None
        assert request.outcome.status.value == "executed"


async def test_wait_mode_edit_runs_with_the_edited_arguments(world: World) -> None:
    payments = Payments()
    async with AsyncClient(base_url=world.url, api_key=world.agent_key()) as client:
        tool = gate(payments.tool(), client=client, route="finance-approver")
        agent, _ = agent_with(
            tool,
            [function_call("release_payment", INVOICE, call_id="call_e1")],
            [assistant_message("ok")],
        )
        edited = {**INVOICE, "amount": "12250.00"}
        with reviewer_deciding(world, "edit", arguments=edited):
            await Runner.run(agent, "pay", run_config=RUN)
        assert payments.paid == [edited]


@pytest.mark.parametrize(
    ("verdict", "kwargs", "expected"),
    [
        ("reject", {"comment": "duplicate invoice"}, "rejected by"),
        ("respond", {"comment": "ask for the 2% discount first"}, "ask for the 2% discount"),
    ],
)
async def test_wait_mode_reject_and_respond_never_run_the_tool(
    world: World, verdict: str, kwargs: dict[str, Any], expected: str
) -> None:
    payments = Payments()
    async with AsyncClient(base_url=world.url, api_key=world.agent_key()) as client:
        tool = gate(payments.tool(), client=client, route="finance-approver")
        agent, model = agent_with(
            tool,
            [function_call("release_payment", INVOICE, call_id=f"call_{verdict}")],
            [assistant_message("I will draft a reply to the vendor.")],
        )
        with reviewer_deciding(world, verdict, **kwargs):
            await Runner.run(agent, "pay", run_config=RUN)
        assert payments.paid == []
        assert expected in tool_output(model)
        assert kwargs["comment"] in tool_output(model)


async def test_wait_mode_server_timeout_fails_closed(world: World) -> None:
    payments = Payments()
    async with AsyncClient(base_url=world.url, api_key=world.agent_key()) as client:
        tool = gate(payments.tool(), client=client, sla="PT1S")
        agent, model = agent_with(
            tool,
            [function_call("release_payment", INVOICE, call_id="call_t1")],
            [assistant_message("nothing paid")],
        )
        await Runner.run(agent, "pay", run_config=RUN)
        assert payments.paid == []
        assert "deadline" in tool_output(model)


async def test_wait_mode_client_timeout_cancels_the_request(world: World) -> None:
    payments = Payments()
    async with AsyncClient(base_url=world.url, api_key=world.agent_key()) as client:
        tool = gate(payments.tool(), client=client, wait_timeout=0.5)
        agent, model = agent_with(
            tool,
            [function_call("release_payment", INVOICE, call_id="call_c1")],
            [assistant_message("gave up")],
        )
        await Runner.run(agent, "pay", run_config=RUN)
        assert payments.paid == []
        assert "cancelled" in tool_output(model)
        (request,) = (await client.list_requests()).items
        assert request.status is Status.CANCELLED


async def test_signoff_unreachable_fails_closed() -> None:
    payments = Payments()
    async with AsyncClient(base_url="http://127.0.0.1:9", api_key="sk_x", retries=0) as client:
        tool = gate(payments.tool(), client=client)
        agent, model = agent_with(
            tool,
            [function_call("release_payment", INVOICE, call_id="call_down")],
            [assistant_message("could not pay")],
        )
        await Runner.run(agent, "pay", run_config=RUN)
        assert payments.paid == []
        assert "could not be obtained" in tool_output(model)


async def test_request_arguments_are_the_calls_arguments(world: World) -> None:
    payments = Payments()
    async with AsyncClient(base_url=world.url, api_key=world.agent_key()) as client:
        tool = gate(
            payments.tool(),
            client=client,
            business_object=lambda a: {"type": "invoice", "id": a["invoice_id"]},
            summary=lambda a: f"Release {a['amount']} {a['currency']}",
        )
        agent, _ = agent_with(
            tool,
            [function_call("release_payment", json.dumps(INVOICE), call_id="call_b1")],
            [assistant_message("ok")],
        )
        with reviewer_deciding(world, "approve") as decided:
            await Runner.run(agent, "pay", run_config=RUN)
        request = await client.get_request(decided[0])
        assert request.action.arguments == INVOICE
        assert (request.business_object.type, request.business_object.id) == ("invoice", "INV-1042")
        assert request.summary == "Release 12500.00 EUR"
