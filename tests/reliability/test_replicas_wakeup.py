"""A long-poll must not lose a wake-up that arrives while it is re-reading its request.

The wait loop reads the request, then sleeps on its event until a close (local, or a NOTIFY from
another replica) sets it. If the event is set while the read is still running (the read's
snapshot predates the decision) and the loop clears the event only after the read, the wake-up
is erased and the agent waits for the periodic re-check (5 s) instead of answering at once.
The read is slowed down here so that the decision lands inside it every time.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.server import ServerThread

from signoff_server import app as app_module
from signoff_server.views import load_request

from .cluster import prepare, request_body

WAIT_RECHECK = 5.0


def test_a_decision_during_the_long_polls_read_still_wakes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from signoff_server.db import migrate
    from signoff_server.settings import Settings

    url = f"sqlite:///{tmp_path / 'signoff.db'}"
    migrate(url)
    people = prepare(url, 1)
    agent = {"authorization": f"Bearer {people.agent_keys[0]}"}
    reviewer = {"authorization": f"Bearer {people.reviewer_tokens[0]}"}
    reading = threading.Event()
    release = threading.Event()
    slow = {"on": False}
    real = load_request  # what the app's wait route reads with

    def slow_load(*args: Any, **kwargs: Any) -> Any:
        found = real(*args, **kwargs)
        if slow["on"]:
            slow["on"] = False
            reading.set()  # the long-poll's read has its (pending) snapshot...
            release.wait(10)  # ...and returns it only after the decision committed
        return found

    monkeypatch.setattr(app_module, "load_request", slow_load)
    settings = Settings(
        database_url=url,
        wait_recheck=WAIT_RECHECK,
        webhook_keys_path=str(tmp_path / "webhook-keys.json"),
        audit_key_file=str(tmp_path / "audit.key"),
        secret_key_file=str(tmp_path / "secret.key"),
    )
    with ServerThread(settings) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        body = request_body("race-1", callback=None, sla="PT1H", thread=0, n=1)
        request_id = http.post("/v1/requests", json=body, headers=agent).json()["id"]
        answered: list[tuple[float, str]] = []

        def long_poll() -> None:
            with httpx.Client(base_url=server.url, timeout=30) as own:
                got = own.get(f"/v1/requests/{request_id}/wait?timeout=20", headers=agent)
            answered.append((time.monotonic(), str(got.json()["status"])))

        slow["on"] = True
        waiter = threading.Thread(target=long_poll)
        waiter.start()
        assert reading.wait(10), "the long-poll never read its request"
        decided = http.post(
            f"/v1/requests/{request_id}/decisions", json={"verdict": "approve"}, headers=reviewer
        )
        assert decided.status_code == 200, decided.text
        decided_at = time.monotonic()
        time.sleep(0.1)  # the wake-up (set by the close) is in before the stale read returns
        release.set()
        waiter.join(30)
    at, status = answered[0]
    assert status == "approved"
    assert at - decided_at < 1.0, f"answered {at - decided_at:.2f} s after the decision"
