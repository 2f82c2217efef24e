"""The invoice-payment scenario with CrewAI: a crew whose payment tool is gated, and a Flow that
pauses in one process and resumes in another.

A finance agent reads invoice INV-1042 (Acme GmbH, EUR 12,500.00), matches it against purchase
order PO-7781 and proposes to release the payment. `payments.release` is gated by signoff:

- `crew`: a crew whose `release_payment` tool is a `gated_tool`: the call waits (in-process) for
  the decision. Approve → paid; edit → the edited amount is paid; reject → the agent reads the
  reviewer's reason and writes to the vendor instead; timeout → nothing is paid.
- `start` / `receive`: the Flow version. `start` runs the flow until its review step (a
  `@human_feedback` step with signoff's provider) pauses it, and exits; `receive` serves the
  callback receiver, which verifies signoff's signed callback and resumes the flow from its
  SQLite persistence, routing on the verdict (no LLM classifies anything).

The model is scripted (no API key, no network besides signoff): it reads the tool results and
picks the next step the way a model would.

Try it against the demo server (from the repository root, in the CrewAI environment):

    signoff serve --demo --db sqlite:///demo.db          # prints an agent key and tokens
    export SIGNOFF_URL=http://127.0.0.1:8080 SIGNOFF_API_KEY=sk_...   # the agent key

    python examples/crewai_invoice_payment.py crew                     # waits for a decision

    python examples/crewai_invoice_payment.py receive --port 8766      # terminal 2
    python examples/crewai_invoice_payment.py start --callback-url http://127.0.0.1:8766/

then decide the request printed in the web inbox (the demo policy wants two finance approvers
above EUR 10,000: alice and bob), or with curl and their tokens:

    curl -X POST $SIGNOFF_URL/v1/requests/REQ/decisions -H "authorization: Bearer pt_..." \\
         -H 'content-type: application/json' -d '{"verdict": "approve"}'
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any, cast

for _name, _value in {
    "CREWAI_DISABLE_TELEMETRY": "true",
    "CREWAI_DISABLE_VERSION_CHECK": "true",
    "CREWAI_TRACING_ENABLED": "false",
    "OTEL_SDK_DISABLED": "true",
}.items():
    os.environ.setdefault(_name, _value)  # this script runs offline; set before CrewAI loads

from crewai import Agent, Crew, CrewOutput, Task  # noqa: E402
from crewai.flow import Flow, human_feedback, listen, or_, router, start  # noqa: E402
from crewai.flow.async_feedback import HumanFeedbackPending  # noqa: E402
from crewai.flow.persistence import SQLiteFlowPersistence, persist  # noqa: E402
from crewai.llms.base_llm import BaseLLM  # noqa: E402
from crewai.tools import BaseTool, tool  # noqa: E402
from pydantic import PrivateAttr  # noqa: E402

from signoff import Client, Verifier  # noqa: E402
from signoff.receiver import SqliteDedupeStore  # noqa: E402
from signoff_crewai import (  # noqa: E402
    FlowResumed,
    SignoffFeedbackProvider,
    decision_of,
    gated_tool,
    receiver,
)

INVOICE = {
    "invoice_id": "INV-1042",
    "vendor": "Acme GmbH",
    "amount": "12500.00",
    "currency": "EUR",
    "vendor_account": "DE89370400440532013000",
    "purchase_order": "PO-7781",
}
PAYMENT = {k: INVOICE[k] for k in ("invoice_id", "amount", "currency", "vendor_account")}


def _record(state_dir: Path, kind: str, entry: dict[str, Any]) -> None:
    with (state_dir / f"{kind}.jsonl").open("a", encoding="utf-8") as log:
        log.write(json.dumps(entry) + "\n")


def make_tools(state_dir: Path) -> dict[str, BaseTool]:
    """The finance agent's tools; only `release_payment` moves money."""

    @tool("read_invoice")
    def read_invoice(invoice_id: str) -> str:
        """Read an invoice."""
        return json.dumps(INVOICE if invoice_id == INVOICE["invoice_id"] else {})

    @tool("match_purchase_order")
    def match_purchase_order(invoice_id: str, purchase_order: str) -> str:
        """Check an invoice against a purchase order."""
        return f"{invoice_id} matches {purchase_order}: same vendor, amount and delivery"

    @tool("release_payment")
    def release_payment(invoice_id: str, amount: str, currency: str, vendor_account: str) -> str:
        """Release the payment of an invoice to the vendor's account."""
        _record(state_dir, "payments", {"invoice_id": invoice_id, "amount": amount})
        return f"released {currency} {amount} for {invoice_id} to {vendor_account}"

    @tool("email_vendor")
    def email_vendor(invoice_id: str, message: str) -> str:
        """Write to the vendor about an invoice."""
        _record(state_dir, "emails", {"invoice_id": invoice_id, "message": message})
        return f"email sent about {invoice_id}"

    return {t.name: t for t in (read_invoice, match_purchase_order, release_payment, email_vendor)}


