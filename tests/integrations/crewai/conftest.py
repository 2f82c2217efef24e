"""A real signoff server, reviewers and the scripted LLM, for the CrewAI adapter tests.

Skipped as a whole when CrewAI is not installed: it lives in an environment of its own
(`uv run nox -s crewai`), since it pins pydantic<2.13 and openai<3. CrewAI is made to work
offline here (telemetry, tracing and version checks off, storage in a temp dir) before it is
first imported; the nox session sets the same variables, and HOME, itself.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

if importlib.util.find_spec("crewai") is not None:
    for _name, _value in {
        "CREWAI_DISABLE_TELEMETRY": "true",
        "CREWAI_DISABLE_VERSION_CHECK": "true",
        "CREWAI_TRACING_ENABLED": "false",
        "OTEL_SDK_DISABLED": "true",
    }.items():
        os.environ.setdefault(_name, _value)
    os.environ.setdefault("CREWAI_STORAGE_DIR", tempfile.mkdtemp(prefix="crewai-tests-"))

pytest.importorskip("crewai", reason="CrewAI is not installed (run: uv run nox -s crewai)")

from tests.integrations.conformance.harness import Harness
from tests.integrations.crewai.fakes import LEDGER_ENV
from tests.support.server import World, sqlite_world

import signoff
from signoff import Client


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
    """Where the payment tool records every payment it really released (subprocesses too)."""
    path = tmp_path / "ledger.jsonl"
    monkeypatch.setenv(LEDGER_ENV, str(path))
    return path


@pytest.fixture
def client(harness: Harness) -> Iterator[Client]:
    """The agent's signoff client (its own key on the module's server)."""
    with Client(base_url=harness.world.url, api_key=harness.agent_key) as agent:
        yield agent


@contextmanager
def reviewer_deciding(
    harness: Harness, verdict: str, count: int = 1, **kwargs: Any
) -> Iterator[list[str]]:
    """A reviewer in a thread who decides the agent's next `count` pending requests."""
    with reviewer_script(harness, [(verdict, kwargs)] * count) as decided:
        yield decided


@contextmanager
def reviewer_script(
    harness: Harness, decisions: list[tuple[str, dict[str, Any]]]
) -> Iterator[list[str]]:
    """A reviewer in a thread who decides pending requests as they arrive, one decision
    (verdict, keyword arguments) each, in order; yields the ids decided so far."""
    decided: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def work() -> None:
        token = harness.world.reviewer_token("finance-approver")
        with signoff.Client(base_url=harness.world.url, api_key=token) as reviewer:
            try:
                while not stop.is_set() and len(decided) < len(decisions):
                    for request in reviewer.list_requests(status="pending").items:
                        if request.id not in decided and len(decided) < len(decisions):
                            verdict, kwargs = decisions[len(decided)]
                            reviewer.decide(request.id, verdict, **kwargs)
                            decided.append(request.id)
                    time.sleep(0.05)
            except BaseException as exc:  # surfaced in the test, not lost in the thread
                errors.append(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        yield decided
    finally:
        stop.set()
        thread.join(timeout=30)
    if errors:
        raise errors[0]


CREWAI_OWN_WARNINGS = (
    # CrewAI 1.15 reads its own deprecated fields (`function_calling_llm`, ...) on every run.
    "ignore::DeprecationWarning:crewai",
)
"""Warnings CrewAI raises about itself (not about this adapter); every other one is an error."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Let the CrewAI tests tolerate CrewAI's own deprecation notices, and nothing else."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            for spec in CREWAI_OWN_WARNINGS:
                item.add_marker(pytest.mark.filterwarnings(spec))
