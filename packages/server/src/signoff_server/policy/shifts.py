"""Shift coverage: who in a role is on shift at an instant, and the coverage timeline.

A `Schedule` has rotations (layers) and overrides, in one IANA time zone:

* A `Rotation` starts at its `anchor` (a local wall time), hands off every `turn` (hours of
  elapsed time, or whole local days/weeks), and cycles through its `groups` (each group is the
  set of people on shift together). Day and week turns step in local time, so a hand-off stays at
  the same local hour across DST changes. Optional `windows` limit it to daily/weekly hours
  (e.g. Mon-Fri 09:00-17:00); outside them the rotation covers nobody.
* An `Override` puts named people on shift for a time range and wins over every rotation.

`who_is_on_shift(schedule, at)` answers with overrides first (the later-listed override wins),
then the rotation of highest priority covering `at` (the earlier-listed wins a tie), else a gap.
Every interval is half-open, `[start, end)`: a hand-off instant belongs to the incoming people.
`coverage(schedule, start, end)` is the same answer as a list of contiguous segments.

Local wall times that do not exist (the hour skipped when clocks go forward) are mapped to the
instant the clocks change; ambiguous ones (the hour repeated when clocks go back) to their first
occurrence. That mapping is monotonic, so intervals never turn inside out.

The module is pure: no database, no clock of its own.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

__all__ = [
    "OnShift",
    "Override",
    "Rotation",
    "Schedule",
    "Segment",
    "Turn",
    "TurnUnit",
    "Window",
    "coverage",
    "gaps",
    "local_to_utc",
    "parse_turn",
    "turn_index",
    "turn_start",
    "who_is_on_shift",
]

TurnUnit = Literal["hours", "days", "weeks"]
_TURN = re.compile(r"P(?P<weeks>\d+)W|P(?P<days>\d+)D|PT(?P<hours>\d+)H")
_MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True, slots=True)
class Turn:
    """How long one turn of a rotation lasts: hours of elapsed time, or local days/weeks."""

    amount: int
    unit: TurnUnit

    def __post_init__(self) -> None:
        if self.amount < 1:
            raise ValueError("a turn lasts at least one unit")

    @property
    def local_days(self) -> int:
        """The turn in local calendar days (0 for hour turns)."""
        return {"hours": 0, "days": 1, "weeks": 7}[self.unit] * self.amount


def parse_turn(text: str) -> Turn:
    """`PT12H`, `P1D` or `P2W` as a Turn; ValueError for anything else."""
    match = _TURN.fullmatch(text)
    if match is None:
        raise ValueError(
            f"{text!r} is not a turn length: use whole hours (PT12H), days (P1D) or weeks (P1W)"
        )
    for unit in ("weeks", "days", "hours"):
        value = match.group(unit)
        if value is not None:
            return Turn(int(value), unit)
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class Window:
    """Local hours a rotation covers on some weekdays: `[start, end)` in minutes after midnight.

    `days` are the weekdays (0 = Monday) the window starts on; an `end` at or before `start`
    runs past midnight into the next day. `end` may be 1440 (24:00).
    """

    days: frozenset[int]
    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < _MINUTES_PER_DAY or not 0 < self.end <= _MINUTES_PER_DAY:
            raise ValueError("window times must lie within the day (00:00 to 24:00)")
        if self.start == self.end:
            raise ValueError("a window must not start and end at the same time")
        if not self.days or not self.days <= frozenset(range(7)):
            raise ValueError("a window needs weekdays between 0 (Monday) and 6 (Sunday)")

    @property
    def wraps(self) -> bool:
        """True when the window runs past midnight."""
        return self.end <= self.start


@dataclass(frozen=True, slots=True)
class Rotation:
    """A layer: groups taking turns from a local `anchor`, optionally within windows."""

    name: str
    anchor: datetime
    """Local wall time (naive) in the schedule's zone when group 0's first turn starts."""
    turn: Turn
    groups: tuple[tuple[str, ...], ...]
    windows: tuple[Window, ...] = ()
    priority: int = 0
    until: datetime | None = None
    """An aware instant after which the rotation covers nobody (exclusive)."""

    def __post_init__(self) -> None:
        if self.anchor.tzinfo is not None:
            raise ValueError("a rotation's anchor is a local (naive) wall time")
        if not self.groups or not all(self.groups):
            raise ValueError("a rotation needs at least one group, each with someone in it")


@dataclass(frozen=True, slots=True)
class Override:
    """Named people on shift for `[start, end)`, ahead of every rotation."""

    start: datetime
    end: datetime
    people: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("override times must be aware instants")
        if self.end <= self.start:
            raise ValueError("an override must end after it starts")
        if not self.people:
            raise ValueError("an override names at least one person")


@dataclass(frozen=True, slots=True)
class Schedule:
    """Rotations and overrides in one IANA time zone."""

    zone: ZoneInfo
    rotations: tuple[Rotation, ...] = ()
    overrides: tuple[Override, ...] = ()


@dataclass(frozen=True, slots=True)
class OnShift:
    """Who is on shift at an instant, and why: `override`, `rotation:<name>` or `gap`."""

    people: tuple[str, ...]
    source: str

    @property
    def is_gap(self) -> bool:
        """True when nobody is on shift."""
        return not self.people


GAP = OnShift((), "gap")


@dataclass(frozen=True, slots=True)
class Segment:
    """`[start, end)` during which the same people are on shift for the same reason."""

    start: datetime
    end: datetime
    on_shift: OnShift = field(default=GAP)


# local wall time <-> instants --------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def local_to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant of local wall time `wall` in `zone` (monotonic in `wall`).

    A wall time skipped by a forward DST change maps to the instant of the change; a repeated
    one to its first occurrence.
    """
    if wall.tzinfo is not None:
        raise ValueError("local_to_utc takes a naive wall time")
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # Skipped: fold=1 reads the wall time with the offset after the change and fold=0 with the
    # one before, so the change lies in (early, first]. Bisect on whole seconds (tzdata's grain).
    early = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    after = first.astimezone(zone).utcoffset()
    lo = int(early.timestamp())  # still before the change
    hi = int(first.timestamp()) + 1  # already after it
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, zone).utcoffset() == after:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


