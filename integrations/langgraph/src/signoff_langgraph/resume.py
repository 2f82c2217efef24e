"""Resume a paused graph from a verified signoff callback.

`resume(graph, event, client=...)` finds the thread in the request's correlation and the
interrupt among the thread's *pending* interrupts (the one whose payload names the request), and
answers exactly that interrupt with `Command(resume={interrupt_id: value})`. It defends against
LangGraph's resume pitfalls:

- it never sends an id that is not pending (an unknown id is silently ignored by LangGraph, and
  an already-used id can answer the node's next interrupt);
- it never resumes with a bare value or `invoke(None)`;
- it holds a per-thread lock while it reads, resumes and re-reads, and a once-marker per
  (thread, request) in `markers` (any `signoff.receiver.DedupeStore`), so a request's decision is
  applied once even when callbacks are duplicated or race;
- after resuming it re-reads the pending interrupts: its own must be gone, and any other gated
  call of the thread whose request is already closed is answered too (a model turn with two
  gated calls pauses on one at a time; their callbacks can arrive in any order).

A refusal raises a `ResumeRefused` subclass and leaves the graph untouched. The outcome of the
gated action is reported by the gate itself once the action ran (or was skipped) during the
resumed run. `resume_pending` answers every pending gate of a thread whose request has closed,
from the server's word alone: a fallback for lost callbacks, and the way to resume without any.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections.abc import AsyncGenerator, Generator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

from langchain_core.runnables import RunnableConfig
from langgraph.types import Command, Interrupt, PregelTask, StateSnapshot

from signoff import AsyncClient, CallbackEvent, Client, Request
from signoff.receiver import DedupeStore
from signoff_langgraph._api import Api
from signoff_langgraph.errors import (
    AlreadyAnswered,
    InterruptNotPending,
    NotForLangGraph,
    NotPausedYet,
    ResumeFailed,
    ResumeRefused,
)
from signoff_langgraph.payloads import resume_value, signoff_meta

__all__ = ["Resumed", "aresume", "aresume_pending", "resume", "resume_pending"]

_MAX_FOLLOW_UPS = 64

log = logging.getLogger("signoff.langgraph")


class ResumableGraph(Protocol):
    """What `resume` needs of a compiled graph (a `CompiledStateGraph` or any `Pregel`)."""

    def get_state(self, config: RunnableConfig, *, subgraphs: bool = False) -> StateSnapshot:
        """The thread's current state, with its pending interrupts."""
        ...

    async def aget_state(self, config: RunnableConfig, *, subgraphs: bool = False) -> StateSnapshot:
        """`get_state`, awaitable."""
        ...

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Run the graph."""
        ...

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Run the graph, awaitable."""
        ...


@dataclass(frozen=True, slots=True)
class Resumed:
    """What a resume did.

    `status` is `resumed` (the interrupt was answered and the graph ran on), or `queued` (the
    request's gated call waits behind an earlier one of the same model turn that is still
    pending; it is answered when that one is). `also_resumed` lists the other requests of the
    thread answered in the same go; `pending` the thread's gated requests still waiting.
    """

    status: Literal["resumed", "queued"]
    request_id: str
    thread_id: str
    interrupt_id: str | None = None
    output: Any = None
    also_resumed: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Target:
    request: Request
    thread_id: str
    ns: str | None
    source: str


def _target(request: Request, source: str) -> _Target:
    correlation = request.correlation
    thread_id = correlation.get("thread_id")
    if correlation.get("framework") != "langgraph" or not thread_id:
        raise NotForLangGraph(
            f"{request.id} was not made by the LangGraph adapter (no LangGraph thread in its "
            "correlation)",
            request_id=request.id,
        )
    if not request.status.is_terminal:
        raise InterruptNotPending(
            f"{request.id} is still pending in signoff: there is no decision to resume with",
            request_id=request.id,
            thread_id=thread_id,
        )
    return _Target(request, thread_id, correlation.get("checkpoint_ns"), source)


def _event_target(event: CallbackEvent) -> _Target:
    return _target(event.data.request, f"callback:{event.id}")


def _config(config: RunnableConfig | None, thread_id: str) -> RunnableConfig:
    base = dict(config or {})
    configurable = {**cast(Mapping[str, Any], base.get("configurable") or {})}
    configurable["thread_id"] = thread_id
    configurable.pop("checkpoint_id", None)  # always the thread's latest checkpoint
    base["configurable"] = configurable
    return cast(RunnableConfig, base)


def _marker(thread_id: str, request_id: str) -> str:
    return f"langgraph-answered:{thread_id}:{request_id}"


