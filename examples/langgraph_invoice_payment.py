"""The invoice-payment scenario with LangGraph, paused in one process and resumed in another.

A finance agent reads invoice INV-1042 (Acme GmbH, EUR 12,500.00), matches it against purchase
order PO-7781 and proposes to release the payment. `payments.release` is gated by signoff: the
run pauses on `interrupt()`, a reviewer decides in signoff, signoff posts a signed callback, and
a receiver in another process verifies it and resumes the run from its SQLite checkpoint.
Approve → the payment is released; edit → the edited amount is paid; reject → the agent writes
to the vendor instead; respond → the agent follows the instruction; timeout → nothing is paid.

The model is scripted (no API key, no network besides signoff): it reads the tool results and
picks the next step the way a model would.

Try it against the demo server (three terminals, from the repository root):

    signoff serve --demo --db sqlite:///demo.db          # prints an agent key and tokens
    export SIGNOFF_URL=http://127.0.0.1:8080 SIGNOFF_API_KEY=sk_...   # the agent key

    python examples/langgraph_invoice_payment.py receive --port 8765      # terminal 2
    python examples/langgraph_invoice_payment.py start --thread inv-1042 \\
        --callback-url http://127.0.0.1:8765/                              # terminal 3

then decide the request printed by `start` in the web inbox (the demo policy wants two finance
approvers above EUR 10,000: alice and bob), or with curl and their tokens:

    curl -X POST $SIGNOFF_URL/v1/requests/REQ/decisions -H "authorization: Bearer pt_..." \\
         -H 'content-type: application/json' -d '{"verdict": "approve"}'
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import closing
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, tool
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import tools_condition

from signoff import Client
from signoff.receiver import SqliteDedupeStore
from signoff_langgraph import LangGraphReceiver, ToolGate, gate_tools, server_verifier

INVOICE = {
    "invoice_id": "INV-1042",
    "vendor": "Acme GmbH",
    "amount": "12500.00",
    "currency": "EUR",
    "vendor_account": "DE89370400440532013000",
    "purchase_order": "PO-7781",
    "due_in_days": 10,
}


# The agent's tools --------------------------------------------------------------------------


def make_tools(state_dir: Path) -> list[BaseTool]:
    """The agent's tools; payments and vendor e-mails are recorded under `state_dir`."""

    def record(kind: str, entry: dict[str, Any]) -> None:
        with (state_dir / f"{kind}.jsonl").open("a", encoding="utf-8") as out:
            out.write(json.dumps(entry) + "\n")

    @tool
    def read_invoice(invoice_id: str) -> str:
        """Read an invoice from the ERP."""
        return json.dumps(INVOICE if invoice_id == INVOICE["invoice_id"] else {})

    @tool
    def match_purchase_order(invoice_id: str, purchase_order: str) -> str:
        """Compare an invoice with its purchase order and goods receipt."""
        return f"{purchase_order} matches {invoice_id}: EUR 12,500.00, goods received in full"

    @tool
    def release_payment(invoice_id: str, amount: str, currency: str, vendor_account: str) -> str:
        """Release the payment of an invoice to the vendor's account (gated by signoff)."""
        record("payments", {"invoice_id": invoice_id, "amount": amount, "currency": currency})
        return f"Released {currency} {amount} to {vendor_account} for {invoice_id}"

    @tool
    def email_vendor(invoice_id: str, message: str) -> str:
        """Write to the vendor about an invoice."""
        record("emails", {"invoice_id": invoice_id, "message": message})
        return f"Sent to {INVOICE['vendor']}: {message}"

    return [read_invoice, match_purchase_order, release_payment, email_vendor]


# A scripted model: reads the tool results and picks the next step ----------------------------


def _call(name: str, **args: Any) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": f"call_{name}"}])


