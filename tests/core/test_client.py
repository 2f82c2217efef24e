"""Client and AsyncClient against httpx.MockTransport: calls, errors, retries, waiting, paging.

Most tests run twice, once per twin, through `Api`: it drives a `Client` directly, or an
`AsyncClient` with `anyio.run`, and records every HTTP request the client sent.
"""

from __future__ import annotations

import builtins
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import httpx
import pytest

import signoff
import signoff.client
from signoff import (
    ApiError,
    AsyncClient,
    AuditEvent,
    Client,
    Conflict,
    Forbidden,
    NotFound,
    Page,
    Request,
    RequestCreate,
    ServerError,
    SignoffError,
    Status,
    TransportError,
    Unauthorized,
    ValidationFailed,
    Verdict,
)
from signoff.client import _BaseClient

BASE_URL = "http://signoff.test"
Responder = Callable[[httpx.Request], httpx.Response]
RequestFactory = Callable[..., dict[str, Any]]
REAL_BACKOFF = _BaseClient._backoff
CREATE: dict[str, Any] = {
    "action": {"name": "payments.release", "arguments": {"invoice": "INV-1042"}},
    "business_object": {"type": "invoice", "id": "INV-1042"},
    "risk": "high",
}
AUDIT_EVENT: dict[str, Any] = {
    "seq": 1,
    "at": "2025-01-01T09:00:00Z",
    "type": "request.created",
    "request_id": "req_1",
    "actor": "agent:agt_payables",
    "data": {},
    "leaf_hash": "ab" * 32,
}


