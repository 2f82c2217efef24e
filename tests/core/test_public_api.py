"""The public surface of `signoff` is pinned: changing it must be a deliberate edit here."""

from __future__ import annotations

import builtins
import inspect

import httpx
import pytest

import signoff
import signoff.errors

SIGNOFF_ALL = [
    "Action",
    "AgentRef",
    "ApiError",
    "ApprovalMode",
    "Approvals",
    "AsyncClient",
    "AuditEvent",
    "BusinessObject",
    "CallbackEvent",
    "CallbackReceiver",
    "CallbackRefused",
    "CallbackStatus",
    "CallbackTarget",
    "Client",
    "CommentRequired",
    "Conflict",
    "Decision",
    "DecisionCreate",
    "DecisionVia",
    "Forbidden",
    "NotFound",
    "Outcome",
    "OutcomeReport",
    "OutcomeStatus",
    "Page",
    "Request",
    "RequestCreate",
    "Risk",
    "Route",
    "ServerError",
    "SignatureError",
    "SignoffError",
    "Status",
    "TimeoutError",
    "TimeoutOutcome",
    "TransportError",
    "Unauthorized",
    "ValidationFailed",
    "Verdict",
    "Verifier",
    "__version__",
]

ERRORS_ALL = [
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

API_ERRORS = [
    signoff.ValidationFailed,
    signoff.Unauthorized,
    signoff.Forbidden,
    signoff.NotFound,
    signoff.Conflict,
    signoff.ServerError,
]


def test_signoff_all_is_pinned() -> None:
    assert sorted(signoff.__all__) == SIGNOFF_ALL
    assert len(set(signoff.__all__)) == len(signoff.__all__)


@pytest.mark.parametrize("name", SIGNOFF_ALL)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(signoff, name) is not None


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from signoff import *", namespace)  # noqa: S102 - a fixed statement
    assert sorted(name for name in namespace if name != "__builtins__") == SIGNOFF_ALL


def test_errors_all_is_pinned_and_re_exported() -> None:
    assert sorted(signoff.errors.__all__) == ERRORS_ALL
    for name in ERRORS_ALL:
        assert getattr(signoff, name) is getattr(signoff.errors, name)


def test_version_is_a_string() -> None:
    assert isinstance(signoff.__version__, str)
    assert signoff.__version__.count(".") >= 2


@pytest.mark.parametrize("error", API_ERRORS, ids=lambda error: error.__name__)
def test_api_errors_are_api_errors(error: type[signoff.ApiError]) -> None:
    assert error.__bases__ == (signoff.ApiError,)


@pytest.mark.parametrize(
    "error",
    [
        signoff.ApiError,
        signoff.TransportError,
        signoff.SignatureError,
        signoff.CallbackRefused,
        signoff.TimeoutError,
    ],
    ids=lambda error: error.__name__,
)
def test_the_branches_hang_off_signoff_error(error: type[Exception]) -> None:
    assert signoff.SignoffError in error.__bases__


def test_every_error_is_a_signoff_error_and_none_is_an_httpx_error() -> None:
    classes = [getattr(signoff.errors, name) for name in ERRORS_ALL]
    assert all(inspect.isclass(cls) and issubclass(cls, signoff.SignoffError) for cls in classes)
    for cls in classes:
        assert not any(base.__module__.startswith("httpx") for base in cls.__mro__), cls
        assert not issubclass(cls, httpx.HTTPError), cls


def test_timeout_error_is_also_the_builtin_one() -> None:
    assert issubclass(signoff.TimeoutError, builtins.TimeoutError)
    assert signoff.TimeoutError is not builtins.TimeoutError
    with pytest.raises(builtins.TimeoutError):
        raise signoff.TimeoutError("still pending")


def test_api_error_keeps_what_the_server_said() -> None:
    error = signoff.NotFound("no such request", status_code=404, code="not_found", details={"x": 1})
    assert (error.message, error.status_code, error.code, error.details) == (
        "no such request", 404, "not_found", {"x": 1},
    )  # fmt: skip
    assert str(error) == "404 not_found: no such request"


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, signoff.ValidationFailed),
        (401, signoff.Unauthorized),
        (403, signoff.Forbidden),
        (404, signoff.NotFound),
        (409, signoff.Conflict),
        (422, signoff.ValidationFailed),
        (429, signoff.ApiError),
        (500, signoff.ServerError),
        (599, signoff.ServerError),
    ],
)
def test_error_for_status(status: int, error: type[signoff.ApiError]) -> None:
    assert signoff.errors.error_for_status(status) is error