class InvoiceModel(BaseChatModel):
    """Plays the finance agent: read, match, propose the payment, then react to the decision."""

    @property
    def _llm_type(self) -> str:
        return "scripted-invoice-agent"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._next(messages))])

    @staticmethod
    def _next(messages: list[BaseMessage]) -> AIMessage:
        last = messages[-1]
        if isinstance(last, HumanMessage):
            return _call("read_invoice", invoice_id="INV-1042")
        assert isinstance(last, ToolMessage)
        if last.name == "read_invoice":
            invoice = json.loads(str(last.content))
            return _call(
                "match_purchase_order",
                invoice_id=invoice["invoice_id"],
                purchase_order=invoice["purchase_order"],
            )
        if last.name == "match_purchase_order":
            return _call(
                "release_payment",
                invoice_id=INVOICE["invoice_id"],
                amount=INVOICE["amount"],
                currency=INVOICE["currency"],
                vendor_account=INVOICE["vendor_account"],
            )
        if last.name == "release_payment":
            decision = (last.artifact or {}).get("signoff") if last.artifact else None
            if decision is None:  # it ran
                return AIMessage(content=f"Done. {last.content}.")
            if decision["kind"] == "respond":  # the reviewer's instruction: follow it
                return _call("email_vendor", invoice_id="INV-1042", message=str(last.content))
            reason = decision.get("comment") or decision["kind"]
            return _call(
                "email_vendor",
                invoice_id="INV-1042",
                message=f"Payment of INV-1042 is on hold ({reason}); we will get back to you.",
            )
        return AIMessage(content=f"Payment not released; I wrote to the vendor. {last.content}")


# The graph ------------------------------------------------------------------------------------


