"""Errors the service layer raises; the HTTP layer turns them into `{error: {...}}` bodies."""

from __future__ import annotations

from typing import Any

__all__ = [
    "Conflict",
    "Forbidden",
    "Invalid",
    "NotFound",
    "ServiceError",
    "Unauthorized",
    "Unavailable",
]


class ServiceError(Exception):
    """A refusal with an HTTP status, a stable machine code and a human message."""

    status_code = 400
    default_code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = details


class Invalid(ServiceError):
    """The input is well-formed but not acceptable here; `details` names the field."""

    status_code = 422
    default_code = "invalid"

    def __init__(self, message: str, *, field: str, code: str | None = None) -> None:
        super().__init__(message, code=code, details=[{"loc": field.split("."), "msg": message}])


class Unauthorized(ServiceError):
    """No credentials, or unknown ones."""

    status_code = 401
    default_code = "unauthorized"


class Forbidden(ServiceError):
    """Known credentials that may not do this."""

    status_code = 403
    default_code = "forbidden"


class NotFound(ServiceError):
    """No such resource, or not visible to the caller."""

    status_code = 404
    default_code = "not_found"


class Conflict(ServiceError):
    """The state does not allow this (closed request, lost race, idempotency key reuse)."""

    status_code = 409
    default_code = "conflict"


class Unavailable(ServiceError):
    """The store cannot serve this right now (connection lost, disk full, locked): retry.

    Whatever the change was, it did not commit, or its outcome is unknown (a connection lost
    during COMMIT): a retry is safe, since creates carry idempotency keys and a second decision
    on a closed request is a 409.
    """

    status_code = 503
    default_code = "unavailable"
