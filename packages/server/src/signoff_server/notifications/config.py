"""Notification settings (SMTP, Slack), and reading them from `SIGNOFF_*` environment variables.

Imports nothing from signoff_server: `signoff_server.settings` imports this module.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["DEFAULT_RETRY_DELAYS", "SlackSettings", "SmtpSettings", "from_environment"]

DEFAULT_RETRY_DELAYS: tuple[float, ...] = (10, 60, 300, 1800)
"""Seconds before each retry of a notification that could not be sent: 5 attempts in ~36 min."""


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """Where email notifications go out. `security`: `starttls`, `tls` (implicit) or `none`."""

    host: str
    port: int = 25
    sender: str = "signoff@localhost"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    security: Literal["none", "starttls", "tls"] = "none"
    timeout: float = 10.0
    link_hours: float = 24.0
    """How long the approve/reject links in an email stay valid (each is single-use)."""


@dataclass(frozen=True, slots=True)
class SlackSettings:
    """A Slack app: its bot token (`xoxb-…`), signing secret, and people's Slack user ids.

    `users` maps a reviewer's email to their Slack user id (`U…`); people in the policy file
    with a `slack:` id need no entry here.
    """

    bot_token: str = field(repr=False)
    signing_secret: str = field(repr=False)
    users: Mapping[str, str] = field(default_factory=dict[str, str])
    api_url: str = "https://slack.com/api/"
    timeout: float = 10.0


def _users(value: str) -> dict[str, str]:
    """`alice@example.com=U012AB,bob@example.com=U034CD` as a mapping."""
    mapping: dict[str, str] = {}
    for item in value.split(","):
        if not item.strip():
            continue
        email, sep, slack_id = item.partition("=")
        if not sep or not email.strip() or not slack_id.strip():
            raise ValueError(f"SIGNOFF_SLACK_USERS: {item.strip()!r} is not EMAIL=SLACK_USER_ID")
        mapping[email.strip().lower()] = slack_id.strip()
    return mapping


def from_environment(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Settings keyword arguments from the environment (only those that are set).

    `SIGNOFF_PUBLIC_URL`, `SIGNOFF_SECRET_KEY_FILE`; SMTP: `SIGNOFF_SMTP_HOST` (enables email),
    `_PORT`, `_FROM`, `_USERNAME`, `_PASSWORD`, `_SECURITY` (none|starttls|tls), `_LINK_HOURS`;
    Slack: `SIGNOFF_SLACK_BOT_TOKEN` and `SIGNOFF_SLACK_SIGNING_SECRET` (both enable Slack),
    `SIGNOFF_SLACK_USERS` (`email=U…,email=U…`). Raises ValueError for malformed values.
    """
    env = os.environ if environ is None else environ
    found: dict[str, Any] = {}
    if env.get("SIGNOFF_PUBLIC_URL"):
        found["public_url"] = env["SIGNOFF_PUBLIC_URL"]
    if env.get("SIGNOFF_SECRET_KEY_FILE"):
        found["secret_key_file"] = env["SIGNOFF_SECRET_KEY_FILE"]
    if env.get("SIGNOFF_SMTP_HOST"):
        security = env.get("SIGNOFF_SMTP_SECURITY", "none")
        if security not in ("none", "starttls", "tls"):
            raise ValueError("SIGNOFF_SMTP_SECURITY must be none, starttls or tls")
        try:
            port = int(env.get("SIGNOFF_SMTP_PORT", "465" if security == "tls" else "25"))
            link_hours = float(env.get("SIGNOFF_SMTP_LINK_HOURS", "24"))
        except ValueError as exc:
            raise ValueError(f"SIGNOFF_SMTP_PORT / _LINK_HOURS: {exc}") from None
        found["smtp"] = SmtpSettings(
            host=env["SIGNOFF_SMTP_HOST"],
            port=port,
            sender=env.get("SIGNOFF_SMTP_FROM", "signoff@localhost"),
            username=env.get("SIGNOFF_SMTP_USERNAME") or None,
            password=env.get("SIGNOFF_SMTP_PASSWORD") or None,
            security=security,  # pyright: ignore[reportArgumentType]
            link_hours=link_hours,
        )
    token, secret = env.get("SIGNOFF_SLACK_BOT_TOKEN"), env.get("SIGNOFF_SLACK_SIGNING_SECRET")
    if token or secret:
        if not (token and secret):
            raise ValueError(
                "Slack needs both SIGNOFF_SLACK_BOT_TOKEN and SIGNOFF_SLACK_SIGNING_SECRET"
            )
        found["slack"] = SlackSettings(
            bot_token=token, signing_secret=secret, users=_users(env.get("SIGNOFF_SLACK_USERS", ""))
        )
    return found
