"""Who may call what: every endpoint and every kind of caller → the status code, read off one table.

The rules (views.py, lifecycle.py; DESIGN.md §4, §11):

- no credentials, or a well-formed but unknown `sk_…` / `pt_…` secret → 401 with an error body;
- an agent sees only its own requests; another agent's request is a 404, never a 403, so that
  agents cannot even learn that it exists;
- a reviewer sees requests routed to a role they hold, else 403; an admin sees everything;
- an agent key can never decide (403), whoever's request it is; an admin sees every request but
  decides only in a role the request is routed to (DESIGN §11), like any reviewer;
- only the request's own agent or an admin may cancel;
- only the request's own agent reports the outcome, once the request is closed (pending → 409);
- the audit log: any authenticated caller reads the signed checkpoint; the entries are for
  auditors (the `auditor` role) and admins; an evidence packet is for whoever sees the request,
  and for auditors and admins; the control map is for admins (404 here: no policy file).

Raw httpx against the live server, so status codes are seen as sent. Every case that changes
state gets fresh requests; the server and store are shared by the module (per backend).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from .conftest import World, openapi_document

ROLE = "finance-approver"
OTHER_ROLE = "hr-approver"

PRINCIPALS = (
    "anonymous",
    "unknown_sk",
    "unknown_pt",
    "other_agent",
    "own_agent",
    "reviewer_without_role",
    "reviewer_with_role",
    "admin",
    "auditor",
)

# Endpoint (and the state of the request it is called on) → expected status, per principal.
# "create" sends a body whose agent.id names the owning agent, so another agent's key is refused.
# fmt: off
MATRIX: dict[str, tuple[int, ...]] = {
    #                         anon  sk_?  pt_?  other own  rev-  rev+  admin audit
    "create":                (401,  401,  401,  403,  201, 403,  403,  403,  403),
    "list":                  (401,  401,  401,  200,  200, 200,  200,  200,  200),
    "get":                   (401,  401,  401,  404,  200, 403,  200,  200,  403),
    "wait":                  (401,  401,  401,  404,  200, 403,  200,  200,  403),
    "timeline":              (401,  401,  401,  404,  200, 403,  200,  200,  403),
    "decide":                (401,  401,  401,  403,  403, 403,  200,  403,  403),
    "cancel":                (401,  401,  401,  404,  200, 403,  403,  200,  403),
    "outcome on pending":    (401,  401,  401,  404,  409, 403,  403,  403,  403),
    "outcome on closed":     (401,  401,  401,  404,  200, 403,  403,  403,  403),
    "get unknown id":        (401,  401,  401,  404,  404, 404,  404,  404,  404),
    "decide unknown id":     (401,  401,  401,  403,  403, 404,  404,  404,  404),
    "evidence":              (401,  401,  401,  404,  200, 403,  200,  200,  200),
    "audit checkpoint":      (401,  401,  401,  200,  200, 200,  200,  200,  200),
    "audit entries":         (401,  401,  401,  403,  403, 403,  403,  200,  200),
    "control map":           (401,  401,  401,  403,  403, 403,  403,  404,  403),
}
# fmt: on

# Who sees a request in `GET /v1/requests` (and through every filter of it).
LISTED: dict[str, bool] = {
    "other_agent": False,
    "own_agent": True,
    "reviewer_without_role": False,
    "reviewer_with_role": True,
    "admin": True,
    "auditor": False,
}

# Expected error codes where the code itself is part of the rule.
ERROR_CODES: dict[tuple[str, str], str] = {
    **{(endpoint, "anonymous"): "missing_credentials" for endpoint in MATRIX},
    **{(endpoint, "unknown_sk"): "invalid_credentials" for endpoint in MATRIX},
    **{(endpoint, "unknown_pt"): "invalid_credentials" for endpoint in MATRIX},
    ("create", "other_agent"): "agent_mismatch",
    ("decide", "other_agent"): "agents_cannot_decide",
    ("decide", "own_agent"): "agents_cannot_decide",
    ("decide unknown id", "own_agent"): "agents_cannot_decide",
    **{
        (endpoint, principal): "role_required"
        for endpoint in ("get", "wait", "timeline", "decide", "cancel")
        for principal in ("reviewer_without_role", "auditor")
    },
    ("decide", "admin"): "role_required",
    ("evidence", "reviewer_without_role"): "role_required",
    ("outcome on pending", "own_agent"): "request_pending",
    **{
        ("control map", principal): "admin_required"
        for principal in ("other_agent", "own_agent", "reviewer_without_role", "auditor")
    },
    ("control map", "admin"): "no_policy_config",
}

# The operation each row calls.
ROUTES: dict[str, tuple[str, str]] = {
    "create": ("post", "/v1/requests"),
    "list": ("get", "/v1/requests"),
    "get": ("get", "/v1/requests/{request_id}"),
    "wait": ("get", "/v1/requests/{request_id}/wait"),
    "timeline": ("get", "/v1/requests/{request_id}/timeline"),
    "decide": ("post", "/v1/requests/{request_id}/decisions"),
    "cancel": ("post", "/v1/requests/{request_id}/cancel"),
    "outcome on pending": ("post", "/v1/requests/{request_id}/outcome"),
    "outcome on closed": ("post", "/v1/requests/{request_id}/outcome"),
    "get unknown id": ("get", "/v1/requests/{request_id}"),
    "decide unknown id": ("post", "/v1/requests/{request_id}/decisions"),
    "evidence": ("get", "/v1/requests/{request_id}/evidence"),
    "audit checkpoint": ("get", "/v1/audit/checkpoint"),
    "audit entries": ("get", "/v1/audit/entries"),
    "control map": ("get", "/v1/control-map"),
}

# Authenticated operations whose rules are not in the rows above yet. A new operation missing
# from both fails below.
NOT_IN_MATRIX_YET: set[tuple[str, str]] = set()


def test_matrix_is_complete() -> None:
    assert all(len(row) == len(PRINCIPALS) for row in MATRIX.values())
    assert set(LISTED) == set(PRINCIPALS[3:])
    assert set(ROUTES) == set(MATRIX) == set(ENDPOINTS)


def test_matrix_covers_every_authenticated_operation() -> None:
    document: dict[str, Any] = openapi_document()
    secured = {
        (method, path)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if operation.get("security")
    }
    covered = set(ROUTES.values())
    assert covered <= secured, covered - secured
    assert secured - covered <= NOT_IN_MATRIX_YET, secured - covered - NOT_IN_MATRIX_YET


def invoice(owner: str | None = None) -> dict[str, Any]:
    """A request routed to ROLE with a business object id of its own."""
    body: dict[str, Any] = {
        "action": {"name": "payments.release", "arguments": {"invoice_id": "INV-1042"}},
        "business_object": {"type": "invoice", "id": f"INV-{uuid.uuid4().hex[:10]}"},
        "route": {"role": ROLE},
    }
    if owner is not None:
        body["agent"] = {"id": owner}
    return body


@dataclass
class Cast:
    """The module's callers and an admin client to set up and inspect requests."""

    http: httpx.Client
    owner: str
    headers: dict[str, dict[str, str]]

    def as_(self, principal: str) -> dict[str, str]:
        return self.headers[principal]

    def create(self) -> str:
        response = self.http.post("/v1/requests", json=invoice(), headers=self.as_("own_agent"))
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def close(self, request_id: str) -> None:
        response = self.http.post(
            f"/v1/requests/{request_id}/decisions",
            json={"verdict": "reject", "comment": "closed for the test"},
            headers=self.as_("reviewer_with_role"),
        )
        assert response.status_code == 200, response.text

    def state(self, request_id: str) -> tuple[str, int, Any]:
        """Status, number of decisions and outcome, as the admin sees them."""
        response = self.http.get(f"/v1/requests/{request_id}", headers=self.as_("admin"))
        assert response.status_code == 200, response.text
        body = response.json()
        return body["status"], len(body["decisions"]), body["outcome"]