class ScriptedModel(BaseLLM):
    """Reads the invoice, matches the PO, asks to pay, then reacts to what the payment said."""

    function_calling: bool = False
    _seen: list[str] = PrivateAttr(default_factory=list)

    def supports_function_calling(self) -> bool:
        return self.function_calling

    def call(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
        text = json.dumps(messages) if not isinstance(messages, str) else messages
        self._seen.append(text)
        step = len(self._seen)
        if step == 1:
            return self._use("read_invoice", {"invoice_id": "INV-1042"})
        if step == 2:
            return self._use(
                "match_purchase_order", {"invoice_id": "INV-1042", "purchase_order": "PO-7781"}
            )
        if step == 3:
            return self._use("release_payment", PAYMENT)
        last = _last_result(messages)
        if step == 4 and "released" not in last:
            reason = last.split("Not executed", 1)[-1].strip(" .:")
            note = f"Payment of INV-1042 is on hold: {reason}"
            return self._use("email_vendor", {"invoice_id": "INV-1042", "message": note})
        if "email sent" in last:
            return self._final("Payment not released; I wrote to the vendor.")
        return self._final(f"Done. {last}")

    def _use(self, name: str, args: dict[str, Any]) -> Any:
        if self.function_calling:
            call = {"name": name, "arguments": json.dumps(args)}
            return [{"id": f"call_{name}", "type": "function", "function": call}]
        return f"Thought: next, {name}\nAction: {name}\nAction Input: {json.dumps(args)}"

    def _final(self, text: str) -> str:
        return text if self.function_calling else f"Thought: done\nFinal Answer: {text}"


def _last_result(messages: Any) -> str:
    """The last tool result in the conversation (a tool message, or a ReAct observation)."""
    for message in reversed(messages if isinstance(messages, list) else []):
        if not isinstance(message, dict) or message.get("role") == "system":
            continue
        content = str(message.get("content") or "")
        if message.get("role") == "tool":
            return content
        if "Observation:" in content:
            # The observation follows the model's action; CrewAI may append a format reminder.
            return content.split("Observation:", 1)[1].split("\n\n", 1)[0].strip()
    return ""


def payment_object(args: Any) -> dict[str, Any]:
    """The business object of a payment: the invoice it pays."""
    return {
        "type": "invoice",
        "id": args["invoice_id"],
        "attributes": {"amount": args["amount"], "currency": args["currency"], "vendor": "Acme"},
    }


def payment_summary(args: Any) -> str:
    """What the reviewer reads first."""
    return f"Release {args['currency']} {args['amount']} to Acme GmbH for {args['invoice_id']}"


# The crew version: the tool call waits for the decision ------------------------------------


def run_crew(args: argparse.Namespace) -> int:
    """Run the crew once; the gated payment waits for signoff's decision."""
    state_dir = _state_dir(args.state)
    tools = make_tools(state_dir)
    with Client() as client:
        pay = gated_tool(
            tools["release_payment"],
            client=client,
            action="payments.release",
            business_object=payment_object,
            summary=payment_summary,
            route="finance-approver",
            wait_timeout=args.wait,
        )
        model = ScriptedModel(model="scripted", function_calling=args.function_calling)
        agent = Agent(
            role="finance agent",
            goal="pay invoices that match their purchase order",
            backstory="Works in accounts payable at Acme's customer.",
            llm=model,
            tools=[
                tools["read_invoice"],
                tools["match_purchase_order"],
                pay,
                tools["email_vendor"],
            ],
        )
        task = Task(
            description="Check invoice INV-1042 against PO-7781 and pay it if it matches.",
            expected_output="what was done",
            agent=agent,
        )
        print("waiting for signoff's decision on payments.release ...", flush=True)
        output = Crew(agents=[agent], tasks=[task]).kickoff()
        assert isinstance(output, CrewOutput)  # not streaming
    print(f"crew: {output.raw}", flush=True)
    return 0


# The Flow version: pause in one process, resume in another -----------------------------------


def build_flow(
    state_dir: Path, persistence: SQLiteFlowPersistence, client: Client | None, callback_url: str
) -> type[Flow[dict[str, Any]]]:
    """The invoice flow: propose (reviewed by signoff) → route on the verdict → act."""
    review = SignoffFeedbackProvider(
        action="payments.release",
        client=client,
        business_object=payment_object,
        summary=payment_summary,
        route="finance-approver",
        callback_url=callback_url,
    )
    tools = make_tools(state_dir)

    @persist(persistence)
    class InvoiceFlow(Flow[dict[str, Any]]):
        @start()
        @human_feedback(message="Release this payment?", provider=review)
        def propose(self) -> dict[str, Any]:
            invoice = json.loads(str(tools["read_invoice"].run(invoice_id="INV-1042")))
            self.state["match"] = tools["match_purchase_order"].run(
                invoice_id=invoice["invoice_id"], purchase_order=invoice["purchase_order"]
            )
            return {k: invoice[k] for k in PAYMENT}

        @router(propose)
        def decided(self) -> str:
            return decision_of(self).route  # the verdict, never an LLM's reading of it

        @listen("approved")
        def release(self) -> str:
            result = tools["release_payment"].run(**decision_of(self).arguments)
            review.report_outcome(self, "executed")
            return f"Done. {result}"

        @listen(or_("rejected", "responded", "expired", "cancelled"))
        def write_to_vendor(self) -> str:
            decision = decision_of(self)
            tools["email_vendor"].run(invoice_id="INV-1042", message=decision.message)
            return f"Payment not released; I wrote to the vendor ({decision.message})"

    return cast(type[Flow[dict[str, Any]]], InvoiceFlow)  # @persist is typed loosely


def start_flow(args: argparse.Namespace) -> int:
    """Run the flow until signoff's review pauses it; print the request, then exit."""
    state_dir = _state_dir(args.state)
    persistence = SQLiteFlowPersistence(str(state_dir / "flows.db"))
    with Client() as client:
        flow = build_flow(state_dir, persistence, client, args.callback_url)
        result = flow(persistence=persistence).kickoff()
    if not isinstance(result, HumanFeedbackPending):
        print(f"finished without pausing (a policy decided at once): {result}")
        return 0
    print(f"flow: {result.context.flow_id}")
    print(f"request: {result.callback_info['signoff_request_id']}  (decide it in signoff)")
    return 0


def receive(args: argparse.Namespace) -> int:
    """Serve the callback receiver; resume each flow whose request was decided."""
    import uvicorn

    state_dir = _state_dir(args.state)
    persistence = SQLiteFlowPersistence(str(state_dir / "flows.db"))
    with Client() as client:
        flow = build_flow(state_dir, persistence, client, args.callback_url or "")
        server: list[uvicorn.Server] = []
        resumed: list[str] = []

        def report(done: FlowResumed) -> None:
            print(f"flow {done.flow_id}: {done.result}", flush=True)
            resumed.append(done.flow_id)
            if args.count is not None and len(resumed) >= args.count:
                server[0].should_exit = True

        app = receiver(
            _server_verifier(client),  # pins the whpk_ keys from GET /v1/keys
            flow,
            persistence,
            store=SqliteDedupeStore(state_dir / "callbacks.db"),
            client=client,
            on_resumed=report,
        ).asgi_app()
        config = uvicorn.Config(_lifespan(app), port=args.port, log_level="warning")
        server.append(uvicorn.Server(config))
        print(f"receiving signoff callbacks on http://127.0.0.1:{args.port}/", flush=True)
        server[0].run()
    return 0


def _server_verifier(client: Client) -> Verifier:
    keys = [k["public_key"] for k in client.keys().get("webhook_keys", []) if "public_key" in k]
    return Verifier(keys)


def _lifespan(app: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """The receiver app, answering uvicorn's lifespan messages too."""

    async def wrapped(
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await app(scope, receive, send)

    return wrapped


def _state_dir(path: str) -> Path:
    state_dir = Path(path)
    state_dir.mkdir(parents=True, exist_ok=True)
    return state_dir


def main(argv: list[str] | None = None) -> int:
    """`crew`, or the Flow's `start` and `receive`."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--state", default=".signoff-crewai-demo", help="flows, payments, mails")
    commands = parser.add_subparsers(dest="command", required=True)
    crew = commands.add_parser("crew", help="run the crew; the gated payment waits for signoff")
    crew.add_argument("--function-calling", action="store_true", help="native tool calls")
    crew.add_argument("--wait", type=float, default=600.0, help="seconds to wait for a decision")
    run = commands.add_parser("start", help="run the flow until signoff's review pauses it")
    run.add_argument(
        "--callback-url",
        default="http://127.0.0.1:8766/",
        help="where signoff posts the decision: the receiver's URL",
    )
    serve = commands.add_parser("receive", help="resume flows from signoff's callbacks")
    serve.add_argument("--port", type=int, default=8766)
    serve.add_argument("--count", type=int, help="exit once this many flows were resumed")
    serve.add_argument("--callback-url", help="this receiver's URL as `start` was given it")
    args = parser.parse_args(argv)
    if not os.environ.get("SIGNOFF_URL") or not os.environ.get("SIGNOFF_API_KEY"):
        parser.error("set SIGNOFF_URL and SIGNOFF_API_KEY (the agent key `signoff serve --demo`)")
    commands_by_name = {"crew": run_crew, "start": start_flow, "receive": receive}
    return commands_by_name[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
