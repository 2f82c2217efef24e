"""Scan speed: `signoff scan` over a generated 2,000-file Python tree must take under 10 s.

Run it with `uv run python tests/benchmarks/bench_scan.py [--files 2000] [--repeat 3]`.

The tree is written to a temporary directory: packages of service modules (plain functions,
some calling payment, cloud, SQL, shell or HTTP APIs, calling each other across modules), tool
modules for each framework (LangChain `@tool`, OpenAI Agents `function_tool`, CrewAI `BaseTool`)
that import those services, agent modules that hand the tools to agents, LangGraph graph
modules, a few n8n workflow JSON files and one file that does not parse. Every scan is a cold
run in a fresh process state: nothing is cached between runs. The script prints the file and
line counts, what the scan found, and the wall time of each run; it exits 1 if the best run
takes longer than the limit (wall time: what a user waits for; the CPU time is printed too,
since a busy machine stretches the wall time).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

from _report import Figure, record

from signoff_agent_kit import scan

LIMIT_SECONDS = 10.0

SERVICE = '''"""Service module {n}."""

import os
import subprocess

import boto3
import requests
import stripe
from sqlalchemy import text

from {pkg}.services.svc{dep} import helper_{dep}

s3 = boto3.client("s3")
API = "https://api.example.com/v1"


def helper_{n}(item_id: str) -> dict:
    """Fetch an item."""
    return requests.get(f"{{API}}/items/{{item_id}}", timeout=10).json()


def pay_{n}(account: str, cents: int) -> str:
    return stripe.Transfer.create(amount=cents, currency="eur", destination=account).id


def status_{n}(payment_id: str) -> str:
    return stripe.PaymentIntent.retrieve(payment_id).status


def purge_{n}(conn, days: int) -> int:
    return conn.execute(text("DELETE FROM events WHERE age > :d"), {{"d": days}}).rowcount


def archive_{n}(key: str) -> None:
    s3.delete_object(Bucket="archive", Key=key)


def build_{n}(target: str) -> str:
    return subprocess.run(["make", target], capture_output=True, text=True).stdout


def notify_{n}(url: str, payload: dict) -> None:
    requests.post(f"{{API}}/hooks/{n}", json=payload, timeout=10)


def compute_{n}(values: list[float]) -> float:
    total = 0.0
    for value in values:
        total += value * {n} % 7
    return total / max(len(values), 1) + len(os.sep)


def chain_{n}(item_id: str) -> dict:
    return helper_{dep}(item_id)
'''

TOOLS_LANGCHAIN = '''"""LangChain tools {n}."""

from langchain_core.tools import tool

from {pkg}.services.svc{a} import archive_{a}, compute_{a}, pay_{a}, status_{a}
from {pkg}.services.svc{b} import helper_{b}, purge_{b}


@tool
def release_payment_{n}(account: str, cents: int) -> str:
    """Release a vendor payment."""
    return pay_{a}(account, cents)


@tool
def payment_status_{n}(payment_id: str) -> str:
    """Where a payment is."""
    return status_{a}(payment_id)


@tool
def clean_up_{n}(days: int) -> int:
    """Remove old events."""
    return purge_{b}(None, days)


@tool
def lookup_{n}(item_id: str) -> dict:
    """Look an item up."""
    return helper_{b}(item_id)


@tool
def stats_{n}(values: list[float]) -> float:
    """Average of some values."""
    return compute_{a}(values)


def unused_{n}(key: str) -> None:
    archive_{a}(key)
'''

TOOLS_OPENAI = '''"""OpenAI Agents tools {n}."""

import os

from agents import Agent, function_tool

from {pkg}.services.svc{a} import build_{a}, notify_{a}, pay_{a}


@function_tool(needs_approval=True)
def refund_{n}(account: str, cents: int) -> str:
    """Refund a customer."""
    return pay_{a}(account, cents)


@function_tool
def run_build_{n}(target: str) -> str:
    """Run a build target."""
    return build_{a}(target)


@function_tool
def shell_{n}(command: str) -> str:
    """Run a shell command."""
    return os.popen(command).read()


@function_tool
def ping_{n}(url: str) -> None:
    """Tell a webhook."""
    notify_{a}(url, {{"ok": True}})


agent_{n} = Agent(name="agent-{n}", tools=[refund_{n}, run_build_{n}, shell_{n}, ping_{n}])
'''

TOOLS_CREWAI = '''"""CrewAI tools {n}."""

from crewai import Agent
from crewai.tools import BaseTool

from {pkg}.services.svc{a} import archive_{a}, helper_{a}


class ArchiveTool{n}(BaseTool):
    name: str = "archive_{n}"
    description: str = "Delete an archived object."

    def _run(self, key: str) -> str:
        archive_{a}(key)
        return "deleted"


class FetchTool{n}(BaseTool):
    name: str = "fetch_{n}"
    description: str = "Fetch an item."

    def _run(self, item_id: str) -> str:
        return str(helper_{a}(item_id))


crew_agent_{n} = Agent(role="ops-{n}", goal="g", backstory="b",
                       tools=[ArchiveTool{n}(), FetchTool{n}()])
'''

GRAPH = '''"""LangGraph graph {n}."""

from langgraph.graph import END, START, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import interrupt

from {pkg}.tools.lc{a} import clean_up_{a}, lookup_{a}, release_payment_{a}
from {pkg}.services.svc{b} import pay_{b}


def agent(state: dict) -> dict:
    return {{"messages": []}}


def approve(state: dict) -> dict:
    interrupt({{"pay": state["amount"]}})
    return {{}}


def pay(state: dict) -> dict:
    return {{"id": pay_{b}(state["account"], state["amount"])}}


builder = StateGraph(dict)
builder.add_node("agent", agent)
builder.add_node("tools", ToolNode([release_payment_{a}, clean_up_{a}, lookup_{a}]))
builder.add_node("approve", approve)
builder.add_node("pay", pay)
builder.add_edge(START, "agent")
builder.add_conditional_edges("agent", tools_condition)
builder.add_edge("tools", "approve")
builder.add_edge("approve", "pay")
builder.add_edge("pay", END)
graph_{n} = builder.compile()
'''


def workflow(n: int) -> dict[str, object]:
    """A small n8n workflow: trigger, a read, a wait, a delete."""
    nodes = [
        {"name": "Start", "type": "n8n-nodes-base.manualTrigger", "parameters": {}},
        {"name": "Read", "type": "n8n-nodes-base.httpRequest", "parameters": {"url": "https://x"}},
        {"name": "Wait", "type": "n8n-nodes-base.wait", "parameters": {"resume": "webhook"}},
        {
            "name": f"Delete {n}",
            "type": "n8n-nodes-base.postgres",
            "parameters": {"operation": "executeQuery", "query": "DELETE FROM t"},
        },
    ]
    return {
        "name": f"wf-{n}",
        "nodes": nodes,
        "connections": {
            "Start": {"main": [[{"node": "Read"}]]},
            "Read": {"main": [[{"node": "Wait"}]]},
            "Wait": {"main": [[{"node": f"Delete {n}"}]]},
        },
    }


def generate(root: Path, files: int, seed: int = 7) -> tuple[int, int]:
    """Write the tree; returns (files, lines)."""
    rng = random.Random(seed)
    pkg = "benchapp"
    kinds = {"services": 0.45, "tools": 0.35, "graphs": 0.15, "workflows": 0.05}
    counts = {k: max(int(files * share), 1) for k, share in kinds.items()}
    counts["services"] += files - sum(counts.values()) - 1  # one broken file
    for folder in ("services", "tools", "graphs", "workflows"):
        (root / pkg / folder).mkdir(parents=True, exist_ok=True)
        (root / pkg / folder / "__init__.py").write_text("")
    (root / pkg / "__init__.py").write_text("")
    services = counts["services"] - 5  # the four __init__.py files and the package's count
    written = lines = 0

    def write(path: Path, text: str) -> None:
        nonlocal written, lines
        path.write_text(text, encoding="utf-8")
        written += 1
        lines += text.count("\n")

    for n in range(services):
        write(root / pkg / "services" / f"svc{n}.py",
              SERVICE.format(n=n, dep=rng.randrange(services), pkg=pkg))  # fmt: skip
    tool_files = counts["tools"]
    lc = list(range(0, tool_files, 3))
    for n in range(tool_files):
        a, b = rng.randrange(services), rng.randrange(services)
        template = (TOOLS_LANGCHAIN, TOOLS_OPENAI, TOOLS_CREWAI)[n % 3]
        prefix = ("lc", "oa", "cr")[n % 3]
        write(root / pkg / "tools" / f"{prefix}{n}.py", template.format(n=n, a=a, b=b, pkg=pkg))
    for n in range(counts["graphs"]):
        write(root / pkg / "graphs" / f"graph{n}.py",
              GRAPH.format(n=n, a=rng.choice(lc), b=rng.randrange(services), pkg=pkg))  # fmt: skip
    for n in range(counts["workflows"]):
        write(root / pkg / "workflows" / f"wf{n}.json", json.dumps(workflow(n), indent=2))
    write(root / pkg / "broken.py", "def broken(:\n    pass\n")
    return written + 5, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="signoff scan speed on a generated tree.")
    parser.add_argument("--files", type=int, default=2000, help="files in the generated tree")
    parser.add_argument("--repeat", type=int, default=3, help="scans to time (best wins)")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {load:.1f}"
    )
    with tempfile.TemporaryDirectory(prefix="signoff-bench-scan-") as tmp:
        root = Path(tmp)
        files, lines = generate(root, args.files)
        print(f"generated {files} files, {lines:,} lines in {root}")
        timings: list[float] = []
        cpus: list[float] = []
        result = None
        for run in range(1, args.repeat + 1):
            started, cpu = time.perf_counter(), time.process_time()
            result = scan([root])
            timings.append(time.perf_counter() - started)
            cpu = time.process_time() - cpu
            cpus.append(cpu)
            print(
                f"run {run}: {timings[-1]:.2f} s wall, {cpu:.2f} s CPU "
                f"({result.files / timings[-1]:,.0f} files/s)"
            )
        assert result is not None
        summary = result.to_dict()["summary"]
        print(
            f"found {summary['agents']} agents, {summary['tools']} tools, "
            f"{summary['risky_actions']} risky actions ({summary['gated']} gated, "
            f"{summary['ungated']} ungated), {len(result.warnings)} warning(s)"
        )
    best = min(timings)
    verdict = "ok" if best <= LIMIT_SECONDS else "FAIL"
    print(f"best: {best:.2f} s for {files} files (limit {LIMIT_SECONDS:.0f} s): {verdict}")
    record(
        [
            Figure(
                figure=f"signoff scan of {files:,} files, best of {args.repeat} (wall)",
                value=best,
                unit="s",
                target=f"≤ {LIMIT_SECONDS:.0f} s",
                passed=best <= LIMIT_SECONDS,
                note=f"{lines:,} lines; {cpus[timings.index(best)]:.2f} s CPU",
            )
        ]
    )
    if best > LIMIT_SECONDS:
        print(f"FAIL scan of {files} files took {best:.2f} s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
