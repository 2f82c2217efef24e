"""Throttling of failed authentication (packages/server/src/signoff_server/throttle.py).

After `auth_failure_limit` failures within `auth_failure_window` seconds, from one client
address or against one credential (a bearer secret's prefix; a sign-in's email), failures are
answered 429 with Retry-After. A valid key or token is never refused for it; sign-ins are
refused before their password is checked. Missing credentials do not count. Clients are told
apart by X-Forwarded-For, which uvicorn honours from 127.0.0.1 (FORWARDED_ALLOW_IPS).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from signoff_server.inbox import routes as inbox_routes
from signoff_server.throttle import KEY_PREFIX_CHARS, AuthThrottle

from .conftest import PASSWORD, ROLE, Live, bearer, error_of, live_server, sign_in

LIMIT = 3
WINDOW = 5.0  # long enough for LIMIT argon2 sign-ins on a loaded machine


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_server(
        "sqlite",
        tmp_path_factory.mktemp("throttle"),
        auth_failure_limit=LIMIT,
        auth_failure_window=WINDOW,
    ) as server:
        yield server


@pytest.fixture
def http(live: Live) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=30) as client:
        yield client


def unknown() -> str:
    return "sk_" + secrets.token_urlsafe(32)


def call(http: httpx.Client, secret: str | None, client: str) -> httpx.Response:
    headers = {"X-Forwarded-For": client, **(bearer(secret) if secret else {})}
    return http.get("/v1/requests", headers=headers)


def assert_throttled(response: httpx.Response) -> int:
    assert response.status_code == 429, response.text
    assert error_of(response)["code"] == "too_many_failures"
    wait = int(response.headers["retry-after"])
    assert 1 <= wait <= WINDOW + 1
    return wait


def test_failures_from_one_client_are_throttled_and_valid_keys_are_not(
    live: Live, http: httpx.Client
) -> None:
    valid = live.agent_key()
    for _ in range(LIMIT):  # each with a key prefix of its own: only the address adds up
        answer = call(http, unknown(), "10.0.0.1")
        assert answer.status_code == 401, answer.text
        assert error_of(answer)["code"] == "invalid_credentials"
    assert_throttled(call(http, unknown(), "10.0.0.1"))
    assert_throttled(call(http, unknown(), "10.0.0.1"))
    assert call(http, valid, "10.0.0.1").status_code == 200  # the same client, a good key
    assert call(http, unknown(), "10.0.0.2").status_code == 401  # another client


def test_failures_against_one_key_prefix_are_throttled_from_any_client(
    live: Live, http: httpx.Client
) -> None:
    valid = live.agent_key()
    guesses = [valid[:KEY_PREFIX_CHARS] + secrets.token_urlsafe(24) for _ in range(LIMIT + 1)]
    for index, guess in enumerate(guesses[:LIMIT]):
        assert call(http, guess, f"10.1.0.{index}").status_code == 401
    assert_throttled(call(http, guesses[LIMIT], "10.1.0.99"))
    # Guessing under a key's prefix cannot lock the key's agent out.
    assert call(http, valid, "10.1.0.100").status_code == 200


def test_the_throttle_lifts_after_the_window(http: httpx.Client) -> None:
    for _ in range(LIMIT):
        assert call(http, unknown(), "10.2.0.1").status_code == 401
    wait = assert_throttled(call(http, unknown(), "10.2.0.1"))
    time.sleep(min(wait, WINDOW) + 0.2)
    assert call(http, unknown(), "10.2.0.1").status_code == 401


def test_missing_credentials_do_not_count(http: httpx.Client) -> None:
    for _ in range(LIMIT * 3):
        answer = call(http, None, "10.3.0.1")
        assert answer.status_code == 401
        assert error_of(answer)["code"] == "missing_credentials"
    assert call(http, unknown(), "10.3.0.1").status_code == 401


def test_the_audit_routes_are_throttled_too(http: httpx.Client) -> None:
    for _ in range(LIMIT):
        answer = http.get(
            "/v1/audit/checkpoint", headers={"X-Forwarded-For": "10.5.0.1", **bearer(unknown())}
        )
        assert answer.status_code == 401
    throttled = http.get(
        "/v1/audit/checkpoint", headers={"X-Forwarded-For": "10.5.0.1", **bearer(unknown())}
    )
    assert_throttled(throttled)


# Sign-in -------------------------------------------------------------------------------------


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every password the inbox checks (argon2 runs in the server thread of this process)."""
    checked: list[str] = []
    real = inbox_routes.verify_password  # pyright: ignore[reportPrivateImportUsage]

    def counting(password_hash: str | None, password: str) -> bool:
        checked.append(password)
        return real(password_hash, password)

    monkeypatch.setattr(inbox_routes, "verify_password", counting)
    return checked


