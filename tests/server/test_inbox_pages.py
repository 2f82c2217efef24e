"""The web inbox over plain HTTP, on SQLite and PostgreSQL: sessions, CSRF, the decision form's
refusals, bulk decisions under separation of duties, history, control map, live events, and
that none of it leaks into the API contract. (The browser tests are test_inbox_browser.py.)"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from signoff.models import Status

from .reviewer_support import PASSWORD, Reviewers, csrf_of, reviewers_server, sign_in

DEMO_CONFIG = Path(__file__).parents[2] / "examples" / "demo" / "signoff.yaml"


@pytest.fixture(scope="module")
def server(module_store_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reviewers]:
    """One server per module and backend: every test makes requests and sessions of its own."""
    with reviewers_server(module_store_url, tmp_path_factory.mktemp("inbox")) as world:
        yield world


@pytest.fixture
def browser_like(server: Reviewers) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


def _status(server: Reviewers, request_id: str) -> Status:
    return server.as_user("admin@example.com").get_request(request_id).status


def test_pages_need_a_session(browser_like: httpx.Client) -> None:
    answer = browser_like.get("/history?q=INV")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Fhistory%3Fq%3DINV"
    assert browser_like.get("/queue/rows").status_code == 401
    assert browser_like.get("/events").status_code == 401


def test_sign_in_rotates_the_session_and_ignores_a_planted_one(
    server: Reviewers, browser_like: httpx.Client
) -> None:
    browser_like.cookies.set("signoff_session", "planted-by-an-attacker", domain="127.0.0.1")
    assert browser_like.get("/").status_code == 303  # a planted id is no session
    sign_in(browser_like, "alice@example.com")
    first = browser_like.cookies.get("signoff_session")
    assert first not in (None, "planted-by-an-attacker")

    sign_in(browser_like, "alice@example.com")  # signing in again: a new id, the old one ends
    second = browser_like.cookies.get("signoff_session")
    assert second != first
    with httpx.Client(base_url=server.url, cookies={"signoff_session": first or ""}) as stale:
        assert stale.get("/").status_code == 303


def test_the_session_cookie_is_httponly_and_samesite(browser_like: httpx.Client) -> None:
    form = browser_like.get("/login")
    answer = browser_like.post(
        "/login",
        data={"email": "alice@example.com", "password": PASSWORD, "csrf": csrf_of(form.text)},
    )
    cookie = next(
        v for k, v in answer.headers.multi_items() if k == "set-cookie" and "signoff_session=" in v
    )
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Secure" not in cookie  # http:// public URL; https:// makes it Secure


def test_sign_in_refuses_a_missing_token_and_a_wrong_password(
    browser_like: httpx.Client,
) -> None:
    browser_like.get("/login")
    no_token = browser_like.post(
        "/login", data={"email": "alice@example.com", "password": PASSWORD}
    )
    assert no_token.status_code == 403
    assert "security token" in no_token.text

    form = browser_like.get("/login")
    wrong = browser_like.post(
        "/login",
        data={"email": "alice@example.com", "password": "guess", "csrf": csrf_of(form.text)},
    )
    assert wrong.status_code == 401
    assert "Wrong email or password." in wrong.text
    form = browser_like.get("/login")
    unknown = browser_like.post(
        "/login",
        data={"email": "nobody@example.com", "password": PASSWORD, "csrf": csrf_of(form.text)},
    )
    assert unknown.status_code == 401  # the same answer: no way to tell who exists
    assert browser_like.cookies.get("signoff_session") is None


def test_sign_in_never_redirects_off_site(browser_like: httpx.Client) -> None:
    form = browser_like.get("/login?next=//evil.example.com/x")
    answer = browser_like.post(
        "/login",
        data={
            "email": "alice@example.com",
            "password": PASSWORD,
            "csrf": csrf_of(form.text),
            "next": "//evil.example.com/x",
        },
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"


def test_sign_out_needs_the_token_and_ends_the_session(browser_like: httpx.Client) -> None:
    csrf = sign_in(browser_like, "alice@example.com")
    assert browser_like.post("/logout", data={}).status_code == 403
    assert browser_like.get("/").status_code == 200  # still signed in
    assert browser_like.post("/logout", data={"csrf": csrf}).status_code == 303
    assert browser_like.get("/").status_code == 303


def test_decision_refusals_are_explained_and_decide_nothing(
    server: Reviewers, browser_like: httpx.Client
) -> None:
    request_id = server.create(comment_required="on_reject", allowed=["approve", "reject"])
    csrf = sign_in(browser_like, "alice@example.com")

    def decide(**form: str) -> httpx.Response:
        return browser_like.post(f"/requests/{request_id}/decide", data={"csrf": csrf, **form})

    no_comment = decide(verdict="reject")
    assert no_comment.status_code == 422
    assert "needs a comment" in no_comment.text
    not_allowed = decide(verdict="edit", arguments='{"amount": 1}')
    assert not_allowed.status_code == 422
    assert "not allowed here" in not_allowed.text
    nonsense = decide(verdict="maybe")
    assert nonsense.status_code == 422
    wrong_token = browser_like.post(
        f"/requests/{request_id}/decide", data={"csrf": "x" * 43, "verdict": "approve"}
    )
    assert wrong_token.status_code == 403
    assert _status(server, request_id) is Status.PENDING

    done = decide(verdict="reject", comment="Duplicate of INV-1041.", reason_code="duplicate")
    assert done.status_code == 303
    closed = decide(verdict="approve")
    assert closed.status_code == 409
    assert "is already rejected" in closed.text, closed.text[:3000]
    decision = server.as_user("admin@example.com").get_request(request_id).decisions[0]
    assert (decision.via.value, decision.reason_code) == ("web", "duplicate")


def test_unknown_request_is_a_page_not_a_500(browser_like: httpx.Client) -> None:
    sign_in(browser_like, "alice@example.com")
    answer = browser_like.get("/requests/req_nope")
    assert answer.status_code == 404
    assert "There is no request req_nope." in answer.text


def test_bulk_approval_checks_separation_of_duties_per_request(
    server: Reviewers, browser_like: httpx.Client
) -> None:
    mine = server.create(initiator="alice@example.com")  # alice started this run
    other = server.create()
    csrf = sign_in(browser_like, "alice@example.com")
    answer = browser_like.post(
        "/bulk", data={"csrf": csrf, "verdict": "approve", "ids": [mine, other]}
    )
    assert answer.status_code == 200
    assert "1 of 2 done" in answer.text
    assert "separation of duties" in answer.text
    assert _status(server, mine) is Status.PENDING
    assert _status(server, other) is Status.APPROVED

    refused = browser_like.post("/bulk", data={"verdict": "reject", "ids": [mine]})
    assert refused.status_code == 403  # no CSRF token
    assert _status(server, mine) is Status.PENDING


def test_queue_is_mine_sorted_by_deadline_and_filtered(
    server: Reviewers, browser_like: httpx.Client
) -> None:
    later = server.create(sla="PT4H")
    sooner = server.create(sla="PT30M", risk="critical")
    elsewhere = server.create(route={"role": "sales"})
    sign_in(browser_like, "alice@example.com")
    page = browser_like.get("/").text
    assert page.index(sooner) < page.index(later)
    assert elsewhere not in page
    critical = browser_like.get("/", params={"risk": "critical"}).text
    assert sooner in critical
    assert later not in critical
    rows = browser_like.get("/queue/rows", params={"q": "INV-10"}).text
    assert sooner in rows
    assert later in rows


def test_history_finds_closed_requests_by_object_and_agent(
    server: Reviewers, browser_like: httpx.Client
) -> None:
    closed = server.create(business_object={"type": "invoice", "id": "INV-2001"})
    server.as_user("alice@example.com").decide(closed, "approve")
    pending = server.create(business_object={"type": "invoice", "id": "INV-2002"})
    sign_in(browser_like, "bob@example.com")
    found = browser_like.get("/history", params={"q": "INV-200"}).text
    assert closed in found
    assert pending not in found
    assert f"/v1/requests/{closed}/evidence" in found
    assert closed in browser_like.get("/history", params={"agent": "finance"}).text
    assert closed not in browser_like.get("/history", params={"agent": "nobody"}).text
    assert closed not in browser_like.get("/history", params={"status": "rejected"}).text


def test_control_map_is_for_admins(server: Reviewers, browser_like: httpx.Client) -> None:
    sign_in(browser_like, "alice@example.com")
    assert browser_like.get("/control-map").status_code == 403
    sign_in(browser_like, "admin@example.com")
    page = browser_like.get("/control-map")
    assert page.status_code == 200
    assert "runs without a policy file" in page.text
    assert "finance-approver" in page.text
    assert "alice@example.com" in page.text


def test_control_map_from_the_policy_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'signoff.db'}"
    from signoff_server.db import migrate

    migrate(url)
    with (
        reviewers_server(url, tmp_path, config_path=str(DEMO_CONFIG)) as world,
        httpx.Client(base_url=world.url) as http,
    ):
        sign_in(http, "admin@example.com")
        page = http.get("/control-map").text
        assert "Policy file" in page
        assert "finance-manager" in page
        assert "satisfiable" in page


def test_tower_shows_the_metrics(server: Reviewers, browser_like: httpx.Client) -> None:
    server.as_user("alice@example.com").decide(server.create(), "approve")
    sign_in(browser_like, "alice@example.com")
    page = browser_like.get("/tower").text
    assert "Requests by status" in page
    assert "<svg" in page


def test_live_events_announce_new_requests(server: Reviewers, browser_like: httpx.Client) -> None:
    sign_in(browser_like, "alice@example.com")
    seen: list[str] = []
    ready = threading.Event()

    def listen() -> None:
        with browser_like.stream("GET", "/events", timeout=30) as stream:
            for line in stream.iter_lines():
                if line.startswith("retry:"):
                    ready.set()
                if line.startswith("event:"):
                    seen.append(line.removeprefix("event:").strip())
                if line.startswith("data:") and seen:
                    assert json.loads(line.removeprefix("data:")) == {}  # no request ids
                    return

    listener = threading.Thread(target=listen)
    listener.start()
    assert ready.wait(20)
    server.create()
    listener.join(30)
    assert seen == ["created"]


def test_inbox_stays_out_of_the_api_contract(server: Reviewers, browser_like: httpx.Client) -> None:
    paths = browser_like.get("/openapi.json").json()["paths"]
    inbox = {"/", "/login", "/logout", "/events", "/history", "/requests/{request_id}"}
    assert not (inbox | {"/email/decide", "/slack/interactions"}) & set(paths)
    assert browser_like.get("/healthz").json() == {"status": "ok"}
    assert browser_like.get("/docs").status_code == 200
    api = browser_like.get("/v1/requests")
    assert api.status_code == 401
    assert api.json()["error"]["code"] == "missing_credentials"


def test_pages_carry_security_headers(browser_like: httpx.Client) -> None:
    page = browser_like.get("/login")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    assert (
        browser_like.get("/static/inbox.js").headers["content-type"].startswith("text/javascript")
    )
    assert browser_like.get("/static/../app.py").status_code == 404
