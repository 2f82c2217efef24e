# pyright: strict
"""The adapter conformance suite (tests/integrations/conformance) against the n8n node, in a real
n8n running the example workflow. Two scenarios do not apply to n8n; `driver.SKIPPED` says why.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from tests.integrations.conformance.harness import Harness
from tests.integrations.conformance.suite import SCENARIOS, Scenario, run_scenario
from tests.integrations.n8n.conftest import E2E
from tests.integrations.n8n.driver import N8nDriver


@pytest.fixture
def harness(e2e: E2E) -> Iterator[Harness]:
    """A fresh agent and reviewer on the session's signoff server, and an inbox for callbacks."""
    harness = Harness.open(e2e.world, agent=f"n8n-agent-{uuid.uuid4().hex[:8]}")
    try:
        yield harness
    finally:
        harness.close()


@pytest.fixture
def driver(e2e: E2E, harness: Harness) -> Iterator[N8nDriver]:
    driver = N8nDriver(e2e, harness)
    try:
        yield driver
    finally:
        driver.close()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_conformance(scenario: Scenario, driver: N8nDriver, harness: Harness, e2e: E2E) -> None:
    started = time.monotonic()
    run_scenario(scenario, driver, harness)
    e2e.timings[f"conformance[{scenario.name}]"] = time.monotonic() - started
