"""The wire model: strict inputs with field-named errors, tolerant outputs, durations and ids."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from signoff import (
    Approvals,
    CallbackEvent,
    DecisionCreate,
    OutcomeReport,
    Page,
    Request,
    RequestCreate,
    Risk,
    Status,
    Verdict,
)
from signoff.durations import MAX_DURATION, format_duration, parse_duration
from signoff.ids import new_id
from signoff.models import MAX_ARGUMENTS_BYTES, MAX_CONTEXT_BYTES

# Each example takes microseconds; a loaded CI machine must not make it a flaky DeadlineExceeded.
no_deadline = settings(deadline=None)

RequestFactory = Callable[..., dict[str, Any]]
MINIMAL: dict[str, Any] = {
    "action": {"name": "payments.release", "arguments": {"invoice": "INV-1042"}},
    "business_object": {"type": "invoice", "id": "INV-1042"},
}


def errors_of(model: type[Any], data: dict[str, Any]) -> list[tuple[tuple[int | str, ...], str]]:
    """(loc, message) of every error `model` raises for `data`."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return [(tuple(error["loc"]), error["msg"]) for error in caught.value.errors()]


def the_error(model: type[Any], data: dict[str, Any]) -> tuple[tuple[int | str, ...], str]:
    errors = errors_of(model, data)
    assert len(errors) == 1, errors
    return errors[0]


def padding(size: int) -> dict[str, Any]:
    """A JSON object whose compact encoding is at least `size` bytes."""
    return {"blob": "x" * size}


# RequestCreate -----------------------------------------------------------------------------------


def test_minimal_request_gets_fail_closed_defaults() -> None:
    request = RequestCreate.model_validate(MINIMAL)
    assert request.risk is Risk.MEDIUM
    assert request.on_timeout == "reject"
    assert request.approvals == Approvals()
    assert request.allowed == [Verdict.APPROVE, Verdict.REJECT, Verdict.EDIT, Verdict.RESPOND]
    assert request.callback is None


@pytest.mark.parametrize(
    ("change", "loc", "message"),
    [
        ({"risk": "extreme"}, ("risk",), "'low', 'medium', 'high' or 'critical'"),
        ({"on_timeout": "ignore"}, ("on_timeout",), "'reject' or 'approve'"),
        ({"allowed": ["maybe", "reject"]}, ("allowed", 0), "'approve', 'reject', 'edit'"),
        ({"comment_required": "sometimes"}, ("comment_required",), "'never'"),
        ({"approvals": {"mode": "most_of"}}, ("approvals", "mode"), "'single'"),
        ({"action": {"name": "   "}}, ("action", "name"), "at least 1 character"),
        ({"action": {"name": ""}}, ("action", "name"), "at least 1 character"),
        ({"action": {"name": "rm -rf"}}, ("action", "name"), "match pattern"),
        ({"business_object": {"type": "invoice", "id": " "}}, ("business_object", "id"), "1"),
        ({"sla": "30m"}, ("sla",), "not an ISO-8601 duration"),
        ({"sla": "P1Y"}, ("sla",), "years and months"),
        ({"sla": "P2M"}, ("sla",), "years and months"),
        ({"sla": "PT0S"}, ("sla",), "longer than zero"),
        ({"sla": "P"}, ("sla",), "not an ISO-8601 duration"),
        ({"sla": "P1DT"}, ("sla",), "not an ISO-8601 duration"),
        ({"sla": "P99999999999W"}, ("sla",), "10 years"),
        ({"allowed": ["approve", "edit"]}, ("allowed",), "must include 'reject'"),
        ({"allowed": []}, ("allowed",), "at least 1 item"),
        ({"approvals": {"mode": "all_of"}}, ("approvals",), "needs 'roles'"),
        ({"approvals": {"mode": "single", "required": 2}}, ("approvals",), "'threshold'"),
        ({"approvals": {"mode": "threshold", "required": 0}}, ("approvals", "required"), "1"),
        ({"callback": {"url": "not a url"}}, ("callback", "url"), "URL"),
        ({"correlation": {"thread_id": 7}}, ("correlation", "thread_id"), "string"),
        ({"idempotency_key": ""}, ("idempotency_key",), "at least 1 character"),
    ],
    ids=lambda value: str(value)[:40] if isinstance(value, dict) else "",
)
def test_request_create_errors_name_the_field(
    change: dict[str, Any], loc: tuple[str | int, ...], message: str
) -> None:
    got_loc, got_message = the_error(RequestCreate, {**MINIMAL, **change})
    assert got_loc == loc
    assert message in got_message


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"priority": "urgent"}, ("priority",)),
        ({"action": {"name": "x", "args": {}}}, ("action", "args")),
        (
            {"business_object": {"type": "t", "id": "i", "owner": "me"}},
            ("business_object", "owner"),
        ),
        ({"agent": {"id": "agt_1", "model": "gpt"}}, ("agent", "model")),
        ({"route": {"role": "finance", "user": "bob"}}, ("route", "user")),
        ({"approvals": {"quorum": 2}}, ("approvals", "quorum")),
    ],
)
def test_unknown_fields_on_input_models_are_refused(
    change: dict[str, Any], loc: tuple[str, ...]
) -> None:
    got_loc, message = the_error(RequestCreate, {**MINIMAL, **change})
    assert (got_loc, message) == (loc, "Extra inputs are not permitted")


