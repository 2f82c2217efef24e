"""The invoice-payment scenario with the OpenAI Agents SDK, offline (a scripted model).

A finance agent reads invoice INV-1042 (Acme GmbH, EUR 12,500.00), matches it against purchase
order PO-7781 and proposes to release the payment; `payments.release` is gated by signoff.

    # terminal 1: the server with the demo configuration
    uv run signoff serve --demo
    # terminal 2: the agent waits for the decision inside a tool guardrail
    uv run python examples/openai_agents_invoice_payment.py wait --key sk_...
    # terminal 3: a reviewer decides (or use curl / the inbox)
    curl -X POST http://127.0.0.1:8080/v1/requests/req_.../decisions \
         -H 'authorization: Bearer pt_...' -H 'content-type: application/json' \
         -d '{"verdict": "approve"}'

Durable style: `pause` runs the agent until the gate and stores the run; `receive` serves the
callback endpoint that resumes it when the signed decision arrives (another process):

    uv run python examples/openai_agents_invoice_payment.py receive --key sk_... --port 8090 &
    uv run python examples/openai_agents_invoice_payment.py pause --key sk_... \
        --callback-url http://127.0.0.1:8090/

`--reviewer-token pt_... --decide approve|edit|reject|respond` lets the script play the reviewer
too, so the whole story runs unattended (the test suite runs it that way).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from agents import Agent, FunctionTool, RunConfig, Runner, function_tool
from agents.testing import ModelCall, ModelStep, ScriptedModel, assistant_message, function_call
from signoff_openai_agents import Resumed, SqliteRunStore, gate, pause, receiver

import signoff
from signoff import AsyncClient, Verifier

RUN = RunConfig(tracing_disabled=True)
INVOICE = {"invoice_id": "INV-1042", "vendor": "Acme GmbH", "amount": "12500.00", "currency": "EUR"}
PAYMENT = {
    "invoice_id": "INV-1042",
    "amount": "12500.00",
    "currency": "EUR",
    "vendor_account": "DE89370400440532013000",
}


@function_tool
def read_invoice(invoice_id: str) -> str:
    """Read an invoice from the accounts-payable system."""
    return json.dumps(INVOICE)


@function_tool
def match_purchase_order(invoice_id: str, po_number: str) -> str:
    """Compare an invoice with its purchase order."""
    return f"{invoice_id} matches {po_number}: vendor, amount and currency agree"


def _release_payment() -> FunctionTool:
    @function_tool
    def release_payment(invoice_id: str, amount: str, currency: str, vendor_account: str) -> str:
        """Release the payment of an invoice to the vendor's bank account."""
        print(f"PAID {amount} {currency} for {invoice_id} to {vendor_account}", flush=True)
        return f"released {amount} {currency} for {invoice_id}"

    return release_payment


def _final_answer(call: ModelCall) -> ModelStep:
    """The model's last turn reacts to what the gated tool returned."""
    outputs = [
        str(item.get("output"))
        for item in call.input
        if isinstance(item, dict) and item.get("type") == "function_call_output"
    ]
    last = outputs[-1] if outputs else ""
    if last.startswith("released"):
        text = f"Payment of INV-1042 released ({last})."
    elif "answered instead" in last:
        text = f"Following the reviewer's instruction before paying: {last}"
    else:
        text = f"Payment not made; drafting a reply to Acme GmbH. ({last})"
    return ModelStep(output=[assistant_message(text)])


