"""What a signoff gate adds to a LangGraph tool call that a policy approves at once, on loopback.

Run it with `uv run python tests/benchmarks/bench_langgraph.py [--runs 200] [--json PATH]`.

Two graphs, identical but for the tool node: a scripted chat model makes `k` calls of
`release_payment` in one turn, the tool node runs them, the model answers. The **baseline** uses
LangGraph's `ToolNode`; the **gated** graph uses `signoff_langgraph.gate_tools` with
`release_payment` gated as `payments.release`. The signoff server (its own process, SQLite,
loopback) runs a `signoff.yaml` whose policy auto-approves `payments.release`, so each gated call
costs what the gate itself costs: creating the request (the policy decides it in the same
transaction; no interrupt, no human), running the tool, and queueing the outcome report, which
the client sends from a background thread (`Client.report_outcome_in_background`). Each timed
gated run is followed, outside the timing, by `client.flush()`, so the report of one run never
overlaps the next run (it would slow whichever graph ran next).

Both graphs use an in-memory checkpointer and a fresh thread per run. Runs alternate between the
two graphs after a warm-up, so drift hits both alike; the figure is the difference of the medians
divided by `k`: the time added per gated call. The target is under 5 ms per call; the script exits
1 if the k=1 figure misses it (2 if the benchmark itself could not run).

To tell the adapter's share from the server's, the script also times the floor: the call a
gated call waits for, made directly with `signoff.Client` (create, which the policy approves at
once; the outcome report is queued and flushed outside the timing, as above). "adapter" = added
per call - that floor.

Wall-clock figures on a shared machine mostly measure the other processes. So the script also
counts CPU time, which load changes less: the server's (its process, per create + report, from
/proc on Linux), and it times the adapter alone: the same two graphs with the client talking to
an in-process stub that answers like the server (`httpx.MockTransport`), so nothing but the
adapter, the core client and LangGraph run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
from _report import Figure as Reported
from _report import record
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from signoff import Client
from signoff_langgraph import ToolGate, gate_tools

TARGET_MS = 5.0
REPORTED = ("langgraph", "langchain-core", "signoff", "signoff-langgraph", "signoff-server")
POLICY = """\
version: 1
people:
  - email: alice@example.com
roles:
  finance-approver:
    members: [alice@example.com]
policies:
  - name: auto-approve-payments
    match:
      action: payments.release
    auto: approve
default:
  route: finance-approver
