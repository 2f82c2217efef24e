"""The web inbox: sign-in, my queue (live), a request page, bulk decisions, history, the
control map and the control tower. Server-rendered; decisions go through `Lifecycle.decide`
with `via: web`, so the server's checks (roles, quorum, comments, separation of duties) are the
only ones that count — the page merely explains them in advance.

Every POST carries the session's CSRF token (sign-in: a double-submit cookie) and is refused
without it. Pages are kept out of the OpenAPI schema.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Annotated, Any, cast
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from pydantic import ValidationError
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from signoff.models import (
    DecisionCreate,
    DecisionVia,
    Risk,
    Status,
    Verdict,
)
from signoff.models import Request as RequestModel
from signoff_server import audit
from signoff_server.db import Database
from signoff_server.errors import Forbidden, NotFound, ServiceError
from signoff_server.identity import Principal, hash_password, user_roles_of, verify_password
from signoff_server.inbox.events import InboxEvents
from signoff_server.inbox.queries import HistoryFilters, QueueFilters, history, queue, role_members
from signoff_server.inbox.render import page
from signoff_server.inbox.sessions import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    SESSION_LIFETIME,
    Session,
    csrf_matches,
    end_session,
    find_session,
    start_session,
)
from signoff_server.lifecycle import Lifecycle
from signoff_server.notifications.checks import needs_comment
from signoff_server.policy.engine import PolicyEngine
from signoff_server.schema import users
from signoff_server.throttle import sign_in_failed, sign_in_throttled
from signoff_server.views import load_request

__all__ = ["Auth", "InboxRoutes"]

log = logging.getLogger("signoff.inbox")

STATIC_FILES = {"inbox.css": "text/css", "inbox.js": "text/javascript"}
BULK_LIMIT = 100
STREAM_SECONDS = 20.0
_DONE = {
    "approve": "You approved this request.",
    "edit": "You approved this request with edited arguments.",
    "reject": "You rejected this request.",
    "respond": "You answered this request.",
}


@dataclass(frozen=True, slots=True)
class Auth:
    """A signed-in reviewer: their session and principal (roles read fresh per request)."""

    token: str
    session: Session
    principal: Principal


@functools.cache
def _dummy_hash() -> str:
    return hash_password("signoff: no such user")


def _safe_next(target: str | None) -> str:
    """Only local paths: never an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _approvals_given(request: RequestModel) -> list[str]:
    return [
        d.decided_by.user for d in request.decisions if d.verdict in (Verdict.APPROVE, Verdict.EDIT)
    ]


def _needed(request: RequestModel) -> int:
    approvals = request.approvals
    if approvals.mode.value == "single":
        return 1
    if approvals.mode.value == "all_of":
        return max(approvals.required, len(approvals.roles or []))
    return approvals.required


