"""Agent-kit tests: the scanner corpus, and the precision / recall figures it yields.

The sample projects under `corpus/` are data for the scanner: never imported, never collected.
`corpus_metrics` collects the figures the corpus test computes; they are printed in the
terminal summary so every run reports them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

collect_ignore_glob = ["corpus/*"]

CORPUS = Path(__file__).parent / "corpus"
_METRICS = pytest.StashKey[dict[str, Any]]()


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The folder of sample projects."""
    return CORPUS


@pytest.fixture(scope="session")
def corpus_metrics(request: pytest.FixtureRequest) -> dict[str, Any]:
    """A dict the corpus test fills with its figures (shown in the terminal summary)."""
    return request.config.stash.setdefault(_METRICS, {})


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Report the scanner's precision and recall on the corpus."""
    metrics = config.stash.get(_METRICS, None)
    if not metrics:
        return
    terminalreporter.section("signoff scan: corpus precision / recall")
    for line in metrics.get("lines", []):
        terminalreporter.write_line(line)
