"""Fuzz every operation of the server's own OpenAPI document against a live server.

Schemathesis generates valid and invalid inputs from the app's generated OpenAPI document (the
one `/openapi.json` serves, checked below) and sends them, with real credentials (and sometimes
none), to the app served by uvicorn over SQLite. Examples are derandomized: every run sends the
same cases, so a failure reproduces. Every answer must be a non-5xx whose
status code the document declares for that operation and whose body matches the declared
schema. Path parameters are sometimes swapped for the id of a real request (pending or closed),
so the handlers run their full paths, not only the 404.

`test_fuzzer_detects_*` prove the same checks fail on a server that answers 500 or an
undocumented status.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import Case
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from signoff_server.db import Database, migrate
from signoff_server.errors import ServiceError
from signoff_server.lifecycle import Lifecycle
from signoff_server.settings import Settings

from .conftest import ServerThread, World, openapi_document

ROLE = "finance-approver"
MAX_EXAMPLES = 50

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]

CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
        # The coverage phase enumerates boundary values of every field (hundreds per operation);
        # random examples plus explicit ones keep the run to well under a minute.
        "phases": {"coverage": {"enabled": False}},
    }
)

FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
    phases=[Phase.explicit, Phase.generate, Phase.target, Phase.shrink],
)


@dataclass
class Target:
    """A live server with an agent, a reviewer holding the role, and an admin."""

    url: str
    agent: dict[str, str]
    reviewer: dict[str, str]
    admin: dict[str, str]

    def request(self, closed: bool) -> str:
        """A fresh request of the agent's, routed to ROLE; decided (rejected) if `closed`."""
        with httpx.Client(base_url=self.url, timeout=30) as http:
            body = {
                "action": {"name": "payments.release", "arguments": {"invoice_id": "INV-1042"}},
                "business_object": {"type": "invoice", "id": "INV-1042"},
                "route": {"role": ROLE},
            }
            created = http.post("/v1/requests", json=body, headers=self.agent)
            assert created.status_code == 201, created.text
            request_id: str = created.json()["id"]
            if closed:
                decided = http.post(
                    f"/v1/requests/{request_id}/decisions",
                    json={"verdict": "reject"},
                    headers=self.reviewer,
                )
                assert decided.status_code == 200, decided.text
        return request_id


def _serve(store: Path) -> Iterator[Target]:
    url = f"sqlite:///{store / 'signoff.db'}"
    migrate(url)
    db = Database(url)
    try:
        with ServerThread(Settings(database_url=url, timer_interval=0.1)) as server:
            world = World(server.url, db)

            def bearer(secret: str) -> dict[str, str]:
                return {"Authorization": f"Bearer {secret}"}

            yield Target(
                server.url,
                agent=bearer(world.agent_key(f"fuzz-{uuid.uuid4().hex[:6]}")),
                reviewer=bearer(world.reviewer_token(ROLE)),
                admin=bearer(world.reviewer_token("admin")),
            )
    finally:
        db.dispose()


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    yield from _serve(tmp_path_factory.mktemp("fuzz"))


def _document() -> dict[str, Any]:
    """The OpenAPI document the app generates."""
    return openapi_document()


def _load() -> Any:
    return schemathesis.openapi.from_dict(_document(), config=CONFIG)


schema = _load()


def test_fuzzed_document_is_the_one_served(target: Target) -> None:
    with httpx.Client(base_url=target.url, timeout=30) as http:
        served = http.get("/openapi.json")
    assert served.status_code == 200, served.text
    assert served.json() == _document()
    operations = {
        (path, method) for path, item in served.json()["paths"].items() for method in item
    }
    assert ("/v1/requests/{request_id}/decisions", "post") in operations
    assert len(operations) >= 8


def _owner(path: str) -> str:
    """Who normally calls an operation: reviewers decide, admins read the control map and the
    audit log, agents do the rest."""
    if path.endswith("/decisions"):
        return "reviewer"
    if path.startswith(("/v1/control-map", "/v1/audit")):
        return "admin"
    return "agent"


def _prepare(case: Case, target: Target, use: str, who: str) -> dict[str, str]:
    """Point the case at a real request when asked; the headers of the caller `who` (or the
    operation's usual caller for "owner")."""
    path = case.operation.path
    if "{request_id}" in path and use != "generated":
        # A long-poll on a pending request would wait out its timeout: give it a closed one.
        closed = use == "closed" or path.endswith("/wait")
        case.path_parameters = {
            **(case.path_parameters or {}),
            "request_id": target.request(closed),
        }
    return getattr(target, _owner(path) if who == "owner" else who)