@pytest.fixture(scope="module")
def cast(module_world: World) -> Iterator[Cast]:
    owner = f"owner-{uuid.uuid4().hex[:8]}"

    def bearer(secret: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {secret}"}

    headers = {
        "anonymous": {},
        "unknown_sk": bearer("sk_" + secrets.token_urlsafe(32)),
        "unknown_pt": bearer("pt_" + secrets.token_urlsafe(32)),
        "other_agent": bearer(module_world.agent_key(f"other-{uuid.uuid4().hex[:8]}")),
        "own_agent": bearer(module_world.agent_key(owner)),
        "reviewer_without_role": bearer(module_world.reviewer_token(OTHER_ROLE)),
        "reviewer_with_role": bearer(module_world.reviewer_token(ROLE)),
        "admin": bearer(module_world.reviewer_token("admin")),
        "auditor": bearer(module_world.reviewer_token("auditor")),
    }
    with httpx.Client(base_url=module_world.url, timeout=30) as http:
        yield Cast(http, owner, headers)


Call = Callable[[Cast, dict[str, str]], httpx.Response]


def _on(request_state: str | None, call: Callable[[httpx.Client, str, dict[str, str]], Any]):
    """A call on a fresh request in `request_state` ("pending", "closed"), or on an unknown id."""

    def run(cast: Cast, headers: dict[str, str]) -> httpx.Response:
        if request_state is None:
            request_id = f"req_{uuid.uuid4().hex.upper()[:26]}"
        else:
            request_id = cast.create()
            if request_state == "closed":
                cast.close(request_id)
        before = cast.state(request_id) if request_state is not None else None
        response: httpx.Response = call(cast.http, request_id, headers)
        if before is not None and response.status_code >= 400:
            assert cast.state(request_id) == before, "a refused call changed the request"
        return response

    return run


ENDPOINTS: dict[str, Call] = {
    "create": lambda cast, h: cast.http.post("/v1/requests", json=invoice(cast.owner), headers=h),
    "list": lambda cast, h: cast.http.get("/v1/requests", headers=h),
    "get": _on("pending", lambda http, rid, h: http.get(f"/v1/requests/{rid}", headers=h)),
    "wait": _on(
        "pending",
        lambda http, rid, h: http.get(f"/v1/requests/{rid}/wait", params={"timeout": 0}, headers=h),
    ),
    "timeline": _on(
        "pending", lambda http, rid, h: http.get(f"/v1/requests/{rid}/timeline", headers=h)
    ),
    "decide": _on(
        "pending",
        lambda http, rid, h: http.post(
            f"/v1/requests/{rid}/decisions", json={"verdict": "approve"}, headers=h
        ),
    ),
    "cancel": _on(
        "pending",
        lambda http, rid, h: http.post(
            f"/v1/requests/{rid}/cancel", json={"reason": "withdrawn"}, headers=h
        ),
    ),
    "outcome on pending": _on(
        "pending",
        lambda http, rid, h: http.post(
            f"/v1/requests/{rid}/outcome", json={"status": "skipped"}, headers=h
        ),
    ),
    "outcome on closed": _on(
        "closed",
        lambda http, rid, h: http.post(
            f"/v1/requests/{rid}/outcome", json={"status": "skipped"}, headers=h
        ),
    ),
    "get unknown id": _on(None, lambda http, rid, h: http.get(f"/v1/requests/{rid}", headers=h)),
    "decide unknown id": _on(
        None,
        lambda http, rid, h: http.post(
            f"/v1/requests/{rid}/decisions", json={"verdict": "approve"}, headers=h
        ),
    ),
    "evidence": _on(
        "pending", lambda http, rid, h: http.get(f"/v1/requests/{rid}/evidence", headers=h)
    ),
    "audit checkpoint": lambda cast, h: cast.http.get("/v1/audit/checkpoint", headers=h),
    "audit entries": lambda cast, h: cast.http.get("/v1/audit/entries", headers=h),
    "control map": lambda cast, h: cast.http.get("/v1/control-map", headers=h),
}

CASES = [
    pytest.param(endpoint, principal, expected, id=f"{endpoint}-{principal}")
    for endpoint, row in MATRIX.items()
    for principal, expected in zip(PRINCIPALS, row, strict=True)
]


def assert_error_body(response: httpx.Response) -> dict[str, Any]:
    """A 4xx carries `{error: {code, message, details}}`; returns the inner object."""
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["code"], str)
    assert error["code"]
    assert isinstance(error["message"], str)
    assert error["message"]
    return error


