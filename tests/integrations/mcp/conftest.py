"""A real signoff server and a reviewer for the MCP integration tests.

Skipped as a whole when the `mcp` SDK is not installed.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

pytest.importorskip("mcp", reason="the MCP SDK is not installed")

from tests.support.server import World, sqlite_world

import signoff
from signoff_mcp import create_server

INVOICE = {"invoice_id": "INV-1042", "amount": "12500.00", "currency": "EUR"}
OBJECT = {"type": "invoice", "id": "INV-1042", "attributes": {"vendor": "Acme GmbH"}}


DEADLINE_SECONDS = 3
DEADLINE_POLICY = f"""\
version: 1
people:
  - {{email: reviewer@example.com, name: Rita Reviewer}}
roles:
  default:
    members: [reviewer@example.com]
default:            # every request expires, rejected, {DEADLINE_SECONDS} s after it was made
  route: default
  sla: PT{DEADLINE_SECONDS}S
  on_timeout: reject
"""


@pytest.fixture(scope="module")
def signoff_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One real signoff server (SQLite) per test module."""
    with sqlite_world(tmp_path_factory.mktemp("signoff")) as world:
        yield world


@pytest.fixture(scope="module")
def deadline_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A real signoff server whose policy expires every request after `DEADLINE_SECONDS`."""
    directory = tmp_path_factory.mktemp("deadline")
    config = directory / "signoff.yaml"
    config.write_text(DEADLINE_POLICY, encoding="utf-8")
    with sqlite_world(directory, config_path=str(config)) as world:
        yield world


@contextmanager
def reviewer_deciding(
    world: World,
    verdict: str,
    *,
    action: str,
    delay: float = 0.0,
    after: threading.Event | None = None,
    **kwargs: Any,
) -> Iterator[list[str]]:
    """A reviewer in a thread who decides the first pending request for `action`.

    With `after`, the reviewer decides only once that event is set (and `delay` has passed).
    """
    token = world.reviewer_token("default")
    decided: list[str] = []
    stop = threading.Event()

    def work() -> None:
        with signoff.Client(base_url=world.url, api_key=token) as reviewer:
            while not stop.is_set() and not decided:
                for request in reviewer.list_requests(status="pending").items:
                    if request.action.name == action:
                        if after is not None:
                            while not after.wait(0.05):
                                if stop.is_set():
                                    return
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


def result_of(result: Any) -> dict[str, Any]:
    """A tool's structured answer (a dict), checked to be mirrored in its text content."""
    assert not result.is_error, result.content
    data = result.structured_content
    assert isinstance(data, dict)
    text = json.loads(result.content[0].text)
    assert text == data
    return data  # pyright: ignore[reportUnknownVariableType]


def server_for(world: World, key: str | None = None) -> Any:
    """The approval MCP server, in process, asking `world` with an agent key."""
    key = key or world.agent_key()
    return create_server(lambda: signoff.AsyncClient(base_url=world.url, api_key=key))


def unique_action() -> str:
    """An action name no other test uses (the reviewer threads find requests by it)."""
    return f"payments.release_{uuid.uuid4().hex[:6]}"