"""
ARGS = {
    "invoice_id": "INV-1042",
    "amount": "12500.00",
    "currency": "EUR",
    "vendor_account": "DE89370400440532013000",
}


class Scripted(BaseChatModel):
    """First turn: `calls` tool calls of release_payment; then a final answer."""

    calls: int = 1

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if any(isinstance(m, ToolMessage) for m in messages):
            reply = AIMessage(content="done")
        else:
            reply = AIMessage(
                content="",
                tool_calls=[
                    {"name": "release_payment", "args": ARGS, "id": f"call_{n}"}
                    for n in range(self.calls)
                ],
            )
        return ChatResult(generations=[ChatGeneration(message=reply)])


@tool
def release_payment(invoice_id: str, amount: str, currency: str, vendor_account: str) -> str:
    """Release a payment (does nothing here)."""
    return f"released {currency} {amount} for {invoice_id}"


def build(tools: Runnable[Any, Any], calls: int) -> CompiledStateGraph[Any, Any, Any, Any]:
    model = Scripted(calls=calls)

    def agent(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", tools)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition, ["tools", END])
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=InMemorySaver())


def run_once(graph: CompiledStateGraph[Any, Any, Any, Any]) -> float:
    """Seconds for one run on a fresh thread (the run must finish, not pause)."""
    config: RunnableConfig = {"configurable": {"thread_id": uuid.uuid4().hex}}
    started = time.perf_counter()
    out = graph.invoke({"messages": [HumanMessage("pay INV-1042")]}, config)
    elapsed = time.perf_counter() - started
    if "__interrupt__" in out or out["messages"][-1].content != "done":
        raise RuntimeError("the gated run did not finish: is the auto-approval policy loaded?")
    return elapsed


@dataclass
class Figure:
    calls: int
    runs: int
    baseline_ms: float
    gated_ms: float
    added_per_call_ms: float
    gated_p90_ms: float
    floor_ms: float
    """create with the bare client (the outcome report queued), per call"""
    adapter_ms: float
    """added per call minus the floor: what the adapter itself costs"""
    adapter_alone_ms: float
    """added per call against the stub server: the adapter, core client and LangGraph alone"""
    server_cpu_ms: float
    """CPU time the server spends per gated call (create + report outcome)"""


def stub_client() -> Client:
    """A Client whose server is a stub: every request is approved by policy at once."""
    closed = {
        "id": "req_01STUB",
        "status": "approved",
        "created_at": "2026-01-01T00:00:00Z",
        "action": {"name": "payments.release", "arguments": ARGS},
        "business_object": {"type": "tool_call", "id": "call_0"},
        "agent": {"id": "bench-agent", "framework": "langgraph"},
        "risk": "medium",
        "route": {"role": "finance-approver"},
        "on_timeout": "reject",
        "approvals": {"mode": "single", "required": 1},
        "allowed": ["approve", "reject", "edit", "respond"],
        "comment_required": "never",
        "decisions": [
            {
                "id": "dec_01STUB",
                "request_id": "req_01STUB",
                "verdict": "approve",
                "decided_by": {"user": "policy"},
                "via": "policy",
                "at": "2026-01-01T00:00:00Z",
            }
        ],
    }
    body = json.dumps(closed).encode()

    def answer(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    return Client(base_url="http://stub", api_key="sk_stub", transport=httpx.MockTransport(answer))


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process used so far; NaN where /proc is not there."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def floor_once(client: Client) -> float:
    """Seconds for the two calls a gated call makes, done directly with the client."""
    body = {
        "action": {"name": "payments.release", "arguments": ARGS},
        "business_object": {"type": "tool_call", "id": uuid.uuid4().hex},
        "idempotency_key": uuid.uuid4().hex,
    }
    started = time.perf_counter()
    request = client.create_request(body)
    client.report_outcome_in_background(request.id, "executed")
    elapsed = time.perf_counter() - started
    client.flush()
    return elapsed


def flushed(graph: CompiledStateGraph[Any, Any, Any, Any], client: Client) -> float:
    """`run_once`, then (untimed) wait for the run's background outcome reports."""
    elapsed = run_once(graph)
    client.flush()
    return elapsed


