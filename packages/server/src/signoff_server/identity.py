"""Who is calling: agent keys (`sk_…`), reviewers' personal tokens (`pt_…`), passwords.

Keys and tokens are 256-bit random secrets, so a SHA-256 of the secret is a safe, fast lookup
key; passwords (chosen by people) are hashed with argon2.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, delete, insert, select

from signoff.ids import new_id
from signoff_server.schema import agents, api_keys, tokens, user_roles, users

__all__ = [
    "ADMIN_ROLE",
    "AGENT_SCOPES",
    "Principal",
    "PrincipalCache",
    "authenticate",
    "create_agent_key",
    "create_token",
    "hash_password",
    "set_user",
    "verify_password",
]

ADMIN_ROLE = "admin"
AGENT_SCOPES = ("requests:create", "requests:read", "requests:outcome")
_HASHER = PasswordHasher()


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: an agent (by key) or a person (by token or session)."""

    kind: str  # "agent" | "user"
    id: str  # agent id, or the person's email
    roles: frozenset[str] = field(default_factory=frozenset[str])
    scopes: frozenset[str] = field(default_factory=frozenset[str])

    @property
    def is_agent(self) -> bool:
        """True for an agent key."""
        return self.kind == "agent"

    @property
    def is_admin(self) -> bool:
        """True for a person holding the admin role."""
        return self.kind == "user" and ADMIN_ROLE in self.roles


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def create_agent_key(conn: Connection, agent_id: str) -> str:
    """Register `agent_id` if new and mint a key for it; the secret is returned once, not stored."""
    if conn.execute(select(agents.c.id).where(agents.c.id == agent_id)).first() is None:
        conn.execute(insert(agents).values(id=agent_id, created_at=_now()))
    secret = "sk_" + secrets.token_urlsafe(32)
    conn.execute(
        insert(api_keys).values(
            id=new_id("key"),
            agent_id=agent_id,
            secret_hash=_digest(secret),
            scopes=list(AGENT_SCOPES),
            created_at=_now(),
        )
    )
    return secret


def set_user(
    conn: Connection,
    email: str,
    roles: list[str],
    *,
    name: str | None = None,
    password: str | None = None,
) -> None:
    """Create or update a reviewer; their roles become exactly `roles`."""
    email = email.strip().lower()
    values: dict[str, object] = {}
    if name is not None:
        values["name"] = name
    if password is not None:
        values["password_hash"] = hash_password(password)
    existing = conn.execute(select(users.c.email).where(users.c.email == email)).first()
    if existing is None:
        conn.execute(insert(users).values(email=email, created_at=_now(), **values))
    elif values:
        conn.execute(users.update().where(users.c.email == email).values(**values))
    conn.execute(delete(user_roles).where(user_roles.c.email == email))
    for role in dict.fromkeys(roles):
        conn.execute(insert(user_roles).values(email=email, role=role))


def create_token(conn: Connection, email: str) -> str:
    """Mint a personal API token for an existing reviewer; returned once, never stored."""
    email = email.strip().lower()
    if conn.execute(select(users.c.email).where(users.c.email == email)).first() is None:
        raise LookupError(f"no user {email!r}; add them first with `signoff users add`")
    secret = "pt_" + secrets.token_urlsafe(32)
    conn.execute(
        insert(tokens).values(
            id=new_id("tok"), email=email, secret_hash=_digest(secret), created_at=_now()
        )
    )
    return secret


def user_roles_of(conn: Connection, email: str) -> frozenset[str]:
    """The roles a person holds."""
    rows = conn.execute(select(user_roles.c.role).where(user_roles.c.email == email))
    return frozenset(row.role for row in rows)


def authenticate(conn: Connection, secret: str) -> Principal | None:
    """The principal a bearer secret stands for, or None if it is unknown or revoked."""
    if secret.startswith("sk_"):
        row = conn.execute(
            select(api_keys.c.agent_id, api_keys.c.scopes).where(
                api_keys.c.secret_hash == _digest(secret), api_keys.c.revoked_at.is_(None)
            )
        ).first()
        if row is None:
            return None
        return Principal("agent", row.agent_id, scopes=frozenset(row.scopes))
    if secret.startswith("pt_"):
        row = conn.execute(
            select(tokens.c.email).where(
                tokens.c.secret_hash == _digest(secret), tokens.c.revoked_at.is_(None)
            )
        ).first()
        if row is None:
            return None
        return Principal("user", row.email, roles=user_roles_of(conn, row.email))
    return None


class PrincipalCache:
    """Remembers who a bearer secret stands for, for `ttl` seconds, keyed by its hash.

    Every API call authenticates; without the cache each one costs its own read transaction.
    A revoked key or a changed role takes effect within `ttl` seconds (0 turns caching off).
    """

    def __init__(self, ttl: float, *, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self._max = max_entries
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def get(self, secret: str) -> Principal | None:
        """The cached principal, if fresh."""
        if self.ttl <= 0:
            return None
        with self._lock:
            entry = self._entries.get(_digest(secret))
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, secret: str, principal: Principal) -> None:
        """Remember a principal that was just authenticated."""
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[_digest(secret)] = (time.monotonic() + self.ttl, principal)


def hash_password(password: str) -> str:
    """An argon2id hash of a reviewer's password."""
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True if `password` matches; never raises for a wrong or malformed hash."""
    if not password_hash:
        return False
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