@pytest.mark.parametrize(
    ("change", "loc", "limit"),
    [
        ({"action": {"name": "x", "arguments": padding(MAX_ARGUMENTS_BYTES)}},
         ("action", "arguments"), MAX_ARGUMENTS_BYTES),
        ({"business_object": {"type": "t", "id": "i", "attributes": padding(MAX_ARGUMENTS_BYTES)}},
         ("business_object", "attributes"), MAX_ARGUMENTS_BYTES),
        ({"context": padding(MAX_CONTEXT_BYTES)}, ("context",), MAX_CONTEXT_BYTES),
    ],
    ids=["arguments", "attributes", "context"],
)  # fmt: skip
def test_oversize_payloads_are_refused_with_the_field_named(
    change: dict[str, Any], loc: tuple[str, ...], limit: int
) -> None:
    got_loc, message = the_error(RequestCreate, {**MINIMAL, **change})
    assert got_loc == loc
    assert f"the limit is {limit} bytes" in message


def test_payloads_just_under_the_limit_are_accepted() -> None:
    arguments = padding(MAX_ARGUMENTS_BYTES - len('{"blob":""}'))
    context = padding(MAX_CONTEXT_BYTES - len('{"blob":""}'))
    request = RequestCreate.model_validate(
        {**MINIMAL, "action": {"name": "x", "arguments": arguments}, "context": context}
    )
    assert request.action.arguments == arguments


def test_allowed_is_deduplicated_in_order() -> None:
    request = RequestCreate.model_validate({**MINIMAL, "allowed": ["reject", "approve", "reject"]})
    assert request.allowed == [Verdict.REJECT, Verdict.APPROVE]


def test_action_name_is_stripped_and_input_is_frozen() -> None:
    request = RequestCreate.model_validate({**MINIMAL, "action": {"name": "  crm.update  "}})
    assert request.action.name == "crm.update"
    with pytest.raises(ValidationError, match="frozen"):
        request.risk = Risk.LOW  # pyright: ignore[reportAttributeAccessIssue]


# Approvals ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        {"mode": "threshold", "required": 3},
        {"mode": "all_of", "roles": ["finance", "legal"]},
        {"mode": "any_of", "roles": ["finance"]},
        {"mode": "single", "separation_of_duties": False},
    ],
)
def test_consistent_approvals_are_accepted(data: dict[str, Any]) -> None:
    assert Approvals.model_validate(data).mode == data["mode"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"mode": "all_of"}, "mode 'all_of' needs 'roles'"),
        ({"mode": "all_of", "roles": []}, "mode 'all_of' needs 'roles'"),
        ({"mode": "single", "required": 3}, "mode 'single' takes exactly one approval"),
        ({"mode": "threshold", "required": 21}, "less than or equal to 20"),
    ],
)
def test_inconsistent_approvals_are_refused(data: dict[str, Any], message: str) -> None:
    (_, got_message) = the_error(Approvals, data)
    assert message in got_message


