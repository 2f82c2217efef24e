"""How a gate asks: where in the graph it runs, the request it makes, and the decision it waits
for (interrupt mode, blocking mode, or a decision a policy made at creation). `gate.py` builds
the public nodes on top of this.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.types import interrupt

from signoff import BusinessObject, Request, RequestCreate, Verdict
from signoff.durations import format_duration
from signoff_langgraph._api import Api, as_mapping
from signoff_langgraph.errors import GateError
from signoff_langgraph.payloads import (
    SignoffDecision,
    answered_request,
    decided_by_policy,
    decision_from_request,
)

__all__ = ["FRAMEWORK", "Ask", "Keeper", "Where", "request_body", "value_of"]

log = logging.getLogger("signoff.langgraph")

FRAMEWORK = "langgraph"


@dataclass(frozen=True, slots=True)
class Where:
    """Where in the graph a gate runs: thread, task namespace and node."""

    thread_id: str | None
    ns: str
    node: str

    @classmethod
    def of(cls, config: RunnableConfig) -> Where:
        conf = as_mapping(config.get("configurable")) or {}
        meta = as_mapping(config.get("metadata")) or {}
        thread = conf.get("thread_id")
        ns = str(conf.get("checkpoint_ns") or meta.get("langgraph_checkpoint_ns") or "")
        node = str(meta.get("langgraph_node") or ns.split(":", 1)[0] or "node")
        return cls(str(thread) if thread is not None else None, ns, node)

    def key(self, call_id: str) -> str:
        raw = "\x1f".join((self.thread_id or "", self.ns, call_id))
        return "langgraph_" + hashlib.sha256(raw.encode()).hexdigest()

    def correlation(self, call_id: str | None) -> dict[str, str]:
        found = {"framework": FRAMEWORK, "node": self.node[:512]}
        if self.thread_id is not None:
            if len(self.thread_id) > 512:
                raise GateError("thread_id is longer than 512 characters; signoff cannot carry it")
            found["thread_id"] = self.thread_id
        if len(self.ns) <= 512:
            found["checkpoint_ns"] = self.ns
        if call_id:
            found["tool_call_id"] = call_id[:512]
        return found

    def meta(self, request: Request, call_id: str | None) -> dict[str, str]:
        found = {"request_id": request.id, "action": request.action.name, "checkpoint_ns": self.ns}
        if self.thread_id is not None:
            found["thread_id"] = self.thread_id
        if call_id:
            found["tool_call_id"] = call_id
        return found


@dataclass(frozen=True, slots=True)
class Ask:
    """One gated action to ask about: its request body and how to show it in an interrupt."""

    key: str
    body: RequestCreate
    payload: Callable[[Request], dict[str, Any]]


def value_of(source: Any, *args: Any) -> Any:
    return source(*args) if callable(source) else source


def request_body(
    *,
    where: Where,
    call_id: str,
    action: str,
    arguments: Mapping[str, Any],
    business_object: Any,
    summary: Any,
    context: Any,
    route: str | None,
    sla: str | timedelta | None,
    risk: str | None,
    on_timeout: str | None,
    allowed: Sequence[str],
    approvals: Mapping[str, Any] | None,
    comment_required: str | None,
    initiator: Any,
    callback_url: str | None,
    agent_name: str | None,
) -> RequestCreate:
    raw: dict[str, Any] = {
        "action": {"name": action, "arguments": dict(arguments)},
        "business_object": (
            business_object.model_dump(mode="json", exclude_none=True)
            if isinstance(business_object, BusinessObject)
            else business_object
        ),
        "agent": {"framework": FRAMEWORK, **({"name": agent_name} if agent_name else {})},
        "correlation": where.correlation(call_id),
        "allowed": [Verdict(v).value for v in allowed],
        "idempotency_key": where.key(call_id),
    }
    optional: dict[str, Any] = {
        "summary": summary,
        "context": context,
        "route": {"role": route} if route else None,
        "sla": format_duration(sla) if isinstance(sla, timedelta) else sla,
        "risk": risk,
        "on_timeout": on_timeout,
        "approvals": dict(approvals) if approvals is not None else None,
        "comment_required": comment_required,
        "initiator": initiator,
        "callback": {"url": callback_url} if callback_url else None,
    }
    raw.update({k: v for k, v in optional.items() if v is not None})
    return RequestCreate.model_validate(raw)


@dataclass(frozen=True, kw_only=True)
class Keeper:
    """Asks signoff about a step's gated actions and returns each one's decision."""

    api: Api
    blocking: bool
    wait_timeout: float | None

    def _check(self, where: Where) -> None:
        if not self.blocking and where.thread_id is None:
            raise GateError(
                "a signoff gate pauses with interrupt(): compile the graph with a checkpointer "
                "and pass config={'configurable': {'thread_id': ...}}, or use blocking=True"
            )

    @staticmethod
    def _answered(request: Request, answer: object) -> bool:
        named = answered_request(answer)
        if named != request.id:
            log.warning("ignoring a resume value for %s at the gate of %s", named, request.id)
            return False
        return True

    def _withdrawn_reason(self) -> str:
        return f"no decision within {self.wait_timeout} s: the agent stopped waiting (fail closed)"

    def decide(self, where: Where, asks: Sequence[Ask]) -> dict[str, SignoffDecision]:
        """Each ask's decision; pauses the graph (interrupt) until a human decided."""
        self._check(where)
        requests = [self.api.create(ask.body) for ask in asks]
        decided: dict[str, SignoffDecision] = {}
        for ask, request in zip(asks, requests, strict=True):
            if self.blocking:
                closed = request if request.status.is_terminal else None
                closed = closed or self.api.wait(request.id, self.wait_timeout)
                closed = closed or self.api.withdraw(request.id, self._withdrawn_reason())
                decided[ask.key] = decision_from_request(closed)
            elif decided_by_policy(request):
                decided[ask.key] = decision_from_request(request)
            else:
                decided[ask.key] = self._interrupt(ask, request)
        return decided

    def _interrupt(self, ask: Ask, request: Request) -> SignoffDecision:
        payload = ask.payload(request)
        while True:  # each pass takes the next resume slot, or pauses: it cannot spin
            if not self._answered(request, interrupt(payload)):
                continue
            if not request.status.is_terminal:
                request = self.api.get(request.id)
            if request.status.is_terminal:
                return decision_from_request(request)
            log.warning("ignoring a resume for %s: signoff still shows it pending", request.id)

    async def adecide(self, where: Where, asks: Sequence[Ask]) -> dict[str, SignoffDecision]:
        """`decide`, for async graphs."""
        self._check(where)
        requests = [await self.api.acreate(ask.body) for ask in asks]
        decided: dict[str, SignoffDecision] = {}
        for ask, request in zip(asks, requests, strict=True):
            if self.blocking:
                closed = request if request.status.is_terminal else None
                closed = closed or await self.api.await_(request.id, self.wait_timeout)
                closed = closed or await self.api.awithdraw(request.id, self._withdrawn_reason())
                decided[ask.key] = decision_from_request(closed)
            elif decided_by_policy(request):
                decided[ask.key] = decision_from_request(request)
            else:
                decided[ask.key] = await self._ainterrupt(ask, request)
        return decided

    async def _ainterrupt(self, ask: Ask, request: Request) -> SignoffDecision:
        payload = ask.payload(request)
        while True:
            if not self._answered(request, interrupt(payload)):
                continue
            if not request.status.is_terminal:
                request = await self.api.aget(request.id)
            if request.status.is_terminal:
                return decision_from_request(request)
            log.warning("ignoring a resume for %s: signoff still shows it pending", request.id)