@pytest.mark.parametrize(("endpoint", "principal", "expected"), CASES)
def test_authorization_matrix(cast: Cast, endpoint: str, principal: str, expected: int) -> None:
    response = ENDPOINTS[endpoint](cast, cast.as_(principal))
    assert response.status_code == expected, (
        f"{endpoint} as {principal}: {response.status_code} {response.text}"
    )
    if expected >= 400:
        error = assert_error_body(response)
        if (endpoint, principal) in ERROR_CODES:
            assert error["code"] == ERROR_CODES[endpoint, principal], error
        if expected == 404 and (endpoint, principal) not in ERROR_CODES:
            assert error["code"] == "not_found", error
        return
    body = response.json()
    if endpoint == "create":
        assert body["agent"]["id"] == cast.owner
    elif endpoint == "list":
        assert isinstance(body["items"], list)
    elif endpoint in {"get", "wait"}:
        assert body["status"] == "pending"
    elif endpoint == "timeline":
        assert [event["type"] for event in body][:1] == ["request.created"]
    elif endpoint == "decide":
        assert body["status"] == "approved"
    elif endpoint == "cancel":
        assert body["status"] == "cancelled"
    elif endpoint == "outcome on closed":
        assert body["outcome"]["status"] == "skipped"
    elif endpoint == "evidence":
        assert body["request"]["status"] == "pending"
    elif endpoint == "audit checkpoint":
        assert body["size"] >= 1
        assert body["note"]
    elif endpoint == "audit entries":
        assert body["entries"]


