"""The gate under the demo policy (examples/demo/signoff.yaml): a small payment is approved by
policy at creation and runs without any pause; a large one waits for two distinct approvers
and resumes once, on the callback that closes it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from tests.integrations.conformance.harness import Harness
from tests.integrations.conformance.suite import ARGS
from tests.integrations.langgraph.agent import build_graph, ledger_entries, plan_message
from tests.support.server import World, sqlite_world

from signoff import Client, Verifier
from signoff_langgraph import resume

DEMO_POLICY = Path(__file__).resolve().parents[3] / "examples" / "demo" / "signoff.yaml"


@pytest.fixture(scope="module")
def signoff_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A server that routes by the demo policy file (overrides the conftest's plain server)."""
    with sqlite_world(tmp_path_factory.mktemp("policy"), config_path=str(DEMO_POLICY)) as world:
        yield world


def test_a_payment_the_policy_approves_runs_without_a_pause(harness: Harness, ledger: Path) -> None:
    small = {**ARGS, "amount": "80.00"}
    with Client(base_url=harness.world.url, api_key=harness.agent_key) as client:
        graph = build_graph(checkpointer=InMemorySaver(), client=client)
        config: RunnableConfig = {"configurable": {"thread_id": uuid.uuid4().hex}}
        result = graph.invoke({"messages": [plan_message([("call_1", small)])]}, config)
    assert "__interrupt__" not in result
    assert ledger_entries(ledger) == [small]
    (request,) = harness.agent.iter_requests()
    assert request.decisions[-1].via.value == "policy"
    assert harness.outcome(request.id) == "executed"


def test_a_large_payment_waits_for_two_approvers(harness: Harness, ledger: Path) -> None:
    alice = harness.world.client(harness.world.reviewer_token("finance-approver"))
    bob = harness.world.client(harness.world.reviewer_token("finance-approver"))
    with Client(base_url=harness.world.url, api_key=harness.agent_key) as client:
        graph = build_graph(
            checkpointer=InMemorySaver(), client=client, callback_url=harness.inbox_url
        )
        config: RunnableConfig = {"configurable": {"thread_id": uuid.uuid4().hex}}
        graph.invoke({"messages": [plan_message([("call_1", ARGS)])]}, config)
        (request,) = harness.agent.iter_requests()
        assert request.approvals.required == 2
        assert alice.decide(request.id, "approve").status.value == "pending"
        assert graph.get_state(config).interrupts, "one approval of two: still paused"
        bob.decide(request.id, "approve")
        event = Verifier(harness.verifier_keys).verify(*harness.delivery(request.id))
        assert resume(graph, event, client=client).status == "resumed"
    assert ledger_entries(ledger) == [ARGS]