def _pending(snapshot: StateSnapshot) -> list[Interrupt]:
    """The thread's unanswered interrupts.

    LangGraph before 1.2.13 still lists the interrupt of a task that finished once it was
    answered, while another task of the same step (a `Send` fan-out) waits. A task with output
    waits for nothing, so its interrupts are left out. (Those versions also show `{}` as the
    result of a task that is still waiting after an answer, hence "with output", not "with a
    result".)
    """
    finished = {i.id for task in snapshot.tasks if task.result for i in task.interrupts}
    return [i for i in snapshot.interrupts if i.id not in finished]


def _gates(snapshot: StateSnapshot) -> list[tuple[Interrupt, dict[str, str]]]:
    """The thread's pending interrupts made by a signoff gate, with their `signoff` entries."""
    found: list[tuple[Interrupt, dict[str, str]]] = []
    for pending in _pending(snapshot):
        meta = signoff_meta(pending.value)
        if meta is not None:
            found.append((pending, meta))
    return found


def _find(snapshot: StateSnapshot, request_id: str) -> Interrupt | None:
    for pending, meta in _gates(snapshot):
        if meta["request_id"] == request_id:
            return pending
    return None


def _why_not_pending(snapshot: StateSnapshot, target: _Target) -> Resumed:
    """No interrupt names the request: it is queued behind another, or the resume is refused."""
    request_id, thread_id = target.request.id, target.thread_id
    if target.ns:
        for _pending, meta in _gates(snapshot):
            if meta.get("checkpoint_ns") == target.ns:
                # The same task is paused on an earlier gated call; this one comes next.
                return Resumed("queued", request_id, thread_id, pending=_pending_ids(snapshot))
        for task in snapshot.tasks:
            if f"{task.name}:{task.id}" == target.ns and _running(task):
                raise NotPausedYet(
                    f"the step that asked for {request_id} is still running in thread "
                    f"{thread_id!r}; deliver the callback again later",
                    request_id=request_id,
                    thread_id=thread_id,
                )
    raise InterruptNotPending(
        f"no interrupt for {request_id} is pending in thread {thread_id!r} (it was answered, or "
        "the thread moved on); the graph was not touched",
        request_id=request_id,
        thread_id=thread_id,
    )


def _running(task: PregelTask) -> bool:
    """A task of the current step that has neither paused, failed nor finished."""
    return not task.interrupts and task.error is None and task.result is None


def _check_paused(snapshot: StateSnapshot, target: _Target) -> None:
    """Refuse to resume while another task of the paused step still runs.

    LangGraph shows a task's interrupt as soon as that task stops, while the other tasks of the
    same step (a `Send` fan-out) may still be running in the process that started the run.
    Resuming then would run the thread twice at once.
    """
    if any(_running(task) for task in snapshot.tasks):
        raise NotPausedYet(
            f"thread {target.thread_id!r} is still running the step that asked for "
            f"{target.request.id}; deliver the callback again later",
            request_id=target.request.id,
            thread_id=target.thread_id,
        )


def _pending_ids(snapshot: StateSnapshot) -> tuple[str, ...]:
    return tuple(meta["request_id"] for _p, meta in _gates(snapshot))


def _refused_if_answered(markers: DedupeStore | None, target: _Target) -> None:
    if markers is None:
        return
    marker = _marker(target.thread_id, target.request.id)
    if markers.claim(marker):
        markers.release(marker)
        return
    raise AlreadyAnswered(
        f"the decision on {target.request.id} was already applied to thread "
        f"{target.thread_id!r}; it is never applied twice",
        request_id=target.request.id,
        thread_id=target.thread_id,
    )


# Per-thread locks: one resume at a time per thread in this process ----------------------------

_locks: weakref.WeakValueDictionary[str, threading.Lock] = weakref.WeakValueDictionary()
_locks_guard = threading.Lock()


def _lock_for(thread_id: str) -> threading.Lock:
    with _locks_guard:
        lock = _locks.get(thread_id)
        if lock is None:
            lock = threading.Lock()
            _locks[thread_id] = lock
        return lock


@contextmanager
def _thread_lock(thread_id: str) -> Generator[None]:
    lock = _lock_for(thread_id)
    with lock:
        yield


@asynccontextmanager
async def _athread_lock(thread_id: str) -> AsyncGenerator[None]:
    lock = _lock_for(thread_id)
    delay = 0.001
    while not lock.acquire(blocking=False):  # polling keeps cancellation safe
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)
    try:
        yield
    finally:
        lock.release()


