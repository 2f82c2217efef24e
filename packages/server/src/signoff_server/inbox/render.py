"""Templates (Jinja2, autoescaped) and the response headers every inbox page carries."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse

__all__ = ["SECURITY_HEADERS", "countdown", "page", "templates"]

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def countdown(due_at: datetime | None, now: datetime) -> str:
    """`in 1 h 05 min`, `in 40 s`, `overdue by 3 min`, or `no deadline`."""
    if due_at is None:
        return "no deadline"
    seconds = int((due_at - now).total_seconds())
    late, seconds = seconds < 0, abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        text = f"{days} d {hours} h"
    elif hours:
        text = f"{hours} h {minutes:02d} min"
    elif minutes:
        text = f"{minutes} min"
    else:
        text = f"{secs} s"
    return f"overdue by {text}" if late else f"in {text}"


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else "—"


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


templates = Environment(
    loader=PackageLoader("signoff_server.inbox", "templates"),
    autoescape=select_autoescape(["html"], default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_filters: dict[str, Any] = templates.filters  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
_filters.update(when=_when, iso=_iso, pretty=_pretty)
_globals: dict[str, Any] = templates.globals  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
_globals["countdown"] = countdown


def page(
    name: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """Render template `name` as a page with the security headers."""
    html = templates.get_template(name).render(**context)
    return HTMLResponse(
        html, status_code=status_code, headers={**SECURITY_HEADERS, **(headers or {})}
    )
