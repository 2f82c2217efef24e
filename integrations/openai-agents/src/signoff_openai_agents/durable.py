"""Durable approvals: store a paused run, resume it from the verified callback.

    result = await Runner.run(agent, "...")          # a gated tool (mode="durable") interrupts
    if result.interruptions:
        await pause(result, store)                   # the RunState goes into the store
    ...
    # later, in the app that receives signoff's callbacks (any process):
    outcome = await resume(event, agent, store)      # approves/rejects the exact call_id, re-runs

The state is kept on the agent's side (it is not authenticated, so it never travels); the
callback carries only the request, whose correlation names the `call_id`. When one turn paused on
several calls, the run resumes once every one of them is decided. A callback for a call that is
not paused (unknown, already answered, or already resumed) raises `CallbackRefused`.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

from agents import Agent, RunConfig, Runner, RunResult
from agents.run_state import RunState

import signoff
from signoff import (
    AsyncClient,
    CallbackEvent,
    CallbackReceiver,
    CallbackRefused,
    OutcomeStatus,
    Request,
    Verifier,
)
from signoff.receiver import DedupeStore
from signoff_openai_agents.requests import is_approved, rejection_text

__all__ = ["Resumed", "RunStore", "SqliteRunStore", "pause", "receiver", "resume"]


class RunStore(Protocol):
    """Where paused runs wait. `record` and `claim` must be atomic across processes."""

    def save(self, run_key: str, state: str, call_ids: list[str]) -> None:
        """Keep a paused run's serialized state and the call ids it waits for."""
        ...

    def record(self, call_id: str, decision: dict[str, Any]) -> str | None:
        """Store the decision for a waiting call (again, if it is the same decision); return
        its run key, or None if no paused run waits for that call."""
        ...

    def claim(self, run_key: str) -> tuple[str, dict[str, dict[str, Any]]] | None:
        """If every call of the run is decided and nobody resumes it yet, claim it and return
        (state, decisions by call id); else None."""
        ...

    def finish(self, run_key: str) -> None:
        """Forget a run that was resumed."""
        ...

    def release(self, run_key: str) -> None:
        """Un-claim a run whose resume failed, so a redelivered callback can try again."""
        ...


class SqliteRunStore:
    """A RunStore in one SQLite file; safe for several processes on one machine."""

    def __init__(self, path: str | Path) -> None:
        self._path = str(path)
        with closing(self._connect()) as db:
            db.executescript(
                """
                CREATE TABLE IF NOT EXISTS signoff_oai_runs (
                    run_key TEXT PRIMARY KEY, state TEXT NOT NULL,
                    claimed INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL);
                CREATE TABLE IF NOT EXISTS signoff_oai_calls (
                    call_id TEXT PRIMARY KEY, run_key TEXT NOT NULL, decision TEXT);
                """
            )

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self._path, timeout=30, isolation_level=None)

    def save(self, run_key: str, state: str, call_ids: list[str]) -> None:
        """Keep a paused run's serialized state and the call ids it waits for."""
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "INSERT INTO signoff_oai_runs (run_key, state, created_at) VALUES (?, ?, ?)",
                (run_key, state, time.time()),
            )
            db.executemany(
                "INSERT OR REPLACE INTO signoff_oai_calls (call_id, run_key, decision) "
                "VALUES (?, ?, NULL)",
                [(call_id, run_key) for call_id in call_ids],
            )
            db.execute("COMMIT")

    def record(self, call_id: str, decision: dict[str, Any]) -> str | None:
        """Store the decision for a waiting call; its run key, or None if not waiting."""
        text = json.dumps(decision, sort_keys=True)
        with closing(self._connect()) as db:
            row = db.execute(
                "UPDATE signoff_oai_calls SET decision = ? "
                "WHERE call_id = ? AND (decision IS NULL OR decision = ?) "
                "AND run_key IN (SELECT run_key FROM signoff_oai_runs WHERE claimed = 0) "
                "RETURNING run_key",
                (text, call_id, text),
            ).fetchone()
            return None if row is None else str(row[0])

    def claim(self, run_key: str) -> tuple[str, dict[str, dict[str, Any]]] | None:
        """Claim a fully decided run; (state, decisions) or None."""
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            calls = db.execute(
                "SELECT call_id, decision FROM signoff_oai_calls WHERE run_key = ?", (run_key,)
            ).fetchall()
            state = db.execute(
                "SELECT state FROM signoff_oai_runs WHERE run_key = ? AND claimed = 0", (run_key,)
            ).fetchone()
            if state is None or any(decision is None for _, decision in calls):
                db.execute("ROLLBACK")
                return None
            db.execute("UPDATE signoff_oai_runs SET claimed = 1 WHERE run_key = ?", (run_key,))
            db.execute("COMMIT")
        return str(state[0]), {str(c): json.loads(d) for c, d in calls}

    def finish(self, run_key: str) -> None:
        """Forget a run that was resumed."""
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM signoff_oai_runs WHERE run_key = ?", (run_key,))
            db.execute("DELETE FROM signoff_oai_calls WHERE run_key = ?", (run_key,))
            db.execute("COMMIT")

    def release(self, run_key: str) -> None:
        """Un-claim a run whose resume failed."""
        with closing(self._connect()) as db:
            db.execute("UPDATE signoff_oai_runs SET claimed = 0 WHERE run_key = ?", (run_key,))


