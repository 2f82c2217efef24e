"""Shift coverage: examples across DST, and hypothesis properties of the invariants."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signoff_server.policy.shifts import (
    OnShift,
    Override,
    Rotation,
    Schedule,
    Turn,
    TurnUnit,
    Window,
    coverage,
    gaps,
    local_to_utc,
    parse_turn,
    turn_index,
    turn_start,
    who_is_on_shift,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",  # 30-minute DST shift
    "Asia/Kolkata",  # +05:30, no DST
    "America/Santiago",  # southern hemisphere DST
    "Pacific/Chatham",  # +12:45 / +13:45
]
US = 1 / 1_000_000


def daily(anchor: datetime, *groups: str, **kwargs: object) -> Rotation:
    return Rotation(
        "daily",
        anchor,
        Turn(1, "days"),
        tuple((g,) for g in groups),
        **kwargs,  # type: ignore[arg-type]
    )


# --- examples -----------------------------------------------------------------------------------


def test_parse_turn() -> None:
    assert parse_turn("PT12H") == Turn(12, "hours")
    assert parse_turn("P1D") == Turn(1, "days")
    assert parse_turn("P2W") == Turn(2, "weeks")
    for bad in ("PT30M", "P1DT2H", "1d", "P0D"):
        with pytest.raises(ValueError, match="turn"):
            parse_turn(bad)


def test_daily_handoff_keeps_the_local_hour_across_both_dst_changes() -> None:
    rotation = daily(datetime(2026, 3, 20, 9, 0), "alice", "bob")
    schedule = Schedule(BERLIN, (rotation,))
    for k in range(240):
        start = turn_start(rotation, BERLIN, k)
        local = start.astimezone(BERLIN)
        assert (local.hour, local.minute) == (9, 0)
        assert who_is_on_shift(schedule, start).people == (("alice",), ("bob",))[k % 2]
    # 29 March 2026: clocks go forward, the day has 23 hours; 25 October: 25 hours.
    spring = turn_start(rotation, BERLIN, 9) - turn_start(rotation, BERLIN, 8)
    autumn = turn_start(rotation, BERLIN, 219) - turn_start(rotation, BERLIN, 218)
    assert spring == timedelta(hours=23)
    assert autumn == timedelta(hours=25)


def test_hour_turns_are_elapsed_time() -> None:
    rotation = Rotation("12h", datetime(2026, 3, 28, 20, 0), Turn(12, "hours"), (("a",), ("b",)))
    first = turn_start(rotation, BERLIN, 0)
    assert turn_start(rotation, BERLIN, 1) - first == timedelta(hours=12)
    # Across the spring change the local hand-off moves from 20:00/08:00 to 21:00/09:00.
    assert turn_start(rotation, BERLIN, 1).astimezone(BERLIN).hour == 9


def test_skipped_and_repeated_wall_times() -> None:
    # 02:30 does not exist on 29 March 2026 in Berlin: it maps to the change (03:00 CEST).
    assert local_to_utc(datetime(2026, 3, 29, 2, 30), BERLIN) == datetime(
        2026, 3, 29, 1, tzinfo=UTC
    )
    # 02:30 happens twice on 25 October: the first occurrence (CEST).
    assert local_to_utc(datetime(2026, 10, 25, 2, 30), BERLIN) == datetime(
        2026, 10, 25, 0, 30, tzinfo=UTC
    )
    # A rotation anchored at 02:30 hands off at the change that day, 02:30 on the others.
    rotation = daily(datetime(2026, 3, 27, 2, 30), "a", "b")
    starts = [turn_start(rotation, BERLIN, k).astimezone(BERLIN) for k in range(4)]
    assert [(s.day, s.hour, s.minute) for s in starts] == [
        (27, 2, 30),
        (28, 2, 30),
        (29, 3, 0),
        (30, 2, 30),
    ]


def test_windows_priorities_and_overrides() -> None:
    office = Rotation(
        "office",
        datetime(2026, 1, 5, 0, 0),
        Turn(1, "weeks"),
        (("alice",), ("bob",)),
        windows=(Window(frozenset(range(5)), 9 * 60, 17 * 60),),
        priority=10,
    )
    night = Rotation(
        "night",
        datetime(2026, 1, 5, 0, 0),
        Turn(1, "days"),
        (("carol",),),
        windows=(Window(frozenset(range(7)), 22 * 60, 6 * 60),),
    )
    override = Override(
        datetime(2026, 1, 7, 12, tzinfo=BERLIN), datetime(2026, 1, 7, 13, tzinfo=BERLIN), ("dave",)
    )
    schedule = Schedule(BERLIN, (night, office), (override,))

    def at(day: int, hour: int, minute: int = 0) -> OnShift:
        return who_is_on_shift(schedule, datetime(2026, 1, day, hour, minute, tzinfo=BERLIN))

    assert at(5, 9) == OnShift(("alice",), "rotation:office")
    assert at(12, 16, 59) == OnShift(("bob",), "rotation:office")
    assert at(12, 17) == OnShift((), "gap")  # half-open: 17:00 is outside the window
    assert at(12, 23) == OnShift(("carol",), "rotation:night")
    assert at(13, 5, 59) == OnShift(("carol",), "rotation:night")  # past midnight
    assert at(13, 6) == OnShift((), "gap")
    assert at(10, 12) == OnShift((), "gap")  # Saturday: no office window
    assert at(7, 12, 30) == OnShift(("dave",), "override")
    assert at(7, 13) == OnShift(("alice",), "rotation:office")

    found = gaps(
        schedule, datetime(2026, 1, 12, 0, tzinfo=BERLIN), datetime(2026, 1, 13, 0, tzinfo=BERLIN)
    )
    assert [(g.start.astimezone(BERLIN).hour, g.end.astimezone(BERLIN).hour) for g in found] == [
        (6, 9),
        (17, 22),
    ]


def test_before_the_anchor_and_after_until_nobody_is_on_shift() -> None:
    until = datetime(2026, 1, 10, 9, tzinfo=BERLIN)
    rotation = daily(datetime(2026, 1, 5, 9, 0), "a", until=until)
    schedule = Schedule(BERLIN, (rotation,))
    assert who_is_on_shift(schedule, datetime(2026, 1, 5, 8, 59, tzinfo=BERLIN)).is_gap
    assert who_is_on_shift(schedule, datetime(2026, 1, 10, 8, 59, tzinfo=BERLIN)).people == ("a",)
    assert who_is_on_shift(schedule, until).is_gap


def test_naive_instants_are_refused() -> None:
    schedule = Schedule(BERLIN, ())
    with pytest.raises(ValueError, match="aware"):
        who_is_on_shift(schedule, datetime(2026, 1, 1))


# --- properties ---------------------------------------------------------------------------------

people = st.sampled_from(["alice", "bob", "carol", "dave", "erin"])
instants = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(UTC)
)


@st.composite
def turns(draw: st.DrawFn) -> Turn:
    unit: TurnUnit = draw(st.sampled_from(["hours", "days", "weeks"]))
    amount = draw(st.integers(1, 36 if unit == "hours" else 3))
    return Turn(amount, unit)


@st.composite
def windows(draw: st.DrawFn) -> Window:
    days = frozenset(draw(st.sets(st.integers(0, 6), min_size=1)))
    start = draw(st.integers(0, 24 * 60 - 1))
    end = draw(st.integers(1, 24 * 60).filter(lambda e: e != start))
    return Window(days, start, end)


@st.composite
def rotations(draw: st.DrawFn) -> Rotation:
    anchor = draw(st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 6, 1)))
    groups = draw(
        st.lists(st.lists(people, min_size=1, max_size=2).map(tuple), min_size=1, max_size=3)
    )
    return Rotation(
        name=draw(st.sampled_from(["l1", "l2", "l3"])),
        anchor=anchor.replace(second=0, microsecond=0),
        turn=draw(turns()),
        groups=tuple(groups),
        windows=tuple(draw(st.lists(windows(), max_size=2))),
        priority=draw(st.integers(0, 2)),
    )


@st.composite
def overrides(draw: st.DrawFn) -> Override:
    start = draw(instants)
    length = draw(st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(days=3)))
    return Override(start, start + length, tuple(draw(st.lists(people, min_size=1, max_size=2))))


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    return Schedule(
        ZoneInfo(draw(st.sampled_from(ZONES))),
        tuple(draw(st.lists(rotations(), max_size=3))),
        tuple(draw(st.lists(overrides(), max_size=2))),
    )


@settings(max_examples=150, deadline=None)
@given(
    schedules(), instants, st.timedeltas(min_value=timedelta(hours=1), max_value=timedelta(days=5))
)
def test_coverage_tiles_the_horizon_and_agrees_with_point_queries(
    schedule: Schedule, start: datetime, length: timedelta
) -> None:
    end = start + length
    segments = coverage(schedule, start, end)
    # Exactly one resolution per instant: the segments tile [start, end) without overlap.
    assert segments[0].start == start
    assert segments[-1].end == end
    for before, after in itertools.pairwise(segments):
        assert before.end == after.start
        assert before.on_shift != after.on_shift  # merged when equal
    for segment in segments:
        assert segment.start < segment.end
        # The timeline agrees with point queries at its edges and inside.
        assert who_is_on_shift(schedule, segment.start) == segment.on_shift
        last = segment.end - timedelta(microseconds=1)
        assert who_is_on_shift(schedule, last) == segment.on_shift
        middle = segment.start + (segment.end - segment.start) / 2
        assert who_is_on_shift(schedule, middle) == segment.on_shift


@settings(max_examples=150, deadline=None)
@given(schedules(), instants)
def test_one_answer_per_instant_and_overrides_win(schedule: Schedule, at: datetime) -> None:
    answer = who_is_on_shift(schedule, at)
    assert answer == who_is_on_shift(schedule, at.astimezone(schedule.zone))  # same instant
    active = [o for o in schedule.overrides if o.start <= at < o.end]
    if active:
        assert answer == OnShift(active[-1].people, "override")
    elif answer.is_gap:
        assert answer.source == "gap"
    else:
        assert answer.source.startswith("rotation:")


@settings(max_examples=200, deadline=None)
@given(rotations(), st.sampled_from(ZONES), st.integers(-400, 400))
def test_handoff_instant_belongs_to_the_incoming_group(
    rotation: Rotation, zone_name: str, k: int
) -> None:
    zone = ZoneInfo(zone_name)
    rotation = Rotation(rotation.name, rotation.anchor, rotation.turn, rotation.groups)
    schedule = Schedule(zone, (rotation,))
    boundary = turn_start(rotation, zone, k)
    assert turn_index(rotation, zone, boundary) == k
    assert turn_index(rotation, zone, boundary - timedelta(microseconds=1)) == k - 1
    if k >= 1:
        incoming = rotation.groups[k % len(rotation.groups)]
        outgoing = rotation.groups[(k - 1) % len(rotation.groups)]
        assert who_is_on_shift(schedule, boundary).people == incoming
        assert who_is_on_shift(schedule, boundary - timedelta(microseconds=1)).people == outgoing


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 1, 1)),
    st.sampled_from(ZONES),
    st.integers(1, 2),
    st.integers(0, 800),
)
def test_day_turns_hand_off_at_the_same_local_time(
    anchor: datetime, zone_name: str, days: int, k: int
) -> None:
    zone = ZoneInfo(zone_name)
    anchor = anchor.replace(second=0, microsecond=0)
    rotation = Rotation("r", anchor, Turn(days, "days"), (("a",),))
    start = turn_start(rotation, zone, k)
    wall = anchor + timedelta(days=days * k)
    local = start.astimezone(zone).replace(tzinfo=None)
    if local_to_utc(wall, zone).astimezone(zone).replace(tzinfo=None) == wall:
        assert local == wall  # the wall time exists that day: exactly that local time
    else:
        assert local > wall  # skipped by a DST change: the hand-off is at the change
        assert local - wall < timedelta(hours=2)
    assert turn_start(rotation, zone, k + 1) > start


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1)),
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=30)),
    st.sampled_from(ZONES),
)
def test_local_to_utc_is_monotonic(wall: datetime, step: timedelta, zone_name: str) -> None:
    zone = ZoneInfo(zone_name)
    assert local_to_utc(wall, zone) <= local_to_utc(wall + step, zone)