# DecisionCreate ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"verdict": "edit"}, "verdict 'edit' needs 'arguments'"),
        ({"verdict": "respond"}, "verdict 'respond' needs 'comment'"),
        ({"verdict": "respond", "comment": "   "}, "verdict 'respond' needs 'comment'"),
        ({"verdict": "approve", "arguments": {}}, "'arguments' belong only to verdict 'edit'"),
        ({"verdict": "reject", "arguments": {"a": 1}}, "not 'reject'"),
    ],
)
def test_decision_rules(data: dict[str, Any], message: str) -> None:
    _, got_message = the_error(DecisionCreate, data)
    assert message in got_message


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        ({"verdict": "maybe"}, ("verdict",)),
        ({}, ("verdict",)),
        ({"verdict": "edit", "arguments": padding(MAX_ARGUMENTS_BYTES)}, ("arguments",)),
        ({"verdict": "approve", "comment": "x" * 4001}, ("comment",)),
        ({"verdict": "reject", "reason_code": ""}, ("reason_code",)),
        ({"verdict": "approve", "by": "bob"}, ("by",)),
    ],
    ids=["unknown-verdict", "no-verdict", "oversize-edit", "long-comment", "empty-reason", "extra"],
)
def test_decision_field_errors_name_the_field(data: dict[str, Any], loc: tuple[str, ...]) -> None:
    got_loc, _ = the_error(DecisionCreate, data)
    assert got_loc == loc


@pytest.mark.parametrize(
    "data",
    [
        {"verdict": "approve"},
        {"verdict": "reject", "comment": "wrong vendor", "reason_code": "vendor_mismatch"},
        {"verdict": "edit", "arguments": {"amount": 1000}},
        {"verdict": "edit", "arguments": {}},
        {"verdict": "respond", "comment": "pay half now, half on delivery"},
    ],
)
def test_valid_decisions(data: dict[str, Any]) -> None:
    decision = DecisionCreate.model_validate(data)
    assert decision.model_dump(mode="json", exclude_none=True) == data


def test_outcome_report_refuses_unknown_status() -> None:
    assert the_error(OutcomeReport, {"status": "done"})[0] == ("status",)
    assert OutcomeReport.model_validate({"status": "executed"}).detail is None


# Output models -----------------------------------------------------------------------------------


def test_full_request_round_trips_through_json(make_request: RequestFactory) -> None:
    data = make_request()
    request = Request.model_validate(data)
    assert request.status is Status.APPROVED
    assert request.decisions[0].decided_by.user == "bob@example.com"
    assert request.policy is not None
    assert request.policy.version == "cfg_3f2a"
    again = Request.model_validate_json(request.model_dump_json())
    assert again == request
    dumped = request.model_dump(mode="json", exclude_none=True)
    assert dumped["decisions"][0]["verdict"] == "approve"
    assert dumped["business_object"]["url"] == data["business_object"]["url"]
    assert dumped["correlation"] == data["correlation"]


def test_output_models_ignore_unknown_top_level_fields(make_request: RequestFactory) -> None:
    request = Request.model_validate(make_request(added_in_a_later_server="x"))
    assert not hasattr(request, "added_in_a_later_server")


def test_effective_arguments_follow_an_edit_decision(make_request: RequestFactory) -> None:
    edit = {
        "id": "dec_2",
        "request_id": "req_1",
        "verdict": "edit",
        "arguments": {"invoice": "INV-1042", "amount": 1000},
        "decided_by": {"user": "bob@example.com"},
        "via": "api",
        "at": "2025-01-01T09:12:00Z",
    }
    request = Request.model_validate(make_request(decisions=[edit]))
    assert request.final_decision is not None
    assert request.final_decision.verdict is Verdict.EDIT
    assert request.effective_arguments == {"invoice": "INV-1042", "amount": 1000}


def test_effective_arguments_without_an_edit_are_the_original(make_request: RequestFactory) -> None:
    approved = Request.model_validate(make_request())
    assert approved.effective_arguments == approved.action.arguments
    pending = Request.model_validate(make_request(status="pending", decisions=[]))
    assert pending.final_decision is None
    assert pending.effective_arguments == pending.action.arguments


def test_page_and_callback_event_parse(make_request: RequestFactory) -> None:
    page = Page[Request].model_validate({"items": [make_request()], "next_cursor": "c2"})
    assert page.items[0].id == make_request()["id"]
    assert page.next_cursor == "c2"
    event = {"type": "request.decided", "id": "evt_1", "timestamp": "2025-01-01T00:00:00Z"}
    parsed = CallbackEvent.model_validate({**event, "data": {"request": make_request()}})
    assert parsed.data.request.status is Status.APPROVED
    with pytest.raises(ValidationError, match="type"):
        CallbackEvent.model_validate(
            {**event, "type": "request.deleted", "data": {"request": make_request()}}
        )


