"""Gated tools: a `BaseTool` proxy whose `_run` waits for a signoff decision.

    pay = gated_tool(ReleasePayment(), client=signoff.Client(), action="payments.release")
    agent = Agent(role="finance", ..., tools=[pay])

The proxy has the inner tool's name, description and argument schema, so the model sees the
same tool. Each call creates (idempotently) one signoff request and blocks until it is decided:

- approve → the inner tool runs with the call's arguments; edit → with the reviewer's arguments;
  the outcome (`executed` / `failed`) is reported afterwards;
- reject, respond, expiry, cancellation, a wait that runs out, or signoff unreachable → the
  inner tool does not run, and the agent reads why (the reviewer's comment or instruction).

It never raises into CrewAI (CrewAI shows exceptions to the model and retries the call). A call
CrewAI repeats — same crew kickoff, task, tool and arguments — finds the request made the first
time, and an approved call runs once: a repeat is told it already ran.
CrewAI calls `_run` directly in text mode and through `run` in function-calling mode; both end
here. Results of a gated tool are never put in CrewAI's tool cache.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from crewai.tools import BaseTool
from pydantic import ConfigDict, PrivateAttr

import signoff
from signoff import Client, OutcomeStatus, Request, Risk, Status
from signoff_crewai.requests import (
    RequestOptions,
    Scope,
    build_request,
    is_approved,
    rejection_text,
    report_outcome,
)

__all__ = ["GatedTool", "gated_tool"]

log = logging.getLogger("signoff.crewai")


def _never_cache(_arguments: Any = None, _result: Any = None) -> bool:
    """A gated call's result must not be replayed from CrewAI's tool cache."""
    return False


class GatedTool(BaseTool):
    """A proxy for `inner` that runs it only after a signoff approval. Build it with
    `gated_tool(...)`."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    inner: BaseTool
    _client: Client | None = PrivateAttr(default=None)
    _options: RequestOptions = PrivateAttr(default_factory=RequestOptions)
    _done: dict[str, str] = PrivateAttr(default_factory=dict[str, str])
    _locks: dict[str, threading.Lock] = PrivateAttr(default_factory=dict[str, threading.Lock])
    _guard: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _run_id: str | None = PrivateAttr(default=None)

    def configure(self, client: Client, options: RequestOptions, run_id: str) -> None:
        """Attach the client and request options (`gated_tool` does this)."""
        self._client = client
        self._options = options
        self._run_id = run_id

    # CrewAI entry points ---------------------------------------------------------------------

    def _run(self, *args: Any, **kwargs: Any) -> Any:
        """Create the request, wait for the decision, run the inner tool only if approved."""
        try:
            arguments = self._arguments(args, kwargs)
            return self._gated(arguments)
        except Exception as exc:  # never raise into CrewAI: it would retry the call
            log.exception("signoff gate for %s failed", self.name)
            return (
                f"Not executed: the approval could not be obtained ({type(exc).__name__}: {exc})."
            )

    async def _arun(self, *args: Any, **kwargs: Any) -> Any:
        """The async path: the same gate, in a worker thread."""
        return await asyncio.to_thread(self._run, *args, **kwargs)

    # the gate --------------------------------------------------------------------------------

    def _arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        if not args:
            return dict(kwargs)
        names = list(self.args_schema.model_fields)
        return {**dict(zip(names, args, strict=False)), **kwargs}

    def _gated(self, arguments: dict[str, Any]) -> Any:
        client = self._client
        if client is None:
            return "Not executed: this gated tool has no signoff client (use gated_tool())."
        scope = Scope.current()
        extra: tuple[Any, ...] = () if scope.known else (self._run_id,)
        try:
            payload = build_request(
                kind="tool",
                name=self.name,
                arguments=arguments,
                scope=scope,
                options=self._options,
                default_object={"type": "tool_call", "id": self.name},
                extra_key=extra,
                correlation={"tool": self.name},
            )
        except ValueError as exc:
            return f"Not executed: the call cannot be put up for approval ({exc})."
        key = payload.idempotency_key or ""
        with self._lock_for(key):
            if key in self._done:
                return self._done[key]
            try:
                request = self._decide(client, payload)
            except signoff.SignoffError as exc:
                return f"Not executed: the approval could not be obtained ({exc})."
            if not is_approved(request):
                report_outcome(
                    client, request.id, OutcomeStatus.SKIPPED, "not approved: the tool did not run"
                )
                return rejection_text(request)
            if request.outcome is not None:
                text = (
                    f"Not executed again: this exact call was already approved and run once "
                    f"(signoff request {request.id}, outcome {request.outcome.status.value})."
                )
                self._done[key] = text
                return text
            result = self._execute(client, request)
            self._done[key] = (
                f"Not executed again: this exact call was already approved and run once "
                f"(signoff request {request.id}); its result was: {result}"
            )
            return result

    def _decide(self, client: Client, payload: Any) -> Request:
        request = client.create_request(payload)
        if request.status is Status.PENDING:
            try:
                request = client.wait(request.id, timeout=self._options.wait_timeout)
            except signoff.TimeoutError:
                # Nobody decided in time: withdraw the request so a late approval cannot count.
                try:
                    request = client.cancel(request.id, reason="the agent stopped waiting")
                except signoff.Conflict:
                    request = client.get_request(request.id)
        return request

    def _execute(self, client: Client, request: Request) -> Any:
        arguments = dict(request.effective_arguments)
        try:
            result = self.inner.run(**arguments)
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}"
            report_outcome(client, request.id, OutcomeStatus.FAILED, detail)
            return f"Approved, but the tool failed: {detail}"
        report_outcome(client, request.id, OutcomeStatus.EXECUTED)
        return result

    def _lock_for(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())


def gated_tool(
    tool: BaseTool,
    *,
    client: Client,
    action: str | None = None,
    business_object: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
    summary: Callable[[Mapping[str, Any]], str] | None = None,
    route: str | None = None,
    sla: str | None = None,
    risk: Risk | None = None,
    callback_url: str | None = None,
    wait_timeout: float = 300.0,
) -> GatedTool:
    """A proxy of `tool` whose every call needs a signoff decision. See the module docstring.

    `action` names the gated action in signoff (default: the tool's name); `business_object`
    and `summary` derive the business object and display text from the call's arguments;
    `route`, `sla`, `risk` are hints a policy may tighten; `wait_timeout` (seconds) bounds the
    wait, after which the request is cancelled and the call fails closed.
    """
    proxy = GatedTool(
        name=tool.name,
        description=tool.description,
        args_schema=tool.args_schema,
        result_schema=tool.result_schema,
        result_as_answer=tool.result_as_answer,
        cache_function=_never_cache,
        inner=tool,
    )
    options = RequestOptions(
        action=action, business_object=business_object, summary=summary, route=route, sla=sla,
        risk=risk, callback_url=callback_url, wait_timeout=wait_timeout,
    )  # fmt: skip
    proxy.configure(client, options, uuid.uuid4().hex)
    return proxy