def test_sign_in_is_refused_unchecked_once_throttled(live: Live, verifications: list[str]) -> None:
    email = live.person(f"bob-{secrets.token_hex(4)}@example.com", ROLE)
    with httpx.Client(base_url=live.url, timeout=30) as browser:
        for attempt in range(LIMIT):
            wrong = sign_in(browser, email, f"guess {attempt}", **{"X-Forwarded-For": "10.4.0.1"})
            assert wrong.status_code == 401
        assert len(verifications) == LIMIT
        right = sign_in(browser, email, PASSWORD, **{"X-Forwarded-For": "10.4.0.1"})
        assert right.status_code == 429
        assert "Too many failed sign-ins" in right.text
        assert 1 <= int(right.headers["retry-after"]) <= WINDOW + 1
        assert len(verifications) == LIMIT, "a throttled sign-in still ran argon2"
        assert browser.cookies.get("signoff_session") is None
        time.sleep(WINDOW + 0.2)
        assert (
            sign_in(browser, email, PASSWORD, **{"X-Forwarded-For": "10.4.0.1"}).status_code == 303
        )
        assert browser.get("/").status_code == 200


def test_an_account_under_attack_is_throttled_from_every_client(live: Live) -> None:
    """The documented trade-off: guessing one person's password from many addresses throttles
    that person's sign-in (for the window), not anyone else's."""
    alice = live.person(f"alice-{secrets.token_hex(4)}@example.com", ROLE)
    carol = live.person(f"carol-{secrets.token_hex(4)}@example.com", ROLE)
    with httpx.Client(base_url=live.url, timeout=30) as browser:
        for index in range(LIMIT):
            forwarded = {"X-Forwarded-For": f"10.6.0.{index}"}
            assert sign_in(browser, alice, "guess", **forwarded).status_code == 401
        fresh = {"X-Forwarded-For": "10.6.1.1"}
        assert sign_in(browser, alice, PASSWORD, **fresh).status_code == 429
        assert sign_in(browser, carol, PASSWORD, **fresh).status_code == 303


def test_throttling_can_be_turned_off(tmp_path: Path) -> None:
    with (
        live_server("sqlite", tmp_path, auth_failure_limit=0) as live,
        httpx.Client(base_url=live.url, timeout=30) as http,
    ):
        for _ in range(20):
            assert call(http, unknown(), "10.7.0.1").status_code == 401


# The counting itself ---------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_sliding_window_of_failures() -> None:
    clock = FakeClock()
    throttle = AuthThrottle(3, 60, clock=clock)
    keys = ["ip:a", "key:x"]
    for step in (0, 10, 10):  # failures at 1000, 1010, 1020: the limit
        clock.now += step
        assert throttle.failed(keys) is None
    assert throttle.blocked(keys) == 40  # until the one at 1000 leaves the window
    assert throttle.blocked(["ip:b", "key:y"]) is None  # other buckets are free
    assert throttle.failed(keys) == 50  # over: it counts too; now 1010, 1020, 1020 remain
    clock.now = 1065
    assert throttle.blocked(["ip:a"]) == 5
    clock.now = 1071  # 1010 left
    assert throttle.blocked(keys) is None
    assert throttle.failed(keys) is None
    assert throttle.failed(keys) == 9  # 1020 leaves at 1080


def test_either_bucket_throttles() -> None:
    throttle = AuthThrottle(2, 10, clock=FakeClock())
    throttle.failed(["ip:a", "key:1"])
    throttle.failed(["ip:b", "key:1"])
    assert throttle.failed(["ip:c", "key:1"]) is not None  # the key, from three addresses
    assert throttle.failed(["ip:c", "key:2"]) is None  # ip:c has one failure before this


def test_memory_stays_bounded_under_random_keys() -> None:
    clock = FakeClock()
    throttle = AuthThrottle(5, 60, clock=clock, max_keys=100)
    for index in range(10_000):
        throttle.failed([f"key:{index}"])
    assert len(throttle._failures) <= 100  # pyright: ignore[reportPrivateUsage]


def test_a_limit_of_zero_counts_nothing() -> None:
    throttle = AuthThrottle(0, 60, clock=FakeClock())
    assert not throttle.enabled
    assert all(throttle.failed(["ip:a"]) is None for _ in range(100))
    assert throttle.blocked(["ip:a"]) is None
