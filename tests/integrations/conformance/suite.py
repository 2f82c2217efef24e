"""The adapter conformance suite: one scenario table every framework adapter runs.

Each scenario drives the reference scenario (DESIGN §12: `payments.release` of invoice INV-1042)
through an `AdapterDriver` against a real signoff server, and checks the adapter contract
(DESIGN §9): one request per gated call however often the framework re-runs the step, a resume
only from a verified callback for the exact pending step, each decision mapped onto the
framework (approve, edit, reject, respond, timeout), and the outcome reported after the action.

An adapter's tests run it like this (see tests/integrations/langgraph/test_conformance.py):

    @pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
    def test_conformance(scenario: Scenario, driver: MyDriver, harness: Harness) -> None:
        run_scenario(scenario, driver, harness)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from tests.integrations.conformance.driver import (
    AdapterDriver,
    Delivered,
    GatedCall,
    Paused,
    RunView,
    Setup,
)
from tests.integrations.conformance.harness import Harness

__all__ = ["ARGS", "EDITED", "SCENARIOS", "Scenario", "run_scenario"]

ARGS: dict[str, Any] = {
    "invoice_id": "INV-1042",
    "amount": "12500.00",
    "currency": "EUR",
    "vendor_account": "DE89370400440532013000",
}
"""The reference scenario's `payments.release` arguments."""
EDITED: dict[str, Any] = {**ARGS, "amount": "12250.00"}
"""The reviewer's correction in the edit scenario."""
OTHER: dict[str, Any] = {**ARGS, "invoice_id": "INV-1043", "amount": "800.00"}
"""A second payment in the same step."""
INSTRUCTION = "ask for the 2% early-payment discount first"


@dataclass(frozen=True)
class Scenario:
    """One row of the table: a name, what it shows, and the check itself."""

    name: str
    shows: str
    check: Callable[[AdapterDriver, Harness], None]

    def __str__(self) -> str:
        return self.name


def run_scenario(scenario: Scenario, driver: AdapterDriver, harness: Harness) -> None:
    """Run one scenario, or skip it with the driver's stated reason."""
    reason = driver.skip_reason(scenario.name)
    if reason is not None:
        pytest.skip(f"{driver.name} cannot run {scenario.name!r}: {reason}")
    scenario.check(driver, harness)


# Helpers ---------------------------------------------------------------------------------------


def _start(
    driver: AdapterDriver,
    h: Harness,
    calls: Sequence[GatedCall] = (GatedCall("call_1", ARGS),),
    *,
    sla: str | None = None,
    separate_process: bool = False,
) -> Paused:
    run = driver.start(
        Setup(
            calls=calls,
            sla=sla,
            callback_url=h.inbox_url,
            separate_process=separate_process,
        )
    )
    assert len(run.request_ids) == len(calls), "one request per gated call"
    for request_id, call in zip(run.request_ids, calls, strict=True):
        request = h.agent.get_request(request_id)
        assert request.status.value == "pending"
        assert request.action.name == "payments.release"
        assert dict(request.action.arguments) == dict(call.arguments)
        assert request.business_object.id == call.arguments["invoice_id"]
        assert request.correlation, "the framework's identity travels in the correlation"
    view = driver.view(run)
    assert view.paused, "the run waits at the gate"
    assert not view.executed, "nothing ran before a decision"
    return run


def _deliver_genuine(driver: AdapterDriver, h: Harness, run: Paused, request_id: str) -> Delivered:
    return driver.deliver(run, *h.delivery(request_id))


def _executed(view: RunView) -> list[dict[str, Any]]:
    return [dict(entry) for entry in view.executed]


def _one_request_per_call(h: Harness, run: Paused) -> None:
    """The framework re-ran the gated step on resume: still no second request."""
    made = [r.id for r in h.agent.iter_requests()]
    assert sorted(made) == sorted(run.request_ids), "a re-run must never create a request"


def _assert_resumed(got: Delivered) -> None:
    assert (got.status_code, got.outcome) == (200, "resumed"), got


def _assert_untouched(before: RunView, after: RunView) -> None:
    assert after.version == before.version, "a refused callback must not touch the run"
    assert _executed(after) == _executed(before)


# Scenarios -------------------------------------------------------------------------------------


def approve(driver: AdapterDriver, h: Harness) -> None:
    run = _start(driver, h)
    (request_id,) = run.request_ids
    h.decide(request_id, "approve", comment="matches PO-7781")
    _assert_resumed(_deliver_genuine(driver, h, run, request_id))
    view = driver.view(run)
    assert _executed(view) == [ARGS]
    assert not view.paused
    assert h.outcome(request_id) == "executed"
    _one_request_per_call(h, run)


def edit(driver: AdapterDriver, h: Harness) -> None:
    run = _start(driver, h)
    (request_id,) = run.request_ids
    h.decide(request_id, "edit", arguments=EDITED, comment="credit note CN-88 applies")
    _assert_resumed(_deliver_genuine(driver, h, run, request_id))
    assert _executed(driver.view(run)) == [EDITED], "the edited arguments ran, not the asked ones"
    assert h.outcome(request_id) == "executed"
    _one_request_per_call(h, run)


def reject(driver: AdapterDriver, h: Harness) -> None:
    run = _start(driver, h)
    (request_id,) = run.request_ids
    h.decide(request_id, "reject", comment="duplicate of INV-1007")
    _assert_resumed(_deliver_genuine(driver, h, run, request_id))
    view = driver.view(run)
    assert _executed(view) == []
    assert "duplicate of INV-1007" in view.told["call_1"], "the agent can read why"
    assert not view.paused
    assert h.outcome(request_id) == "skipped"


