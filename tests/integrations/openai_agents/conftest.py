"""A real signoff server, the conformance harness and driver, for the OpenAI Agents SDK adapter.

Skipped as a whole when the SDK is not installed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("agents", reason="the OpenAI Agents SDK is not installed")

from tests.integrations.conformance.harness import Harness
from tests.integrations.openai_agents.agent import LEDGER_ENV
from tests.integrations.openai_agents.driver import OpenAIAgentsDriver
from tests.support.server import World, sqlite_world


@pytest.fixture(scope="module")
def signoff_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One real signoff server (SQLite) per test module; tests use fresh agents on it."""
    with sqlite_world(tmp_path_factory.mktemp("signoff")) as world:
        yield world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """A real signoff server of the test's own, for tests that list every request."""
    with sqlite_world(tmp_path) as world:
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
def driver(harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> OpenAIAgentsDriver:
    """The OpenAI Agents SDK conformance driver, with its run store in tmp_path."""
    monkeypatch.setenv(LEDGER_ENV, str(tmp_path / "ledger.jsonl"))
    return OpenAIAgentsDriver(harness, tmp_path)
