"""The adapter conformance suite, run by the LangGraph adapter (real server, real checkpointer)."""

from __future__ import annotations

import pytest
from tests.integrations.conformance.harness import Harness
from tests.integrations.conformance.suite import SCENARIOS, Scenario, run_scenario
from tests.integrations.langgraph.driver import LangGraphDriver


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_conformance(scenario: Scenario, driver: LangGraphDriver, harness: Harness) -> None:
    run_scenario(scenario, driver, harness)