# The resume itself -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _Resumer:
    graph: ResumableGraph
    api: Api | None
    config: RunnableConfig
    markers: DedupeStore | None
    invoke_options: Mapping[str, Any]

    def _claim(self, target: _Target) -> str | None:
        if self.markers is None:
            return None
        marker = _marker(target.thread_id, target.request.id)
        if not self.markers.claim(marker):
            # Marked, yet its interrupt is still pending: another process is resuming it right
            # now, or an attempt died half-way. Either way the sender should try again later;
            # `resume_pending` (no markers) answers it from the server's word after a crash.
            raise NotPausedYet(
                f"another resume of {target.request.id} in thread {target.thread_id!r} is in "
                "progress or did not finish; deliver the callback again later",
                request_id=target.request.id,
                thread_id=target.thread_id,
            )
        return marker

    def _release(self, marker: str | None) -> None:
        if marker is not None and self.markers is not None:
            self.markers.release(marker)

    @staticmethod
    def _command(pending: Interrupt, target: _Target) -> Command[Any]:
        return Command(
            resume={pending.id: resume_value(pending.value, target.request, source=target.source)}
        )

    def _landed(self, after: StateSnapshot, target: _Target, marker: str | None) -> None:
        if _find(after, target.request.id) is not None:
            self._release(marker)
            raise ResumeFailed(
                f"resumed thread {target.thread_id!r}, but the interrupt for "
                f"{target.request.id} is still pending"
            )

    # sync ----------------------------------------------------------------------------------

    def answer(self, target: _Target) -> Resumed:
        with _thread_lock(target.thread_id):
            snapshot = self.graph.get_state(self.config)
            pending = _find(snapshot, target.request.id)
            if pending is None:
                _refused_if_answered(self.markers, target)
                return _why_not_pending(snapshot, target)
            _check_paused(snapshot, target)
            output, after = self._run(pending, target)
            also, after = self.follow_up(after)
            return Resumed(
                "resumed",
                target.request.id,
                target.thread_id,
                interrupt_id=pending.id,
                output=output,
                also_resumed=tuple(also),
                pending=_pending_ids(after),
            )

    def _run(self, pending: Interrupt, target: _Target) -> tuple[Any, StateSnapshot]:
        marker = self._claim(target)
        try:
            output = self.graph.invoke(
                self._command(pending, target), self.config, **self.invoke_options
            )
        except BaseException:
            if _find(self.graph.get_state(self.config), target.request.id) is not None:
                self._release(marker)  # nothing landed: a redelivery may try again
            raise
        after = self.graph.get_state(self.config)
        self._landed(after, target, marker)
        return output, after

    def follow_up(
        self, snapshot: StateSnapshot, *, best_effort: bool = True
    ) -> tuple[list[str], StateSnapshot]:
        """Answer the thread's other pending gates whose requests are closed already.

        After a resume this is best effort: a failure here is logged, since the resume that
        asked for it did land; the gates left pending are answered by their own callbacks.
        """
        also: list[str] = []
        if self.api is None:
            return also, snapshot
        for _ in range(_MAX_FOLLOW_UPS):
            try:
                ready = self._ready(snapshot)
                if ready is None:
                    break
                pending, target = ready
                _out, snapshot = self._run(pending, target)
            except ResumeRefused:
                break
            except Exception:
                if not best_effort:
                    raise
                log.warning("could not answer the other gates of the thread", exc_info=True)
                break
            also.append(target.request.id)
        return also, snapshot

    def _ready(self, snapshot: StateSnapshot) -> tuple[Interrupt, _Target] | None:
        assert self.api is not None
        if any(_running(task) for task in snapshot.tasks):
            return None
        for pending, meta in _gates(snapshot):
            request = self.api.get(meta["request_id"])
            if request.status.is_terminal:
                return pending, _target(request, "poll")
        return None

    # async ---------------------------------------------------------------------------------

    async def aanswer(self, target: _Target) -> Resumed:
        async with _athread_lock(target.thread_id):
            snapshot = await self.graph.aget_state(self.config)
            pending = _find(snapshot, target.request.id)
            if pending is None:
                _refused_if_answered(self.markers, target)
                return _why_not_pending(snapshot, target)
            _check_paused(snapshot, target)
            output, after = await self._arun(pending, target)
            also, after = await self.afollow_up(after)
            return Resumed(
                "resumed",
                target.request.id,
                target.thread_id,
                interrupt_id=pending.id,
                output=output,
                also_resumed=tuple(also),
                pending=_pending_ids(after),
            )

    async def _arun(self, pending: Interrupt, target: _Target) -> tuple[Any, StateSnapshot]:
        marker = self._claim(target)
        try:
            output = await self.graph.ainvoke(
                self._command(pending, target), self.config, **self.invoke_options
            )
        except BaseException:
            if _find(await self.graph.aget_state(self.config), target.request.id) is not None:
                self._release(marker)
            raise
        after = await self.graph.aget_state(self.config)
        self._landed(after, target, marker)
        return output, after

    async def afollow_up(
        self, snapshot: StateSnapshot, *, best_effort: bool = True
    ) -> tuple[list[str], StateSnapshot]:
        """`follow_up`, awaitable."""
        also: list[str] = []
        if self.api is None:
            return also, snapshot
        for _ in range(_MAX_FOLLOW_UPS):
            try:
                ready = await self._aready(snapshot)
                if ready is None:
                    break
                pending, target = ready
                _out, snapshot = await self._arun(pending, target)
            except ResumeRefused:
                break
            except Exception:
                if not best_effort:
                    raise
                log.warning("could not answer the other gates of the thread", exc_info=True)
                break
            also.append(target.request.id)
        return also, snapshot

    async def _aready(self, snapshot: StateSnapshot) -> tuple[Interrupt, _Target] | None:
        assert self.api is not None
        if any(_running(task) for task in snapshot.tasks):
            return None
        for pending, meta in _gates(snapshot):
            request = await self.api.aget(meta["request_id"])
            if request.status.is_terminal:
                return pending, _target(request, "poll")
        return None