class InboxRoutes:
    """Builds the inbox's APIRouter over the app's database, lifecycle and policy engine."""

    def __init__(
        self,
        *,
        db: Database,
        lifecycle: Lifecycle,
        events: InboxEvents,
        clock: Callable[[], datetime],
        secure_cookies: bool,
        policy: PolicyEngine | None = None,
        tower: Callable[[], dict[str, Any]] | None = None,
        channels: Callable[[], list[str]] = list,
    ) -> None:
        self.db = db
        self.lifecycle = lifecycle
        self.events = events
        self.clock = clock
        self.secure_cookies = secure_cookies
        self.policy = policy
        self.tower = tower
        self.channels = channels

    # sessions ---------------------------------------------------------------------------------

    def auth(self, request: Request) -> Auth | None:
        """The signed-in reviewer behind the request's cookie, or None (blocking: DB read)."""
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return None
        with self.db.read() as conn:
            session = find_session(conn, token, self.clock())
            if session is None:
                return None
            roles = user_roles_of(conn, session.email)
        return Auth(token, session, Principal("user", session.email, roles=roles))

    def _context(self, auth: Auth | None, **extra: Any) -> dict[str, Any]:
        return {
            "user": auth.principal.id if auth else None,
            "is_admin": bool(auth and auth.principal.is_admin),
            "roles": sorted(auth.principal.roles) if auth else [],
            "csrf": auth.session.csrf if auth else "",
            "now": self.clock(),
            "nav": extra.pop("nav", ""),
            **extra,
        }

    def _to_login(self, request: Request) -> RedirectResponse:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    def _message(self, auth: Auth | None, title: str, message: str, status_code: int) -> Response:
        return page(
            "message.html",
            self._context(auth, title=title, message=message),
            status_code=status_code,
        )

    def _csrf_refused(self, auth: Auth | None) -> Response:
        log.warning("form refused: missing or wrong CSRF token")
        return self._message(
            auth,
            "Form refused",
            "This form was missing its security token or the token was wrong, so nothing was "
            "done. Reload the page and try again.",
            403,
        )

    def _cookie(self, response: Response, name: str, value: str, max_age: int, path: str) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=path,
            httponly=True,
            samesite="lax",
            secure=self.secure_cookies,
        )

    # the router -------------------------------------------------------------------------------

    def router(self) -> APIRouter:
        """The inbox routes (none of them in the OpenAPI schema)."""
        router = APIRouter(include_in_schema=False)

        @router.get("/static/{name}")
        def static(name: str) -> Response:
            media = STATIC_FILES.get(name)
            if media is None:
                return Response("not found", status_code=404, media_type="text/plain")
            body = resources.files("signoff_server.inbox").joinpath("static", name).read_bytes()
            return Response(
                body,
                media_type=media,
                headers={
                    "cache-control": "public, max-age=300",
                    "x-content-type-options": "nosniff",
                },
            )

        # sign-in ---------------------------------------------------------------------------

        def login_page(
            next_path: str, *, error: str | None = None, email: str = "", status_code: int = 200
        ) -> Response:
            token = secrets.token_urlsafe(32)
            response = page(
                "login.html",
                self._context(None, login_csrf=token, next=next_path, error=error, email=email),
                status_code=status_code,
            )
            self._cookie(response, LOGIN_COOKIE, token, 3600, "/login")
            return response

        @router.get("/login")
        def login_form(next: str | None = None) -> Response:
            # Shown to someone signed in too: signing in again (maybe as someone else)
            # replaces their session.
            return login_page(_safe_next(next))

        @router.post("/login")
        def login(
            request: Request,
            email: Annotated[str, Form()] = "",
            password: Annotated[str, Form()] = "",
            csrf: Annotated[str, Form()] = "",
            next: Annotated[str, Form()] = "/",
        ) -> Response:
            target = _safe_next(next)
            if not csrf_matches(request.cookies.get(LOGIN_COOKIE), csrf):
                return self._csrf_refused(None)
            email = email.strip().lower()[:320]
            if wait := sign_in_throttled(request, email):  # before argon2: guessing is refused
                error = f"Too many failed sign-ins. Try again in {wait} seconds."
                refused = login_page(target, error=error, email=email, status_code=429)
                refused.headers["retry-after"] = str(wait)
                return refused
            with self.db.read() as conn:
                stored = conn.execute(
                    select(users.c.password_hash).where(users.c.email == email)
                ).scalar_one_or_none()
            # An unknown email costs the same argon2 work as a wrong password.
            if not verify_password(stored or _dummy_hash(), password[:1000]) or stored is None:
                sign_in_failed(request, email)
                log.info("sign-in refused")
                return login_page(
                    target, error="Wrong email or password.", email=email, status_code=401
                )
            with self.db.write() as conn:
                token, _ = start_session(
                    conn, email, self.clock(), previous=request.cookies.get(SESSION_COOKIE)
                )
            log.info("signed in", extra={"user": email})
            response = RedirectResponse(target, status_code=303)
            self._cookie(
                response, SESSION_COOKIE, token, int(SESSION_LIFETIME.total_seconds()), "/"
            )
            response.delete_cookie(LOGIN_COOKIE, path="/login")
            return response

        @router.post("/logout")
        def logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
            auth = self.auth(request)
            if auth is None:
                return RedirectResponse("/login", status_code=303)
            if not csrf_matches(auth.session.csrf, csrf):
                return self._csrf_refused(auth)
            with self.db.write() as conn:
                end_session(conn, auth.token)
            response = RedirectResponse("/login", status_code=303)
            response.delete_cookie(SESSION_COOKIE, path="/")
            return response

        # my queue ---------------------------------------------------------------------------

        def queue_filters(
            risk: str | None, role: str | None, agent: str | None, q: str | None
        ) -> QueueFilters:
            parsed = Risk(risk) if risk in {r.value for r in Risk} else None
            return QueueFilters(
                parsed,
                (role or "")[:200] or None,
                (agent or "")[:200] or None,
                (q or "")[:200] or None,
            )

        @router.get("/")
        def my_queue(
            request: Request,
            risk: str | None = None,
            role: str | None = None,
            agent: str | None = None,
            q: str | None = None,
        ) -> Response:
            auth = self.auth(request)
            if auth is None:
                return self._to_login(request)
            filters = queue_filters(risk, role, agent, q)
            with self.db.read() as conn:
                items = queue(conn, auth.principal, filters)
            query = urlencode(
                {
                    k: v
                    for k, v in request.query_params.items()
                    if k in ("risk", "role", "agent", "q")
                }
            )
            return page(
                "queue.html",
                self._context(
                    auth,
                    nav="queue",
                    items=items,
                    filters=filters,
                    risks=[r.value for r in Risk],
                    rows_url="/queue/rows" + (f"?{query}" if query else ""),
                    given=_approvals_given,
                    needed=_needed,
                ),
            )

        @router.get("/queue/rows")
        def queue_rows(
            request: Request,
            risk: str | None = None,
            role: str | None = None,
            agent: str | None = None,
            q: str | None = None,
        ) -> Response:
            auth = self.auth(request)
            if auth is None:
                return Response("sign in again", status_code=401, media_type="text/plain")
            with self.db.read() as conn:
                items = queue(conn, auth.principal, queue_filters(risk, role, agent, q))
            return page(
                "_queue_rows.html",
                self._context(auth, items=items, given=_approvals_given, needed=_needed),
            )

        @router.get("/events")
        async def events(request: Request) -> Response:
            auth = await run_in_threadpool(self.auth, request)
            if auth is None:
                return Response("sign in again", status_code=401, media_type="text/plain")
            loop = asyncio.get_running_loop()

            async def stream() -> AsyncIterator[str]:
                yield "retry: 3000\n\n"
                with self.events.subscribe() as inbox:
                    # A stream ends after STREAM_SECONDS and the browser reconnects (re-reading
                    # its rows): this bounds how long a server shutdown waits for open pages,
                    # and catches events of other replicas.
                    ends = loop.time() + STREAM_SECONDS
                    quiet = 0.0
                    while loop.time() < ends:
                        if await request.is_disconnected():
                            return
                        try:
                            kind, _ = await asyncio.wait_for(inbox.get(), 1.0)
                        except TimeoutError:
                            quiet += 1.0
                            if quiet >= 10:
                                quiet = 0.0
                                yield ": keep-alive\n\n"
                            continue
                        # No request id: the stream goes to every reviewer, and the page
                        # re-reads its own queue (with its visibility) anyway.
                        yield f"event: {kind}\ndata: {{}}\n\n"

            return StreamingResponse(
                stream(),
                media_type="text/event-stream",
                headers={"cache-control": "no-store", "x-accel-buffering": "no"},
            )

        # a request -------------------------------------------------------------------------

        def request_page(
            auth: Auth,
            request_id: str,
            *,
            error: str | None = None,
            form: dict[str, str] | None = None,
            done: str | None = None,
            status_code: int = 200,
        ) -> Response:
            try:
                with self.db.read() as conn:
                    request = load_request(conn, auth.principal, request_id)[1]
                    timeline = audit.timeline(conn, request_id)
            except Forbidden:
                return self._message(
                    auth,
                    "Not routed to you",
                    f"{request_id} is routed to roles you do not hold, so you can neither see "
                    "nor decide it.",
                    403,
                )
            except NotFound:
                return self._message(
                    auth, "No such request", f"There is no request {request_id}.", 404
                )
            given = _approvals_given(request)
            sod_blocked = (
                request.approvals.separation_of_duties and request.initiator == auth.principal.id
            )
            return page(
                "request.html",
                self._context(
                    auth,
                    r=request,
                    timeline=timeline,
                    error=error,
                    done=_DONE.get(done or ""),
                    form=form or {},
                    given=given,
                    needed=_needed(request),
                    already_approved=auth.principal.id in given,
                    sod_blocked=sod_blocked,
                    comment_needed=[v.value for v in request.allowed if needs_comment(request, v)],
                    pending=request.status is Status.PENDING,
                    arguments_text=form.get("arguments")
                    if form and form.get("arguments")
                    else json.dumps(request.action.arguments, indent=2, ensure_ascii=False),
                ),
                status_code=status_code,
            )

        @router.get("/requests/{request_id}")
        def show_request(request: Request, request_id: str, done: str | None = None) -> Response:
            auth = self.auth(request)
            if auth is None:
                return self._to_login(request)
            return request_page(auth, request_id[:64], done=done)

        def parse_decision(
            verdict: str, comment: str, reason_code: str, arguments: str
        ) -> DecisionCreate:
            """The form as a DecisionCreate; ValueError with a message for people."""
            try:
                chosen = Verdict(verdict)
            except ValueError:
                raise ValueError("Choose approve, edit, reject or respond.") from None
            args: Any = None
            if chosen is Verdict.EDIT:
                try:
                    args = json.loads(arguments)
                except ValueError as exc:
                    raise ValueError(f"The edited arguments are not valid JSON: {exc}") from None
                if not isinstance(args, dict):
                    raise ValueError("The edited arguments must be a JSON object ({…}).")
            try:
                return DecisionCreate(
                    verdict=chosen,
                    arguments=cast(dict[str, Any] | None, args),
                    comment=comment.strip() or None,
                    reason_code=reason_code.strip() or None,
                )
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first.get("loc", ()))
                text = str(first.get("msg", "invalid")).removeprefix("Value error, ")
                raise ValueError(f"{where}: {text}" if where else text) from None

        @router.post("/requests/{request_id}/decide")
        def decide(
            request: Request,
            request_id: str,
            csrf: Annotated[str, Form()] = "",
            verdict: Annotated[str, Form()] = "",
            comment: Annotated[str, Form()] = "",
            reason_code: Annotated[str, Form()] = "",
            arguments: Annotated[str, Form()] = "",
        ) -> Response:
            auth = self.auth(request)
            if auth is None:
                return self._to_login(request)
            if not csrf_matches(auth.session.csrf, csrf):
                return self._csrf_refused(auth)
            request_id = request_id[:64]
            form = {
                "comment": comment,
                "reason_code": reason_code,
                "arguments": arguments,
                "verdict": verdict,
            }
            try:
                decision = parse_decision(verdict, comment, reason_code, arguments)
            except ValueError as exc:
                return request_page(auth, request_id, error=str(exc), form=form, status_code=422)
            try:
                result = self.lifecycle.decide(
                    auth.principal, request_id, decision, via=DecisionVia.WEB
                )
            except ServiceError as exc:
                return request_page(
                    auth, request_id, error=exc.message, form=form, status_code=exc.status_code
                )
            if result.status is Status.PENDING:
                self.events.publish("updated", request_id)
            return RedirectResponse(
                f"/requests/{request_id}?done={decision.verdict.value}", status_code=303
            )

        @router.post("/bulk")
        def bulk(
            request: Request,
            csrf: Annotated[str, Form()] = "",
            verdict: Annotated[str, Form()] = "",
            comment: Annotated[str, Form()] = "",
            ids: Annotated[list[str] | None, Form()] = None,
        ) -> Response:
            auth = self.auth(request)
            if auth is None:
                return self._to_login(request)
            if not csrf_matches(auth.session.csrf, csrf):
                return self._csrf_refused(auth)
            chosen = {"approve": Verdict.APPROVE, "reject": Verdict.REJECT}.get(verdict)
            selected = list(dict.fromkeys(i[:64] for i in (ids or [])))[:BULK_LIMIT]
            if chosen is None or not selected:
                return self._message(
                    auth, "Nothing decided", "Select requests and choose approve or reject.", 422
                )
            results: list[tuple[str, bool, str]] = []
            for request_id in selected:
                try:
                    decision = DecisionCreate(verdict=chosen, comment=comment.strip() or None)
                    result = self.lifecycle.decide(
                        auth.principal, request_id, decision, via=DecisionVia.WEB
                    )
                except ServiceError as exc:
                    results.append((request_id, False, exc.message))
                except ValidationError:
                    results.append((request_id, False, "the comment is too long"))
                else:
                    done = "approved" if chosen is Verdict.APPROVE else "rejected"
                    if result.status is Status.PENDING:
                        done = "approval recorded; more approvals are needed"
                        self.events.publish("updated", request_id)
                    results.append((request_id, True, done))
            ok = sum(1 for _, good, _ in results if good)
            return page(
                "bulk.html",
                self._context(auth, nav="queue", results=results, ok=ok, verdict=chosen.value),
                status_code=200 if ok else 409,
            )

        # history, control map, tower ------------------------------------------------------

        @router.get("/history")
        def show_history(
            request: Request,
            q: str | None = None,
            agent: str | None = None,
            status: str | None = None,
            page_number: Annotated[int, Query(alias="page", ge=1, le=1000)] = 1,
        ) -> Response:
            auth = self.auth(request)
            if auth is None:
                return self._to_login(request)
            closed = [s.value for s in Status if s is not Status.PENDING]
            filters = HistoryFilters(
                (q or "")[:200] or None,
                (agent or "")[:200] or None,
                Status(status) if status in closed else None,
                page_number,
            )
            with self.db.read() as conn:
                items, more = history(conn, auth.principal, filters)
            base = {
                k: v
                for k, v in (
                    ("q", filters.q),
                    ("agent", filters.agent),
                    ("status", status if filters.status else None),
                )
                if v
            }
            return page(
                "history.html",
                self._context(
                    auth,
                    nav="history",
                    items=items,
                    filters=filters,
                    statuses=closed,
                    more=more,
                    next_url="/history?" + urlencode({**base, "page": filters.page + 1}),
                    prev_url="/history?" + urlencode({**base, "page": filters.page - 1}),
                ),
            )

        @router.get("/control-map")
        def control_map(request: Request) -> Response:
            auth = self.auth(request)
            if auth is None:
                return self._to_login(request)
            if not auth.principal.is_admin:
                return self._message(auth, "Admins only", "The control map is for admins.", 403)
            cmap = self.policy.control_map(self.clock(), 14) if self.policy is not None else None
            with self.db.read() as conn:
                members = role_members(conn)
            return page(
                "control_map.html",
                self._context(
                    auth, nav="map", cmap=cmap, members=members, channels=self.channels()
                ),
            )

        @router.get("/tower")
        def tower(request: Request) -> Response:
            auth = self.auth(request)
            if auth is None:
                return self._to_login(request)
            data = self.tower() if self.tower is not None else {}
            return page("tower.html", self._context(auth, nav="tower", data=data))

        return router
