"""`gated_tool` in real crews: a scripted LLM in text mode and in function-calling mode, a real
signoff server, and a reviewer deciding in another thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from crewai import Agent, Crew, CrewOutput, Task
from crewai.tools import BaseTool
from pydantic import BaseModel
from tests.integrations.conformance.harness import Harness
from tests.integrations.crewai.conftest import reviewer_deciding
from tests.integrations.crewai.fakes import (
    INVOICE,
    Answer,
    Call,
    Fail,
    ReleasePayment,
    ScriptedLLM,
    Step,
    ledger_entries,
)

from signoff import Client, Status
from signoff_crewai import GatedTool, gated_tool

EDITED = {**INVOICE, "amount": "12250.00"}


@pytest.fixture(params=[False, True], ids=["text", "function-calling"])
def function_calling(request: pytest.FixtureRequest) -> bool:
    """Both of CrewAI's tool-calling modes."""
    return bool(request.param)


def payment_gate(client: Client, **options: Any) -> GatedTool:
    options.setdefault("route", "finance-approver")
    return gated_tool(
        ReleasePayment(),
        client=client,
        action="payments.release",
        business_object=lambda a: {
            "type": "invoice",
            "id": a["invoice_id"],
            "attributes": {"amount": a["amount"], "currency": a["currency"]},
        },
        summary=lambda a: f"Release {a['currency']} {a['amount']} for {a['invoice_id']}",
        **options,
    )


def run_crew(
    tool: BaseTool, script: list[Step], *, function_calling: bool, **task_options: Any
) -> tuple[str, ScriptedLLM]:
    llm = ScriptedLLM(script, function_calling=function_calling)
    agent = Agent(
        role="finance clerk", goal="pay approved invoices", backstory="careful", llm=llm,
        tools=[tool], max_retry_limit=2,
    )  # fmt: skip
    task = Task(
        description="Pay invoice INV-1042.", expected_output="what happened", agent=agent,
        **task_options,
    )  # fmt: skip
    output = Crew(agents=[agent], tasks=[task]).kickoff()
    assert isinstance(output, CrewOutput)
    return output.raw, llm


def pay_once() -> list[Step]:
    return [Call("release_payment", INVOICE), Answer()]


def test_proxy_looks_like_the_inner_tool(client: Client) -> None:
    inner = ReleasePayment()
    proxy = payment_gate(client)
    assert (proxy.name, proxy.description) == (inner.name, inner.description)
    assert proxy.args_schema is inner.args_schema
    assert proxy.cache_function(INVOICE, "paid") is False, "a gated result is never cached"


def test_approve_runs_the_tool_once_and_reports_executed(
    harness: Harness, client: Client, ledger: Path, function_calling: bool
) -> None:
    with reviewer_deciding(harness, "approve", comment="matches PO-7781") as decided:
        answer, llm = run_crew(payment_gate(client), pay_once(), function_calling=function_calling)
    assert ledger_entries(ledger) == [INVOICE]
    assert llm.seen == ["released EUR 12500.00 for INV-1042"]
    assert "released EUR 12500.00" in answer
    (request_id,) = decided
    request = client.get_request(request_id)
    assert request.action.name == "payments.release"
    assert dict(request.action.arguments) == INVOICE
    assert (request.business_object.type, request.business_object.id) == ("invoice", "INV-1042")
    assert request.summary == "Release EUR 12500.00 for INV-1042"
    correlation = request.correlation
    assert correlation["framework"] == "crewai"
    assert {"crew_id", "kickoff_id", "task_id"} <= set(correlation)
    assert correlation["tool"] == "release_payment"
    assert request.outcome is not None
    assert request.outcome.status.value == "executed"


def test_edit_runs_with_the_reviewers_arguments(
    harness: Harness, client: Client, ledger: Path, function_calling: bool
) -> None:
    with reviewer_deciding(harness, "edit", arguments=EDITED, comment="credit note CN-88"):
        _, llm = run_crew(payment_gate(client), pay_once(), function_calling=function_calling)
    assert ledger_entries(ledger) == [EDITED]
    assert llm.seen == ["released EUR 12250.00 for INV-1042"]


@pytest.mark.parametrize(
    ("verdict", "comment", "expected"),
    [
        ("reject", "duplicate of INV-1007", "rejected by"),
        ("respond", "ask for the 2% early-payment discount first", "Follow that instruction"),
    ],
)
def test_reject_and_respond_never_run_the_tool_and_the_agent_reads_why(
    harness: Harness,
    client: Client,
    ledger: Path,
    function_calling: bool,
    verdict: str,
    comment: str,
    expected: str,
) -> None:
    with reviewer_deciding(harness, verdict, comment=comment) as decided:
        _, llm = run_crew(payment_gate(client), pay_once(), function_calling=function_calling)
    assert ledger_entries(ledger) == []
    (seen,) = llm.seen
    assert comment in seen
    assert expected in seen
    outcome = client.get_request(decided[0]).outcome
    assert outcome is not None
    assert outcome.status.value == "skipped"


