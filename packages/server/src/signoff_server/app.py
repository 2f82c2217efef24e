"""The HTTP API, made by `create_app(settings)`; nothing is created at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from signoff.models import AuditEvent, DecisionCreate, OutcomeReport, Page, RequestCreate, Status
from signoff.models import Request as RequestModel
from signoff_server import audit
from signoff_server.db import Database
from signoff_server.errors import ServiceError, Unauthorized
from signoff_server.identity import Principal, authenticate
from signoff_server.lifecycle import DEADLINE_TIMER, Lifecycle
from signoff_server.metrics import Metrics
from signoff_server.notify import PostgresListener, Waiters
from signoff_server.settings import Settings
from signoff_server.timers import Scheduler
from signoff_server.views import MAX_PAGE, ListFilters, list_requests, load_request

__all__ = ["create_app"]

log = logging.getLogger("signoff.server")


class ErrorDetail(BaseModel):
    """What went wrong: a stable code, a message for people, and details (e.g. fields)."""

    code: str
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    """Every 4xx and 5xx answer has this body."""

    error: ErrorDetail


class CancelBody(BaseModel):
    """Why the agent or admin withdrew the request."""

    reason: str | None = Field(default=None, max_length=4000)


class Health(BaseModel):
    """Liveness answer."""

    status: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (401, 403, 404, 409, 422)
}


_bearer = HTTPBearer(auto_error=False, description="`sk_…` agent key or `pt_…` personal token")


def _principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("send `Authorization: Bearer <key>`", code="missing_credentials")
    state: _State = request.app.state.signoff
    with state.db.read() as conn:
        found = authenticate(conn, credentials.credentials)
    if found is None:
        raise Unauthorized("unknown or revoked key", code="invalid_credentials")
    return found


Caller = Annotated[Principal, Depends(_principal)]


@dataclass
class _State:
    settings: Settings
    db: Database
    lifecycle: Lifecycle
    scheduler: Scheduler
    waiters: Waiters
    metrics: Metrics


def _error(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(code=code, message=message, details=details))
    return JSONResponse(body.model_dump(mode="json"), status_code=status)


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {
            "loc": [str(part) for part in err.get("loc", ())],
            "msg": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        }
        for err in exc.errors()
    ]


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:  # pyright: ignore[reportUnusedFunction]
        return _error(exc.status_code, exc.code, exc.message, exc.details)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:  # pyright: ignore[reportUnusedFunction]
        details = _field_errors(exc)
        loc: list[str] = details[0]["loc"] if details else []
        where = ".".join(loc[1:] if len(loc) > 1 else loc) or "input"
        message = details[0]["msg"] if details else "invalid input"
        return _error(422, "validation_failed", f"{where}: {message}", details)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:  # pyright: ignore[reportUnusedFunction]
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:  # pyright: ignore[reportUnusedFunction]
        log.error("unhandled error", exc_info=exc)
        return _error(500, "internal", "internal server error")


def create_app(settings: Settings) -> FastAPI:
    """The signoff ASGI app for `settings`. The database must be migrated already."""
    db = Database(settings.database_url)
    waiters = Waiters()
    metrics = Metrics(db)

    def on_closed(request: RequestModel) -> None:
        waiters.wake(request.id)
        metrics.request_closed(request)

    lifecycle = Lifecycle(db, on_closed=on_closed)
    scheduler = Scheduler(
        db, {DEADLINE_TIMER: lifecycle.fire_deadline}, interval=settings.timer_interval
    )
    state = _State(settings, db, lifecycle, scheduler, waiters, metrics)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncGenerator[None]:
        waiters.bind(asyncio.get_running_loop())
        listener = None
        if not db.is_sqlite:
            listener = PostgresListener(
                db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False),
                waiters,
            )
            listener.start()
        ticking = asyncio.create_task(scheduler.run()) if settings.run_timers else None
        try:
            yield
        finally:
            if ticking is not None:
                ticking.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticking
            if listener is not None:
                await run_in_threadpool(listener.stop)
            db.dispose()

    app = FastAPI(
        title="signoff",
        version="0.1.0",
        summary="Approval gates for AI agents: pause a risky action, route it, resume on a "
        "signed decision.",
        lifespan=lifespan,
    )
    app.state.signoff = state
    _install_error_handlers(app)
    _add_routes(app, state)
    return app


def _add_routes(app: FastAPI, state: _State) -> None:
    lifecycle = state.lifecycle

    @app.post(
        "/v1/requests",
        status_code=201,
        responses={200: {"model": RequestModel}, **_ERRORS},
        tags=["requests"],
    )
    def create_request(body: RequestCreate, caller: Caller, response: Response) -> RequestModel:
        """Ask for approval of one action. The same idempotency key and body return the same
        request (200); the same key with a different body is a 409."""
        result = lifecycle.create(caller, body)
        if result.created:
            state.metrics.created.labels(risk=result.request.risk.value).inc()
        else:
            response.status_code = 200
        return result.request

    @app.get("/v1/requests", responses=_ERRORS, tags=["requests"])
    def list_all(
        caller: Caller,
        status: Status | None = None,
        role: Annotated[str | None, Query(max_length=200)] = None,
        agent: Annotated[str | None, Query(max_length=200)] = None,
        object_type: Annotated[str | None, Query(max_length=200)] = None,
        object_id: Annotated[str | None, Query(max_length=200)] = None,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    ) -> Page[RequestModel]:
        """Requests visible to the caller, newest first, one page at a time."""
        filters = ListFilters(status, role, agent, object_type, object_id)
        with state.db.read() as conn:
            return list_requests(conn, caller, filters, cursor=cursor, limit=limit)

    @app.get("/v1/requests/{request_id}", responses=_ERRORS, tags=["requests"])
    def get_request(request_id: str, caller: Caller) -> RequestModel:
        """One request with its decisions, outcome and callback state."""
        with state.db.read() as conn:
            return load_request(conn, caller, request_id)[1]

    @app.get("/v1/requests/{request_id}/wait", responses=_ERRORS, tags=["requests"])
    async def wait(
        request_id: str,
        caller: Caller,
        timeout: Annotated[float, Query(ge=0, le=60)] = 30.0,  # noqa: ASYNC109 - the API's name
    ) -> RequestModel:
        """Long-poll: answers as soon as the request closes, or after `timeout` seconds with the
        request still pending."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout

        def read() -> RequestModel:
            with state.db.read() as conn:
                return load_request(conn, caller, request_id)[1]

        with state.waiters.waiting(request_id) as closed:
            while True:
                request = await run_in_threadpool(read)
                remaining = deadline - loop.time()
                if request.status.is_terminal or remaining <= 0:
                    return request
                closed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        closed.wait(), min(remaining, state.settings.wait_recheck)
                    )

    @app.post("/v1/requests/{request_id}/decisions", responses=_ERRORS, tags=["requests"])
    def decide(request_id: str, body: DecisionCreate, caller: Caller) -> RequestModel:
        """A reviewer approves, rejects, edits or responds. A closed request is a 409."""
        return lifecycle.decide(caller, request_id, body)

    @app.post("/v1/requests/{request_id}/cancel", responses=_ERRORS, tags=["requests"])
    def cancel(request_id: str, caller: Caller, body: CancelBody | None = None) -> RequestModel:
        """Withdraw a pending request (its own agent, or an admin)."""
        return lifecycle.cancel(caller, request_id, body.reason if body else None)

    @app.post("/v1/requests/{request_id}/outcome", responses=_ERRORS, tags=["requests"])
    def outcome(request_id: str, body: OutcomeReport, caller: Caller) -> RequestModel:
        """The agent reports what it did after the decision (once)."""
        return lifecycle.report_outcome(caller, request_id, body)

    @app.get("/v1/requests/{request_id}/timeline", responses=_ERRORS, tags=["requests"])
    def timeline(request_id: str, caller: Caller) -> list[AuditEvent]:
        """The request's audit events, in order."""
        with state.db.read() as conn:
            load_request(conn, caller, request_id)
            return audit.timeline(conn, request_id)

    @app.get("/healthz", tags=["operations"])
    def healthz() -> Health:
        """Liveness: answers once the server is ready."""
        return Health(status="ok")

    @app.get(
        "/metrics",
        tags=["operations"],
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
    )
    def metrics() -> Response:
        """Prometheus metrics."""
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