@dataclass(frozen=True, slots=True)
class Resumed:
    """What `resume` did: still waiting for other calls of the run, or re-ran it."""

    run_key: str
    result: RunResult | None
    """The re-run's result; None while other calls of the same turn are undecided."""


async def pause(result: RunResult, store: RunStore, *, run_key: str | None = None) -> str:
    """Store a run that stopped on interruptions; returns its run key."""
    if not result.interruptions:
        raise ValueError("this run did not stop for approval: nothing to pause")
    key = run_key or f"run_{uuid.uuid4().hex}"
    call_ids = [_call_id(item) for item in result.interruptions]
    store.save(key, result.to_state().to_string(), call_ids)
    return key


def _call_id(item: Any) -> str:
    raw: Any = item.raw_item
    call_id: Any = (
        cast(dict[str, Any], raw).get("call_id")
        if isinstance(raw, dict)
        else getattr(raw, "call_id", None)
    )
    if not isinstance(call_id, str):
        raise ValueError("an interruption without a call id cannot be routed through signoff")
    return call_id


def _decision(request: Request) -> dict[str, Any]:
    return {
        "approved": is_approved(request),
        "message": rejection_text(request),
        "request_id": request.id,
    }


async def resume(
    event: CallbackEvent,
    agent: Agent[Any],
    store: RunStore,
    *,
    run_config: RunConfig | None = None,
    context: Any = None,
    client: AsyncClient | None = None,
) -> Resumed:
    """Apply a verified callback's decision to the paused run; re-run it once all are decided.

    With `client`, calls that may not run are reported to signoff as `skipped` (approved ones
    report `executed` or `failed` from the gated tool itself). Raises `CallbackRefused` when the
    callback's call is not paused in `store`.
    """
    request = event.data.request
    call_id = request.correlation.get("call_id")
    if not call_id:
        raise CallbackRefused(f"{request.id} names no call_id: not an OpenAI Agents SDK request")
    run_key = store.record(call_id, _decision(request))
    if run_key is None:
        raise CallbackRefused(f"no paused run waits for call {call_id!r} (answered or unknown)")
    claimed = store.claim(run_key)
    if claimed is None:
        return Resumed(run_key, None)  # other calls of the same turn are still undecided
    state_text, decisions = claimed
    try:
        state = await RunState.from_string(agent, state_text)
        for item in state.get_interruptions():
            decision = decisions.get(_call_id(item))
            if decision is not None and decision["approved"]:
                state.approve(item)
            else:
                message = decision["message"] if decision else "Not executed: no signoff decision."
                state.reject(item, rejection_message=message)
        kwargs: dict[str, Any] = {"run_config": run_config} if run_config else {}
        if context is not None:
            kwargs["context"] = context
        result = await Runner.run(agent, state, **kwargs)
    except BaseException:
        store.release(run_key)
        raise
    store.finish(run_key)
    if client is not None:
        for decision in decisions.values():
            if not decision["approved"]:
                with contextlib.suppress(signoff.Conflict):  # reported already
                    await client.report_outcome(
                        decision["request_id"], OutcomeStatus.SKIPPED, detail=decision["message"]
                    )
    if result.interruptions:
        await pause(result, store)
    return Resumed(run_key, result)


def receiver(
    verifier: Verifier,
    agent: Callable[[], Agent[Any]],
    store: RunStore,
    *,
    dedupe: DedupeStore | None = None,
    run_config: RunConfig | None = None,
    client: AsyncClient | None = None,
    on_resumed: Callable[[Resumed], Awaitable[None] | None] | None = None,
) -> CallbackReceiver:
    """A ready receiver: verify, deduplicate on webhook-id, resume. Mount `.asgi_app()`.

    `agent` builds the agent to resume with: the same name and tools as the paused one. The
    receiver answers 200 when the run was resumed, 202 when the decision was recorded and the
    run waits for the other calls of its turn, 409 for a call that is not paused, 401 for a
    callback that does not verify.
    """

    async def handle(event: CallbackEvent) -> int:
        resumed = await resume(event, agent(), store, run_config=run_config, client=client)
        if on_resumed is not None:
            maybe = on_resumed(resumed)
            if maybe is not None:
                await maybe
        return 200 if resumed.result is not None else 202

    return CallbackReceiver(verifier, handle, store=dedupe)
