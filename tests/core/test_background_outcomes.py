"""`Client.report_outcome_in_background`: returns at once, sends in order, never raises, and
loses nothing on `flush()`, `close()` or interpreter exit."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from signoff import Client


class Recorder:
    """A MockTransport handler that records outcome posts; `gate` holds answers back."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses) or [200]
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.gate.wait(10)
        self.seen.append((request.url.path, json.loads(request.content)))
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        if status >= 400:
            error = {"code": "outcome_reported", "message": "already", "details": None}
            return httpx.Response(status, json={"error": error})
        return httpx.Response(status, json={})


def test_returns_before_the_server_answers_and_flush_waits_for_it() -> None:
    recorder = Recorder()
    recorder.gate.clear()  # the server is slow
    client = Client(
        base_url="http://signoff.test", api_key="sk_x", transport=httpx.MockTransport(recorder)
    )
    client.report_outcome_in_background("req_1", "executed", detail="paid")
    assert recorder.seen == []  # queued, not sent: the caller did not wait
    assert client.flush(timeout=0.05) is False
    recorder.gate.set()
    assert client.flush(timeout=10) is True
    assert recorder.seen == [
        ("/v1/requests/req_1/outcome", {"status": "executed", "detail": "paid"})
    ]
    client.close()


def test_reports_are_sent_in_the_order_they_were_queued() -> None:
    recorder = Recorder()
    with Client(
        base_url="http://signoff.test", api_key="sk_x", transport=httpx.MockTransport(recorder)
    ) as client:
        for n in range(20):
            client.report_outcome_in_background(f"req_{n}", "executed")
        assert client.flush() is True
    assert [path for path, _ in recorder.seen] == [
        f"/v1/requests/req_{n}/outcome" for n in range(20)
    ]


def test_close_sends_what_is_still_queued() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    client = Client(
        base_url="http://signoff.test", api_key="sk_x", transport=httpx.MockTransport(recorder)
    )
    client.report_outcome_in_background("req_1", "skipped")
    threading.Timer(0.2, recorder.gate.set).start()
    client.close()  # flushes first
    assert [path for path, _ in recorder.seen] == ["/v1/requests/req_1/outcome"]


def test_a_conflict_is_dropped_and_a_failure_logged_never_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder(409, 500)
    with (
        Client(
            base_url="http://signoff.test", api_key="sk_x", transport=httpx.MockTransport(recorder)
        ) as client,
        caplog.at_level(logging.WARNING, logger="signoff.client"),
    ):
        client.report_outcome_in_background("req_dup", "executed")
        client.report_outcome_in_background("req_broken", "executed")
        client.report_outcome_in_background("req_after", "executed")  # the thread lives on
        assert client.flush() is True
    assert len(recorder.seen) == 3
    warned = [r.getMessage() for r in caplog.records]
    assert warned == [
        "could not report the outcome of req_broken",
        "could not report the outcome of req_after",
    ]


@pytest.fixture
def http_server() -> Iterator[tuple[str, list[str]]]:
    """A plain HTTP server on loopback that records the paths posted to it."""
    posted: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            posted.append(self.path)
            body = b"{}"
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", posted
    finally:
        server.shutdown()
        server.server_close()


def test_a_script_that_exits_right_after_queueing_still_delivers(
    http_server: tuple[str, list[str]],
) -> None:
    url, posted = http_server
    script = (
        "import time\n"
        "from signoff import Client\n"
        f"client = Client(base_url={url!r}, api_key='sk_x')\n"
        "client.report_outcome_in_background('req_exit', 'executed')\n"
        "# no flush, no close: the interpreter's exit must send it\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert posted == ["/v1/requests/req_exit/outcome"]


def test_background_reports_ask_for_no_answer_and_take_204_as_sent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    prefer: list[str | None] = []

    def no_body(request: httpx.Request) -> httpx.Response:
        prefer.append(request.headers.get("prefer"))
        return httpx.Response(204, headers={"preference-applied": "return=minimal"})

    with (
        caplog.at_level(logging.WARNING, logger="signoff"),
        Client(
            base_url="http://signoff.test", api_key="sk_x", transport=httpx.MockTransport(no_body)
        ) as client,
    ):
        client.report_outcome_in_background("req_1", "executed")
        assert client.flush() is True
    assert prefer == ["return=minimal"]
    assert not caplog.records  # a 204 is a report sent, not a failure
