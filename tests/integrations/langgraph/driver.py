"""The LangGraph adapter's conformance driver: the test agent (scripted model → `gate_tools`
ToolNode → model) on a SQLite checkpointer, resumed through `LangGraphReceiver`'s ASGI app."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph.state import CompiledStateGraph
from tests.integrations.conformance.driver import (
    AdapterDriver,
    Delivered,
    Paused,
    RunView,
    Setup,
)
from tests.integrations.conformance.harness import Harness
from tests.integrations.langgraph.agent import (
    LEDGER_ENV,
    build_graph,
    checkpoint_of,
    ledger_entries,
    plan_message,
)

from signoff import Client, Verifier
from signoff.receiver import SqliteDedupeStore
from signoff_langgraph import LangGraphReceiver

PAUSE_SCRIPT = Path(__file__).with_name("pause_run.py")


@dataclass
class _Run:
    graph: CompiledStateGraph[Any, Any, Any, Any]
    receiver: LangGraphReceiver
    config: RunnableConfig
    call_ids: list[str]


class LangGraphDriver(AdapterDriver):
    """Runs the test agent through signoff-langgraph for the conformance suite."""

    name = "langgraph"

    def __init__(self, harness: Harness, directory: Path) -> None:
        self.h = harness
        self.directory = directory
        self.ledger = Path(os.environ[LEDGER_ENV])
        self.db_path = directory / "checkpoints.db"
        self.client = Client(base_url=harness.world.url, api_key=harness.agent_key)
        self.conn = sqlite3.connect(self.db_path, check_same_thread=False)
        self.saver = SqliteSaver(self.conn)
        self.store = SqliteDedupeStore(directory / "callbacks.db")
        self.verifier = Verifier(harness.verifier_keys)
        self.runs: dict[str, _Run] = {}

    def close(self) -> None:
        self.client.close()
        self.conn.close()

    def _graph(self, setup: Setup) -> CompiledStateGraph[Any, Any, Any, Any]:
        return build_graph(
            checkpointer=self.saver,
            client=self.client,
            sla=setup.sla,
            callback_url=setup.callback_url,
        )

    def start(self, setup: Setup) -> Paused:
        thread_id = f"run-{uuid.uuid4().hex[:12]}"
        config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
        calls = [(c.call_id, dict(c.arguments)) for c in setup.calls]
        if setup.separate_process:
            self._pause_elsewhere(setup, thread_id, calls)
        graph = self._graph(setup)
        if not setup.separate_process:
            graph.invoke({"messages": [plan_message(calls)]}, config)
        receiver = LangGraphReceiver(
            graph, verifier=self.verifier, client=self.client, store=self.store
        )
        self.runs[thread_id] = _Run(graph, receiver, config, [c for c, _ in calls])
        return Paused(thread_id, self._requests(thread_id, [c for c, _ in calls]))

    def _pause_elsewhere(
        self, setup: Setup, thread_id: str, calls: list[tuple[str, dict[str, Any]]]
    ) -> None:
        command = [
            sys.executable,
            str(PAUSE_SCRIPT),
            "--db", str(self.db_path),
            "--thread", thread_id,
            "--url", self.h.world.url,
            "--key", self.h.agent_key,
            "--plan", json.dumps([{"id": c, "args": a} for c, a in calls]),
        ]  # fmt: skip
        if setup.sla:
            command += ["--sla", setup.sla]
        if setup.callback_url:
            command += ["--callback-url", setup.callback_url]
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            out, err = process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert process.returncode == 0, f"the pausing process failed:\n{out}\n{err}"
        assert json.loads(out.strip().splitlines()[-1])["interrupts"]

    def _requests(self, thread_id: str, call_ids: list[str]) -> list[str]:
        by_call = {
            r.correlation.get("tool_call_id"): r.id
            for r in self.h.agent.iter_requests()
            if r.correlation.get("thread_id") == thread_id
        }
        return [by_call[c] for c in call_ids if c in by_call]

    def deliver(self, run: Paused, body: bytes, headers: Mapping[str, str]) -> Delivered:
        app = self.runs[run.run_id].receiver.asgi_app()

        async def post() -> httpx.Response:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as http:
                return await http.post("/signoff", content=body, headers=dict(headers))

        answer = asyncio.run(post())
        return Delivered(answer.status_code, str(answer.json().get("outcome")))

    def view(self, run: Paused) -> RunView:
        state = self.runs[run.run_id]
        snapshot = state.graph.get_state(state.config)
        told: dict[str, str] = {}
        for message in snapshot.values.get("messages", []):
            artifact = message.artifact if isinstance(message, ToolMessage) else None
            if isinstance(artifact, dict) and "signoff" in artifact:
                told[message.tool_call_id] = str(message.content)
        return RunView(
            executed=ledger_entries(self.ledger),
            told=told,
            paused=bool(snapshot.interrupts),
            version=checkpoint_of(snapshot.config),
        )

    def abandon(self, run: Paused) -> None:
        state = self.runs[run.run_id]
        answered = [
            ToolMessage("cancelled by an operator", tool_call_id=c, name="release_payment")
            for c in state.call_ids
        ]
        state.graph.update_state(state.config, {"messages": answered}, as_node="tools")
        assert not state.graph.get_state(state.config).interrupts
