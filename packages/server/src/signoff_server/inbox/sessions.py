"""Web sessions: a random id in an HttpOnly, SameSite=Lax cookie; the row holds its hash.

Signing in always creates a new session (a fresh id the browser never had) and deletes the one
the browser presented, so an id planted before sign-in (session fixation) is worthless. Each
session has its own CSRF token, which every form carries and every POST must echo. Sessions
expire `SESSION_LIFETIME` after sign-in; signing out deletes the row.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Column, Connection, ForeignKey, String, Table, delete, insert, select

from signoff_server.schema import UTCDateTime, metadata

__all__ = [
    "LOGIN_COOKIE",
    "SESSION_COOKIE",
    "SESSION_LIFETIME",
    "Session",
    "csrf_matches",
    "end_session",
    "find_session",
    "start_session",
    "web_sessions",
]

SESSION_COOKIE = "signoff_session"
LOGIN_COOKIE = "signoff_login"
"""Holds the sign-in form's CSRF token (double submit) before there is a session."""
SESSION_LIFETIME = timedelta(hours=12)

web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("email", String(320), ForeignKey("users.email"), nullable=False, index=True),
    Column("csrf", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False, index=True),
)


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: who, and the CSRF token its forms carry."""

    email: str
    csrf: str
    expires_at: datetime


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(
    conn: Connection, email: str, now: datetime, *, previous: str | None = None
) -> tuple[str, Session]:
    """A new session for `email` (and the end of `previous`); returns the cookie value."""
    if previous:
        end_session(conn, previous)
    conn.execute(delete(web_sessions).where(web_sessions.c.expires_at <= now))
    token = secrets.token_urlsafe(32)
    session = Session(email, secrets.token_urlsafe(32), now + SESSION_LIFETIME)
    conn.execute(
        insert(web_sessions).values(
            id_hash=_hash(token),
            email=email,
            csrf=session.csrf,
            created_at=now,
            expires_at=session.expires_at,
        )
    )
    return token, session


def find_session(conn: Connection, token: str | None, now: datetime) -> Session | None:
    """The live session behind a cookie value, or None."""
    if not token or len(token) > 100:
        return None
    row = conn.execute(
        select(web_sessions).where(
            web_sessions.c.id_hash == _hash(token), web_sessions.c.expires_at > now
        )
    ).first()
    return None if row is None else Session(row.email, row.csrf, row.expires_at)


def end_session(conn: Connection, token: str) -> None:
    """Delete the session behind a cookie value (sign-out)."""
    conn.execute(delete(web_sessions).where(web_sessions.c.id_hash == _hash(token)))


def csrf_matches(expected: str | None, given: object) -> bool:
    """Constant-time comparison of a CSRF token; False if either is missing."""
    if not expected or not isinstance(given, str) or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())
