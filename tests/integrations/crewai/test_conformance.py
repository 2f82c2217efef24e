"""The adapter conformance suite, run by the CrewAI adapter (real server, a Flow on SQLite)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integrations.conformance.harness import Harness
from tests.integrations.conformance.suite import SCENARIOS, Scenario, run_scenario
from tests.integrations.crewai.driver import CrewAIDriver


@pytest.fixture
def driver(harness: Harness, tmp_path: Path, ledger: Path) -> Iterator[CrewAIDriver]:
    """The CrewAI conformance driver, on flow persistence in tmp_path."""
    driver = CrewAIDriver(harness, tmp_path)
    try:
        yield driver
    finally:
        driver.close()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_conformance(scenario: Scenario, driver: CrewAIDriver, harness: Harness) -> None:
    run_scenario(scenario, driver, harness)
