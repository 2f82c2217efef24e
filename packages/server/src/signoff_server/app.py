"""The HTTP API, made by `create_app(settings)`; nothing is created at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from anyio import to_thread
from fastapi import Depends, FastAPI, Header, Query, Request, Response
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
from signoff_server.audit_routes import audit_router
from signoff_server.callbacks import Callbacks
from signoff_server.checkpoints import Checkpointer, default_key_path, load_or_create_key
from signoff_server.db import Database
from signoff_server.errors import Forbidden, NotFound, ServiceError, Unauthorized
from signoff_server.identity import Principal, PrincipalCache, authenticate
from signoff_server.inbox import Inbox
from signoff_server.lifecycle import DEADLINE_TIMER, Lifecycle
from signoff_server.limits import install_limits
from signoff_server.metrics import Metrics
from signoff_server.notifications.service import Notifications
from signoff_server.notify import PostgresListener, Waiters
from signoff_server.policy.controlmap import ControlMap
from signoff_server.policy.engine import PolicyEngine
from signoff_server.settings import Settings
from signoff_server.throttle import bearer_failed
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
    code: {"model": ErrorBody} for code in (401, 403, 404, 409, 413, 422, 429)
}


_bearer = HTTPBearer(auto_error=False, description="`sk_…` agent key or `pt_…` personal token")


def _authenticate(db: Database, secret: str) -> Principal | None:
    with db.read() as conn:
        return authenticate(conn, secret)


async def _principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    # Async, so a cached principal costs no trip to the store; only a miss reads it.
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("send `Authorization: Bearer <key>`", code="missing_credentials")
    state: _State = request.app.state.signoff
    secret = credentials.credentials
    cached = state.principals.get(secret)
    if cached is not None:
        return cached
    found = await state.db.run(_authenticate, state.db, secret)
    if found is None:
        bearer_failed(request, secret)  # 429 once this client or key prefix failed too often
        raise Unauthorized("unknown or revoked key", code="invalid_credentials")
    state.principals.put(secret, found)
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
    callbacks: Callbacks
    checkpointer: Checkpointer | None = None
    policy: PolicyEngine | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    inbox: Inbox | None = None
    principals: PrincipalCache = field(default_factory=lambda: PrincipalCache(2.0))


_DISCONNECT_CHECK = 1.0
"""Seconds between checks whether a long-polling client is still connected."""


_PREFER = "`return=minimal`: answer 204 without a body (RFC 7240)"


def _prefers_minimal(prefer: str | None) -> bool:
    """True if a `Prefer` header (RFC 7240) asks for `return=minimal`."""
    if not prefer:
        return False
    asked = (part.split(";", 1)[0].replace(" ", "").lower() for part in prefer.split(","))
    return "return=minimal" in asked


def _request_response(request: RequestModel, status_code: int = 200) -> Response:
    """A request as the JSON body FastAPI would write for it, without FastAPI validating the
    model it was just handed once more on the way out (the routes declare the model)."""
    body = request.__pydantic_serializer__.to_json(request)
    return Response(body, status_code=status_code, media_type="application/json")


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
    callbacks = Callbacks(db, settings, registry=metrics.registry)
    clock = settings.clock or (lambda: datetime.now(UTC))
    # Email and Slack (notifications/): queued in the change's transaction, sent with retries.
    notifications = Notifications(db, settings, clock=clock, registry=metrics.registry)
    # signoff.yaml: validated here (ConfigError names file:line); routes, escalates, notifies.
    policy = (
        PolicyEngine.load(settings.config_path, db, notifier=notifications.policy_notifier())
        if settings.config_path
        else None
    )
    notifications.use_policy(policy)

    def on_closed(request: RequestModel) -> None:
        waiters.wake(request.id)
        metrics.request_closed(request)
        callbacks.on_closed(request)
        inbox.on_closed(request)

    lifecycle = Lifecycle(
        db,
        on_closed=on_closed,
        close_hooks=[callbacks.close_hook, notifications.close_hook],
        router=policy.router if policy is not None else notifications.router(),
        clock=clock,
    )
    scheduler = Scheduler(
        db,
        {
            DEADLINE_TIMER: lifecycle.fire_deadline,
            **callbacks.timer_handlers,
            **notifications.timer_handlers,
            **(policy.timer_handlers if policy is not None else {}),
        },
        interval=settings.timer_interval,
        clock=clock,
    )
    callbacks.attach(scheduler)
    notifications.attach(scheduler)
    inbox = Inbox(
        settings, db, lifecycle, notifications, metrics=metrics, policy=policy, clock=clock
    )
    state = _State(
        settings, db, lifecycle, scheduler, waiters, metrics, callbacks, policy=policy, clock=clock
    )
    state.inbox = inbox
    state.principals = PrincipalCache(settings.auth_cache_seconds)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncGenerator[None]:
        # The pool FastAPI runs sync endpoints (and run_in_threadpool) in: anyio's default.
        to_thread.current_default_thread_limiter().total_tokens = settings.database_threads
        waiters.bind(asyncio.get_running_loop())
        await run_in_threadpool(callbacks.start)  # first start: creates the signing key file
        inbox.start(asyncio.get_running_loop())
        await run_in_threadpool(notifications.start)  # first start: creates the link secret
        key = await run_in_threadpool(
            load_or_create_key,
            settings.audit_key_file or default_key_path(settings.database_url),
            settings.audit_origin,
        )
        state.checkpointer = Checkpointer(
            db,
            key,
            every_entries=settings.audit_checkpoint_entries,
            every_seconds=settings.audit_checkpoint_seconds,
            interval=settings.audit_checkpoint_interval,
            publish_dir=settings.audit_publish_dir,
        )
        signing = (
            asyncio.create_task(state.checkpointer.run()) if settings.run_checkpoints else None
        )
        if policy is not None:  # the file's people and roles into users/user_roles
            await run_in_threadpool(policy.sync_people, clock())
        listener = None
        if not db.is_sqlite:
            listener = PostgresListener(
                db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False),
                waiters,
            )
            listener.start()
        ticking = asyncio.create_task(scheduler.run()) if settings.run_timers else None
        checkpointing_wal = asyncio.create_task(db.keep_wal_short()) if db.is_sqlite else None
        try:
            yield
        finally:
            for task in (ticking, checkpointing_wal):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await run_in_threadpool(callbacks.stop)
            await run_in_threadpool(notifications.stop)
            if signing is not None:
                signing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await signing
                await state.checkpointer.stop()
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
    install_limits(app, settings)  # body size, JSON depth, NUL; auth-failure throttling
    _add_routes(app, state)
    app.include_router(
        callbacks.router(
            audit_key=lambda: str(state.checkpointer.verifier) if state.checkpointer else None
        )
    )
    app.include_router(audit_router(db, lambda: state.checkpointer, _principal, _ERRORS))
    app.include_router(inbox.router())  # last: the web inbox at / (not in the OpenAPI schema)
    return app


def _add_routes(app: FastAPI, state: _State) -> None:
    lifecycle = state.lifecycle

    @app.post(
        "/v1/requests",
        status_code=201,
        response_model=RequestModel,
        responses={200: {"model": RequestModel}, **_ERRORS},
        tags=["requests"],
    )
    async def create_request(body: RequestCreate, caller: Caller) -> Response:
        """Ask for approval of one action. The same idempotency key and body return the same
        request (200); the same key with a different body is a 409."""
        if body.callback is not None:  # its allow-list may resolve the host: not on the loop
            await run_in_threadpool(state.callbacks.check_request, body)
        return await state.db.run(create, body, caller)

    def create(body: RequestCreate, caller: Principal) -> Response:
        result = lifecycle.create(caller, body)
        if not result.created:
            return _request_response(result.request, 200)
        state.metrics.created.labels(risk=result.request.risk.value).inc()
        if state.inbox is not None:
            state.inbox.request_created(result.request)
        return _request_response(result.request, 201)

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

    @app.get(
        "/v1/requests/{request_id}",
        response_model=RequestModel,
        responses=_ERRORS,
        tags=["requests"],
    )
    async def get_request(request_id: str, caller: Caller) -> Response:
        """One request with its decisions, outcome and callback state."""
        return _request_response(await state.db.run(read_request, caller, request_id))

    def read_request(caller: Principal, request_id: str) -> RequestModel:
        with state.db.read(single_statement=True) as conn:
            return load_request(conn, caller, request_id)[1]

    @app.get(
        "/v1/requests/{request_id}/wait",
        response_model=RequestModel,
        responses=_ERRORS,
        tags=["requests"],
    )
    async def wait(
        request_id: str,
        caller: Caller,
        http: Request,
        timeout: Annotated[float, Query(ge=0, le=60)] = 30.0,  # noqa: ASYNC109 - the API's name
    ) -> Response:
        """Long-poll: answers as soon as the request closes, or after `timeout` seconds with the
        request still pending."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with state.waiters.waiting(request_id) as closed:
            while True:
                closed.clear()  # before the read: a close during the read must still wake us
                request = await state.db.run(read_request, caller, request_id)
                remaining = deadline - loop.time()
                if request.status.is_terminal or remaining <= 0:
                    return _request_response(request)
                recheck_at = loop.time() + min(remaining, state.settings.wait_recheck)
                while not closed.is_set() and (left := recheck_at - loop.time()) > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(closed.wait(), min(left, _DISCONNECT_CHECK))
                    if await http.is_disconnected():  # nobody left to answer: stop waiting
                        return Response(status_code=499)

    @app.post(
        "/v1/requests/{request_id}/decisions",
        response_model=RequestModel,
        responses=_ERRORS,
        tags=["requests"],
    )
    async def decide(request_id: str, body: DecisionCreate, caller: Caller) -> Response:
        """A reviewer approves, rejects, edits or responds. A closed request is a 409."""
        return _request_response(await state.db.run(lifecycle.decide, caller, request_id, body))

    @app.post(
        "/v1/requests/{request_id}/cancel",
        response_model=RequestModel,
        responses=_ERRORS,
        tags=["requests"],
    )
    async def cancel(request_id: str, caller: Caller, body: CancelBody | None = None) -> Response:
        """Withdraw a pending request (its own agent, or an admin)."""
        reason = body.reason if body else None
        return _request_response(await state.db.run(lifecycle.cancel, caller, request_id, reason))

    @app.post(
        "/v1/requests/{request_id}/outcome",
        response_model=RequestModel,
        responses={204: {"description": "Recorded; asked for with `Prefer: return=minimal`"}}
        | _ERRORS,
        tags=["requests"],
    )
    async def outcome(
        request_id: str,
        body: OutcomeReport,
        caller: Caller,
        prefer: Annotated[str | None, Header(max_length=1000, description=_PREFER)] = None,
    ) -> Response:
        """The agent reports what it did after the decision (once). With `Prefer:
        return=minimal` the answer is an empty 204 (RFC 7240)."""
        if _prefers_minimal(prefer):
            await state.db.run(lifecycle.record_outcome, caller, request_id, body)
            return Response(status_code=204, headers={"Preference-Applied": "return=minimal"})
        reported = await state.db.run(lifecycle.report_outcome, caller, request_id, body)
        return _request_response(reported)

    @app.get("/v1/requests/{request_id}/timeline", responses=_ERRORS, tags=["requests"])
    def timeline(request_id: str, caller: Caller) -> list[AuditEvent]:
        """The request's audit events, in order."""
        with state.db.read() as conn:
            load_request(conn, caller, request_id)
            return audit.timeline(conn, request_id)

    @app.get("/v1/control-map", responses=_ERRORS, tags=["policy"])
    def control_map(caller: Caller, days: Annotated[int, Query(ge=1, le=90)] = 14) -> ControlMap:
        """Admins: per role, members, on-shift coverage and gaps for the next `days` days, the
        policies that route to it, and whether each policy's quorum can be met."""
        if not caller.is_admin:
            raise Forbidden("the control map is for admins", code="admin_required")
        if state.policy is None:
            raise NotFound(
                "this server runs without a policy file (signoff serve --config)",
                code="no_policy_config",
            )
        return state.policy.control_map(state.clock(), days)

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
