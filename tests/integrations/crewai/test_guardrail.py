"""`approval_guardrail` on real tasks: the output goes to a reviewer before CrewAI accepts it."""

from __future__ import annotations

from typing import Any

import pytest
from crewai import Agent, Crew, CrewOutput, Task
from tests.integrations.conformance.harness import Harness
from tests.integrations.crewai.conftest import reviewer_deciding, reviewer_script
from tests.integrations.crewai.fakes import Answer, ScriptedLLM, Step

from signoff import Client, Status
from signoff_crewai import OutputRejected, approval_guardrail

DRAFT = "Pay Acme GmbH EUR 12500.00 for INV-1042 (PO-7781)."
REDRAFT = "Pay Acme GmbH EUR 12250.00 for INV-1042 after credit note CN-88."


@pytest.fixture(params=[False, True], ids=["text", "function-calling"])
def function_calling(request: pytest.FixtureRequest) -> bool:
    """Both of CrewAI's modes (the guardrail does not depend on them; the crew does)."""
    return bool(request.param)


def run_task(
    client: Client, script: list[Step], *, function_calling: bool, retries: int = 1, **options: Any
) -> tuple[str, ScriptedLLM]:
    llm = ScriptedLLM(script, function_calling=function_calling)
    agent = Agent(role="payments clerk", goal="draft payments", backstory="careful", llm=llm)
    task = Task(
        description="Draft the payment instruction for INV-1042.",
        expected_output="one line",
        agent=agent,
        guardrail=approval_guardrail(client=client, route="finance-approver", **options),
        guardrail_max_retries=retries,
    )
    output = Crew(agents=[agent], tasks=[task]).kickoff()
    assert isinstance(output, CrewOutput)
    return output.raw, llm


def test_approve_accepts_the_output_as_it_is(
    harness: Harness, client: Client, function_calling: bool
) -> None:
    with reviewer_deciding(harness, "approve") as decided:
        output, _ = run_task(client, [Answer(DRAFT)], function_calling=function_calling)
    assert output == DRAFT
    request = client.get_request(decided[0])
    assert request.action.name == "crewai.task_output"
    assert request.action.arguments["output"] == DRAFT
    assert request.action.arguments["agent"] == "payments clerk"
    assert request.correlation["step"] == "guardrail"
    assert {"crew_id", "task_id", "agent"} <= set(request.correlation)
    assert request.outcome is not None
    assert request.outcome.status.value == "executed"


def test_edit_replaces_the_output(harness: Harness, client: Client) -> None:
    edited = {"task": "x", "agent": "payments clerk", "output": REDRAFT}
    with reviewer_deciding(harness, "edit", arguments=edited):
        output, _ = run_task(client, [Answer(DRAFT)], function_calling=False)
    assert output == REDRAFT


def test_reject_gives_the_agent_the_feedback_and_it_redoes_the_task(
    harness: Harness, client: Client, function_calling: bool
) -> None:
    decisions = [("reject", {"comment": "apply credit note CN-88"}), ("approve", {})]
    with reviewer_script(harness, decisions) as decided:
        output, llm = run_task(
            client, [Answer(DRAFT), Answer(REDRAFT)], function_calling=function_calling
        )
    assert output == REDRAFT
    assert "apply credit note CN-88" in llm.prompts[-1], "the redo reads the reviewer's words"
    rejected, approved = (client.get_request(i) for i in decided)
    assert (rejected.status, approved.status) == (Status.REJECTED, Status.APPROVED)
    assert rejected.action.arguments["output"] == DRAFT
    assert approved.action.arguments["output"] == REDRAFT
    assert len(client.list_requests().items) == 2, "one request per distinct output"
    assert rejected.outcome is not None
    assert rejected.outcome.status.value == "skipped"


def test_reject_with_stop_ends_the_crew(harness: Harness, client: Client) -> None:
    with (
        reviewer_deciding(harness, "reject", comment="not this vendor") as decided,
        pytest.raises(OutputRejected, match="not this vendor") as stopped,
    ):
        run_task(client, [Answer(DRAFT), Answer(REDRAFT)], function_calling=False, on_reject="stop")
    assert stopped.value.request is not None
    assert stopped.value.request.id == decided[0]
    assert len(client.list_requests().items) == 1, "no redo"


def test_timeout_fails_closed(harness: Harness, client: Client) -> None:
    with pytest.raises(OutputRejected, match="deadline"):
        run_task(client, [Answer(DRAFT)], function_calling=False, sla="PT1S", on_reject="stop")


def test_signoff_unreachable_fails_closed() -> None:
    with (
        Client(base_url="http://127.0.0.1:9", api_key="sk_x", retries=0) as down,
        pytest.raises(Exception, match="no approval could be obtained"),
    ):
        run_task(down, [Answer(DRAFT)], function_calling=False, retries=0)
