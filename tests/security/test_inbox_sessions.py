"""CSRF and session fixation on the web inbox: what tests/server/test_inbox_pages.py and
test_inbox_browser.py do not already cover (a missing token on sign-in, sign-out, one decision
form and bulk; a planted *unknown* session id; cookie flags).

- every state-changing inbox route (found by walking the app's routes, so a new one is covered
  the day it is added) refuses a signed-in browser's POST without its CSRF token, or with a
  wrong one, or with another session's;
- the JSON API ignores the session cookie, so a cross-site form cannot drive it;
- a *valid* session planted in a victim's browser (the attacker's own) is replaced at sign-in,
  and the planted one ends; a signed-out session id is dead on the server, not just deleted
  from the browser; the sign-in form's token is bound to its browser (double submit).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from signoff_server.app import create_app
from signoff_server.settings import Settings

from .conftest import ROLE, Live, bearer, csrf_of, invoice, live_server, sign_in

ALICE, BOB, MALLORY = "alice@example.com", "bob@example.com", "mallory@example.com"
NOT_THE_INBOX = ("/v1/", "/slack/", "/email/", "/login")


@pytest.fixture(scope="module")
def live(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_server(backend, tmp_path_factory.mktemp("inbox")) as server:
        for email in (ALICE, BOB, MALLORY):
            server.person(email, ROLE)
        yield server


@pytest.fixture(scope="module")
def agent(live: Live) -> dict[str, str]:
    return bearer(live.agent_key())


def inbox_posts() -> list[str]:
    """The paths of every POST route of the inbox (outside the API, Slack, email links, and
    sign-in, which has its own double-submit token)."""
    with tempfile.TemporaryDirectory() as store:
        app = create_app(Settings(database_url=f"sqlite:///{store}/routes.db"))

    def walk(routes: list[Any]) -> Iterator[Route]:
        for route in routes:
            if isinstance(route, Route):
                yield route
            included = getattr(route, "original_router", None)  # FastAPI >= 0.16x
            if included is not None:
                yield from walk(included.routes)

    return sorted(
        route.path
        for route in walk(app.routes)
        if "POST" in (route.methods or set()) and not route.path.startswith(NOT_THE_INBOX)
    )


def test_the_walk_finds_the_inbox_forms() -> None:
    assert {"/logout", "/bulk", "/requests/{request_id}/decide"} <= set(inbox_posts())


def fresh(live: Live, agent: dict[str, str]) -> str:
    with httpx.Client(base_url=live.url, timeout=30) as http:
        made = http.post("/v1/requests", json=invoice(), headers=agent)
    assert made.status_code == 201, made.text
    return made.json()["id"]


def status_of(live: Live, agent: dict[str, str], request_id: str) -> tuple[str, int]:
    with httpx.Client(base_url=live.url, timeout=30) as http:
        body = http.get(f"/v1/requests/{request_id}", headers=agent).json()
    return body["status"], len(body["decisions"])


def form_for(request_id: str) -> dict[str, Any]:
    """What the inbox's forms send (the fields of all of them), minus the CSRF token."""
    return {"verdict": "approve", "comment": "csrf test", "ids": [request_id]}


@pytest.mark.parametrize("token", ["missing", "wrong", "another session's"])
def test_every_inbox_form_needs_its_own_sessions_token(
    live: Live, agent: dict[str, str], token: str
) -> None:
    with (
        httpx.Client(base_url=live.url, timeout=30) as alice,
        httpx.Client(base_url=live.url, timeout=30) as bob,
    ):
        assert sign_in(alice, ALICE).status_code == 303
        assert sign_in(bob, BOB).status_code == 303
        bobs = csrf_of(bob.get("/").text)
        for path in inbox_posts():
            request_id = fresh(live, agent)
            data = form_for(request_id)
            if token == "wrong":
                data["csrf"] = "x" * len(bobs)
            elif token == "another session's":
                data["csrf"] = bobs
            answer = alice.post(path.replace("{request_id}", request_id), data=data)
            assert answer.status_code == 403, (path, answer.status_code, answer.text[:300])
            assert status_of(live, agent, request_id) == ("pending", 0), path
            assert alice.get("/").status_code == 200, f"{path} signed Alice out"


def test_the_api_ignores_the_session_cookie(live: Live, agent: dict[str, str]) -> None:
    """A signed-in browser's cookie is no credential for /v1: a cross-site form (or fetch with
    credentials) posting a decision there is refused and decides nothing."""
    request_id = fresh(live, agent)
    with httpx.Client(base_url=live.url, timeout=30) as browser:
        assert sign_in(browser, ALICE).status_code == 303
        path = f"/v1/requests/{request_id}/decisions"
        as_json = browser.post(path, json={"verdict": "approve"})
        assert as_json.status_code == 401, as_json.text
        assert as_json.json()["error"]["code"] == "missing_credentials"
        as_form = browser.post(path, data={"verdict": "approve"})
        assert as_form.status_code in (401, 415, 422), as_form.text
        cancelled = browser.post(f"/v1/requests/{request_id}/cancel")
        assert cancelled.status_code == 401
    assert status_of(live, agent, request_id) == ("pending", 0)


def test_a_planted_valid_session_is_replaced_and_ended(live: Live) -> None:
    with httpx.Client(base_url=live.url, timeout=30) as mallory:
        assert sign_in(mallory, MALLORY).status_code == 303
        planted = mallory.cookies["signoff_session"]
    with httpx.Client(base_url=live.url, timeout=30) as victim:
        victim.cookies.set("signoff_session", planted, domain="127.0.0.1")
        assert MALLORY in victim.get("/").text  # the planted session works... until sign-in
        assert sign_in(victim, ALICE).status_code == 303
        own = victim.cookies["signoff_session"]
        assert own != planted
        assert ALICE in victim.get("/").text
    with httpx.Client(
        base_url=live.url, timeout=30, cookies={"signoff_session": planted}
    ) as mallory_again:
        answer = mallory_again.get("/")
        assert answer.status_code == 303, "the planted session outlived the victim's sign-in"
        assert ALICE not in answer.text


def test_sign_out_ends_the_session_on_the_server(live: Live) -> None:
    with httpx.Client(base_url=live.url, timeout=30) as browser:
        assert sign_in(browser, BOB).status_code == 303
        cookie = browser.cookies["signoff_session"]
        csrf = csrf_of(browser.get("/").text)
        assert browser.post("/logout", data={"csrf": csrf}).status_code == 303
    with httpx.Client(base_url=live.url, timeout=30, cookies={"signoff_session": cookie}) as copy:
        assert copy.get("/").status_code == 303  # a copy of the cookie is worthless now
        assert copy.get("/queue/rows").status_code == 401


def test_the_sign_in_token_is_bound_to_its_browser(live: Live) -> None:
    """Login CSRF: a token lifted from another browser's form does not sign this one in."""
    with (
        httpx.Client(base_url=live.url, timeout=30) as attacker,
        httpx.Client(base_url=live.url, timeout=30) as victim,
    ):
        token = csrf_of(attacker.get("/login").text)
        victim.get("/login")  # the victim's own double-submit cookie differs
        answer = victim.post(
            "/login", data={"email": MALLORY, "password": "correct horse battery staple",
                            "csrf": token}
        )  # fmt: skip
        assert answer.status_code == 403
        assert victim.cookies.get("signoff_session") is None
