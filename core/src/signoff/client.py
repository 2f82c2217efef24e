"""`Client` and `AsyncClient` for the signoff HTTP API.

The two are twins over `_BaseClient`: it builds every call (method, path, query, body, whether
retrying is safe) and reads every answer; the twins differ only in doing the I/O. Tests and
embedders pass `transport=` (or a whole `http_client=`) instead of a network.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar, cast

import anyio
import httpx
from pydantic import BaseModel, JsonValue, TypeAdapter

from signoff._outbox import FLUSH_SECONDS, Outbox
from signoff.errors import Conflict, SignoffError, TimeoutError, TransportError, error_for_status
from signoff.models import (
    AuditEvent,
    DecisionCreate,
    OutcomeReport,
    OutcomeStatus,
    Page,
    Request,
    RequestCreate,
    Status,
    Verdict,
)

__all__ = ["DEFAULT_TIMEOUT", "AsyncClient", "Client"]

DEFAULT_TIMEOUT = 10.0
"""Seconds for one HTTP call (long-polls add their own wait on top)."""
_LONG_POLL_MAX = 30.0
_RETRY_STATUSES = frozenset({502, 503, 504})
_TIMELINE = TypeAdapter(list[AuditEvent])
_M = TypeVar("_M", bound=BaseModel)

log = logging.getLogger("signoff.client")


@dataclass(frozen=True, slots=True)
class _Call:
    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict[str, str])
    json: Any = None
    idempotent: bool = False
    read_timeout: float | None = None
    headers: dict[str, str] | None = None


_NO_ANSWER = {"Prefer": "return=minimal"}
"""RFC 7240: answer 204 without a body (the outcome endpoint honours it)."""


class _BaseClient:
    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str | None,
        timeout: float,
        retries: int,
        headers: Mapping[str, str] | None,
    ) -> None:
        url = base_url or os.environ.get("SIGNOFF_URL")
        if not url:
            raise ValueError("base_url is required (or set SIGNOFF_URL)")
        self.base_url = url.rstrip("/")
        self._api_key = api_key if api_key is not None else os.environ.get("SIGNOFF_API_KEY")
        self.timeout = timeout
        self.retries = retries
        self._headers = {"accept": "application/json", **(headers or {})}
        if self._api_key:
            self._headers["authorization"] = f"Bearer {self._api_key}"

    # Building calls -------------------------------------------------------------------------

    @staticmethod
    def _create_call(request: RequestCreate | Mapping[str, Any]) -> _Call:
        payload = (
            request if isinstance(request, RequestCreate) else RequestCreate.model_validate(request)
        )
        if payload.idempotency_key is None:
            # A key makes create safe to retry: a resend returns the request made the first time.
            payload = payload.model_copy(update={"idempotency_key": f"auto_{uuid.uuid4().hex}"})
        body = payload.model_dump(mode="json", exclude_none=True)
        return _Call("POST", "/v1/requests", json=body, idempotent=True)

    @staticmethod
    def _list_params(
        *,
        status: Status | str | None,
        role: str | None,
        agent: str | None,
        object_type: str | None,
        object_id: str | None,
        cursor: str | None,
        limit: int | None,
    ) -> dict[str, str]:
        raw = {
            "status": status,
            "role": role,
            "agent": agent,
            "object_type": object_type,
            "object_id": object_id,
            "cursor": cursor,
            "limit": limit,
        }
        return {key: str(value) for key, value in raw.items() if value is not None}

    @staticmethod
    def _decide_call(
        request_id: str,
        verdict: Verdict | str,
        arguments: Mapping[str, JsonValue] | None,
        comment: str | None,
        reason_code: str | None,
    ) -> _Call:
        payload = DecisionCreate(
            verdict=Verdict(verdict),
            arguments=dict(arguments) if arguments is not None else None,
            comment=comment,
            reason_code=reason_code,
        )
        return _Call(
            "POST",
            f"/v1/requests/{request_id}/decisions",
            json=payload.model_dump(mode="json", exclude_none=True),
        )

    @staticmethod
    def _outcome_call(request_id: str, status: OutcomeStatus | str, detail: str | None) -> _Call:
        payload = OutcomeReport(status=OutcomeStatus(status), detail=detail)
        return _Call(
            "POST",
            f"/v1/requests/{request_id}/outcome",
            json=payload.model_dump(mode="json", exclude_none=True),
        )

    def _wait_call(self, request_id: str, seconds: float) -> _Call:
        return _Call(
            "GET",
            f"/v1/requests/{request_id}/wait",
            params={"timeout": f"{seconds:.3f}"},
            idempotent=True,
            read_timeout=seconds + self.timeout,
        )

    # Reading answers ------------------------------------------------------------------------

    def _build(self, call: _Call) -> tuple[str, str, dict[str, Any]]:
        headers = self._headers if call.headers is None else {**self._headers, **call.headers}
        kwargs: dict[str, Any] = {"params": call.params or None, "headers": headers}
        if call.json is not None:
            kwargs["json"] = call.json
        if call.read_timeout is not None:
            kwargs["timeout"] = httpx.Timeout(self.timeout, read=call.read_timeout)
        return call.method, self.base_url + call.path, kwargs

    @staticmethod
    def _should_retry(call: _Call, attempt: int, retries: int, status: int | None) -> bool:
        if attempt >= retries:
            return False
        if status is None:
            return True  # connection-level failure; see _send for which ones reach here
        return call.idempotent and status in _RETRY_STATUSES

    @staticmethod
    def _backoff(attempt: int) -> float:
        return min(0.25 * 2**attempt, 4.0) * (0.5 + random.random())  # noqa: S311 - jitter

    @staticmethod
    def _raise_for_error(response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        code, message, details = "error", response.reason_phrase or "error", None
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        error = cast(dict[str, Any], body).get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            error = cast(dict[str, Any], error)
            code = str(error.get("code", code))
            message = str(error.get("message", message))
            details = error.get("details")
        raise error_for_status(response.status_code)(
            message, status_code=response.status_code, code=code, details=details
        )

    @staticmethod
    def _model(response: httpx.Response, model: type[_M]) -> _M:
        return model.model_validate_json(response.content)


def _transport_error(call: _Call, exc: httpx.TransportError) -> TransportError:
    return TransportError(f"{call.method} {call.path}: {type(exc).__name__}: {exc}")


def _retryable_transport(call: _Call, exc: httpx.TransportError) -> bool:
    # A refused connection never reached the server, so any call may be re-sent; anything later
    # (a reset, a read timeout) may have been processed, so only idempotent calls are.
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout) or call.idempotent


class Client(_BaseClient):
    """Blocking client for the signoff API.

    >>> client = Client(base_url="http://127.0.0.1:8080", api_key="sk_...")  # doctest: +SKIP

    Keyword-only config; `base_url` and `api_key` default to `SIGNOFF_URL` / `SIGNOFF_API_KEY`.
    `transport=` (an `httpx.BaseTransport`) or `http_client=` replace the network, e.g. in tests.
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = 3,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(
            base_url=base_url, api_key=api_key, timeout=timeout, retries=retries, headers=headers
        )
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(transport=transport, timeout=timeout)
        self._outbox: Outbox | None = None
        self._outbox_lock = threading.Lock()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Send what `report_outcome_in_background` queued (for up to `FLUSH_SECONDS`), then
        close the underlying connection pool (unless it was passed in)."""
        if self._outbox is not None and not self._outbox.flush(FLUSH_SECONDS):
            log.warning("closing the client with outcome reports not yet sent to signoff")
        if self._owns_http:
            self._http.close()

    def _send(self, call: _Call) -> httpx.Response:
        method, url, kwargs = self._build(call)
        attempt = 0
        while True:
            try:
                response = self._http.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                if not (
                    _retryable_transport(call, exc)
                    and self._should_retry(call, attempt, self.retries, None)
                ):
                    raise _transport_error(call, exc) from exc
            else:
                if not self._should_retry(call, attempt, self.retries, response.status_code):
                    self._raise_for_error(response)
                    return response
            time.sleep(self._backoff(attempt))
            attempt += 1

    def create_request(self, request: RequestCreate | Mapping[str, Any]) -> Request:
        """Ask for approval of one action. Idempotent: a retry returns the same request."""
        return self._model(self._send(self._create_call(request)), Request)

    def get_request(self, request_id: str) -> Request:
        """The request with its decisions, outcome and callback state."""
        return self._model(
            self._send(_Call("GET", f"/v1/requests/{request_id}", idempotent=True)), Request
        )

    def wait(self, request_id: str, *, timeout: float | None = None) -> Request:
        """Long-poll until the request is closed; raise `signoff.TimeoutError` after `timeout` s.

        With `timeout=None` it waits as long as it takes.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = _LONG_POLL_MAX if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{request_id} is still pending after {timeout} s")
            request = self._model(
                self._send(self._wait_call(request_id, min(remaining, _LONG_POLL_MAX))), Request
            )
            if request.status.is_terminal:
                return request

    def list_requests(
        self,
        *,
        status: Status | str | None = None,
        role: str | None = None,
        agent: str | None = None,
        object_type: str | None = None,
        object_id: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[Request]:
        """One page of requests visible to these credentials, newest first."""
        params = self._list_params(
            status=status, role=role, agent=agent, object_type=object_type,
            object_id=object_id, cursor=cursor, limit=limit,
        )  # fmt: skip
        return self._model(
            self._send(_Call("GET", "/v1/requests", params=params, idempotent=True)),
            Page[Request],
        )

    def iter_requests(
        self,
        *,
        status: Status | str | None = None,
        role: str | None = None,
        agent: str | None = None,
        object_type: str | None = None,
        object_id: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[Request]:
        """Every matching request, following cursors page by page."""
        cursor: str | None = None
        while True:
            page = self.list_requests(
                status=status, role=role, agent=agent, object_type=object_type,
                object_id=object_id, cursor=cursor, limit=page_size,
            )  # fmt: skip
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def decide(
        self,
        request_id: str,
        verdict: Verdict | str,
        *,
        arguments: Mapping[str, JsonValue] | None = None,
        comment: str | None = None,
        reason_code: str | None = None,
    ) -> Request:
        """Record a reviewer's decision (reviewer token needed). A closed request is a Conflict."""
        call = self._decide_call(request_id, verdict, arguments, comment, reason_code)
        return self._model(self._send(call), Request)

    def cancel(self, request_id: str, *, reason: str | None = None) -> Request:
        """Withdraw a pending request (its agent, or an admin)."""
        body = {"reason": reason} if reason else {}
        call = _Call("POST", f"/v1/requests/{request_id}/cancel", json=body)
        return self._model(self._send(call), Request)

    def report_outcome(
        self, request_id: str, status: OutcomeStatus | str, *, detail: str | None = None
    ) -> Request:
        """Report what the agent did after the decision: executed, failed or skipped."""
        return self._model(self._send(self._outcome_call(request_id, status, detail)), Request)

    def report_outcome_in_background(
        self, request_id: str, status: OutcomeStatus | str, *, detail: str | None = None
    ) -> None:
        """`report_outcome` without waiting for it: queued, then sent in order by a background
        thread with the same retries, asking for no answer (`Prefer: return=minimal`). Never
        raises: a report that fails is logged, and one the server already has (409) is dropped.
        `flush()` waits for the queue; `close()` and interpreter exit flush it too."""
        # Nobody reads the answer, so the server need not render one.
        call = replace(self._outcome_call(request_id, status, detail), headers=_NO_ANSWER)

        def send() -> None:
            try:
                self._send(call)
            except Conflict:
                pass  # reported already (e.g. a re-run step): the first report stands
            except SignoffError:
                log.warning("could not report the outcome of %s", request_id, exc_info=True)

        with self._outbox_lock:
            if self._outbox is None:
                self._outbox = Outbox()
        self._outbox.submit(send)

    def flush(self, timeout: float | None = FLUSH_SECONDS) -> bool:
        """Wait until every report queued by `report_outcome_in_background` was sent (or
        failed and was logged); False if `timeout` seconds passed first."""
        return self._outbox is None or self._outbox.flush(timeout)

    def timeline(self, request_id: str) -> list[AuditEvent]:
        """The request's audit events, in order."""
        call = _Call("GET", f"/v1/requests/{request_id}/timeline", idempotent=True)
        return _TIMELINE.validate_json(self._send(call).content)

    def evidence(self, request_id: str) -> dict[str, Any]:
        """The request's evidence packet (request, policy, decisions, timeline, proofs)."""
        call = _Call("GET", f"/v1/requests/{request_id}/evidence", idempotent=True)
        return self._send(call).json()

    def keys(self) -> dict[str, Any]:
        """The server's public webhook verification keys and audit verifier key."""
        return self._send(_Call("GET", "/v1/keys", idempotent=True)).json()


class AsyncClient(_BaseClient):
    """The asyncio/trio twin of `Client`: the same methods, awaitable."""

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = 3,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(
            base_url=base_url, api_key=api_key, timeout=timeout, retries=retries, headers=headers
        )
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(transport=transport, timeout=timeout)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the underlying connection pool (unless it was passed in)."""
        if self._owns_http:
            await self._http.aclose()

    async def _send(self, call: _Call) -> httpx.Response:
        method, url, kwargs = self._build(call)
        attempt = 0
        while True:
            try:
                response = await self._http.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                if not (
                    _retryable_transport(call, exc)
                    and self._should_retry(call, attempt, self.retries, None)
                ):
                    raise _transport_error(call, exc) from exc
            else:
                if not self._should_retry(call, attempt, self.retries, response.status_code):
                    self._raise_for_error(response)
                    return response
            await anyio.sleep(self._backoff(attempt))
            attempt += 1

    async def create_request(self, request: RequestCreate | Mapping[str, Any]) -> Request:
        """Ask for approval of one action. Idempotent: a retry returns the same request."""
        return self._model(await self._send(self._create_call(request)), Request)

    async def get_request(self, request_id: str) -> Request:
        """The request with its decisions, outcome and callback state."""
        call = _Call("GET", f"/v1/requests/{request_id}", idempotent=True)
        return self._model(await self._send(call), Request)

    async def wait(self, request_id: str, *, timeout: float | None = None) -> Request:  # noqa: ASYNC109
        """Long-poll until the request is closed; raise `signoff.TimeoutError` after `timeout` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = _LONG_POLL_MAX if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{request_id} is still pending after {timeout} s")
            call = self._wait_call(request_id, min(remaining, _LONG_POLL_MAX))
            request = self._model(await self._send(call), Request)
            if request.status.is_terminal:
                return request

    async def list_requests(
        self,
        *,
        status: Status | str | None = None,
        role: str | None = None,
        agent: str | None = None,
        object_type: str | None = None,
        object_id: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[Request]:
        """One page of requests visible to these credentials, newest first."""
        params = self._list_params(
            status=status, role=role, agent=agent, object_type=object_type,
            object_id=object_id, cursor=cursor, limit=limit,
        )  # fmt: skip
        call = _Call("GET", "/v1/requests", params=params, idempotent=True)
        return self._model(await self._send(call), Page[Request])

    async def iter_requests(
        self,
        *,
        status: Status | str | None = None,
        role: str | None = None,
        agent: str | None = None,
        object_type: str | None = None,
        object_id: str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[Request]:
        """Every matching request, following cursors page by page."""
        cursor: str | None = None
        while True:
            page = await self.list_requests(
                status=status, role=role, agent=agent, object_type=object_type,
                object_id=object_id, cursor=cursor, limit=page_size,
            )  # fmt: skip
            for item in page.items:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def decide(
        self,
        request_id: str,
        verdict: Verdict | str,
        *,
        arguments: Mapping[str, JsonValue] | None = None,
        comment: str | None = None,
        reason_code: str | None = None,
    ) -> Request:
        """Record a reviewer's decision (reviewer token needed). A closed request is a Conflict."""
        call = self._decide_call(request_id, verdict, arguments, comment, reason_code)
        return self._model(await self._send(call), Request)

    async def cancel(self, request_id: str, *, reason: str | None = None) -> Request:
        """Withdraw a pending request (its agent, or an admin)."""
        body = {"reason": reason} if reason else {}
        call = _Call("POST", f"/v1/requests/{request_id}/cancel", json=body)
        return self._model(await self._send(call), Request)

    async def report_outcome(
        self, request_id: str, status: OutcomeStatus | str, *, detail: str | None = None
    ) -> Request:
        """Report what the agent did after the decision: executed, failed or skipped."""
        call = self._outcome_call(request_id, status, detail)
        return self._model(await self._send(call), Request)

    async def timeline(self, request_id: str) -> list[AuditEvent]:
        """The request's audit events, in order."""
        call = _Call("GET", f"/v1/requests/{request_id}/timeline", idempotent=True)
        return _TIMELINE.validate_json((await self._send(call)).content)

    async def evidence(self, request_id: str) -> dict[str, Any]:
        """The request's evidence packet (request, policy, decisions, timeline, proofs)."""
        call = _Call("GET", f"/v1/requests/{request_id}/evidence", idempotent=True)
        return (await self._send(call)).json()

    async def keys(self) -> dict[str, Any]:
        """The server's public webhook verification keys and audit verifier key."""
        return (await self._send(_Call("GET", "/v1/keys", idempotent=True))).json()
