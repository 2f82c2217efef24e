"""The adapter conformance scenarios (tests/integrations/conformance) for the approval MCP server.

The MCP server is not a callback receiver and holds no paused run: a model asks with
`request_approval`, keeps calling `wait_for_approval` while the answer is `pending`, and performs
the action itself only when `approved` is true, with the returned `arguments`. Each call reads
the request's state from signoff's API. So the scenarios about delivering callbacks do not
apply; the others run here through the `mcp` SDK's own client against a real signoff server
(in process, or `signoff-mcp serve` over stdio where processes matter). "Executed" is what the
model is told it may do (`approved` and `arguments`); "told" is the answer's `instruction`.

| scenario | applies | what the test shows |
|---|---|---|
| approve | yes | approved, with the asked arguments; progress while it waits |
| edit | yes | approved, with the reviewer's arguments |
| reject | yes | not approved; the reason is in the answer |
| respond | yes | not approved; the reviewer's instruction is in the answer |
| server_timeout | yes | a policy SLA passes: expired, not approved (fail closed) |
| duplicate_callback | no | no callbacks (see `NOT_APPLICABLE`) |
| step_not_pending | yes | cancelled while the model waits: not approved; late decision refused |
| forged_signature | no | no callbacks |
| stale_timestamp | no | no callbacks |
| two_gated_calls | yes | two approvals awaited at once, decided out of order: each its own |
| separate_process | yes | asked in one server process, which exits; the decision read in another |

Not checked here: the outcome report. The approval server does not see whether the model then
performed the action, so it reports no outcome (`signoff-mcp proxy` does: test_proxy.py).
The OpenAI Agents SDK's MCP client runs approve, reject, pending-then-wait and timeout with a
real gated tool in test_openai_agents_client.py.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from tests.integrations.conformance.suite import SCENARIOS
from tests.integrations.mcp.conftest import (
    INVOICE,
    OBJECT,
    result_of,
    reviewer_deciding,
    server_for,
    unique_action,
)
from tests.support.server import World

import signoff

pytestmark = pytest.mark.anyio

EDITED = {**INVOICE, "amount": "12250.00"}

NOT_APPLICABLE = {
    "duplicate_callback": (
        "the MCP server receives no callbacks: each tool call reads the request from signoff's "
        "API; asking again with the same call finds the same request by its idempotency key "
        "(test_server.py::test_pending_then_wait_for_approval)"
    ),
    "forged_signature": (
        "the MCP server receives no callbacks, so there is no signature to forge: it reads "
        "decisions from signoff's API over the connection it opened, authenticated by its key"
    ),
    "stale_timestamp": (
        "the MCP server receives no callbacks, so there is no delivery timestamp: it reads "
        "decisions from signoff's API over the connection it opened"
    ),
}


async def ask(client: Client, action: str, arguments: dict[str, Any], wait: float) -> Any:
    return await client.call_tool(
        "request_approval",
        {"action": action, "arguments": arguments, "business_object": OBJECT,
         "summary": "Release EUR 12,500.00 to Acme GmbH", "wait_seconds": wait},
    )  # fmt: skip


def test_every_scenario_has_a_test() -> None:
    names = {scenario.name for scenario in SCENARIOS}
    assert set(NOT_APPLICABLE) <= names
    missing = [name for name in names if f"test_conformance_{name}" not in globals()]
    assert not missing, missing


async def test_conformance_approve(signoff_world: World) -> None:
    action = unique_action()
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    with reviewer_deciding(signoff_world, "approve", action=action, delay=6.0) as decided:
        async with Client(server_for(signoff_world)) as client:
            result = await client.call_tool(
                "request_approval",
                {"action": action, "arguments": INVOICE, "business_object": OBJECT,
                 "summary": "Release EUR 12,500.00 to Acme GmbH", "wait_seconds": 25},
                progress_callback=on_progress,
            )  # fmt: skip
    data = result_of(result)
    assert data["status"] == "approved"
    assert data["approved"] is True
    assert data["arguments"] == INVOICE
    assert data["request_id"] == decided[0]
    assert seen, "no progress notification while waiting"
    request = signoff_world.client(signoff_world.reviewer_token("default")).get_request(decided[0])
    assert request.correlation == {"source": "mcp"}
    assert request.agent.framework == "mcp"


async def test_conformance_edit(signoff_world: World) -> None:
    action = unique_action()
    with reviewer_deciding(
        signoff_world, "edit", action=action, arguments=EDITED, comment="credit note CN-88"
    ):
        async with Client(server_for(signoff_world)) as client:
            data = result_of(await ask(client, action, INVOICE, 25))
    assert (data["status"], data["approved"], data["verdict"]) == ("approved", True, "edit")
    assert data["arguments"] == EDITED, "the edited arguments are the ones to use"
    assert "returned arguments" in data["instruction"]


async def test_conformance_reject(signoff_world: World) -> None:
    action = unique_action()
    with reviewer_deciding(
        signoff_world, "reject", action=action, comment="vendor bank details changed"
    ):
        async with Client(server_for(signoff_world)) as client:
            data = result_of(await ask(client, action, INVOICE, 25))
    assert data["status"] == "rejected"
    assert data["approved"] is False
    assert "arguments" not in data
    assert data["comment"] == "vendor bank details changed"
    assert "vendor bank details changed" in data["instruction"]


async def test_conformance_respond(signoff_world: World) -> None:
    action = unique_action()
    instruction = "ask for the 2% early-payment discount first"
    with reviewer_deciding(signoff_world, "respond", action=action, comment=instruction):
        async with Client(server_for(signoff_world)) as client:
            data = result_of(await ask(client, action, INVOICE, 25))
    assert (data["status"], data["approved"], data["verdict"]) == ("responded", False, "respond")
    assert "arguments" not in data
    assert instruction in data["instruction"], "the model gets the instruction"


async def test_conformance_server_timeout(deadline_world: World) -> None:
    # Nobody decides: the policy's 3 s SLA closes the request, rejected.
    action = unique_action()
    async with Client(server_for(deadline_world)) as client:
        pending = result_of(await ask(client, action, INVOICE, 0.5))
        assert (pending["status"], pending["approved"]) == ("pending", False)
        expired = result_of(
            await client.call_tool(
                "wait_for_approval", {"request_id": pending["request_id"], "wait_seconds": 25}
            )
        )
        read = result_of(
            await client.call_tool("get_request", {"request_id": expired["request_id"]})
        )
    assert (expired["status"], expired["approved"], expired["verdict"]) == (
        "expired", False, "reject",
    )  # fmt: skip
    assert "arguments" not in expired
    assert "deadline" in expired["instruction"]
    assert (read["status"], read["approved"]) == ("expired", False)
    late = deadline_world.client(deadline_world.reviewer_token("default"))
    with pytest.raises(signoff.Conflict):
        late.decide(expired["request_id"], "approve")


async def test_conformance_step_not_pending(signoff_world: World) -> None:
    # While the model waits, the request is cancelled (the agent's operator moved on): the wait
    # ends not approved, and a reviewer approving later is refused and changes nothing.
    action = unique_action()
    key = signoff_world.agent_key()
    async with Client(server_for(signoff_world, key)) as client:
        pending = result_of(await ask(client, action, INVOICE, 0.5))
        request_id = pending["request_id"]
        answers: list[dict[str, Any]] = []

        async def wait() -> None:
            answers.append(
                result_of(
                    await client.call_tool(
                        "wait_for_approval", {"request_id": request_id, "wait_seconds": 25}
                    )
                )
            )

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait)
            await anyio.sleep(1.0)
            async with signoff.AsyncClient(base_url=signoff_world.url, api_key=key) as agent:
                await agent.cancel(request_id, reason="the run was stopped")
        late = signoff_world.client(signoff_world.reviewer_token("default"))
        with pytest.raises(signoff.Conflict):
            late.decide(request_id, "approve")
        read = result_of(await client.call_tool("get_request", {"request_id": request_id}))
    [answer] = answers
    assert (answer["status"], answer["approved"]) == ("cancelled", False)
    assert "arguments" not in answer
    assert (read["status"], read["approved"]) == ("cancelled", False)


async def test_conformance_duplicate_callback() -> None:
    pytest.skip(NOT_APPLICABLE["duplicate_callback"])


async def test_conformance_forged_signature() -> None:
    pytest.skip(NOT_APPLICABLE["forged_signature"])


async def test_conformance_stale_timestamp() -> None:
    pytest.skip(NOT_APPLICABLE["stale_timestamp"])


async def test_conformance_two_gated_calls(signoff_world: World) -> None:
    # Two approvals asked and waited for at once over one session, decided in the opposite
    # order: the second is rejected while the first still waits, then the first is approved.
    first_action, second_action = unique_action(), unique_action()
    other = {**INVOICE, "invoice_id": "INV-1043", "amount": "800.00"}
    answers: dict[str, dict[str, Any]] = {}
    answered = {first_action: anyio.Event(), second_action: anyio.Event()}
    approved: list[str] = []
    async with Client(server_for(signoff_world)) as client:

        async def ask_for(action: str, arguments: dict[str, Any]) -> None:
            answers[action] = result_of(await ask(client, action, arguments, 25))
            answered[action].set()

        with (
            reviewer_deciding(
                signoff_world, "reject", action=second_action, comment="not this one"
            ) as rejected,
            anyio.fail_after(90),
        ):
            async with anyio.create_task_group() as tg:
                tg.start_soon(ask_for, first_action, INVOICE)
                tg.start_soon(ask_for, second_action, other)
                await answered[second_action].wait()
                assert first_action not in answers, "the first still waits for its own decision"
                with reviewer_deciding(signoff_world, "approve", action=first_action) as ids:
                    await answered[first_action].wait()
                approved.extend(ids)  # complete once the reviewer's thread has ended
    first, second = answers[first_action], answers[second_action]
    assert (first["request_id"], second["request_id"]) == (approved[0], rejected[0])
    assert (first["approved"], first["arguments"]) == (True, INVOICE)
    assert (second["approved"], second["status"]) == (False, "rejected")
    assert "not this one" in second["instruction"]


async def test_conformance_separate_process(signoff_world: World) -> None:
    # `signoff-mcp serve` on stdio: asked in one process, which exits while pending; a second
    # process (a restarted MCP server) finds the same request and reads the decision.
    action = unique_action()
    env = {
        **os.environ,
        "SIGNOFF_URL": signoff_world.url,
        "SIGNOFF_API_KEY": signoff_world.agent_key(),
    }
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "signoff_mcp.cli", "serve"], env=env
    )
    async with Client(params) as client:
        pending = result_of(await ask(client, action, INVOICE, 0.5))
    assert (pending["status"], pending["approved"]) == ("pending", False)
    reviewer = signoff_world.client(signoff_world.reviewer_token("default"))
    reviewer.decide(pending["request_id"], "approve", comment="matches PO-7781")
    async with Client(params) as client:
        again = result_of(await ask(client, action, INVOICE, 0))
        waited = result_of(
            await client.call_tool(
                "wait_for_approval", {"request_id": pending["request_id"], "wait_seconds": 25}
            )
        )
    assert again["request_id"] == pending["request_id"], "one request, whichever process asks"
    assert (again["approved"], waited["approved"]) == (True, True)
    assert waited["arguments"] == INVOICE
