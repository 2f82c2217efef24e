# pyright: strict
"""The conformance driver for the n8n node: the example workflow in a real n8n.

`start` POSTs the invoice to the workflow's webhook and waits until the execution pauses at
Signoff Approval. The server's callbacks reach the harness's inbox (the relay sends them there
instead of to n8n), and `deliver` POSTs a delivery to n8n's resume URL for the execution, the
URL the node gave signoff. `view` reads the execution from n8n's REST API: what "Release payment"
paid is what was executed; what "Draft reply to vendor" or "Do not pay" wrote is what the
workflow was told instead. `abandon` stops the waiting execution, as an operator would in n8n.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
from tests.integrations.conformance.driver import (
    AdapterDriver,
    Delivered,
    Paused,
    RunView,
    Setup,
)
from tests.integrations.conformance.harness import Harness
from tests.integrations.n8n.conftest import E2E
from tests.integrations.n8n.n8n_process import ran_nodes

__all__ = ["N8nDriver"]

_OUTCOMES = {200: "resumed", 401: "unverified", 404: "refused", 409: "refused", 410: "refused"}
_SETTLED = ("success", "error", "canceled", "crashed")

SKIPPED = {
    "duplicate_callback": (
        "n8n itself answers a resume for an execution that is no longer waiting with 409 and "
        "never calls the node, where the suite expects 200 'duplicate'; "
        "test_e2e.py::test_duplicate_callback_* checks that 409, that the payment ran once and "
        "that signoff treats the 409 as final"
    ),
    "two_gated_calls": (
        "the node makes one request per execution with all input items as its context, so one "
        "n8n step never holds two gated calls; two approvals are two Signoff Approval nodes, "
        "each paused and resumed on its own"
    ),
}


class N8nDriver(AdapterDriver):
    """Drives the example workflow in the session's n8n for one harness (one fresh agent)."""

    name = "n8n"

    def __init__(self, e2e: E2E, harness: Harness) -> None:
        self.e2e = e2e
        self.harness = harness
        assert harness.inbox_url is not None
        # The credential holds this harness's agent key and pins the keys the suite signs with.
        e2e.use_key(harness.agent_key, extra_keys=(harness.test_key.public,))
        e2e.relay.inbox_url = harness.inbox_url

    def skip_reason(self, scenario: str) -> str | None:
        return SKIPPED.get(scenario)

    def start(self, setup: Setup) -> Paused:
        (call,) = setup.calls
        body: dict[str, Any] = {
            **call.arguments,
            "vendor": "Acme GmbH",
            "purchase_order": "PO-7781",
        }
        if setup.sla is not None:
            body["sla"] = setup.sla
        self.e2e.trigger(body)
        request = self.e2e.await_request(self.harness.agent)
        execution_id = request.correlation["n8n_execution_id"]
        self.e2e.n8n.wait_for_status(execution_id, ["waiting"])
        if setup.separate_process:
            # Pause in one n8n process, resume in another: restart n8n while it waits.
            self.e2e.n8n.stop()
            self.e2e.n8n.start()
            self.e2e.timings["restart"] = self.e2e.n8n.starts[-1]
        return Paused(run_id=execution_id, request_ids=[request.id])

    def _resume_url(self, run: Paused) -> str:
        request = self.harness.agent.get_request(run.request_ids[0])
        assert request.callback is not None
        parts = urlsplit(str(request.callback.url))
        return f"{self.e2e.n8n.url}{parts.path}?{parts.query}"

    def deliver(self, run: Paused, body: bytes, headers: Mapping[str, str]) -> Delivered:
        answer = httpx.post(self._resume_url(run), content=body, headers=dict(headers), timeout=30)
        outcome = _OUTCOMES.get(answer.status_code, "failed")
        if answer.status_code == 200:
            # n8n answers once the execution started again; let it finish before any view.
            self.e2e.n8n.wait_for_status(run.run_id, _SETTLED)
        return Delivered(answer.status_code, outcome)

    def view(self, run: Paused) -> RunView:
        execution = self.e2e.n8n.execution(run.run_id)
        ran = ran_nodes(execution)
        told = [item["reply"] for item in ran.get("Draft reply to vendor", [])]
        told += [item["reason"] for item in ran.get("Do not pay", [])]
        state = {
            "status": execution.get("status"),
            "finished": execution.get("finished"),
            "stoppedAt": execution.get("stoppedAt"),
            "waitTill": execution.get("waitTill"),
            "runs": {name: len(items) for name, items in ran.items()},
        }
        return RunView(
            executed=[item["payment"] for item in ran.get("Release payment", [])],
            told={"call_1": " ".join(told)} if told else {},
            paused=execution.get("status") == "waiting",
            version=hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest(),
            extra={"status": execution.get("status")},
        )

    def abandon(self, run: Paused) -> None:
        self.e2e.n8n.stop_execution(run.run_id)
        self.e2e.n8n.wait_for_status(run.run_id, ["canceled"])

    def close(self) -> None:
        self.e2e.relay.inbox_url = None