UVICORN_REFUSAL = "Invalid HTTP request received."
"""The plain-text body of uvicorn's own 400, sent when its parser refuses a request."""

SEEN: defaultdict[str, Counter[int]] = defaultdict(Counter)
"""Status codes answered per operation during the fuzz run."""


def check(case: Case, target: Target, headers: dict[str, str]) -> None:
    """Send the case and run every check on the answer."""
    if case.operation.schema.is_security_param_negated(case):
        headers = {}  # a negative case without (or with a mangled) Authorization: leave it so
    response = case.call(base_url=target.url, headers=headers)
    SEEN[case.operation.label][response.status_code] += 1
    if response.status_code == 400 and response.text == UVICORN_REFUSAL:
        # Bytes that are not HTTP (a generated header such as an empty Content-Length): the
        # server's HTTP parser refused them, the app never saw a request to answer.
        return
    case.validate_response(response, checks=CHECKS, headers=headers)


@schema.parametrize()
@FUZZ_SETTINGS
@schema.given(
    use=st.sampled_from(["generated", "pending", "closed"]),
    who=st.sampled_from(["owner", "owner", "owner", "agent", "reviewer", "admin"]),
)
def test_every_operation(case: Case, target: Target, use: str, who: str) -> None:
    check(case, target, _prepare(case, target, use, who))


def test_fuzzing_reached_the_handlers() -> None:
    """The fuzz run above got past authentication on every operation (and was also refused
    without it); every requests operation answered at least one 2xx. Run alone, this has
    nothing to look at."""
    if not SEEN:
        pytest.skip("runs after test_every_operation, in the same session")
    secured: dict[str, bool] = {
        f"{method.upper()} {path}": bool(operation.get("security"))
        for path, item in _document()["paths"].items()
        for method, operation in item.items()
    }
    assert set(SEEN) >= set(secured)
    for label, statuses in SEEN.items():
        if secured[label]:
            assert statuses[401], (label, statuses)
            assert set(statuses) - {401}, (label, statuses)
        if " /v1/requests" in label or not secured[label]:
            assert any(200 <= code < 300 for code in statuses), (label, statuses)


# The fuzzer can fail ------------------------------------------------------------------------


def _fuzz_decisions(target: Target) -> list[str]:
    """Fuzz POST …/decisions a little, as above; the codes of the failures found (ST…)."""
    operation = _load()["/v1/requests/{request_id}/decisions"]["POST"]

    @given(case=operation.as_strategy(), use=st.sampled_from(["pending", "closed"]))
    @settings(FUZZ_SETTINGS, max_examples=10, phases=[Phase.generate])
    def run(case: Case, use: str) -> None:
        check(case, target, _prepare(case, target, use, "owner"))

    try:
        run()
    except schemathesis.errors.FailureGroup as group:
        return sorted(failure.code for failure in group.exceptions)
    except AssertionError as failure:
        return [str(getattr(failure, "code", failure))]
    return []


@pytest.fixture
def own_target(tmp_path: Path) -> Iterator[Target]:
    yield from _serve(tmp_path)


def test_fuzzer_detects_a_server_error(own_target: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(Lifecycle, "decide", broken)
    # The server logs a traceback per 500, in its own thread, while Hypothesis formats its
    # report in this one: on CPython 3.11.7 both parse source with `ast`, whose recursion
    # bookkeeping is process-global (python/cpython#106905), so the two can collide in a
    # "SystemError: AST constructor recursion depth mismatch". Nothing here needs those logs.
    for name in ("uvicorn.error", "signoff.server"):
        monkeypatch.setattr(logging.getLogger(name), "disabled", True)
    assert "ST101" in _fuzz_decisions(own_target)  # Server error


def test_fuzzer_detects_an_undocumented_status(
    own_target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Teapot(ServiceError):
        status_code = 418

    def teapot(*_: object, **__: object) -> None:
        raise Teapot("short and stout", code="teapot")

    monkeypatch.setattr(Lifecycle, "decide", teapot)
    assert "ST103" in _fuzz_decisions(own_target)  # Undocumented status code


def test_fuzzer_passes_an_intact_server(own_target: Target) -> None:
    assert _fuzz_decisions(own_target) == []
