"""Request limits (packages/server/src/signoff_server/limits.py): body size, JSON nesting depth,
unparsable JSON and NUL characters are refused before the app sees them, with the API's error
body naming the problem, on SQLite and PostgreSQL.

(The cases that were strict xfails are in tests/server/test_bad_input.py and pass now.)
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signoff_server.limits import json_too_deep

from .conftest import Live, bearer, csrf_of, error_of, invoice, live_server

LIMIT = 4096
DEPTH = 8


@pytest.fixture(scope="module")
def small(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """A server with a 4 KiB body limit and a nesting limit of 8 (the settings knobs)."""
    with live_server(
        backend, tmp_path_factory.mktemp("limits"), max_body_bytes=LIMIT, max_json_depth=DEPTH
    ) as live:
        yield live


@pytest.fixture(scope="module")
def agent(small: Live) -> dict[str, str]:
    return {**bearer(small.agent_key()), "content-type": "application/json"}


def exactly(size: int, **extra: Any) -> bytes:
    """A valid create body of exactly `size` bytes (padded in `context`)."""
    body = invoice(context={"pad": ""}, **extra)
    bare = len(json.dumps(body).encode())
    body["context"]["pad"] = "x" * (size - bare)
    encoded = json.dumps(body).encode()
    assert len(encoded) == size
    return encoded


def nested(depth: int) -> dict[str, Any]:
    """A create body whose JSON nests exactly `depth` deep (the body object counts as 1)."""
    inner: Any = "deep"
    for _ in range(depth - 2):  # body { context { [ ... ] } }
        inner = [inner]
    return invoice(context={"n": inner})


def depth_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
    return 0


# Body size -------------------------------------------------------------------------------------


def test_a_body_at_the_limit_passes_and_one_byte_more_is_413(
    small: Live, agent: dict[str, str]
) -> None:
    with httpx.Client(base_url=small.url, timeout=30) as http:
        fits = http.post("/v1/requests", content=exactly(LIMIT), headers=agent)
        assert fits.status_code == 201, fits.text
        over = http.post("/v1/requests", content=exactly(LIMIT + 1), headers=agent)
    assert over.status_code == 413, over.text
    error = error_of(over)
    assert error["code"] == "body_too_large"
    assert str(LIMIT) in error["message"]
    assert error["details"][0]["loc"] == ["body"]


def test_an_announced_oversize_body_is_refused_before_it_is_sent(
    small: Live, agent: dict[str, str]
) -> None:
    """Content-Length over the limit: the answer comes without the server reading a byte of
    the body (none is sent here), so a client cannot make it buffer gigabytes."""
    host, port = small.url.removeprefix("http://").split(":")
    head = (
        "POST /v1/requests HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        f"Authorization: {agent['Authorization']}\r\n"
        "Content-Type: application/json\r\n"
        "Content-Length: 10737418240\r\n"  # 10 GiB
        "\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]


def test_a_chunked_body_is_cut_off_at_the_limit(small: Live, agent: dict[str, str]) -> None:
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:
        for _ in range(1000):  # 1000 x 1 KiB, no Content-Length
            sent.append(1024)
            yield b" " * 1024

    with httpx.Client(base_url=small.url, timeout=30) as http:
        try:
            response = http.post("/v1/requests", content=chunks(), headers=agent)
        except httpx.TransportError:  # the server may close before the client is done sending
            response = None
    assert sum(sent) < 1000 * 1024, "the server read the whole body"
    if response is not None:
        assert response.status_code == 413, response.text
        assert error_of(response)["code"] == "body_too_large"


def test_inbox_forms_have_the_limit_too(small: Live) -> None:
    with httpx.Client(base_url=small.url, timeout=30) as http:
        form = http.get("/login")
        answer = http.post(
            "/login",
            data={"email": "a@example.com", "password": "p" * LIMIT, "csrf": csrf_of(form.text)},
        )
    assert answer.status_code == 413
    assert error_of(answer)["code"] == "body_too_large"


def test_the_limits_are_in_the_api_contract(small: Live) -> None:
    with httpx.Client(base_url=small.url, timeout=30) as http:
        paths = http.get("/openapi.json").json()["paths"]
    for method, path in (("post", "/v1/requests"), ("post", "/v1/requests/{request_id}/decisions")):
        responses = paths[path][method]["responses"]
        assert {"413", "422", "429"} <= set(responses), (path, sorted(responses))


# JSON depth ------------------------------------------------------------------------------------


def test_nesting_at_the_limit_passes_and_one_level_more_is_422(
    small: Live, agent: dict[str, str]
) -> None:
    with httpx.Client(base_url=small.url, timeout=30) as http:
        assert depth_of(nested(DEPTH)) == DEPTH
        fits = http.post("/v1/requests", json=nested(DEPTH), headers=agent)
        assert fits.status_code == 201, fits.text
        deep = http.post("/v1/requests", json=nested(DEPTH + 1), headers=agent)
    assert deep.status_code == 422, deep.text
    error = error_of(deep)
    assert error["code"] == "json_too_deep"
    assert str(DEPTH) in error["message"]
    assert error["details"][0]["loc"] == ["body"]


@pytest.mark.parametrize(
    "text",
    ["[" * 500, "]" * 500 + "[" * 500, '\\"[[[[[[[[[[[[', "\\\\" + "{" * 50, '"' + "[" * 50],
    ids=["brackets", "closers first", "escaped quote", "escaped backslash", "quote"],
)
def test_brackets_inside_strings_do_not_count(
    small: Live, agent: dict[str, str], text: str
) -> None:
    with httpx.Client(base_url=small.url, timeout=30) as http:
        made = http.post("/v1/requests", json=invoice(summary=text), headers=agent)
    assert made.status_code == 201, made.text
    assert made.json()["summary"] == text


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ ,:ab'),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=30,
)


@given(value=values, limit=st.integers(min_value=1, max_value=12))
@settings(max_examples=200, deadline=None)
def test_the_depth_scan_agrees_with_a_parser(value: Any, limit: int) -> None:
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False, indent=1)):
        assert json_too_deep(text.encode(), limit) == (depth_of(value) > limit), text


@pytest.mark.parametrize(
    "body",
    [
        b'"\\' * 500_000,
        b'"' + b"\\\\" * 500_000,
        b"[" * 1_000_000,
        b'["' + b"[" * 999_000 + b'"]',
        b"1" * 1_000_000,
    ],
    ids=["escapes", "backslashes", "brackets", "string of brackets", "digits"],
)
def test_the_checks_stay_linear_on_hostile_bodies(small: Live, body: bytes) -> None:
    """No regular expression that backtracks: a 1 MB hostile body costs milliseconds."""
    started = time.perf_counter()
    json_too_deep(body, 32)
    assert time.perf_counter() - started < 2.0  # quadratic would take minutes
    with httpx.Client(base_url=small.url, timeout=30) as http:
        answer = http.post(
            "/v1/requests", content=body[: LIMIT - 1], headers={"content-type": "application/json"}
        )
    assert answer.status_code in (401, 422), answer.text  # refused, promptly, never a 500


# NUL characters in forms and the inbox's query strings (the API's are in test_bad_input.py) -----


def test_nul_in_a_form_field_is_422_naming_it(small: Live) -> None:
    with httpx.Client(base_url=small.url, timeout=30) as http:
        form = http.get("/login")
        answer = http.post(
            "/login",
            data={"email": "a\x00@example.com", "password": "x", "csrf": csrf_of(form.text)},
        )
    assert answer.status_code == 422, answer.text
    error = error_of(answer)
    assert error["code"] == "nul_character"
    assert error["details"][0]["loc"] == ["body", "email"]


def test_nul_in_an_inbox_query_is_422_naming_it(small: Live) -> None:
    with httpx.Client(base_url=small.url, timeout=30) as http:
        for path in ("/history?q=INV%00", "/?q=%00"):
            answer = http.get(path)
            assert answer.status_code == 422, answer.text
            assert error_of(answer)["details"][0]["loc"] == ["query", "q"]


# The defaults ----------------------------------------------------------------------------------


def test_the_defaults_are_on(tmp_path: Path) -> None:
    """1 MiB and 32 levels unless configured otherwise (the Settings defaults)."""
    with (
        live_server("sqlite", tmp_path) as live,
        httpx.Client(base_url=live.url, timeout=30) as http,
    ):
        headers = {**bearer(live.agent_key()), "content-type": "application/json"}
        big = http.post("/v1/requests", content=b" " * (1024 * 1024 + 1), headers=headers)
        assert big.status_code == 413, big.text
        deep = http.post("/v1/requests", json=nested(33), headers=headers)
        assert deep.status_code == 422, deep.text
        assert error_of(deep)["code"] == "json_too_deep"
        fits = http.post("/v1/requests", json=nested(32), headers=headers)
        assert fits.status_code == 201, fits.text
