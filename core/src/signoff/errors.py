"""Every exception signoff raises, in one rooted tree.

    SignoffError
    ├── ApiError                 the server answered with an error (status_code, code, details)
    │   ├── ValidationFailed     400 / 422: the request body or a parameter was refused
    │   ├── Unauthorized         401: missing or unknown credentials
    │   ├── Forbidden            403: authenticated, but not allowed to do this
    │   ├── NotFound             404: no such request (or not visible to these credentials)
    │   ├── Conflict             409: closed request, lost decision race, idempotency key reuse
    │   └── ServerError          5xx after retries
    ├── TransportError           the server could not be reached (after retries)
    ├── SignatureError           a callback failed verification: fail closed, never act on it
    ├── CallbackRefused          a verified callback for a step that is no longer pending
    └── TimeoutError             no decision within the caller's overall wait
                                 (also a builtins.TimeoutError)

Public errors never subclass httpx types, so callers need not import httpx to handle them.
"""

from __future__ import annotations

import builtins
from typing import Any

__all__ = [
    "ApiError",
    "CallbackRefused",
    "Conflict",
    "Forbidden",
    "NotFound",
    "ServerError",
    "SignatureError",
    "SignoffError",
    "TimeoutError",
    "TransportError",
    "Unauthorized",
    "ValidationFailed",
]


class SignoffError(Exception):
    """Root of every exception signoff raises."""


class ApiError(SignoffError):
    """The signoff server answered with an error status.

    `code` and `details` come from the server's `{"error": {code, message, details}}` body.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str = "error",
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        self.details = details

    def __str__(self) -> str:
        return f"{self.status_code} {self.code}: {self.message}"


class ValidationFailed(ApiError):
    """The server refused the input (400/422); `details` names the fields."""


class Unauthorized(ApiError):
    """Missing, malformed or unknown credentials (401)."""


class Forbidden(ApiError):
    """The credentials are valid but may not do this (403)."""


class NotFound(ApiError):
    """No such resource, or not visible to these credentials (404)."""


class Conflict(ApiError):
    """The request is closed, a concurrent decision won, or an idempotency key was reused (409)."""


class ServerError(ApiError):
    """The server failed (5xx), and retrying did not help."""


class TransportError(SignoffError):
    """The server could not be reached (connection refused, reset, timed out) after retries."""


class SignatureError(SignoffError):
    """A webhook failed verification: malformed headers, wrong key, stale timestamp, changed body.

    Every verification failure raises this and nothing else, so one `except` fails closed.
    """


class CallbackRefused(SignoffError):
    """A verified callback the receiver will not act on: its step was already answered or is no
    longer pending. Receivers answer 409, which tells signoff to stop retrying."""


class TimeoutError(SignoffError, builtins.TimeoutError):
    """No decision arrived within the overall time the caller was willing to wait."""


_STATUS_ERRORS: dict[int, type[ApiError]] = {
    400: ValidationFailed,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: ValidationFailed,
}


def error_for_status(status_code: int) -> type[ApiError]:
    """The ApiError subclass that stands for an HTTP status code."""
    if status_code >= 500:
        return ServerError
    return _STATUS_ERRORS.get(status_code, ApiError)
