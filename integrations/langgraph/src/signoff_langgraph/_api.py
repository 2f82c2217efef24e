"""One facade over the core clients for code that runs both in sync and in async graphs.

Sync graphs need a `signoff.Client`. Async graphs use an `AsyncClient` when given one, and else
run the sync client's calls in a worker thread, so one `Client` serves both kinds of graph.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, cast

from signoff import AsyncClient, Client, Conflict, OutcomeStatus, Request, RequestCreate
from signoff.errors import TimeoutError as SignoffTimeoutError
from signoff_langgraph.errors import GateError

__all__ = ["Api"]

log = logging.getLogger("signoff.langgraph")

_DETAIL_LIMIT = 4000


class Api:
    """The signoff calls the adapter makes, each in a blocking and an awaitable form."""

    def __init__(self, client: Client | None, async_client: AsyncClient | None) -> None:
        if client is None and async_client is None:
            raise GateError(
                "pass client=signoff.Client(...) (and/or async_client=AsyncClient(...))"
            )
        self.client = client
        self.async_client = async_client

    def _sync(self) -> Client:
        if self.client is None:
            raise GateError(
                "this graph runs synchronously (invoke/stream): pass client=signoff.Client(...)"
            )
        return self.client

    # blocking -------------------------------------------------------------------------------

    def create(self, body: RequestCreate) -> Request:
        """Create (or, on a re-run, find again) the request: the body carries its key."""
        try:
            return self._sync().create_request(body)
        except Conflict as exc:
            raise _changed(exc) from exc

    def get(self, request_id: str) -> Request:
        """The request as the server holds it now."""
        return self._sync().get_request(request_id)

    def wait(self, request_id: str, timeout: float | None) -> Request | None:
        """Long-poll until the request closes; None when `timeout` seconds pass first."""
        try:
            return self._sync().wait(request_id, timeout=timeout)
        except SignoffTimeoutError:
            return None

    def withdraw(self, request_id: str, reason: str) -> Request:
        """Cancel a request nobody decided in time; if it closed meanwhile, return that."""
        try:
            return self._sync().cancel(request_id, reason=reason)
        except Conflict:
            return self._sync().get_request(request_id)

    def report(self, request_id: str, status: OutcomeStatus, detail: str | None = None) -> None:
        """Report what happened after the decision. Never raises: the action already happened.

        Sent in the background (`Client.report_outcome_in_background`): the graph goes on at
        once, and `Client.flush()`/`close()` or interpreter exit wait for the report.
        """
        if self.client is None:
            log.warning(
                "could not report outcome %s for %s: no signoff.Client", status.value, request_id
            )
            return
        self.client.report_outcome_in_background(request_id, status, detail=_clip(detail))

    # awaitable ------------------------------------------------------------------------------

    async def acreate(self, body: RequestCreate) -> Request:
        """`create`, awaitable."""
        if self.async_client is None:
            return await asyncio.to_thread(self.create, body)
        try:
            return await self.async_client.create_request(body)
        except Conflict as exc:
            raise _changed(exc) from exc

    async def aget(self, request_id: str) -> Request:
        """`get`, awaitable."""
        if self.async_client is not None:
            return await self.async_client.get_request(request_id)
        return await asyncio.to_thread(self.get, request_id)

    async def await_(self, request_id: str, timeout: float | None) -> Request | None:  # noqa: ASYNC109
        """`wait`, awaitable."""
        if self.async_client is None:
            return await asyncio.to_thread(self.wait, request_id, timeout)
        try:
            return await self.async_client.wait(request_id, timeout=timeout)
        except SignoffTimeoutError:
            return None

    async def awithdraw(self, request_id: str, reason: str) -> Request:
        """`withdraw`, awaitable."""
        if self.async_client is None:
            return await asyncio.to_thread(self.withdraw, request_id, reason)
        try:
            return await self.async_client.cancel(request_id, reason=reason)
        except Conflict:
            return await self.async_client.get_request(request_id)

    async def areport(
        self, request_id: str, status: OutcomeStatus, detail: str | None = None
    ) -> None:
        """`report`, awaitable. Never raises. With only an `AsyncClient` the report is sent
        inline, as the event loop may be gone before a background send would finish."""
        if self.client is not None or self.async_client is None:
            self.report(request_id, status, detail)
            return
        try:
            await self.async_client.report_outcome(request_id, status, detail=_clip(detail))
        except Conflict:
            pass
        except Exception:
            log.warning(
                "could not report outcome %s for %s", status.value, request_id, exc_info=True
            )


def _changed(exc: Conflict) -> Exception:
    if exc.code != "idempotency_key_reused":
        return exc
    return GateError(
        "this gate's request differs from the one it made before the pause (same thread, node "
        "and call, other content): build the graph with the same gate settings (callback_url, "
        "route, sla, ...) in every process, and keep arguments/summary/context functions "
        f"deterministic ({exc.message})"
    )


def _clip(detail: str | None) -> str | None:
    if detail is None or len(detail) <= _DETAIL_LIMIT:
        return detail
    return detail[: _DETAIL_LIMIT - 1] + "…"


def as_mapping(value: object) -> Mapping[str, Any] | None:
    """`value` as a str-keyed mapping, or None."""
    if isinstance(value, Mapping):
        items = cast(Mapping[Any, Any], value)
        return {str(k): v for k, v in items.items()}
    return None