class Api:
    """One client twin over a MockTransport that records each request and asks `responder`."""

    def __init__(self, kind: str, responder: Responder, **options: Any) -> None:
        self.kind = kind
        self.sent: list[httpx.Request] = []

        def handle(request: httpx.Request) -> httpx.Response:
            self.sent.append(request)
            return responder(request)

        transport = httpx.MockTransport(handle)
        options = {"base_url": BASE_URL, "api_key": "sk_test", **options}
        self.sync = Client(transport=transport, **options) if kind == "sync" else None
        self.async_ = AsyncClient(transport=transport, **options) if kind == "async" else None

    def __call__(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self.sync is not None:
            return getattr(self.sync, method)(*args, **kwargs)
        assert self.async_ is not None
        client = self.async_

        async def run() -> Any:
            return await getattr(client, method)(*args, **kwargs)

        return anyio.run(run)

    def iter_requests(self, **kwargs: Any) -> list[Request]:
        if self.sync is not None:
            return list(self.sync.iter_requests(**kwargs))
        assert self.async_ is not None
        client = self.async_

        async def collect() -> list[Request]:
            return [item async for item in client.iter_requests(**kwargs)]

        return anyio.run(collect)

    def close(self) -> None:
        if self.sync is not None:
            self.sync.close()
        if self.async_ is not None:
            anyio.run(self.async_.aclose)

    def bodies(self) -> list[Any]:
        return [json.loads(request.content) if request.content else None for request in self.sent]


@pytest.fixture(params=["sync", "async"])
def make_api(request: pytest.FixtureRequest) -> Iterator[Callable[..., Api]]:
    made: list[Api] = []

    def make(responder: Responder, **options: Any) -> Api:
        api = Api(request.param, responder, **options)
        made.append(api)
        return api

    yield make
    for api in made:
        api.close()


@pytest.fixture(autouse=True)
def backoffs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """No sleeping between retries; records the attempt number of each backoff."""
    attempts: list[int] = []

    def backoff(attempt: int) -> float:
        attempts.append(attempt)
        return 0.0

    monkeypatch.setattr(_BaseClient, "_backoff", staticmethod(backoff))
    return attempts


def reply(status: int = 200, body: Any = None) -> httpx.Response:
    return httpx.Response(status, json=body)


def scripted(*steps: httpx.Response | type[httpx.TransportError]) -> Responder:
    """Answers with (a fresh copy of) each step in turn, raising the exception classes given;
    the last step repeats."""
    queue = list(steps)

    def respond(request: httpx.Request) -> httpx.Response:
        step = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(step, httpx.Response):
            return httpx.Response(step.status_code, headers=step.headers, content=step.content)
        raise step("simulated", request=request)

    return respond


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


# Every method hits the right endpoint ---------------------------------------------------------


@pytest.fixture
def fake_server(make_request: RequestFactory) -> Responder:
    def respond(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/timeline"):
            return reply(200, [AUDIT_EVENT])
        if path.endswith("/evidence"):
            return reply(200, {"request": make_request(), "proofs": []})
        if path == "/v1/keys":
            return reply(200, {"webhook_keys": ["whpk_x"], "audit_key": "k"})
        if path == "/v1/requests" and request.method == "GET":
            return reply(200, {"items": [make_request()], "next_cursor": None})
        return reply(200, make_request())

    return respond


ENDPOINTS = [
    ("get_request", ("req_1",), {}, "GET", "/v1/requests/req_1", {}, None, Request),
    ("wait", ("req_1",), {}, "GET", "/v1/requests/req_1/wait", {"timeout": "30.000"}, None,
     Request),
    ("list_requests", (), {}, "GET", "/v1/requests", {}, None, Page),
    ("list_requests", (),
     {"status": Status.PENDING, "role": "finance", "agent": "agt_1", "object_type": "invoice",
      "object_id": "INV-1042", "cursor": "c1", "limit": 50},
     "GET", "/v1/requests",
     {"status": "pending", "role": "finance", "agent": "agt_1", "object_type": "invoice",
      "object_id": "INV-1042", "cursor": "c1", "limit": "50"},
     None, Page),
    ("decide", ("req_1", Verdict.APPROVE), {}, "POST", "/v1/requests/req_1/decisions", {},
     {"verdict": "approve"}, Request),
    ("decide", ("req_1", "edit"),
     {"arguments": {"amount": 1000}, "comment": "cap it", "reason_code": "over_limit"},
     "POST", "/v1/requests/req_1/decisions", {},
     {"verdict": "edit", "arguments": {"amount": 1000}, "comment": "cap it",
      "reason_code": "over_limit"},
     Request),
    ("decide", ("req_1", "respond"), {"comment": "ask the vendor first"}, "POST",
     "/v1/requests/req_1/decisions", {}, {"verdict": "respond", "comment": "ask the vendor first"},
     Request),
    ("cancel", ("req_1",), {}, "POST", "/v1/requests/req_1/cancel", {}, {}, Request),
    ("cancel", ("req_1",), {"reason": "obsolete"}, "POST", "/v1/requests/req_1/cancel", {},
     {"reason": "obsolete"}, Request),
    ("report_outcome", ("req_1", "executed"), {"detail": "paid"}, "POST",
     "/v1/requests/req_1/outcome", {}, {"status": "executed", "detail": "paid"}, Request),
    ("timeline", ("req_1",), {}, "GET", "/v1/requests/req_1/timeline", {}, None, list),
    ("evidence", ("req_1",), {}, "GET", "/v1/requests/req_1/evidence", {}, None, dict),
    ("keys", (), {}, "GET", "/v1/keys", {}, None, dict),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "args", "kwargs", "method", "path", "params", "body", "result_type"),
    ENDPOINTS,
    ids=[f"{row[0]}-{i}" for i, row in enumerate(ENDPOINTS)],
)
def test_every_method_hits_its_endpoint(
    make_api: Callable[..., Api],
    fake_server: Responder,
    name: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    method: str,
    path: str,
    params: dict[str, str],
    body: Any,
    result_type: type,
) -> None:
    api = make_api(fake_server)
    result = api(name, *args, **kwargs)
    assert isinstance(result, result_type)
    [sent] = api.sent
    assert (sent.method, sent.url.path, dict(sent.url.params)) == (method, path, params)
    assert api.bodies() == [body]
    assert sent.headers["authorization"] == "Bearer sk_test"
    assert sent.headers["accept"] == "application/json"
    if body is not None:
        assert sent.headers["content-type"] == "application/json"


def test_answers_are_parsed_into_models(
    make_api: Callable[..., Api], fake_server: Responder
) -> None:
    api = make_api(fake_server)
    assert api("get_request", "req_1").decisions[0].verdict is Verdict.APPROVE
    page = api("list_requests")
    assert [item.status for item in page.items] == [Status.APPROVED]
    assert api("timeline", "req_1") == [AuditEvent.model_validate(AUDIT_EVENT)]
    assert api("keys") == {"webhook_keys": ["whpk_x"], "audit_key": "k"}


@pytest.mark.parametrize(
    "request_input",
    [CREATE, RequestCreate.model_validate(CREATE)],
    ids=["mapping", "model"],
)
def test_create_sends_the_request_with_an_auto_idempotency_key(
    make_api: Callable[..., Api], fake_server: Responder, request_input: Any
) -> None:
    api = make_api(fake_server)
    created = api("create_request", request_input)
    assert isinstance(created, Request)
    [sent] = api.sent
    assert (sent.method, sent.url.path) == ("POST", "/v1/requests")
    [body] = api.bodies()
    key = body.pop("idempotency_key")
    assert re.fullmatch(r"auto_[0-9a-f]{32}", key)
    assert body == RequestCreate.model_validate(CREATE).model_dump(mode="json", exclude_none=True)
    assert body["risk"] == "high"


def test_create_keeps_a_given_idempotency_key(
    make_api: Callable[..., Api], fake_server: Responder
) -> None:
    api = make_api(fake_server)
    api("create_request", {**CREATE, "idempotency_key": "run-7-step-3"})
    assert api.bodies()[0]["idempotency_key"] == "run-7-step-3"


def test_each_create_gets_its_own_auto_key(
    make_api: Callable[..., Api], fake_server: Responder
) -> None:
    api = make_api(fake_server)
    api("create_request", CREATE)
    api("create_request", CREATE)
    first, second = (body["idempotency_key"] for body in api.bodies())
    assert first != second


def test_iter_requests_follows_next_cursor(
    make_api: Callable[..., Api], make_request: RequestFactory
) -> None:
    pages = {
        None: {"items": [make_request(id="req_1"), make_request(id="req_2")], "next_cursor": "c2"},
        "c2": {"items": [make_request(id="req_3")], "next_cursor": "c3"},
        "c3": {"items": [], "next_cursor": None},
    }
    api = make_api(lambda request: reply(200, pages[request.url.params.get("cursor")]))
    items = api.iter_requests(status="pending", page_size=2)
    assert [item.id for item in items] == ["req_1", "req_2", "req_3"]
    assert [dict(sent.url.params) for sent in api.sent] == [
        {"status": "pending", "limit": "2"},
        {"status": "pending", "limit": "2", "cursor": "c2"},
        {"status": "pending", "limit": "2", "cursor": "c3"},
    ]


# Error mapping -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, ValidationFailed),
        (422, ValidationFailed),
        (401, Unauthorized),
        (403, Forbidden),
        (404, NotFound),
        (409, Conflict),
        (418, ApiError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
    ],
)
def test_error_bodies_map_to_exception_classes(
    make_api: Callable[..., Api], status: int, error_type: type[ApiError]
) -> None:
    details = [{"loc": ["body", "risk"], "msg": "unknown risk"}]
    api = make_api(
        scripted(reply(status, error_body("some_code", "went wrong", details))), retries=0
    )
    with pytest.raises(ApiError) as caught:
        api("get_request", "req_1")
    error = caught.value
    assert type(error) is error_type
    assert (error.status_code, error.code, error.message, error.details) == (
        status, "some_code", "went wrong", details,
    )  # fmt: skip
    assert str(error) == f"{status} some_code: went wrong"
    assert not isinstance(error, httpx.HTTPError)


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(404, text="<html>nope</html>"),
        httpx.Response(404, json={"detail": "Not Found"}),
        httpx.Response(404, json={"error": "flat string"}),
        httpx.Response(404, json=["a", "list"]),
    ],
    ids=["html", "other-json", "flat-error", "list"],
)
def test_unexpected_error_bodies_still_map_by_status(
    make_api: Callable[..., Api], response: httpx.Response
) -> None:
    api = make_api(scripted(response))
    with pytest.raises(NotFound) as caught:
        api("get_request", "req_1")
    assert (caught.value.code, caught.value.message, caught.value.details) == (
        "error", "Not Found", None,
    )  # fmt: skip


