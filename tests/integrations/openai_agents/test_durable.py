"""Durable approvals: the run pauses, its state is stored, a signed callback resumes it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from agents import Agent, FunctionTool, RunConfig, Runner, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call
from signoff_openai_agents import SqliteRunStore, gate, pause, receiver, resume
from tests.support.server import World

import signoff
from signoff import AsyncClient, CallbackEvent, CallbackRefused, Status, Verifier
from signoff.ids import new_id
from signoff.webhooks import Signer, generate_signing_key

pytestmark = pytest.mark.anyio
RUN = RunConfig(tracing_disabled=True)
INVOICE = {"invoice_id": "INV-1042", "amount": "12500.00", "currency": "EUR"}
KEYS = generate_signing_key()


def payments_tool(ledger: Path) -> FunctionTool:
    @function_tool
    def release_payment(invoice_id: str, amount: str, currency: str) -> str:
        """Release the payment of an invoice."""
        with ledger.open("a") as f:
            f.write(json.dumps({"invoice_id": invoice_id, "amount": amount}) + "\n")
        return f"paid {amount} {currency} for {invoice_id}"

    return release_payment


def paid(ledger: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in ledger.read_text().splitlines()] if ledger.exists() else []


async def event_for(world: World, request_id: str) -> CallbackEvent:
    """The callback signoff sends when the request closes (built from the live request)."""
    async with AsyncClient(base_url=world.url, api_key=world.reviewer_token("admin")) as admin:
        request = await admin.get_request(request_id)
    assert request.status.is_terminal
    return CallbackEvent.model_validate(
        {
            "type": "request.decided",
            "id": new_id("evt"),
            "timestamp": datetime.now(UTC),
            "data": {"request": request.model_dump(mode="json")},
        }
    )


def signed(event: CallbackEvent) -> tuple[bytes, dict[str, str]]:
    body = event.model_dump_json().encode()
    return body, Signer([KEYS.secret]).headers(body, msg_id=event.id)


async def paused_run(
    world: World, client: AsyncClient, tool: FunctionTool, store: SqliteRunStore, *calls: str
) -> tuple[Agent[Any], list[str]]:
    """Run an agent whose model calls the gated tool once per call id; pause it."""
    model = ScriptedModel(
        [
            [function_call("release_payment", INVOICE, call_id=c) for c in calls],
            [assistant_message("done")],
        ]
    )
    agent = Agent(name="finance-agent", model=model, tools=[tool])
    result = await Runner.run(agent, "pay INV-1042", run_config=RUN)
    assert [i.raw_item.call_id for i in result.interruptions] == list(calls)  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType]
    await pause(result, store)
    pending = (await client.list_requests(status="pending")).items
    return agent, [r.id for r in pending]


@pytest.fixture
def store(tmp_path: Path) -> SqliteRunStore:
    return SqliteRunStore(tmp_path / "runs.db")


async def test_durable_approve_resumes_and_runs(
    world: World, store: SqliteRunStore, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.jsonl"
    async with AsyncClient(base_url=world.url, api_key=world.agent_key()) as client:
        tool = gate(payments_tool(ledger), client=client, mode="durable")
        agent, (request_id,) = await paused_run(world, client, tool, store, "call_d1")
        assert paid(ledger) == []
        with signoff.Client(base_url=world.url, api_key=world.reviewer_token("default")) as rev:
            rev.decide(request_id, "approve")
        resumed = await resume(await event_for(world, request_id), agent, store, run_config=RUN)
        assert resumed.result is not None
        assert resumed.result.final_output == "done"
        assert paid(ledger) == [{"invoice_id": "INV-1042", "amount": "12500.00"}]
        request = await client.get_request(request_id)
        assert request.outcome is not None
        assert request.outcome.status.value == "executed"


async def test_durable_reject_and_edit(world: World, store: SqliteRunStore, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    async with AsyncClient(base_url=world.url, api_key=world.agent_key()) as client:
        tool = gate(payments_tool(ledger), client=client, mode="durable")
        with signoff.Client(base_url=world.url, api_key=world.reviewer_token("default")) as rev:
            agent, (rejected,) = await paused_run(world, client, tool, store, "call_r1")
            rev.decide(rejected, "reject", comment="wrong vendor account")
            await resume(await event_for(world, rejected), agent, store, run_config=RUN)
            assert paid(ledger) == []

            agent, (edited,) = await paused_run(world, client, tool, store, "call_e1")
            rev.decide(edited, "edit", arguments={**INVOICE, "amount": "12250.00"})
            await resume(await event_for(world, edited), agent, store, run_config=RUN)
            assert paid(ledger) == [{"invoice_id": "INV-1042", "amount": "12250.00"}]


async def test_two_gated_calls_in_one_turn_resume_once_both_are_decided(
    world: World, store: SqliteRunStore, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.jsonl"
    async with AsyncClient(base_url=world.url, api_key=world.agent_key()) as client:
        tool = gate(payments_tool(ledger), client=client, mode="durable")
        agent, ids = await paused_run(world, client, tool, store, "call_x1", "call_x2")
        assert len(ids) == 2
        with signoff.Client(base_url=world.url, api_key=world.reviewer_token("default")) as rev:
            by_call = {rev.get_request(i).correlation["call_id"]: i for i in ids}
            rev.decide(by_call["call_x1"], "approve")
            first = await resume(
                await event_for(world, by_call["call_x1"]), agent, store, run_config=RUN
            )
            assert first.result is None  # still waiting for the second call
            rev.decide(by_call["call_x2"], "reject", comment="only one payment")
            second = await resume(
                await event_for(world, by_call["call_x2"]), agent, store, run_config=RUN
            )
        assert second.result is not None
        assert len(paid(ledger)) == 1


async def test_duplicate_forged_and_unknown_callbacks_are_refused(
    world: World, store: SqliteRunStore, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.jsonl"
    async with AsyncClient(base_url=world.url, api_key=world.agent_key()) as client:
        tool = gate(payments_tool(ledger), client=client, mode="durable")
        agent, (request_id,) = await paused_run(world, client, tool, store, "call_f1")
        with signoff.Client(base_url=world.url, api_key=world.reviewer_token("default")) as rev:
            rev.decide(request_id, "approve")
        app = receiver(Verifier([KEYS.public]), lambda: agent, store, run_config=RUN).asgi_app()
        event = await event_for(world, request_id)
        body, headers = signed(event)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://r"
        ) as http:
            forged = await http.post(
                "/", content=body.replace(b"INV-1042", b"INV-9999"), headers=headers
            )
            assert forged.status_code == 401
            assert paid(ledger) == []
            first = await http.post("/", content=body, headers=headers)
            again = await http.post("/", content=body, headers=headers)
            # A new delivery id for the same, already resumed call: refused, not run again.
            other_body, other_headers = signed(event.model_copy(update={"id": new_id("evt")}))
            late = await http.post("/", content=other_body, headers=other_headers)
        assert (first.status_code, again.status_code, late.status_code) == (200, 200, 409)
        assert again.json()["duplicate"] is True
        assert len(paid(ledger)) == 1
        with pytest.raises(CallbackRefused):
            await resume(event, agent, store, run_config=RUN)


RESUMER = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path
    from agents import Agent, RunConfig, function_tool
    from agents.testing import ScriptedModel, assistant_message
    from signoff import AsyncClient, CallbackEvent
    from signoff_openai_agents import SqliteRunStore, gate, resume

    url, key, store_path, ledger, event_path = sys.argv[1:6]

    @function_tool
    def release_payment(invoice_id: str, amount: str, currency: str) -> str:
        \"\"\"Release the payment of an invoice.\"\"\"
        with open(ledger, "a") as f:
            f.write(json.dumps({"invoice_id": invoice_id, "amount": amount}) + "\\n")
        return "paid"

    async def main() -> None:
        async with AsyncClient(base_url=url, api_key=key) as client:
            tool = gate(release_payment, client=client, mode="durable")
            model = ScriptedModel([[assistant_message("resumed")]])
            agent = Agent(name="finance-agent", model=model, tools=[tool])
            event = CallbackEvent.model_validate_json(Path(event_path).read_text())
            done = await resume(event, agent, SqliteRunStore(store_path),
                                run_config=RunConfig(tracing_disabled=True))
            print(done.result.final_output if done.result else "waiting")

    asyncio.run(main())
    """
)


