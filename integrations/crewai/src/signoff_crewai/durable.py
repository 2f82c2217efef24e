"""Resume a paused Flow from a verified signoff callback, once.

    persistence = SQLiteFlowPersistence("flows.db")
    result = InvoiceFlow(persistence=persistence).kickoff()     # pauses: HumanFeedbackPending
    ...
    # later, in the process that receives signoff's callbacks:
    app = receiver(Verifier(["whpk_..."]), InvoiceFlow, persistence,
                   store=SqliteDedupeStore("callbacks.db"), client=signoff.Client()).asgi_app()

`resume(event, InvoiceFlow, persistence)` takes the flow id from the request's correlation and
resumes only if that flow is paused waiting for exactly this request (the pending context names
it); the decision becomes the feedback text (see `signoff_crewai.flows.decision_of`). It claims a
once-marker per (flow, request) in `markers` first, so a duplicated or racing callback never
resumes a flow twice; a refusal raises `CallbackRefused` (the receiver answers 409) and leaves
the flow as it was. CrewAI's own `from_pending` is not enough on its own: two processes can both
load a pending flow before either clears it.

When the decision is not an approval, `resume` reports the outcome `skipped` (with `client=`):
nothing will run. After an approval the flow's own step reports `executed` once it acted.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from crewai.flow.persistence.base import FlowPersistence
from crewai.flow.runtime import Flow

from signoff import CallbackEvent, CallbackReceiver, CallbackRefused, Client, Verifier
from signoff.models import OutcomeStatus, Request
from signoff.receiver import DedupeStore
from signoff_crewai.flows import REQUEST_ID_KEY, FlowDecision
from signoff_crewai.requests import FRAMEWORK, report_outcome

__all__ = ["FlowResumed", "aresume", "receiver", "resume"]


@dataclass(frozen=True, slots=True)
class FlowResumed:
    """What a resume did: the flow, the request, the decision, and the flow's result.

    `result` is what `Flow.resume` returned: the flow's final output, or a new
    `HumanFeedbackPending` when the flow paused again (`paused_again`).
    """

    flow_id: str
    request_id: str
    decision: FlowDecision
    result: Any
    paused_again: bool


# One resume at a time per flow in this process; the markers make it once across processes.
_locks: weakref.WeakValueDictionary[str, threading.Lock] = weakref.WeakValueDictionary()
_locks_guard = threading.Lock()


def _lock_for(flow_id: str) -> threading.Lock:
    with _locks_guard:
        lock = _locks.get(flow_id)
        if lock is None:
            lock = threading.Lock()
            _locks[flow_id] = lock
        return lock


def _target(event: CallbackEvent) -> tuple[Request, str]:
    request = event.data.request
    flow_id = request.correlation.get("flow_id")
    if request.correlation.get("framework") != FRAMEWORK or not flow_id:
        raise CallbackRefused(f"{request.id} was not made by a CrewAI flow (no flow_id)")
    if request.correlation.get("step") != "flow":
        raise CallbackRefused(f"{request.id} is not a flow's review step: nothing to resume")
    if not request.status.is_terminal:
        raise CallbackRefused(f"{request.id} is still pending: there is no decision yet")
    return request, flow_id


def _marker(flow_id: str, request_id: str) -> str:
    return f"crewai-flow-resumed:{flow_id}:{request_id}"


@dataclass(frozen=True, kw_only=True)
class _Resume:
    flow: type[Flow[Any]]
    persistence: FlowPersistence
    markers: DedupeStore | None
    flow_kwargs: Mapping[str, Any]

    def claim(self, request: Request, flow_id: str) -> str | None:
        if self.markers is None:
            return None
        marker = _marker(flow_id, request.id)
        if not self.markers.claim(marker):
            raise CallbackRefused(
                f"flow {flow_id!r} was already resumed with the decision on {request.id}"
            )
        return marker

    def release(self, marker: str | None) -> None:
        if marker is not None and self.markers is not None:
            self.markers.release(marker)

    def load(self, request: Request, flow_id: str) -> Flow[Any]:
        """The paused flow, if it waits for exactly this request; else CallbackRefused."""
        pending = self.persistence.load_pending_feedback(flow_id)
        if pending is None:
            raise CallbackRefused(f"flow {flow_id!r} is not paused (resumed, moved on, unknown)")
        _state, context = pending
        waiting_for = context.metadata.get(REQUEST_ID_KEY)
        if waiting_for != request.id:
            raise CallbackRefused(
                f"flow {flow_id!r} waits for {waiting_for!r}, not for {request.id}"
            )
        return self.flow.from_pending(flow_id, self.persistence, **dict(self.flow_kwargs))


def _finish(
    client: Client | None, request: Request, flow_id: str, decision: FlowDecision, result: Any
) -> FlowResumed:
    from crewai.flow.async_feedback import HumanFeedbackPending

    if client is not None and not decision.approved:
        report_outcome(
            client, request.id, OutcomeStatus.SKIPPED, "not approved: the flow did not act"
        )
    return FlowResumed(
        flow_id, request.id, decision, result, isinstance(result, HumanFeedbackPending)
    )


def resume(
    event: CallbackEvent,
    flow: type[Flow[Any]],
    persistence: FlowPersistence,
    *,
    markers: DedupeStore | None = None,
    client: Client | None = None,
    flow_kwargs: Mapping[str, Any] | None = None,
) -> FlowResumed:
    """Resume the flow paused for `event`'s request with its decision (sync flows).

    `markers` (a `signoff.receiver.SqliteDedupeStore` shared by every receiving process) makes
    the resume happen once across processes; without it, once per process. `flow_kwargs` go to
    the flow's constructor. Raises `CallbackRefused` when no flow waits for this request.
    Call from code without a running event loop (`Flow.resume` runs one); use `aresume` in async
    code.
    """
    request, flow_id = _target(event)
    step = _Resume(
        flow=flow, persistence=persistence, markers=markers, flow_kwargs=flow_kwargs or {},
    )  # fmt: skip
    with _lock_for(flow_id):
        marker = step.claim(request, flow_id)
        try:
            instance = step.load(request, flow_id)
            decision = FlowDecision.from_request(request)
            result = instance.resume(decision.to_feedback())
        except BaseException:
            step.release(marker)
            raise
    return _finish(client, request, flow_id, decision, result)


async def aresume(
    event: CallbackEvent,
    flow: type[Flow[Any]],
    persistence: FlowPersistence,
    *,
    markers: DedupeStore | None = None,
    client: Client | None = None,
    flow_kwargs: Mapping[str, Any] | None = None,
) -> FlowResumed:
    """`resume` for async code: the flow continues with `Flow.resume_async`."""
    request, flow_id = _target(event)
    step = _Resume(
        flow=flow, persistence=persistence, markers=markers, flow_kwargs=flow_kwargs or {},
    )  # fmt: skip
    lock = _lock_for(flow_id)
    delay = 0.001
    while not lock.acquire(blocking=False):  # polling keeps cancellation safe
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)
    try:
        marker = step.claim(request, flow_id)
        try:
            instance = await asyncio.to_thread(step.load, request, flow_id)
            decision = FlowDecision.from_request(request)
            result = await instance.resume_async(decision.to_feedback())
        except BaseException:
            step.release(marker)
            raise
    finally:
        lock.release()
    return await asyncio.to_thread(_finish, client, request, flow_id, decision, result)


def receiver(
    verifier: Verifier,
    flow: type[Flow[Any]],
    persistence: FlowPersistence,
    *,
    store: DedupeStore | None = None,
    client: Client | None = None,
    flow_kwargs: Mapping[str, Any] | None = None,
    on_resumed: Callable[[FlowResumed], Awaitable[None] | None] | None = None,
) -> CallbackReceiver:
    """A ready receiver: verify, deduplicate on webhook-id, resume once. Mount `.asgi_app()`.

    `store` (use a `SqliteDedupeStore` shared by every receiving process) keeps both the handled
    webhook ids and the once-markers. Answers: 200 resumed (or a duplicate delivery), 401 for a
    callback that does not verify, 409 when no flow waits for the request, 500 when the flow
    failed while resuming (signoff delivers again).
    """
    from signoff.receiver import MemoryDedupeStore

    shared: DedupeStore = store if store is not None else MemoryDedupeStore()

    async def handle(event: CallbackEvent) -> None:
        done = await aresume(
            event, flow, persistence, markers=shared, client=client, flow_kwargs=flow_kwargs
        )
        if on_resumed is not None:
            maybe = on_resumed(done)
            if maybe is not None:
                await maybe

    return CallbackReceiver(verifier, handle, store=shared)