def test_other_agents_request_looks_exactly_like_a_missing_one(cast: Cast) -> None:
    request_id = cast.create()
    missing_id = f"req_{uuid.uuid4().hex.upper()[:26]}"
    other = cast.as_("other_agent")
    for suffix in ("", "/wait?timeout=0", "/timeline"):
        hidden = cast.http.get(f"/v1/requests/{request_id}{suffix}", headers=other)
        missing = cast.http.get(f"/v1/requests/{missing_id}{suffix}", headers=other)
        assert hidden.status_code == missing.status_code == 404
        assert assert_error_body(hidden) == {
            **assert_error_body(missing),
            "message": assert_error_body(missing)["message"].replace(missing_id, request_id),
        }
    for action, body in (("cancel", None), ("outcome", {"status": "skipped"})):
        hidden = cast.http.post(f"/v1/requests/{request_id}/{action}", json=body, headers=other)
        missing = cast.http.post(f"/v1/requests/{missing_id}/{action}", json=body, headers=other)
        assert hidden.status_code == missing.status_code == 404, (hidden.text, missing.text)
        assert assert_error_body(hidden)["code"] == assert_error_body(missing)["code"]


LIST_QUERIES: list[dict[str, str]] = [
    {},
    {"status": "pending"},
    {"role": ROLE},
    {"object_type": "invoice"},
    {"limit": "200"},
]


@pytest.mark.parametrize("principal", list(LISTED))
def test_lists_do_not_leak(cast: Cast, principal: str) -> None:
    request = cast.http.post("/v1/requests", json=invoice(), headers=cast.as_("own_agent"))
    assert request.status_code == 201, request.text
    request_id: str = request.json()["id"]
    object_id: str = request.json()["business_object"]["id"]
    queries = [
        *LIST_QUERIES,
        {"agent": cast.owner},
        {"object_type": "invoice", "object_id": object_id},
    ]
    for query in queries:
        response = cast.http.get("/v1/requests", params=query, headers=cast.as_(principal))
        assert response.status_code == 200, response.text
        ids = {item["id"] for item in response.json()["items"]}
        assert (request_id in ids) is LISTED[principal], f"{principal} listing {query}: {ids}"
        if principal == "other_agent":
            assert all(item["agent"]["id"] != cast.owner for item in response.json()["items"]), (
                query
            )
        if principal == "reviewer_without_role":
            assert all(item["route"]["role"] != ROLE for item in response.json()["items"]), query


def test_list_pages_do_not_leak_for_other_agent(cast: Cast) -> None:
    """Walking every page of another agent's list never reaches the owner's requests."""
    mine = {cast.create() for _ in range(3)}
    seen: set[str] = set()
    cursor: str | None = None
    for _ in range(100):
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        response = cast.http.get("/v1/requests", params=params, headers=cast.as_("other_agent"))
        assert response.status_code == 200, response.text
        page = response.json()
        seen |= {item["id"] for item in page["items"]}
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert not seen & mine
    # ...while the owner does reach them through the same pages.
    owner_page = cast.http.get(
        "/v1/requests", params={"limit": "3"}, headers=cast.as_("own_agent")
    ).json()
    assert {item["id"] for item in owner_page["items"]} == mine


@pytest.mark.parametrize(
    "spelling",
    [
        pytest.param(str, id="as registered"),
        # Fixed with the policy engine: the initiator is compared case-insensitively.
        pytest.param(str.upper, id="other case"),
    ],
)
def test_initiator_cannot_approve_however_spelled(
    module_world: World, cast: Cast, spelling: Callable[[str], str]
) -> None:
    email = f"ivan-{uuid.uuid4().hex[:8]}@example.com"
    initiator = {"Authorization": f"Bearer {module_world.reviewer_token(ROLE, email=email)}"}
    created = cast.http.post(
        "/v1/requests",
        json={**invoice(), "initiator": spelling(email)},
        headers=cast.as_("own_agent"),
    )
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    approved = cast.http.post(
        f"/v1/requests/{request_id}/decisions", json={"verdict": "approve"}, headers=initiator
    )
    assert approved.status_code == 403, approved.text
    assert assert_error_body(approved)["code"] == "separation_of_duties"
    assert cast.state(request_id)[0] == "pending"
