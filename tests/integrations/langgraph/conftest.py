"""A real signoff server, a conformance harness and the LangGraph driver, for the adapter tests.

Skipped as a whole when LangGraph (or its SQLite checkpointer) is not installed.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langgraph", reason="LangGraph is not installed")
pytest.importorskip(
    "langgraph.checkpoint.sqlite", reason="langgraph-checkpoint-sqlite is not installed"
)

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph.state import CompiledStateGraph
from tests.integrations.conformance.harness import Harness
from tests.integrations.langgraph.agent import (
    LEDGER_ENV,
    build_graph,
    plan_message,
    thread_of,
)
from tests.integrations.langgraph.driver import LangGraphDriver
from tests.support.server import World, sqlite_world

from signoff import CallbackEvent, Client, Verifier
from signoff.receiver import SqliteDedupeStore


@pytest.fixture(autouse=True)
def _checkpoints_hold_plain_data(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail a test if LangGraph had to deserialize a type it does not know from a checkpoint:
    everything the adapter puts into interrupts and state must be plain JSON data."""
    yield
    records = [*caplog.get_records("setup"), *caplog.get_records("call")]
    unknown = [r.getMessage() for r in records if "unregistered type" in r.getMessage()]
    assert not unknown, unknown


@pytest.fixture(scope="module")
def signoff_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One real signoff server (SQLite) per test module; tests use fresh agents on it."""
    with sqlite_world(tmp_path_factory.mktemp("signoff")) as world:
        yield world


@pytest.fixture
def harness(signoff_world: World) -> Iterator[Harness]:
    """A fresh agent and reviewer on the module's server, and signed callbacks."""
    harness = Harness.open(signoff_world, agent=f"finance-agent-{uuid.uuid4().hex[:8]}")
    try:
        yield harness
    finally:
        harness.close()


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the test agent records every payment it really released (also in subprocesses)."""
    path = tmp_path / "ledger.jsonl"
    monkeypatch.setenv(LEDGER_ENV, str(path))
    return path


@pytest.fixture
def driver(harness: Harness, tmp_path: Path, ledger: Path) -> Iterator[LangGraphDriver]:
    """The LangGraph conformance driver, on a SQLite checkpointer in tmp_path."""
    driver = LangGraphDriver(harness, tmp_path)
    try:
        yield driver
    finally:
        driver.close()


@dataclass
class Lab:
    """The pieces LangGraph-specific tests combine: agent client, checkpointer, callbacks."""

    h: Harness
    client: Client
    saver: SqliteSaver
    ledger: Path
    store: SqliteDedupeStore
    verifier: Verifier

    def graph(self, **options: Any) -> CompiledStateGraph[Any, Any, Any, Any]:
        """The test agent on this lab's checkpointer, posting callbacks to the harness."""
        options.setdefault("client", self.client)
        options.setdefault("callback_url", self.h.inbox_url)
        return build_graph(checkpointer=self.saver, **options)

    def start(
        self, graph: CompiledStateGraph[Any, Any, Any, Any], calls: list[Any]
    ) -> RunnableConfig:
        """Run the agent on a fresh thread until it pauses; its config."""
        config: RunnableConfig = {"configurable": {"thread_id": f"t-{uuid.uuid4().hex[:10]}"}}
        graph.invoke({"messages": [plan_message(calls)]}, config)
        return config

    def requests(self, config: RunnableConfig) -> dict[str, str]:
        """tool call id → request id, for the requests the thread made."""
        thread = thread_of(config)
        return {
            r.correlation["tool_call_id"]: r.id
            for r in self.h.agent.iter_requests()
            if r.correlation.get("thread_id") == thread
        }

    def event(self, request_id: str, *, fresh: bool = False) -> CallbackEvent:
        """The verified callback event for a closed request (the server's own)."""
        return self.verifier.verify(*self.h.delivery(request_id, fresh=fresh))


@pytest.fixture
def lab(harness: Harness, tmp_path: Path, ledger: Path) -> Iterator[Lab]:
    """A Lab on a fresh SQLite checkpointer."""
    with (
        Client(base_url=harness.world.url, api_key=harness.agent_key) as client,
        closing(sqlite3.connect(tmp_path / "checkpoints.db", check_same_thread=False)) as conn,
    ):
        yield Lab(
            harness,
            client,
            SqliteSaver(conn),
            ledger,
            SqliteDedupeStore(tmp_path / "markers.db"),
            Verifier(harness.verifier_keys),
        )