def build_agent(client: AsyncClient, *, mode: str, callback_url: str | None = None) -> Agent[Any]:
    """The finance agent with `payments.release` gated in `mode` ("wait" or "durable")."""
    model = ScriptedModel(
        [
            [function_call("read_invoice", {"invoice_id": "INV-1042"}, call_id="call_read")],
            [
                function_call(
                    "match_purchase_order",
                    {"invoice_id": "INV-1042", "po_number": "PO-7781"},
                    call_id="call_po",
                )
            ],
            [function_call("release_payment", PAYMENT, call_id="call_pay_inv_1042")],
            ModelStep.respond(_final_answer),
        ]
    )
    release = gate(
        _release_payment(),
        client=client,
        mode="wait" if mode == "wait" else "durable",
        action="payments.release",
        business_object=lambda a: {
            "type": "invoice",
            "id": a["invoice_id"],
            "attributes": {"vendor": "Acme GmbH"},
        },
        summary=lambda a: (
            f"Release {a['amount']} {a['currency']} to Acme GmbH for {a['invoice_id']}"
        ),
        route="finance-approver",
        sla="PT2H",
        callback_url=callback_url,
    )
    return Agent(
        name="finance-agent",
        instructions="Pay approved invoices; never pay without a matching purchase order.",
        model=model,
        tools=[read_invoice, match_purchase_order, release],
    )


def resumed_agent(client: AsyncClient) -> Agent[Any]:
    """The same agent, for a resumed run: its model has only the final turn left."""
    agent = build_agent(client, mode="durable")
    return agent.clone(model=ScriptedModel([ModelStep.respond(_final_answer)]))


def play_reviewer(url: str, token: str, verdict: str) -> threading.Thread:
    """Decide the next pending request like a reviewer would (for unattended runs)."""

    def work() -> None:
        with signoff.Client(base_url=url, api_key=token) as reviewer:
            for _ in range(600):
                pending = reviewer.list_requests(status="pending", role="finance-approver").items
                if pending:
                    request = pending[0]
                    extra: dict[str, Any] = {}
                    if verdict == "edit":
                        extra["arguments"] = {**request.action.arguments, "amount": "12250.00"}
                    if verdict in ("reject", "respond"):
                        extra["comment"] = (
                            "ask for the 2% early-payment discount first"
                            if verdict == "respond"
                            else "the vendor's bank account changed last week: verify it"
                        )
                    reviewer.decide(request.id, verdict, **extra)
                    return
                time.sleep(0.1)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


async def run_wait(args: argparse.Namespace) -> None:
    if args.reviewer_token:
        play_reviewer(args.url, args.reviewer_token, args.decide)
    async with AsyncClient(base_url=args.url, api_key=args.key) as client:
        result = await Runner.run(build_agent(client, mode="wait"), "Pay INV-1042", run_config=RUN)
    print(result.final_output)


async def run_pause(args: argparse.Namespace) -> None:
    async with AsyncClient(base_url=args.url, api_key=args.key) as client:
        agent = build_agent(client, mode="durable", callback_url=args.callback_url)
        result = await Runner.run(agent, "Pay INV-1042", run_config=RUN)
        if not result.interruptions:
            print(result.final_output)
            return
        run_key = await pause(result, SqliteRunStore(args.store))
    print(f"PAUSED {run_key}: waiting for the signed decision", flush=True)
    if args.reviewer_token:
        play_reviewer(args.url, args.reviewer_token, args.decide).join(timeout=60)


def run_receive(args: argparse.Namespace) -> None:
    keys = [
        k["public_key"] for k in httpx.get(f"{args.url}/v1/keys", timeout=10).json()["webhook_keys"]
    ]
    client = AsyncClient(base_url=args.url, api_key=args.key)

    def announce(resumed: Resumed) -> None:
        if resumed.result is not None:
            print(f"RESUMED: {resumed.result.final_output}", flush=True)

    app = receiver(
        Verifier(keys),
        lambda: resumed_agent(client),
        SqliteRunStore(args.store),
        run_config=RUN,
        client=client,
        on_resumed=announce,
    ).asgi_app()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("mode", choices=["wait", "pause", "receive"])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--key", required=True, help="the agent key (sk_...)")
    parser.add_argument("--store", default=str(Path("openai-agents-runs.db")))
    parser.add_argument("--callback-url")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--reviewer-token")
    parser.add_argument(
        "--decide", default="approve", choices=["approve", "edit", "reject", "respond"]
    )
    args = parser.parse_args()
    if args.mode == "receive":
        run_receive(args)
    else:
        asyncio.run(run_wait(args) if args.mode == "wait" else run_pause(args))


if __name__ == "__main__":
    main()