def test_enum_helpers() -> None:
    assert [risk.rank for risk in Risk] == [0, 1, 2, 3]
    assert [status.is_terminal for status in Status] == [False, True, True, True, True, True]


# Durations ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT30M", timedelta(minutes=30)),
        ("PT1H30M", timedelta(hours=1, minutes=30)),
        ("P1DT2H", timedelta(days=1, hours=2)),
        ("P2W", timedelta(weeks=2)),
        ("P1W2D", timedelta(days=9)),
        ("PT45S", timedelta(seconds=45)),
        ("PT0.5S", timedelta(milliseconds=500)),
        ("P3D", timedelta(days=3)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("30m", "not an ISO-8601 duration"),
        ("pt30m", "not an ISO-8601 duration"),
        ("", "not an ISO-8601 duration"),
        ("P", "not an ISO-8601 duration"),
        ("PT", "not an ISO-8601 duration"),
        ("P1DT", "not an ISO-8601 duration"),
        ("PT1.5M", "not an ISO-8601 duration"),
        ("-PT5M", "not an ISO-8601 duration"),
        ("P1Y", "years and months"),
        ("P1Y2M", "years and months"),
        ("P0D", "longer than zero"),
        ("PT0S", "longer than zero"),
        ("P99999999999W", "10 years"),
        ("PT" + "9" * 400 + "S", "10 years"),
    ],
)
def test_parse_duration_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(minutes=30), "PT30M"),
        (timedelta(hours=1, minutes=30), "PT1H30M"),
        (timedelta(days=1, hours=2), "P1DT2H"),
        (timedelta(weeks=2), "P14D"),
        (timedelta(seconds=90), "PT1M30S"),
        (timedelta(milliseconds=1500), "PT1.5S"),
        (timedelta(microseconds=1), "PT0.000001S"),
        (timedelta(days=2, seconds=1, microseconds=250_000), "P2DT1.25S"),
    ],
)
def test_format_duration(value: timedelta, text: str) -> None:
    assert format_duration(value) == text


@pytest.mark.parametrize("value", [timedelta(0), timedelta(seconds=-5)])
def test_format_duration_refuses_non_positive(value: timedelta) -> None:
    with pytest.raises(ValueError, match="longer than zero"):
        format_duration(value)


@no_deadline
@given(st.timedeltas(min_value=timedelta(microseconds=1), max_value=MAX_DURATION))
def test_format_then_parse_round_trips(value: timedelta) -> None:
    assert parse_duration(format_duration(value)) == value


@pytest.mark.parametrize("value", ["P3651D", "P99999999W", "PT999999999999H"])
def test_durations_beyond_ten_years_are_refused(value: str) -> None:
    # now + such a duration would overflow the deadline's date (a 500 on the server).
    with pytest.raises(ValueError, match="10 years"):
        parse_duration(value)


# Ids ---------------------------------------------------------------------------------------------

ID_PATTERN = re.compile(r"(?P<prefix>[a-z]+)_(?P<ulid>[0-9A-HJKMNP-TV-Z]{26})")
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


@pytest.mark.parametrize("prefix", ["req", "dec", "evt"])
def test_new_id_format(prefix: str) -> None:
    match = ID_PATTERN.fullmatch(new_id(prefix))
    assert match is not None
    assert match["prefix"] == prefix


def test_new_id_encodes_the_time_and_sorts_by_it() -> None:
    now_ms = 1_735_689_600_123
    ulid = new_id("req", now_ms=now_ms)[4:]
    decoded = 0
    for char in ulid[:10]:
        decoded = decoded * 32 + CROCKFORD.index(char)
    assert decoded == now_ms
    ids = [new_id("req", now_ms=now_ms + step) for step in (0, 1, 2, 1000, 86_400_000)]
    assert sorted(ids) == ids


def test_new_ids_are_unique() -> None:
    assert len({new_id("evt", now_ms=0) for _ in range(1000)}) == 1000


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_numbers_are_refused_with_the_field_named(bad: float) -> None:
    # Python's json accepts NaN; PostgreSQL's JSON type does not (it was a 500 on the server).
    with pytest.raises(ValidationError) as info:
        RequestCreate.model_validate(
            {
                "action": {"name": "payments.release", "arguments": {"amount": bad}},
                "business_object": {"type": "invoice", "id": "INV-1042"},
            }
        )
    (error,) = info.value.errors()
    assert error["loc"] == ("action", "arguments")
    assert "NaN or Infinity" in error["msg"]