def _resumer(
    graph: ResumableGraph,
    thread_id: str,
    *,
    client: Client | None,
    async_client: AsyncClient | None,
    config: RunnableConfig | None,
    markers: DedupeStore | None,
    durability: str | None,
) -> _Resumer:
    api = Api(client, async_client) if client is not None or async_client is not None else None
    return _Resumer(
        graph=graph,
        api=api,
        config=_config(config, thread_id),
        markers=markers,
        invoke_options={"durability": durability} if durability is not None else {},
    )


def resume(
    graph: ResumableGraph,
    event: CallbackEvent,
    *,
    client: Client | None = None,
    config: RunnableConfig | None = None,
    markers: DedupeStore | None = None,
    durability: Literal["sync", "async", "exit"] | None = None,
) -> Resumed:
    """Resume the graph paused at `event`'s request with its decision. `event` must be verified.

    `client` lets the resume answer the thread's other gates whose requests closed meanwhile
    (without it, a gated call queued behind this one waits for `resume_pending`). `markers` (a
    `DedupeStore`, e.g. `SqliteDedupeStore`, shared by every process that resumes this
    checkpointer's threads) makes "already answered" detectable across processes.
    `config` is merged into the run's config (the thread id comes from the request).

    Raises `ResumeRefused` (`NotForLangGraph`, `InterruptNotPending`, `AlreadyAnswered`) without
    touching the graph, `NotPausedYet` if the step has not paused yet, and whatever the graph
    raises while it runs on.
    """
    target = _event_target(event)
    resumer = _resumer(
        graph,
        target.thread_id,
        client=client,
        async_client=None,
        config=config,
        markers=markers,
        durability=durability,
    )
    return resumer.answer(target)


async def aresume(
    graph: ResumableGraph,
    event: CallbackEvent,
    *,
    client: Client | AsyncClient | None = None,
    config: RunnableConfig | None = None,
    markers: DedupeStore | None = None,
    durability: Literal["sync", "async", "exit"] | None = None,
) -> Resumed:
    """`resume` for async graphs and checkpointers (`ainvoke`, `aget_state`)."""
    target = _event_target(event)
    resumer = _resumer(
        graph,
        target.thread_id,
        client=client if isinstance(client, Client) else None,
        async_client=client if isinstance(client, AsyncClient) else None,
        config=config,
        markers=markers,
        durability=durability,
    )
    return await resumer.aanswer(target)


def resume_pending(
    graph: ResumableGraph,
    *,
    thread_id: str,
    client: Client,
    config: RunnableConfig | None = None,
    markers: DedupeStore | None = None,
    durability: Literal["sync", "async", "exit"] | None = None,
) -> Sequence[str]:
    """Answer every pending gate of `thread_id` whose request signoff has closed.

    The decision comes from the server (an authenticated read), not from a callback: use it to
    catch up after callbacks were lost, or to run without callbacks at all. Returns the request
    ids answered, in order.
    """
    resumer = _resumer(
        graph,
        thread_id,
        client=client,
        async_client=None,
        config=config,
        markers=markers,
        durability=durability,
    )
    with _thread_lock(thread_id):
        also, _after = resumer.follow_up(graph.get_state(resumer.config), best_effort=False)
    return also


async def aresume_pending(
    graph: ResumableGraph,
    *,
    thread_id: str,
    client: Client | AsyncClient,
    config: RunnableConfig | None = None,
    markers: DedupeStore | None = None,
    durability: Literal["sync", "async", "exit"] | None = None,
) -> Sequence[str]:
    """`resume_pending` for async graphs and checkpointers."""
    resumer = _resumer(
        graph,
        thread_id,
        client=client if isinstance(client, Client) else None,
        async_client=client if isinstance(client, AsyncClient) else None,
        config=config,
        markers=markers,
        durability=durability,
    )
    async with _athread_lock(thread_id):
        snapshot = await graph.aget_state(resumer.config)
        also, _after = await resumer.afollow_up(snapshot, best_effort=False)
    return also