def test_a_conflict_on_decide_keeps_the_server_details(make_api: Callable[..., Api]) -> None:
    body = error_body("request_closed", "req_1 is approved", {"status": "approved"})
    api = make_api(scripted(reply(409, body)))
    with pytest.raises(Conflict) as caught:
        api("decide", "req_1", "reject", comment="too late")
    assert caught.value.code == "request_closed"
    assert caught.value.details == {"status": "approved"}


# Retries -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [502, 503, 504])
def test_get_is_retried_on_gateway_errors(
    make_api: Callable[..., Api], make_request: RequestFactory, status: int, backoffs: list[int]
) -> None:
    api = make_api(scripted(reply(status), reply(status), reply(200, make_request())))
    assert api("get_request", "req_1").id == make_request()["id"]
    assert len(api.sent) == 3
    assert backoffs == [0, 1]


def test_retries_are_bounded_then_the_server_error_is_raised(
    make_api: Callable[..., Api], backoffs: list[int]
) -> None:
    api = make_api(scripted(reply(503, error_body("unavailable", "draining"))), retries=2)
    with pytest.raises(ServerError) as caught:
        api("list_requests")
    assert (caught.value.status_code, caught.value.code) == (503, "unavailable")
    assert len(api.sent) == 3
    assert backoffs == [0, 1]