# rotations --------------------------------------------------------------------------------


def turn_start(rotation: Rotation, zone: ZoneInfo, k: int) -> datetime:
    """The instant turn `k` of `rotation` begins (turn 0 at the anchor; k may be negative)."""
    days = rotation.turn.local_days
    if days:
        return local_to_utc(rotation.anchor + timedelta(days=k * days), zone)
    return local_to_utc(rotation.anchor, zone) + timedelta(hours=k * rotation.turn.amount)


def turn_index(rotation: Rotation, zone: ZoneInfo, at: datetime) -> int:
    """The turn `k` with `turn_start(k) <= at < turn_start(k + 1)`."""
    days = rotation.turn.local_days
    if days:
        k = (_wall(at, zone) - rotation.anchor) // timedelta(days=days)
    else:
        k = (_utc(at) - local_to_utc(rotation.anchor, zone)) // timedelta(
            hours=rotation.turn.amount
        )
    while turn_start(rotation, zone, k + 1) <= at:
        k += 1
    while turn_start(rotation, zone, k) > at:
        k -= 1
    return k


def _window_bounds(window: Window, day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    midnight = datetime(day.year, day.month, day.day)
    start = local_to_utc(midnight + timedelta(minutes=window.start), zone)
    end_day = midnight + timedelta(days=1) if window.wraps else midnight
    end = local_to_utc(end_day + timedelta(minutes=window.end), zone)
    return start, end


def _in_windows(rotation: Rotation, zone: ZoneInfo, at: datetime) -> bool:
    if not rotation.windows:
        return True
    today = _wall(at, zone).date()
    for window in rotation.windows:
        for day in (today, today - timedelta(days=1)):
            if day.weekday() in window.days:
                start, end = _window_bounds(window, day, zone)
                if start <= at < end:
                    return True
    return False


def _rotation_people(rotation: Rotation, zone: ZoneInfo, at: datetime) -> tuple[str, ...] | None:
    """The group of `rotation` on shift at `at`, or None when it covers nobody then."""
    if at < turn_start(rotation, zone, 0):
        return None
    if rotation.until is not None and at >= rotation.until:
        return None
    if not _in_windows(rotation, zone, at):
        return None
    k = turn_index(rotation, zone, at)
    return rotation.groups[k % len(rotation.groups)]


# answers ----------------------------------------------------------------------------------


def who_is_on_shift(schedule: Schedule, at: datetime) -> OnShift:
    """Exactly one answer for `at` (an aware instant): override, rotation, or gap."""
    if at.tzinfo is None:
        raise ValueError("who_is_on_shift takes an aware instant")
    for override in reversed(schedule.overrides):
        if override.start <= at < override.end:
            return OnShift(override.people, "override")
    best: tuple[int, int, Rotation, tuple[str, ...]] | None = None
    for position, rotation in enumerate(schedule.rotations):
        people = _rotation_people(rotation, schedule.zone, at)
        if people is None:
            continue
        rank = (rotation.priority, -position)
        if best is None or rank > (best[0], best[1]):
            best = (rotation.priority, -position, rotation, people)
    if best is None:
        return GAP
    return OnShift(best[3], f"rotation:{best[2].name}")


def _boundaries(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    """Every instant in (start, end) at which the answer may change."""
    zone = schedule.zone
    found: set[datetime] = set()
    for override in schedule.overrides:
        found.update((override.start, override.end))
    for rotation in schedule.rotations:
        if rotation.until is not None:
            found.add(rotation.until)
        k = max(turn_index(rotation, zone, start), -1)
        while True:
            k += 1
            instant = turn_start(rotation, zone, k)
            if instant >= end:
                break
            found.add(instant)
        if rotation.windows:
            day = _wall(start, zone).date() - timedelta(days=1)
            last = _wall(end, zone).date() + timedelta(days=1)
            while day <= last:
                for window in rotation.windows:
                    if day.weekday() in window.days:
                        found.update(_window_bounds(window, day, zone))
                day += timedelta(days=1)
    return sorted(t for t in found if start < t < end)


def coverage(schedule: Schedule, start: datetime, end: datetime) -> list[Segment]:
    """Contiguous segments that exactly tile `[start, end)`, adjacent ones always different."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("coverage takes aware instants")
    start, end = _utc(start), _utc(end)
    if end <= start:
        return []
    segments: list[Segment] = []
    edges = [start, *_boundaries(schedule, start, end), end]
    for begin, finish in itertools.pairwise(edges):
        answer = who_is_on_shift(schedule, begin)
        if segments and segments[-1].on_shift == answer:
            segments[-1] = Segment(segments[-1].start, finish, answer)
        else:
            segments.append(Segment(begin, finish, answer))
    return segments


def gaps(schedule: Schedule, start: datetime, end: datetime) -> list[Segment]:
    """The segments of `[start, end)` when nobody is on shift."""
    return [s for s in coverage(schedule, start, end) if s.on_shift.is_gap]
