"""The OpenAI Agents SDK adapter's conformance driver: the scripted finance agent with a durably
gated tool, paused into a `SqliteRunStore` and resumed through `signoff_openai_agents.receiver`."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Mapping
from contextlib import closing
from pathlib import Path
from typing import Any

from agents import Runner, RunResult
from signoff_openai_agents import Resumed, SqliteRunStore, pause, receiver
from tests.integrations.conformance.driver import AdapterDriver, Delivered, Paused, RunView, Setup
from tests.integrations.conformance.harness import Harness
from tests.integrations.openai_agents.agent import LEDGER_ENV, RUN, build_agent, ledger_entries

from signoff import AsyncClient, Verifier
from signoff.receiver import SqliteDedupeStore

PAUSE_SCRIPT = Path(__file__).with_name("pause_run.py")
_OUTCOMES = {401: "unverified", 409: "refused", 202: "queued", 500: "failed"}


class OpenAIAgentsDriver(AdapterDriver):
    """Runs the test agent through signoff-openai-agents (durable mode) for the suite."""

    name = "openai-agents"

    def __init__(self, harness: Harness, directory: Path) -> None:
        self.h = harness
        self.ledger = Path(os.environ[LEDGER_ENV])
        self.store_path = directory / "runs.db"
        self.store = SqliteRunStore(self.store_path)
        self.dedupe = SqliteDedupeStore(directory / "callbacks.db")
        self.verifier = Verifier(harness.verifier_keys)
        self.results: dict[str, RunResult] = {}

    def start(self, setup: Setup) -> Paused:
        run_id = f"run_{uuid.uuid4().hex[:12]}"
        calls = [(c.call_id, dict(c.arguments)) for c in setup.calls]
        if setup.separate_process:
            self._pause_elsewhere(setup, run_id, calls)
        else:
            asyncio.run(self._pause_here(setup, run_id, calls))
        by_call = {
            r.correlation.get("call_id"): r.id
            for r in self.h.agent.iter_requests()
            if r.correlation.get("call_id") in dict(calls)
        }
        return Paused(run_id, [by_call[c] for c, _ in calls if c in by_call])

    async def _pause_here(
        self, setup: Setup, run_id: str, calls: list[tuple[str, dict[str, Any]]]
    ) -> None:
        async with AsyncClient(base_url=self.h.world.url, api_key=self.h.agent_key) as client:
            agent = build_agent(client, calls=calls, sla=setup.sla, callback_url=setup.callback_url)
            result = await Runner.run(agent, "pay the invoices", run_config=RUN)
            await pause(result, self.store, run_key=run_id)

    def _pause_elsewhere(
        self, setup: Setup, run_id: str, calls: list[tuple[str, dict[str, Any]]]
    ) -> None:
        command = [
            sys.executable, str(PAUSE_SCRIPT),
            "--url", self.h.world.url, "--key", self.h.agent_key,
            "--store", str(self.store_path), "--run", run_id,
            "--plan", json.dumps([{"id": c, "args": a} for c, a in calls]),
        ]  # fmt: skip
        if setup.sla:
            command += ["--sla", setup.sla]
        if setup.callback_url:
            command += ["--callback-url", setup.callback_url]
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            out, err = process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert process.returncode == 0, f"the pausing process failed:\n{out}\n{err}"
        assert json.loads(out.strip().splitlines()[-1])["interruptions"] == len(calls)

    def deliver(self, run: Paused, body: bytes, headers: Mapping[str, str]) -> Delivered:
        async def post() -> tuple[int, bool]:
            async with AsyncClient(base_url=self.h.world.url, api_key=self.h.agent_key) as client:

                def remember(resumed: Resumed) -> None:
                    if resumed.result is not None:
                        self.results[run.run_id] = resumed.result

                app = receiver(
                    self.verifier,
                    lambda: build_agent(client),
                    self.store,
                    dedupe=self.dedupe,
                    run_config=RUN,
                    client=client,
                    on_resumed=remember,
                )
                receipt = await app.ahandle(body, dict(headers))
                return receipt.status_code, receipt.duplicate

        status, duplicate = asyncio.run(post())
        outcome = "duplicate" if duplicate else _OUTCOMES.get(status, "resumed")
        return Delivered(status, outcome)

    def _stored(self, run_id: str) -> str | None:
        with closing(sqlite3.connect(self.store_path)) as db:
            row = db.execute(
                "SELECT state FROM signoff_oai_runs WHERE run_key = ?", (run_id,)
            ).fetchone()
        return None if row is None else str(row[0])

    def view(self, run: Paused) -> RunView:
        told: dict[str, str] = {}
        result = self.results.get(run.run_id)
        if result is not None:
            for item in result.to_input_list():
                if isinstance(item, dict) and item.get("type") == "function_call_output":
                    told[str(item.get("call_id"))] = str(item.get("output"))
        stored = self._stored(run.run_id)
        executed = ledger_entries(self.ledger)
        fingerprint = json.dumps([stored, executed, sorted(told.items())], sort_keys=True)
        return RunView(
            executed=executed,
            told=told,
            paused=stored is not None,
            version=hashlib.sha256(fingerprint.encode()).hexdigest(),
        )

    def abandon(self, run: Paused) -> None:
        self.store.finish(run.run_id)