def test_a_500_is_not_retried(make_api: Callable[..., Api]) -> None:
    api = make_api(scripted(reply(500, error_body("bug", "boom"))))
    with pytest.raises(ServerError):
        api("get_request", "req_1")
    assert len(api.sent) == 1


def test_create_is_retried_with_the_same_idempotency_key(
    make_api: Callable[..., Api], make_request: RequestFactory
) -> None:
    api = make_api(scripted(reply(503), reply(502), reply(201, make_request())))
    assert api("create_request", CREATE).id == make_request()["id"]
    keys = {body["idempotency_key"] for body in api.bodies()}
    assert len(api.sent) == 3
    assert len(keys) == 1
    assert keys.pop().startswith("auto_")


@pytest.mark.parametrize(
    ("name", "args", "kwargs"),
    [
        ("decide", ("req_1", "approve"), {}),
        ("cancel", ("req_1",), {}),
        ("report_outcome", ("req_1", "executed"), {}),
    ],
)
def test_non_idempotent_calls_are_not_retried_on_503(
    make_api: Callable[..., Api], name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    api = make_api(scripted(reply(503)))
    with pytest.raises(ServerError):
        api(name, *args, **kwargs)
    assert len(api.sent) == 1


@pytest.mark.parametrize(
    ("name", "args"),
    [("decide", ("req_1", "approve")), ("create_request", (CREATE,)), ("get_request", ("req_1",))],
)
def test_a_refused_connection_is_retried_for_any_call(
    make_api: Callable[..., Api], make_request: RequestFactory, name: str, args: tuple[Any, ...]
) -> None:
    api = make_api(scripted(httpx.ConnectError, httpx.ConnectTimeout, reply(200, make_request())))
    assert api(name, *args).id == make_request()["id"]
    assert len(api.sent) == 3


def test_a_read_timeout_is_retried_only_for_idempotent_calls(
    make_api: Callable[..., Api], make_request: RequestFactory
) -> None:
    api = make_api(scripted(httpx.ReadTimeout, reply(200, make_request())))
    assert api("get_request", "req_1").status is Status.APPROVED
    assert len(api.sent) == 2
    api = make_api(scripted(httpx.ReadTimeout, reply(200, make_request())))
    with pytest.raises(TransportError, match="ReadTimeout"):
        api("decide", "req_1", "approve")
    assert len(api.sent) == 1


def test_transport_error_after_retries_is_not_an_httpx_type(make_api: Callable[..., Api]) -> None:
    api = make_api(scripted(httpx.ConnectError), retries=3)
    with pytest.raises(TransportError) as caught:
        api("decide", "req_1", "approve")
    assert len(api.sent) == 4
    assert not isinstance(caught.value, httpx.HTTPError)
    assert isinstance(caught.value, SignoffError)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert "POST /v1/requests/req_1/decisions" in str(caught.value)


def test_real_backoff_grows_with_jitter_and_is_capped() -> None:
    for _ in range(200):
        assert 0.125 <= REAL_BACKOFF(0) <= 0.375
        assert 0.5 <= REAL_BACKOFF(2) <= 1.5
        assert 2.0 <= REAL_BACKOFF(10) <= 6.0


# Waiting -----------------------------------------------------------------------------------------


class FakeClock:
    """Stands in for the `time` module inside signoff.client; each long-poll advances it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(signoff.client, "time", fake)
    return fake


def long_poll(clock: FakeClock, statuses: list[str], make_request: RequestFactory) -> Responder:
    """A server whose /wait holds for the requested time while the request is pending."""

    def respond(request: httpx.Request) -> httpx.Response:
        status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        if status == "pending":
            clock.now += float(request.url.params["timeout"])
            return reply(200, make_request(status="pending", decisions=[]))
        return reply(200, make_request(status=status))

    return respond


def test_wait_long_polls_until_the_request_is_closed(
    make_api: Callable[..., Api], make_request: RequestFactory, clock: FakeClock
) -> None:
    api = make_api(long_poll(clock, ["pending", "pending", "rejected"], make_request))
    assert api("wait", "req_1").status is Status.REJECTED
    assert [sent.url.params["timeout"] for sent in api.sent] == ["30.000", "30.000", "30.000"]
    read_timeouts = [sent.extensions["timeout"]["read"] for sent in api.sent]
    assert read_timeouts == [40.0, 40.0, 40.0]  # the long-poll plus the client's own timeout


def test_wait_raises_timeout_error_after_the_overall_timeout(
    make_api: Callable[..., Api], make_request: RequestFactory, clock: FakeClock
) -> None:
    api = make_api(long_poll(clock, ["pending"], make_request))
    with pytest.raises(signoff.TimeoutError, match="still pending after 65") as caught:
        api("wait", "req_1", timeout=65)
    assert isinstance(caught.value, builtins.TimeoutError)
    assert [sent.url.params["timeout"] for sent in api.sent] == ["30.000", "30.000", "5.000"]
    assert clock.now == 1065.0


def test_wait_returns_at_once_for_a_closed_request(
    make_api: Callable[..., Api], make_request: RequestFactory, clock: FakeClock
) -> None:
    api = make_api(long_poll(clock, ["approved"], make_request))
    assert api("wait", "req_1", timeout=5).status is Status.APPROVED
    assert [sent.url.params["timeout"] for sent in api.sent] == ["5.000"]


# Configuration and lifetime -----------------------------------------------------------------------


def test_configuration_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, make_request: RequestFactory
) -> None:
    monkeypatch.setenv("SIGNOFF_URL", "http://env.test/")
    monkeypatch.setenv("SIGNOFF_API_KEY", "sk_env")
    sent: list[httpx.Request] = []

    def respond(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return reply(200, make_request())

    with Client(transport=httpx.MockTransport(respond), headers={"x-trace": "t1"}) as client:
        client.get_request("req_1")
    assert str(sent[0].url) == "http://env.test/v1/requests/req_1"
    assert sent[0].headers["authorization"] == "Bearer sk_env"
    assert sent[0].headers["x-trace"] == "t1"


def test_a_base_url_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIGNOFF_URL", raising=False)
    with pytest.raises(ValueError, match="base_url"):
        Client()
    with pytest.raises(ValueError, match="base_url"):
        AsyncClient()


def test_without_an_api_key_no_authorization_is_sent(
    monkeypatch: pytest.MonkeyPatch, make_api: Callable[..., Api], fake_server: Responder
) -> None:
    monkeypatch.delenv("SIGNOFF_API_KEY", raising=False)
    api = make_api(fake_server, api_key=None)
    api("keys")
    assert "authorization" not in api.sent[0].headers


class ClosingTransport(httpx.MockTransport):
    def __init__(self) -> None:
        super().__init__(lambda request: reply(200, {}))
        self.closed = False

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.closed = True


def test_client_closes_its_own_pool_but_not_a_passed_one() -> None:
    own = ClosingTransport()
    with Client(base_url=BASE_URL, transport=own):
        pass
    assert own.closed
    passed = ClosingTransport()
    http = httpx.Client(transport=passed)
    with Client(base_url=BASE_URL, http_client=http) as client:
        assert client.keys() == {}
    assert not passed.closed
    http.close()


@pytest.mark.anyio
async def test_async_client_closes_its_own_pool_but_not_a_passed_one() -> None:
    own = ClosingTransport()
    async with AsyncClient(base_url=BASE_URL, transport=own):
        pass
    assert own.closed
    passed = ClosingTransport()
    async with httpx.AsyncClient(transport=passed) as http:
        async with AsyncClient(base_url=BASE_URL, http_client=http) as client:
            assert await client.keys() == {}
        assert not passed.closed


@pytest.mark.anyio
async def test_async_client_in_a_running_event_loop(make_request: RequestFactory) -> None:
    pages = {
        None: {"items": [make_request(id="req_1")], "next_cursor": "c2"},
        "c2": {"items": [make_request(id="req_2")], "next_cursor": None},
    }
    transport = httpx.MockTransport(lambda r: reply(200, pages[r.url.params.get("cursor")]))
    async with AsyncClient(base_url=BASE_URL, transport=transport) as client:
        ids = [item.id async for item in client.iter_requests()]
    assert ids == ["req_1", "req_2"]
