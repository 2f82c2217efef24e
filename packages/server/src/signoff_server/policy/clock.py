"""Clocks: the server takes its time from `Settings.clock`; tests move a `ManualClock` forward
instead of sleeping (timers, SLAs, escalations and shifts all read the same clock)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

__all__ = ["ManualClock", "utc_now"]


def utc_now() -> datetime:
    """The real time, in UTC."""
    return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to; thread-safe, callable like `utc_now`."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("a clock keeps aware (UTC) time")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move forward by `delta`; returns the new time."""
        if delta < timedelta(0):
            raise ValueError("time does not go backwards")
        with self._lock:
            self._now += delta
            return self._now

    def set(self, when: datetime) -> None:
        """Jump to `when` (not before the current time)."""
        with self._lock:
            if when < self._now:
                raise ValueError("time does not go backwards")
            self._now = when.astimezone(UTC)