def measure(
    base: Callable[[], float], gated: Callable[[], float], runs: int
) -> tuple[list[float], list[float]]:
    for _ in range(max(10, runs // 10)):  # warm-up: connections, caches, JIT-free but lazy imports
        base()
        gated()
    base_times: list[float] = []
    gated_times: list[float] = []
    for _ in range(runs):
        base_times.append(base())
        gated_times.append(gated())
    return base_times, gated_times


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def signoff_server(directory: Path) -> Iterator[tuple[str, str, int]]:
    """A signoff server process with the auto-approval policy; yields (url, agent key, pid)."""
    db = f"sqlite:///{directory / 'signoff.db'}"
    policy = directory / "signoff.yaml"
    policy.write_text(POLICY)
    cli = [sys.executable, "-m", "signoff_server"]
    key = subprocess.run(
        [*cli, "keys", "create", "--agent", "bench-agent", "--db", db],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout.strip()  # fmt: skip
    port = free_port()
    process = subprocess.Popen(
        [*cli, "serve", "--db", db, "--config", str(policy), "--port", str(port),
         "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the signoff server did not start")
            time.sleep(0.2)
        yield url, key, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=200, help="measured runs per graph and k")
    parser.add_argument("--calls", type=int, nargs="+", default=[1, 4], help="gated calls per run")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    figures: list[Figure] = []
    try:
        with (
            tempfile.TemporaryDirectory() as tmp,
            signoff_server(Path(tmp)) as (url, key, pid),
            Client(base_url=url, api_key=key) as client,
        ):
            for calls in args.calls:
                baseline = build(ToolNode([release_payment]), calls)
                gated = build(
                    gate_tools(
                        [release_payment],
                        gated={"release_payment": ToolGate(action="payments.release")},
                        client=client,
                    ),
                    calls,
                )
                base_t, gated_t = measure(
                    lambda g=baseline: run_once(g), lambda g=gated: flushed(g, client), args.runs
                )
                server_before = process_cpu(pid)
                floor_t = [floor_once(client) for _ in range(args.runs)]
                server_cpu = (process_cpu(pid) - server_before) / args.runs
                with stub_client() as stub:
                    stubbed = build(
                        gate_tools(
                            [release_payment],
                            gated={"release_payment": ToolGate(action="payments.release")},
                            client=stub,
                        ),
                        calls,
                    )
                    stub_base_t, stub_t = measure(
                        lambda g=baseline: run_once(g),
                        lambda g=stubbed, c=stub: flushed(g, c),
                        args.runs,
                    )
                alone = (statistics.median(stub_t) - statistics.median(stub_base_t)) / calls
                base_ms = statistics.median(base_t) * 1000
                gated_ms = statistics.median(gated_t) * 1000
                added = (gated_ms - base_ms) / calls
                floor = statistics.median(floor_t) * 1000
                figures.append(
                    Figure(
                        calls=calls,
                        runs=args.runs,
                        baseline_ms=round(base_ms, 3),
                        gated_ms=round(gated_ms, 3),
                        added_per_call_ms=round(added, 3),
                        gated_p90_ms=round(statistics.quantiles(gated_t, n=10)[-1] * 1000, 3),
                        floor_ms=round(floor, 3),
                        adapter_ms=round(added - floor, 3),
                        adapter_alone_ms=round(alone * 1000, 3),
                        server_cpu_ms=round(server_cpu * 1000, 3),
                    )
                )
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"benchmark could not run: {exc}", file=sys.stderr)
        return 2
    environment = {
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        **{name: version(name) for name in REPORTED},
    }
    print("signoff gate on a LangGraph tool call, auto-approved by policy (loopback, SQLite)")
    print("  " + ", ".join(f"{k} {v}" for k, v in environment.items()))
    print(
        f"  {'k':>3} {'baseline ms':>12} {'gated ms':>10} {'p90 gated':>10} {'added/call':>11}"
        f" {'floor/call':>11} {'adapter/call':>13}"
    )
    for f in figures:
        print(
            f"  {f.calls:>3} {f.baseline_ms:>12.2f} {f.gated_ms:>10.2f} {f.gated_p90_ms:>10.2f}"
            f" {f.added_per_call_ms:>8.2f} ms {f.floor_ms:>8.2f} ms {f.adapter_ms:>10.2f} ms"
        )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"  load average while measuring: {load:.1f} on {os.cpu_count()} cores")
    print(f"  per gated call: {'k':>3} {'adapter alone (stub server)':>28} {'server CPU':>11}")
    for f in figures:
        print(
            f"                  {f.calls:>3} {f.adapter_alone_ms:>25.2f} ms"
            f" {f.server_cpu_ms:>8.2f} ms"
        )
    headline = next((f for f in figures if f.calls == 1), figures[0])
    ok = headline.added_per_call_ms < TARGET_MS
    verdict = "meets" if ok else "MISSES"
    print(f"  {verdict} the target: {headline.added_per_call_ms:.2f} ms < {TARGET_MS} ms per call")
    record(
        Reported(
            figure=f"k={f.calls} gated calls per step: added per auto-approved gated call",
            value=f.added_per_call_ms,
            unit="ms",
            target=f"< {TARGET_MS:.0f} ms" if f is headline else "",
            passed=f.added_per_call_ms < TARGET_MS if f is headline else None,
            compared_with="floor: create with the bare Client (outcome report queued)",
            compared_value=f.floor_ms,
            ratio=f.added_per_call_ms / f.floor_ms if f.floor_ms > 0 else None,
            note=f"adapter alone {f.adapter_alone_ms:.2f} ms, server CPU {f.server_cpu_ms:.2f} ms;"
            f" run {f.baseline_ms:.1f} ms with ToolNode, {f.gated_ms:.1f} ms gated",
        )
        for f in figures
    )
    if args.json:
        args.json.write_text(
            json.dumps({"environment": environment, "figures": [asdict(f) for f in figures]})
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
