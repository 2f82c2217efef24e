"""A real signoff server and a reviewer for the MCP integration tests.

Skipped as a whole when the `mcp` SDK is not installed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

pytest.importorskip("mcp", reason="the MCP SDK is not installed")

from tests.support.server import World, sqlite_world

import signoff


@pytest.fixture(scope="module")
def signoff_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One real signoff server (SQLite) per test module."""
    with sqlite_world(tmp_path_factory.mktemp("signoff")) as world:
        yield world


@contextmanager
def reviewer_deciding(
    world: World, verdict: str, *, action: str, delay: float = 0.0, **kwargs: Any
) -> Iterator[list[str]]:
    """A reviewer in a thread who decides the first pending request for `action`."""
    token = world.reviewer_token("default")
    decided: list[str] = []
    stop = threading.Event()

    def work() -> None:
        with signoff.Client(base_url=world.url, api_key=token) as reviewer:
            while not stop.is_set() and not decided:
                for request in reviewer.list_requests(status="pending").items:
                    if request.action.name == action:
                        stop.wait(delay)
                        reviewer.decide(request.id, verdict, **kwargs)
                        decided.append(request.id)
                        break
                stop.wait(0.05)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        yield decided
    finally:
        stop.set()
        thread.join(timeout=15)


def wait_until(predicate: Any, timeout: float = 30.0) -> None:
    """Poll `predicate` until true, or fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)