def test_server_timeout_fails_closed(
    harness: Harness, client: Client, ledger: Path, function_calling: bool
) -> None:
    _, llm = run_crew(
        payment_gate(client, sla="PT1S"), pay_once(), function_calling=function_calling
    )
    assert ledger_entries(ledger) == []
    (seen,) = llm.seen
    assert "deadline" in seen
    (request,) = client.list_requests().items
    assert request.status is Status.EXPIRED


def test_waiting_too_long_cancels_the_request_and_fails_closed(
    harness: Harness, client: Client, ledger: Path, function_calling: bool
) -> None:
    _, llm = run_crew(
        payment_gate(client, wait_timeout=0.5), pay_once(), function_calling=function_calling
    )
    assert ledger_entries(ledger) == []
    assert "cancelled" in llm.seen[0]
    (request,) = client.list_requests().items
    assert request.status is Status.CANCELLED
    # A late approval cannot count: the request is closed.
    with pytest.raises(Exception, match="409"):
        harness.decide(request.id, "approve")


def test_one_request_when_the_model_repeats_the_call(
    harness: Harness, client: Client, ledger: Path, function_calling: bool
) -> None:
    script: list[Step] = [
        Call("release_payment", INVOICE, "call_1"),
        Call("release_payment", INVOICE, "call_2"),
        Answer(),
    ]
    with reviewer_deciding(harness, "approve", count=2) as decided:
        run_crew(payment_gate(client), script, function_calling=function_calling)
    assert len(decided) == 1
    assert len(client.list_requests().items) == 1, "a repeated call makes no second request"
    assert ledger_entries(ledger) == [INVOICE], "and never pays twice"


def test_one_request_when_crewai_retries_the_task_after_a_model_failure(
    harness: Harness, client: Client, ledger: Path, function_calling: bool
) -> None:
    # The model fails after the approved payment ran: CrewAI retries the agent's whole
    # execution of the task, and the model asks for the same payment again.
    script: list[Step] = [
        Call("release_payment", INVOICE),
        Fail(),
        Call("release_payment", INVOICE),
        Answer(),
    ]
    with reviewer_deciding(harness, "approve", count=2):
        _, llm = run_crew(payment_gate(client), script, function_calling=function_calling)
    assert len(client.list_requests().items) == 1
    assert ledger_entries(ledger) == [INVOICE]
    assert "already approved and run once" in llm.seen[-1]


def test_one_request_when_a_guardrail_makes_the_agent_redo_the_task(
    harness: Harness, client: Client, ledger: Path, function_calling: bool
) -> None:
    accept = iter([False, True])

    def guardrail(output: Any):
        return (True, output) if next(accept) else (False, "Add the purchase order number.")

    script: list[Step] = [
        Call("release_payment", INVOICE),
        Answer(),
        Call("release_payment", INVOICE),
        Answer("PO-7781: {seen}"),
    ]
    with reviewer_deciding(harness, "reject", count=2, comment="vendor bank details changed"):
        answer, llm = run_crew(
            payment_gate(client),
            script,
            function_calling=function_calling,
            guardrail=guardrail,
            guardrail_max_retries=1,
        )
    assert len(client.list_requests().items) == 1, "the redo found the first request"
    assert ledger_entries(ledger) == []
    assert all("vendor bank details changed" in seen for seen in llm.seen)
    assert answer.startswith("PO-7781")


def test_signoff_unreachable_fails_closed(ledger: Path, function_calling: bool) -> None:
    with Client(base_url="http://127.0.0.1:9", api_key="sk_x", retries=0) as down:
        _, llm = run_crew(payment_gate(down), pay_once(), function_calling=function_calling)
    assert ledger_entries(ledger) == []
    assert "could not be obtained" in llm.seen[0]


class BrokenArgs(BaseModel):
    invoice_id: str


class Broken(BaseTool):
    name: str = "release_payment"
    description: str = "Fails."
    args_schema: type[BaseModel] = BrokenArgs

    def _run(self, invoice_id: str) -> str:
        raise RuntimeError(f"bank API down while paying {invoice_id}")


def test_a_failing_tool_is_reported_and_never_raises_into_crewai(
    harness: Harness, client: Client
) -> None:
    tool = gated_tool(Broken(), client=client, route="finance-approver")
    with reviewer_deciding(harness, "approve") as decided:
        text = tool.run(invoice_id="INV-1042")
    assert "the tool failed: RuntimeError: bank API down" in text
    outcome = client.get_request(decided[0]).outcome
    assert outcome is not None
    assert outcome.status.value == "failed"
    again = tool.run(invoice_id="INV-1042")
    assert again.startswith("Not executed again"), "an approved call runs once"
    assert text in again


def test_outside_a_crew_the_proxy_instance_scopes_the_request(
    harness: Harness, client: Client, ledger: Path
) -> None:
    first, second = payment_gate(client), payment_gate(client)
    with reviewer_deciding(harness, "approve", count=2):
        assert first.run(**INVOICE) == "released EUR 12500.00 for INV-1042"
        assert "already" in first.run(**INVOICE)
        assert second.run(**INVOICE) == "released EUR 12500.00 for INV-1042"
    assert len(client.list_requests().items) == 2
    assert len(ledger_entries(ledger)) == 2
