"""Where email decision links land: `GET /email/decide` shows a confirmation page, and only
its `POST` decides (mail scanners and link previews fetch links; a GET never decides).

The token is checked on both: signature and expiry (`EmailLinks.verify`), then its nonce
(`check_unused`); the POST consumes the nonce before deciding, so a link decides at most once.
A missing comment that the request requires is asked for again without using up the link.
The pages send `Referrer-Policy: no-referrer`, so the token never leaks to another site.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form
from fastapi.responses import Response
from pydantic import ValidationError

from signoff.models import DecisionCreate, DecisionVia, Status
from signoff_server.db import Database
from signoff_server.errors import ServiceError
from signoff_server.identity import Principal, user_roles_of
from signoff_server.inbox.render import page
from signoff_server.lifecycle import Lifecycle
from signoff_server.notifications.checks import needs_comment
from signoff_server.notifications.mail import EmailLinks, LinkClaim, LinkRefused
from signoff_server.views import load_request

__all__ = ["email_router"]

_NO_REFERRER = {"referrer-policy": "no-referrer"}
_REFUSED_STATUS = {"invalid": 400, "expired": 410, "used": 409}


def email_router(
    *,
    links: Callable[[], EmailLinks | None],
    lifecycle: Lifecycle,
    db: Database,
    clock: Callable[[], datetime],
) -> APIRouter:
    """The two routes of email decision links (kept out of the OpenAPI schema)."""
    router = APIRouter(include_in_schema=False)

    def message(title: str, text: str, status_code: int) -> Response:
        context: dict[str, Any] = {
            "user": None,
            "is_admin": False,
            "roles": [],
            "csrf": "",
            "now": clock(),
            "nav": "",
        }
        return page(
            "message.html",
            {**context, "title": title, "message": text},
            status_code=status_code,
            headers=_NO_REFERRER,
        )

    def principal_of(email: str) -> Principal:
        with db.read() as conn:
            return Principal("user", email, roles=user_roles_of(conn, email))

    def confirm_page(
        token: str,
        claim: LinkClaim,
        *,
        error: str | None = None,
        comment: str = "",
        status_code: int = 200,
    ) -> Response:
        try:
            with db.read() as conn:
                request = load_request(conn, principal_of(claim.email), claim.request_id)[1]
        except ServiceError as exc:
            return message("Cannot decide", exc.message, exc.status_code)
        if request.status is not Status.PENDING:
            return message("Already closed", f"{request.id} is already {request.status}.", 409)
        context: dict[str, Any] = {
            "user": None,
            "is_admin": False,
            "roles": [],
            "csrf": "",
            "now": clock(),
            "nav": "",
            "r": request,
            "claim": claim,
            "token": token,
            "error": error,
            "comment": comment,
            "comment_needed": needs_comment(request, claim.verdict),
        }
        return page("email_confirm.html", context, status_code=status_code, headers=_NO_REFERRER)

    def checked(token: str) -> LinkClaim | Response:
        signer = links()
        if signer is None:
            return message("Email links are off", "This server does not send email.", 404)
        try:
            claim = signer.verify(token)
            with db.read() as conn:
                signer.check_unused(conn, claim)
        except LinkRefused as exc:
            return message(
                "Link refused", exc.message + " Nothing was decided.", _REFUSED_STATUS[exc.reason]
            )
        return claim

    @router.get("/email/decide")
    def confirm(t: str = "") -> Response:
        claim = checked(t)
        if isinstance(claim, Response):
            return claim
        return confirm_page(t, claim)

    @router.post("/email/decide")
    def decide(t: Annotated[str, Form()] = "", comment: Annotated[str, Form()] = "") -> Response:
        claim = checked(t)
        if isinstance(claim, Response):
            return claim
        signer = links()
        assert signer is not None  # checked() refuses otherwise
        try:
            with db.read() as conn:
                request = load_request(conn, principal_of(claim.email), claim.request_id)[1]
            if needs_comment(request, claim.verdict) and not comment.strip():
                return confirm_page(
                    t, claim, error="This decision needs a comment.", status_code=422
                )
            decision = DecisionCreate(verdict=claim.verdict, comment=comment.strip() or None)
        except ServiceError as exc:
            return message("Cannot decide", exc.message, exc.status_code)
        except ValidationError:
            return confirm_page(
                t, claim, error="The comment is too long.", comment=comment[:4000], status_code=422
            )
        try:
            with db.write() as conn:
                signer.consume(conn, claim)
        except LinkRefused as exc:
            return message(
                "Link refused", exc.message + " Nothing was decided.", _REFUSED_STATUS[exc.reason]
            )
        try:
            result = lifecycle.decide(
                principal_of(claim.email), claim.request_id, decision, via=DecisionVia.EMAIL
            )
        except ServiceError as exc:
            return message("Not decided", exc.message, exc.status_code)
        verb = "approved" if claim.verdict.value == "approve" else "rejected"
        more = (
            " More approvals are needed before it closes."
            if result.status is Status.PENDING
            else ""
        )
        return message(f"You {verb} {result.id}", f"Your decision was recorded.{more}", 200)

    return router