async def test_pause_in_one_process_resume_in_another(
    world: World, store: SqliteRunStore, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.jsonl"
    key = world.agent_key()
    async with AsyncClient(base_url=world.url, api_key=key) as client:
        tool = gate(payments_tool(ledger), client=client, mode="durable")
        _, (request_id,) = await paused_run(world, client, tool, store, "call_p1")
        with signoff.Client(base_url=world.url, api_key=world.reviewer_token("default")) as rev:
            rev.decide(request_id, "approve")
        event_path = tmp_path / "event.json"
        event_path.write_text((await event_for(world, request_id)).model_dump_json())
    script = tmp_path / "resumer.py"
    script.write_text(RESUMER)
    started = time.monotonic()
    done = subprocess.run(  # noqa: ASYNC221 - the test waits for the other process on purpose
        [
            sys.executable,
            str(script),
            world.url,
            key,
            str(tmp_path / "runs.db"),
            str(ledger),
            str(event_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "resumed"
    assert paid(ledger) == [{"invoice_id": "INV-1042", "amount": "12500.00"}]
    assert time.monotonic() - started < 120
    async with AsyncClient(base_url=world.url, api_key=key) as client:
        request = await client.get_request(request_id)
    assert request.status is Status.APPROVED
    assert request.outcome is not None
