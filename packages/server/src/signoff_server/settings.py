"""Server settings. The CLI fills them from flags and `SIGNOFF_*` environment variables."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from signoff_server.notifications.config import DEFAULT_RETRY_DELAYS, SlackSettings, SmtpSettings

__all__ = [
    "CALLBACK_RETRY_DELAYS",
    "DEFAULT_DATABASE_THREADS",
    "DEFAULT_DATABASE_URL",
    "Settings",
]

DEFAULT_DATABASE_URL = "sqlite:///./signoff.db"
DEFAULT_DATABASE_THREADS = 4

CALLBACK_RETRY_DELAYS: tuple[float, ...] = (
    5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 57600, 57600, 86400,
)  # fmt: skip
"""5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h, 16 h, 16 h, 24 h: 13 attempts, ~71.7 h."""


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
    max_body_bytes: int = 1024 * 1024
    """Requests with a larger body are refused with 413 (limits.py); 1 MiB is well above the
    largest valid request."""
    max_json_depth: int = 32
    """JSON bodies nesting arrays/objects deeper than this are refused with 422 (limits.py)."""
    auth_failure_limit: int = 10
    """Failed authentications (unknown key or token, wrong password) per client address and per
    credential within `auth_failure_window` before further failures get 429 with Retry-After
    and sign-ins wait (throttle.py; counted per process). 0 turns the throttling off."""
    auth_failure_window: float = 60.0
    """Seconds over which `auth_failure_limit` counts."""
    auth_cache_seconds: float = 2.0
    """How long an authenticated key or token is remembered (a revocation or role change takes
    effect within this time; 0 checks the database on every call)."""
    config_path: str | None = None
    """The policy file (`signoff.yaml`). None: requests route by their own `route.role`."""
    clock: Callable[[], datetime] | None = None
    """Where the server takes the time from (tests inject a manual clock). None: real UTC time."""
    audit_key_file: str | None = None
    """The audit log's Ed25519 signing key (created, mode 0600, on first start). Default: next to
    a SQLite database file (`<db>.audit.key`), else `./signoff-audit.key`. Never in the database;
    every replica of a deployment must read the same file."""
    audit_origin: str | None = None
    """The log's name in its checkpoints, for a new key (e.g. `audit.example.com/signoff`);
    default `signoff/<random>`. An existing key keeps its name."""
    audit_checkpoint_entries: int = 1000
    """Sign a checkpoint once this many entries were appended since the last one..."""
    audit_checkpoint_seconds: float = 60.0
    """...or once this many seconds passed since the last one, if anything was appended."""
    audit_checkpoint_interval: float = 1.0
    """Seconds between checks whether a checkpoint is due."""
    audit_publish_dir: str | None = None
    """If set, every checkpoint is also written there (`checkpoint`, `checkpoints/<size>`,
    `verifier.key`): mount it somewhere the database's operators cannot rewrite."""
    run_checkpoints: bool = True
    """Whether this process signs checkpoints periodically."""
    webhook_keys_path: str | None = None
    """The Ed25519 `whsk_` key file that signs callbacks (created, mode 0600, on first start).
    Default: next to a SQLite database file (`<db>.webhook-keys.json`), else
    `./signoff-webhook-keys.json`. Never in the database; replicas must share one file."""
    callback_allow: tuple[str, ...] = ()
    """Where callbacks may go: host names (`hooks.example.com`, `*.example.com`) and IP networks
    (`10.0.0.0/8`, `127.0.0.1`). Empty: any http(s) URL."""
    callback_timeout: float = 10.0
    """Seconds a receiver has to answer a callback (per network operation)."""
    callback_retry_delays: tuple[float, ...] = CALLBACK_RETRY_DELAYS
    """Seconds before each retry of a failed callback (each +/- 20% jitter); once the last retry
    fails the callback is `failed`. The default retries for about three days."""
    callback_workers: int = 16
    """Callback deliveries in flight at once in this process."""
    database_threads: int = DEFAULT_DATABASE_THREADS
    """Threads that run API calls' database work (the event loop hands each call to one).
    Few is faster: every thread contends for Python's GIL, and a dozen runnable ones spend the
    CPU on handing it over (measured with 16 concurrent clients on 2 cores: 4 threads served 10
    to 45% more requests per second than anyio's default of 40). Callbacks and notifications
    have pools of their own."""
    # Reviewers: web inbox, email, Slack (packages inbox/ and notifications/, docs/inbox.md).
    public_url: str | None = None
    """The address reviewers open (links in email and Slack), e.g. `https://signoff.example.com`.
    An `https` URL also marks the inbox's session cookie `Secure`."""
    secret_key_file: str | None = None
    """The key that signs email decision links (created, mode 0600, on first start). Default:
    next to a SQLite database file (`<db>.secret.key`), else `./signoff-secret.key`."""
    smtp: SmtpSettings | None = None
    """Email notifications with approve/reject links; None: no email."""
    slack: SlackSettings | None = None
    """Slack notifications with buttons, and the interactivity endpoint; None: no Slack."""
    notification_retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS
    """Seconds before each retry of a notification that could not be sent."""
