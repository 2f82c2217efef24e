"""Server settings. The CLI fills them from flags and `SIGNOFF_*` environment variables."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_DATABASE_URL", "Settings"]

DEFAULT_DATABASE_URL = "sqlite:///./signoff.db"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything `create_app` needs; no I/O happens until the app starts."""

    database_url: str = DEFAULT_DATABASE_URL
    timer_interval: float = 0.25
    """Seconds the timer scheduler pauses when nothing is due."""
    run_timers: bool = True
    """Whether this process fires timers (SLA deadlines, escalations, callback retries)."""
    wait_recheck: float = 5.0
    """A long-poll re-reads its request at least this often, in case a wake-up was missed."""
