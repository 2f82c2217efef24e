"""The CrewAI adapter's conformance driver: the invoice Flow (`flow_app.py`) paused by
`SignoffFeedbackProvider` on SQLite flow persistence, resumed through `signoff_crewai.receiver`'s
ASGI app.

CrewAI can pause durably only in Flows (a crew cannot pause mid-task; gated tools and guardrails
wait in-process and have their own tests), so every scenario runs as a flow whose review step
is the gated `payments.release`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from crewai.flow import Flow
from crewai.flow.async_feedback import HumanFeedbackPending
from crewai.flow.persistence import SQLiteFlowPersistence
from tests.integrations.conformance.driver import (
    AdapterDriver,
    Delivered,
    Paused,
    RunView,
    Setup,
)
from tests.integrations.conformance.harness import Harness
from tests.integrations.crewai.fakes import LEDGER_ENV, ledger_entries
from tests.integrations.crewai.flow_app import build_flow

from signoff import CallbackReceiver, Client, Verifier
from signoff.receiver import SqliteDedupeStore
from signoff_crewai import receiver

PAUSE_SCRIPT = Path(__file__).with_name("pause_flow.py")

SKIPPED = {
    "two_gated_calls": (
        "a CrewAI Flow pauses at one @human_feedback step at a time, and the flow resumes with "
        "that step's one decision; two gated calls in one step are gated tools in a crew, which "
        "wait in-process (test_tools.py covers them, one request and one execution per call)"
    ),
}


@dataclass
class _Run:
    flow: type[Flow[dict[str, Any]]]
    receiver: CallbackReceiver
    call_id: str


class CrewAIDriver(AdapterDriver):
    """Runs the invoice flow through signoff-crewai for the conformance suite."""

    name = "crewai"

    def __init__(self, harness: Harness, directory: Path) -> None:
        self.h = harness
        self.ledger = Path(os.environ[LEDGER_ENV])
        self.db_path = directory / "flows.db"
        self.persistence = SQLiteFlowPersistence(str(self.db_path))
        self.client = Client(base_url=harness.world.url, api_key=harness.agent_key)
        self.store = SqliteDedupeStore(directory / "callbacks.db")
        self.verifier = Verifier(harness.verifier_keys)
        self.runs: dict[str, _Run] = {}

    def skip_reason(self, scenario: str) -> str | None:
        return SKIPPED.get(scenario)

    def close(self) -> None:
        self.client.close()

    def _flow(self, setup: Setup) -> type[Flow[dict[str, Any]]]:
        return build_flow(
            self.persistence, client=self.client, callback_url=setup.callback_url, sla=setup.sla
        )

    def start(self, setup: Setup) -> Paused:
        (call,) = setup.calls
        flow = self._flow(setup)
        if setup.separate_process:
            flow_id = self._pause_elsewhere(setup, call.call_id, dict(call.arguments))
        else:
            paused = flow(persistence=self.persistence).kickoff(
                inputs={"payment": dict(call.arguments), "call_id": call.call_id}
            )
            assert isinstance(paused, HumanFeedbackPending), paused
            flow_id = paused.context.flow_id
        app = receiver(self.verifier, flow, self.persistence, store=self.store, client=self.client)
        self.runs[flow_id] = _Run(flow, app, call.call_id)
        requests = [
            r.id for r in self.h.agent.iter_requests() if r.correlation.get("flow_id") == flow_id
        ]
        return Paused(flow_id, requests)

    def _pause_elsewhere(self, setup: Setup, call_id: str, payment: dict[str, Any]) -> str:
        command = [
            sys.executable, str(PAUSE_SCRIPT),
            "--db", str(self.db_path),
            "--url", self.h.world.url,
            "--key", self.h.agent_key,
            "--payment", json.dumps(payment),
            "--call-id", call_id,
        ]  # fmt: skip
        if setup.sla:
            command += ["--sla", setup.sla]
        if setup.callback_url:
            command += ["--callback-url", setup.callback_url]
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            out, err = process.communicate(timeout=180)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert process.returncode == 0, f"the pausing process failed:\n{out}\n{err}"
        return str(json.loads(out.strip().splitlines()[-1])["flow_id"])

    def deliver(self, run: Paused, body: bytes, headers: Mapping[str, str]) -> Delivered:
        app = self.runs[run.run_id].receiver.asgi_app()

        async def post() -> httpx.Response:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as http:
                return await http.post("/signoff", content=body, headers=dict(headers))

        answer = asyncio.run(post())
        return Delivered(answer.status_code, _outcome(answer))

    def view(self, run: Paused) -> RunView:
        state = self.persistence.load_state(run.run_id) or {}
        pending = self.persistence.load_pending_feedback(run.run_id)
        told = {str(state["call_id"]): str(state["told"])} if "told" in state else {}
        fingerprint = json.dumps(
            [state, pending[1].to_dict() if pending else None], sort_keys=True, default=str
        )
        return RunView(
            executed=ledger_entries(self.ledger),
            told=told,
            paused=pending is not None,
            version=hashlib.sha256(fingerprint.encode()).hexdigest(),
        )

    def abandon(self, run: Paused) -> None:
        self.persistence.clear_pending_feedback(run.run_id)
        assert self.persistence.load_pending_feedback(run.run_id) is None


def _outcome(answer: httpx.Response) -> str:
    if answer.status_code == 401:
        return "unverified"
    if answer.status_code == 409:
        return "refused"
    if answer.status_code >= 500:
        return "failed"
    if answer.status_code == 200:
        return "duplicate" if answer.json().get("duplicate") else "resumed"
    return "failed"