def build_graph(
    *, client: Client, checkpointer: SqliteSaver, state_dir: Path, callback_url: str | None
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """agent → tools (payments.release gated by signoff) → agent."""
    model = InvoiceModel()
    tools = gate_tools(
        make_tools(state_dir),
        gated={
            "release_payment": ToolGate(
                action="payments.release",
                business_object=lambda args, _state: {
                    "type": "invoice",
                    "id": args["invoice_id"],
                    "attributes": {
                        "amount": args["amount"],
                        "currency": args["currency"],
                        "vendor": INVOICE["vendor"],
                    },
                },
                summary=lambda args, _state: (
                    f"Release {args['currency']} {args['amount']} to {INVOICE['vendor']} "
                    f"for {args['invoice_id']} (matches {INVOICE['purchase_order']})"
                ),
                context=lambda _args, _state: {"purchase_order": INVOICE["purchase_order"]},
                route="finance-approver",
            )
        },
        client=client,
        callback_url=callback_url,
        agent_name="finance-agent",
    )

    def agent(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", tools)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition, ["tools", END])
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=checkpointer)


# Commands -------------------------------------------------------------------------------------


def _state_dir(path: str) -> Path:
    state = Path(path)
    state.mkdir(parents=True, exist_ok=True)
    return state


def start(args: argparse.Namespace) -> int:
    """Run the agent until it pauses at the payment gate, then exit."""
    state_dir = _state_dir(args.state)
    with (
        Client() as client,
        closing(sqlite3.connect(state_dir / "checkpoints.sqlite", check_same_thread=False)) as db,
    ):
        graph = build_graph(
            client=client,
            checkpointer=SqliteSaver(db),
            state_dir=state_dir,
            callback_url=args.callback_url,
        )
        config: RunnableConfig = {"configurable": {"thread_id": args.thread}}
        request = HumanMessage("Pay invoice INV-1042 if it matches its purchase order.")
        graph.invoke({"messages": [request]}, config, durability="sync")
        for pending in graph.get_state(config).interrupts:
            gate = pending.value
            print(f"paused: {gate['description']}")
            print(f"request: {gate['signoff']['request_id']}")
        if not graph.get_state(config).interrupts:
            print(f"finished: {graph.get_state(config).values['messages'][-1].content}")
    return 0


def receive(args: argparse.Namespace) -> int:
    """Serve the callback receiver; resume each thread whose request was decided."""
    import uvicorn

    state_dir = _state_dir(args.state)
    with (
        Client() as client,
        closing(sqlite3.connect(state_dir / "checkpoints.sqlite", check_same_thread=False)) as db,
    ):
        saver = SqliteSaver(db)
        # The same gate settings as the process that paused: the re-run of the gated step must
        # ask for exactly the same request (signoff refuses a changed body under the same key).
        graph = build_graph(
            client=client,
            checkpointer=saver,
            state_dir=state_dir,
            callback_url=args.callback_url or f"http://127.0.0.1:{args.port}/",
        )
        receiver = LangGraphReceiver(
            graph,
            verifier=server_verifier(client),  # pins the whpk_ keys from GET /v1/keys
            client=client,
            store=SqliteDedupeStore(state_dir / "callbacks.sqlite"),
        )
        callbacks = CallbackServer(receiver, graph, saver, stop_after=args.count)
        server = uvicorn.Server(uvicorn.Config(callbacks, port=args.port, log_level="warning"))
        callbacks.server = server
        print(f"receiving signoff callbacks on http://127.0.0.1:{args.port}/", flush=True)
        server.run()
    return 0


class CallbackServer:
    """The receiver's ASGI app, printing what each callback did (and stopping after a count)."""

    def __init__(
        self,
        receiver: LangGraphReceiver,
        graph: CompiledStateGraph[Any, Any, Any, Any],
        saver: SqliteSaver,
        *,
        stop_after: int | None,
    ) -> None:
        self.inner = receiver.asgi_app()
        self.graph = graph
        self.saver = saver
        self.stop_after = stop_after
        self.finished: set[str] = set()
        self.server: Any = None
        self.in_flight = 0  # callbacks being handled; a thread mid-resume is not read as done

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        answers: list[bytes] = []

        async def spy(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.body":
                answers.append(message.get("body", b""))
            await send(message)

        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.inner(scope, receive, spy)
        finally:
            self.in_flight -= 1
        print(f"callback: {b''.join(answers).decode()}", flush=True)
        if self.in_flight:
            return  # another callback is still resuming a thread: the last one reports
        await asyncio.to_thread(self.report)
        if self.stop_after is not None and len(self.finished) >= self.stop_after:
            self.server.should_exit = True

    def report(self) -> None:
        """Print the last message of every thread that finished since the last call."""
        threads = {
            str(c.config.get("configurable", {}).get("thread_id")) for c in self.saver.list(None)
        }
        for thread in sorted(threads - self.finished):
            config: RunnableConfig = {"configurable": {"thread_id": thread}}
            state = self.graph.get_state(config)
            last = state.values["messages"][-1]
            if not state.next and isinstance(last, AIMessage) and not last.tool_calls:
                self.finished.add(thread)  # the agent's final answer, not a step on the way
                print(f"{thread}: {last.content}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """`start` a run, or `receive` callbacks and resume runs."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--state", default=".signoff-langgraph-demo", help="checkpoints, logs")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("start", help="run the agent until it pauses at the gate")
    run.add_argument("--thread", default="inv-1042")
    run.add_argument(
        "--callback-url",
        default="http://127.0.0.1:8765/",
        help="where signoff posts the decision: the receiver's URL",
    )
    serve = commands.add_parser("receive", help="resume runs from signoff's callbacks")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--count", type=int, help="exit once this many runs have finished")
    serve.add_argument("--callback-url", help="this receiver's URL as `start` was given it")
    args = parser.parse_args(argv)
    if not os.environ.get("SIGNOFF_URL") or not os.environ.get("SIGNOFF_API_KEY"):
        parser.error("set SIGNOFF_URL and SIGNOFF_API_KEY (the agent key `signoff serve --demo`)")
    return start(args) if args.command == "start" else receive(args)


if __name__ == "__main__":
    sys.exit(main())