def respond(driver: AdapterDriver, h: Harness) -> None:
    run = _start(driver, h)
    (request_id,) = run.request_ids
    h.decide(request_id, "respond", comment=INSTRUCTION)
    _assert_resumed(_deliver_genuine(driver, h, run, request_id))
    view = driver.view(run)
    assert _executed(view) == []
    assert INSTRUCTION in view.told["call_1"], "the agent gets the reviewer's instruction"
    assert h.outcome(request_id) == "skipped"


def server_timeout(driver: AdapterDriver, h: Harness) -> None:
    run = _start(driver, h, sla="PT2S")
    (request_id,) = run.request_ids
    closed = h.wait_closed(request_id)
    assert closed.status.value == "expired"
    _assert_resumed(_deliver_genuine(driver, h, run, request_id))
    view = driver.view(run)
    assert _executed(view) == [], "a timeout fails closed"
    assert view.told["call_1"], "the agent is told it timed out"
    assert h.outcome(request_id) == "skipped"


def duplicate_callback(driver: AdapterDriver, h: Harness) -> None:
    run = _start(driver, h)
    (request_id,) = run.request_ids
    h.decide(request_id, "approve")
    delivery = h.delivery(request_id)
    _assert_resumed(driver.deliver(run, *delivery))
    again = driver.deliver(run, *delivery)
    assert (again.status_code, again.outcome) == (200, "duplicate"), again
    other_event = driver.deliver(run, *h.delivery(request_id, fresh=True))
    assert other_event.outcome in ("duplicate", "refused"), other_event
    assert other_event.status_code in (200, 409), other_event
    assert _executed(driver.view(run)) == [ARGS], "resumed once, executed once"


def step_not_pending(driver: AdapterDriver, h: Harness) -> None:
    run = _start(driver, h)
    (request_id,) = run.request_ids
    driver.abandon(run)
    before = driver.view(run)
    h.decide(request_id, "approve")
    got = _deliver_genuine(driver, h, run, request_id)
    assert got.outcome == "refused", got
    assert 400 <= got.status_code < 500, got
    _assert_untouched(before, driver.view(run))
    assert _executed(driver.view(run)) == []


def forged_signature(driver: AdapterDriver, h: Harness) -> None:
    run = _start(driver, h)
    (request_id,) = run.request_ids
    h.decide(request_id, "approve")
    before = driver.view(run)
    got = driver.deliver(run, *h.forged(request_id))
    assert (got.status_code, got.outcome) == (401, "unverified"), got
    _assert_untouched(before, driver.view(run))
    assert driver.view(run).paused
    _assert_resumed(_deliver_genuine(driver, h, run, request_id))  # the run was not harmed
    assert _executed(driver.view(run)) == [ARGS]


def stale_timestamp(driver: AdapterDriver, h: Harness) -> None:
    run = _start(driver, h)
    (request_id,) = run.request_ids
    h.decide(request_id, "approve")
    before = driver.view(run)
    got = driver.deliver(run, *h.stale(request_id))
    assert (got.status_code, got.outcome) == (401, "unverified"), got
    _assert_untouched(before, driver.view(run))
    _assert_resumed(_deliver_genuine(driver, h, run, request_id))
    assert _executed(driver.view(run)) == [ARGS]


def two_gated_calls(driver: AdapterDriver, h: Harness) -> None:
    calls = (GatedCall("call_a", ARGS), GatedCall("call_b", OTHER))
    run = _start(driver, h, calls)
    first, second = run.request_ids
    # Decided and delivered in the opposite order to the calls.
    h.decide(second, "reject", comment="not this one")
    early = _deliver_genuine(driver, h, run, second)
    assert (early.status_code, early.outcome) in ((200, "resumed"), (202, "queued")), early
    assert _executed(driver.view(run)) == []
    h.decide(first, "approve")
    _assert_resumed(_deliver_genuine(driver, h, run, first))
    view = driver.view(run)
    assert _executed(view) == [ARGS]
    assert "not this one" in view.told["call_b"]
    assert not view.paused
    assert (h.outcome(first), h.outcome(second)) == ("executed", "skipped")
    _one_request_per_call(h, run)


def separate_process(driver: AdapterDriver, h: Harness) -> None:
    run = _start(driver, h, separate_process=True)
    (request_id,) = run.request_ids
    h.decide(request_id, "approve")
    _assert_resumed(_deliver_genuine(driver, h, run, request_id))
    assert _executed(driver.view(run)) == [ARGS]
    assert h.outcome(request_id) == "executed"
    _one_request_per_call(h, run)


SCENARIOS: Sequence[Scenario] = (
    Scenario("approve", "approve → the action runs as asked; outcome executed", approve),
    Scenario("edit", "edit → the edited arguments run", edit),
    Scenario("reject", "reject → nothing runs; the agent reads the reason", reject),
    Scenario("respond", "respond → nothing runs; the agent gets the instruction", respond),
    Scenario("server_timeout", "SLA passes → expired, fails closed", server_timeout),
    Scenario("duplicate_callback", "the same callback twice → resumed once", duplicate_callback),
    Scenario(
        "step_not_pending", "callback for a step no longer pending → refused", step_not_pending
    ),
    Scenario("forged_signature", "wrong key → 401, run untouched", forged_signature),
    Scenario("stale_timestamp", "old timestamp → 401, run untouched", stale_timestamp),
    Scenario(
        "two_gated_calls", "two gated calls in one step, decided out of order", two_gated_calls
    ),
    Scenario("separate_process", "pause in one process, resume in another", separate_process),
)
