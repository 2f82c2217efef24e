"""The test agent of the OpenAI Agents SDK conformance driver: a scripted finance agent whose
`release_payment` tool is gated durably; every payment it really releases goes to a ledger file
(named by an environment variable, so a pausing subprocess writes to the same one)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agents import Agent, FunctionTool, RunConfig, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call
from signoff_openai_agents import gate

from signoff import AsyncClient

LEDGER_ENV = "SIGNOFF_OAI_TEST_LEDGER"
RUN = RunConfig(tracing_disabled=True)


def ledger_entries(path: Path) -> list[dict[str, Any]]:
    """Every payment released so far, in order."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _payments_tool() -> FunctionTool:
    @function_tool
    def release_payment(invoice_id: str, amount: str, currency: str, vendor_account: str) -> str:
        """Release the payment of an invoice to the vendor's account."""
        entry = {
            "invoice_id": invoice_id,
            "amount": amount,
            "currency": currency,
            "vendor_account": vendor_account,
        }
        with Path(os.environ[LEDGER_ENV]).open("a") as ledger:
            ledger.write(json.dumps(entry) + "\n")
        return f"released {amount} {currency} for {invoice_id}"

    return release_payment


def build_agent(
    client: AsyncClient,
    *,
    calls: Sequence[tuple[str, Mapping[str, Any]]] = (),
    sla: str | None = None,
    callback_url: str | None = None,
) -> Agent[Any]:
    """The finance agent. With `calls`, its model first asks for those payments; it then ends."""
    steps: list[Any] = []
    if calls:
        steps.append([function_call("release_payment", dict(a), call_id=c) for c, a in calls])
    steps.append([assistant_message("done")])
    tool = gate(
        _payments_tool(),
        client=client,
        mode="durable",
        action="payments.release",
        business_object=lambda a: {"type": "invoice", "id": a["invoice_id"]},
        route="finance-approver",
        sla=sla,
        callback_url=callback_url,
    )
    return Agent(name="finance-agent", model=ScriptedModel(steps), tools=[tool])
