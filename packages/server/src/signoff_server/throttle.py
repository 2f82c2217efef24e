"""Throttling of failed authentication: per client address and per credential.

Every failed authentication — an unknown or revoked `sk_…` / `pt_…` secret, a wrong password at
the inbox's sign-in — counts against two buckets: the client's address, and the credential (the
first `KEY_PREFIX_CHARS` characters of a bearer secret; the email of a sign-in). Once a bucket
holds `limit` failures within the last `window` seconds:

- a bearer secret that fails is answered 429 `too_many_failures` with `Retry-After` instead of
  401. A secret that is valid is still accepted: keys and tokens are 256-bit random, so nobody
  guesses one, and nobody can lock an agent out by sending garbage under its key's prefix or
  from behind the same proxy;
- a sign-in is refused with 429 before its password is checked (passwords can be guessed, and
  argon2 is costly), until the window has passed. A successful sign-in resets nothing.

Counts live in this process's memory: each replica counts on its own, and a restart forgets
them. A client that keeps failing while throttled stays throttled (its failures still count).
The client's address is the one uvicorn reports, which honours `X-Forwarded-For` only from the
proxies in `FORWARDED_ALLOW_IPS` (default 127.0.0.1): behind a load balancer, name it there, or
every client shares the balancer's address.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from signoff_server.errors import ServiceError

__all__ = [
    "KEY_PREFIX_CHARS",
    "AuthThrottle",
    "TooManyFailures",
    "bearer_failed",
    "install_throttle",
    "sign_in_failed",
    "sign_in_throttled",
]

KEY_PREFIX_CHARS = 12
"""`sk_` or `pt_` and 9 more characters: enough to tell keys apart, far too few to matter."""

log = logging.getLogger("signoff.auth")


class TooManyFailures(ServiceError):
    """Too many failed authentications from this client or for this credential."""

    status_code = 429
    default_code = "too_many_failures"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"too many failed authentications; try again in {retry_after} s",
            details=[{"loc": ["header", "authorization"], "retry_after": retry_after}],
        )
        self.retry_after = retry_after


class AuthThrottle:
    """Sliding-window counts of failures per bucket key; thread-safe, bounded in memory."""

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        if limit < 0 or window <= 0:
            raise ValueError("the failure limit must be >= 0 and the window > 0 seconds")
        self.limit = limit
        self.window = window
        self.clock = clock
        self.max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}
        self._logged: dict[str, float] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """False when the limit is 0."""
        return self.limit > 0

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is not None:
            while times and times[0] <= now - self.window:
                times.popleft()
        return times

    def _wait(self, times: deque[float] | None, now: float) -> int | None:
        if times is None or len(times) < self.limit:
            return None
        return max(1, math.ceil(times[0] + self.window - now))

    def blocked(self, keys: Sequence[str]) -> int | None:
        """Seconds until any of `keys` may try again, or None if none is throttled."""
        if not self.enabled:
            return None
        now = self.clock()
        with self._lock:
            waits = [w for key in keys if (w := self._wait(self._recent(key, now), now))]
        return max(waits, default=None)

    def failed(self, keys: Sequence[str]) -> int | None:
        """Count one failure against every key; the seconds to wait if one is now throttled
        (it was at its limit already), else None."""
        if not self.enabled:
            return None
        now = self.clock()
        waits: list[int] = []
        with self._lock:
            for key in keys:
                times = self._recent(key, now)
                over = times is not None and len(times) >= self.limit
                if times is None:
                    self._make_room(now)
                    times = self._failures[key] = deque(maxlen=self.limit)
                times.append(now)
                if over:
                    waits.append(self._wait(times, now) or 1)
                    self._announce(key, now)
        return max(waits, default=None)

    def _make_room(self, now: float) -> None:
        if len(self._failures) < self.max_keys:
            return
        stale = now - self.window
        for key in [k for k, times in self._failures.items() if not times or times[-1] <= stale]:
            del self._failures[key]
        if len(self._failures) >= self.max_keys:  # all recent: forget the older half
            for key in list(self._failures)[: self.max_keys // 2]:
                del self._failures[key]

    def _announce(self, key: str, now: float) -> None:
        if self._logged.get(key, -math.inf) > now - self.window:
            return
        if len(self._logged) >= self.max_keys:
            self._logged.clear()
        self._logged[key] = now
        kind, _, value = key.partition(":")
        # Never the credential itself: the address, or only which kind of bucket tripped.
        log.warning(
            "authentication failures over the limit",
            extra={"bucket": kind, "client": value if kind == "ip" else None},
        )


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _throttle(request: Request) -> AuthThrottle | None:
    throttle = getattr(request.app.state, "auth_throttle", None)
    return throttle if isinstance(throttle, AuthThrottle) else None


def bearer_failed(request: Request, secret: str) -> None:
    """Count a bearer secret that did not authenticate; raise TooManyFailures (429) if this
    client or this key prefix is over the limit. Call it only for failures."""
    throttle = _throttle(request)
    if throttle is None:
        return
    wait = throttle.failed([f"ip:{_client(request)}", f"key:{secret[:KEY_PREFIX_CHARS]}"])
    if wait is not None:
        raise TooManyFailures(wait)


def _sign_in_keys(request: Request, email: str) -> list[str]:
    return [f"ip:{_client(request)}", f"user:{email}"]


def sign_in_throttled(request: Request, email: str) -> int | None:
    """Seconds a sign-in from this client or for this email must wait, or None to go ahead."""
    throttle = _throttle(request)
    return None if throttle is None else throttle.blocked(_sign_in_keys(request, email))


def sign_in_failed(request: Request, email: str) -> None:
    """Count a failed sign-in (wrong email or password)."""
    throttle = _throttle(request)
    if throttle is not None:
        throttle.failed(_sign_in_keys(request, email))


def install_throttle(app: FastAPI, limit: int, window: float) -> None:
    """Give `app` its throttle and the handler that answers TooManyFailures with Retry-After."""
    app.state.auth_throttle = AuthThrottle(limit, window)

    async def too_many(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, TooManyFailures)
        body = {"error": {"code": exc.code, "message": exc.message, "details": exc.details}}
        return JSONResponse(body, status_code=429, headers={"retry-after": str(exc.retry_after)})

    app.add_exception_handler(TooManyFailures, too_many)
