"""ISO-8601 durations (`PT30M`, `P1DT2H`, `P2W`) as used for SLAs and escalation waits.

Years and months are refused: their length depends on the calendar, and a deadline must be an
exact instant.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator

__all__ = ["MAX_DURATION", "Duration", "format_duration", "parse_duration"]

MAX_DURATION = timedelta(days=3650)
"""SLAs and waits beyond ten years are mistakes, and would overflow a deadline's date."""

_PATTERN = re.compile(
    r"P(?!$)(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?"
)


def parse_duration(value: str) -> timedelta:
    """Parse an ISO-8601 duration into a timedelta; ValueError names what is wrong."""
    match = _PATTERN.fullmatch(value)
    if match is None:
        if re.match(r"P[^T]*[YM]", value):
            raise ValueError(
                f"{value!r}: years and months are not exact lengths of time; use weeks or days"
            )
        raise ValueError(f"{value!r} is not an ISO-8601 duration such as 'PT30M' or 'P1DT2H'")
    parts = {name: float(text) for name, text in match.groupdict().items() if text is not None}
    if not parts:
        raise ValueError(f"{value!r} is not an ISO-8601 duration such as 'PT30M' or 'P1DT2H'")
    try:
        result = timedelta(**parts)
    except OverflowError:
        raise ValueError(
            f"{value!r} is longer than the longest duration accepted, 10 years"
        ) from None
    if result <= timedelta(0):
        raise ValueError(f"{value!r}: a duration must be longer than zero")
    if result > MAX_DURATION:
        raise ValueError(f"{value!r} is longer than the longest duration accepted, 10 years")
    return result


def format_duration(value: timedelta) -> str:
    """The ISO-8601 form of a positive timedelta, e.g. `PT1H30M`."""
    if value <= timedelta(0):
        raise ValueError("a duration must be longer than zero")
    # timedelta's own integer fields: exact to the microsecond, never in exponent notation.
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    second_text = str(seconds)
    if value.microseconds:
        second_text += f".{value.microseconds:06d}".rstrip("0")
    text = "P" + (f"{value.days}D" if value.days else "")
    clock = (
        (f"{hours}H" if hours else "")
        + (f"{minutes}M" if minutes else "")
        + (f"{second_text}S" if seconds or value.microseconds else "")
    )
    return text + (f"T{clock}" if clock else "")


def _check(value: str) -> str:
    parse_duration(value)
    return value


Duration = Annotated[str, AfterValidator(_check)]
"""A string field holding a valid ISO-8601 duration."""
