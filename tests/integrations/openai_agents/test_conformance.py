"""The adapter conformance suite, run by the OpenAI Agents SDK adapter (durable mode, real
server, real callbacks)."""

from __future__ import annotations

import pytest
from tests.integrations.conformance.harness import Harness
from tests.integrations.conformance.suite import SCENARIOS, Scenario, run_scenario
from tests.integrations.openai_agents.driver import OpenAIAgentsDriver


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_conformance(scenario: Scenario, driver: OpenAIAgentsDriver, harness: Harness) -> None:
    run_scenario(scenario, driver, harness)
