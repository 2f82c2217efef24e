"""Webhook signing keys: the Ed25519 key file (`v1a`) and per-agent HMAC secrets (`v1`).

The Ed25519 `whsk_` keys live in a JSON file of their own, outside every request table, written
with 0600 permissions; the public `whpk_` halves are published on `GET /v1/keys`. The file holds
one or more keys; each has an id and a validity (`created_at`, `retires_at`). Every key that has
not retired signs every callback, so during a rotation's overlap the `webhook-signature` header
carries one `v1a` signature per key and receivers pinned to either key keep verifying.

    {"format": "signoff-webhook-keys/1",
     "keys": [{"id": "whk_…", "secret": "whsk_…", "created_at": "…", "retires_at": null}]}

Writers replace the file atomically (temporary file, fsync, rename); a running server notices
the change on its next signature (one `stat` per callback) and keeps its last good keys if the
new file does not parse.

HMAC secrets (`whsec_…`) are optional and per agent: the server must read them to sign, so they
sit in their own table (`webhook_secrets`); they never appear in logs, audit data or the API.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Connection, ForeignKey, String, Table, insert, select, update
from sqlalchemy.engine import make_url

from signoff.ids import new_id
from signoff.webhooks import generate_hmac_secret, generate_signing_key, public_key_for
from signoff_server.db import normalize_url
from signoff_server.files import create_exclusive, replace_atomically
from signoff_server.schema import UTCDateTime, agents, metadata

__all__ = [
    "KEY_FILE_FORMAT",
    "KeyFileError",
    "KeyRing",
    "SigningKey",
    "create_hmac_secret",
    "create_key_file",
    "default_key_path",
    "hmac_secrets_for",
    "list_hmac_secrets",
    "read_key_file",
    "retire_key",
    "revoke_hmac_secret",
    "rotate_keys",
    "webhook_secrets",
]

log = logging.getLogger("signoff.callbacks")

KEY_FILE_FORMAT = "signoff-webhook-keys/1"


class KeyFileError(ValueError):
    """The key file is missing, unreadable or malformed, or a key operation is refused."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One Ed25519 webhook signing key. `secret` is never shown in its repr."""

    id: str
    secret: str = field(repr=False)
    public: str
    created_at: datetime
    retires_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        """True while the key signs: from its creation until it retires."""
        return self.created_at <= now and (self.retires_at is None or now < self.retires_at)


def default_key_path(database_url: str) -> Path:
    """Where the key file lives unless configured: next to a SQLite database file
    (`signoff.db` → `signoff.webhook-keys.json`), else `./signoff-webhook-keys.json`."""
    url = make_url(normalize_url(database_url))
    database = url.database or ""
    if url.get_backend_name() == "sqlite" and database and database != ":memory:":
        path = Path(database.removeprefix("file:").split("?", 1)[0])
        return path.with_name(f"{path.stem}.webhook-keys.json")
    return Path("signoff-webhook-keys.json")


# --- the key file ------------------------------------------------------------------------------


def _parse_time(value: Any, what: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise KeyFileError(f"{what} is not an ISO-8601 time")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise KeyFileError(f"{what} is not an ISO-8601 time") from exc
    if parsed.tzinfo is None:
        raise KeyFileError(f"{what} has no UTC offset")
    return parsed.astimezone(UTC)


def _parse_key(entry: Any, index: int) -> SigningKey:
    where = f"keys[{index}]"
    if not isinstance(entry, dict):
        raise KeyFileError(f"{where} is not an object")
    item: dict[str, Any] = entry  # pyright: ignore[reportUnknownVariableType]
    key_id, secret = item.get("id"), item.get("secret")
    if not isinstance(key_id, str) or not key_id:
        raise KeyFileError(f"{where}.id is missing")
    if not isinstance(secret, str) or not secret.startswith("whsk_"):
        raise KeyFileError(f"{where}.secret is not a whsk_ key")
    try:
        public = public_key_for(secret)
    except ValueError as exc:  # the message never contains the key itself
        raise KeyFileError(f"{where}.secret: {exc}") from None
    created_at = _parse_time(item.get("created_at"), f"{where}.created_at")
    if created_at is None:
        raise KeyFileError(f"{where}.created_at is missing")
    retires_at = _parse_time(item.get("retires_at"), f"{where}.retires_at")
    return SigningKey(key_id, secret, public, created_at, retires_at)


def read_key_file(path: Path) -> list[SigningKey]:
    """The keys in `path`, oldest first. Raises KeyFileError naming what is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyFileError(f"no webhook key file at {path}") from None
    except OSError as exc:
        raise KeyFileError(f"cannot read the webhook key file {path}: {exc.strerror}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise KeyFileError(f"{path} is not JSON (line {exc.lineno})") from None
    if not isinstance(document, dict) or document.get("format") != KEY_FILE_FORMAT:  # pyright: ignore[reportUnknownMemberType]
        raise KeyFileError(f"{path} is not a {KEY_FILE_FORMAT} key file")
    entries: Any = document.get("keys")  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    if not isinstance(entries, list) or not entries:
        raise KeyFileError(f"{path} holds no keys")
    keys = [_parse_key(entry, i) for i, entry in enumerate(entries)]  # pyright: ignore[reportUnknownArgumentType, reportUnknownVariableType]
    if len({k.id for k in keys}) != len(keys):
        raise KeyFileError(f"{path} holds two keys with the same id")
    return sorted(keys, key=lambda k: k.created_at)


def _render(keys: Sequence[SigningKey]) -> bytes:
    document = {
        "format": KEY_FILE_FORMAT,
        "keys": [
            {
                "id": k.id,
                "secret": k.secret,
                "public": k.public,
                "created_at": k.created_at.isoformat(),
                "retires_at": k.retires_at.isoformat() if k.retires_at else None,
            }
            for k in keys
        ],
    }
    return (json.dumps(document, indent=2) + "\n").encode()


def _write(path: Path, keys: Sequence[SigningKey]) -> None:
    replace_atomically(path, _render(keys))


def _new_key(now: datetime) -> SigningKey:
    pair = generate_signing_key()
    return SigningKey(new_id("whk"), pair.secret, pair.public, now, None)


def create_key_file(path: Path, now: datetime) -> tuple[list[SigningKey], bool]:
    """The keys in `path`, creating the file with one new key if there is none.

    Returns the keys and whether this call created the file. Safe against a concurrent
    first start: the file appears complete or not at all (link, never overwrite).
    """
    created = create_exclusive(path, _render([_new_key(now)]))
    return read_key_file(path), created


def rotate_keys(
    path: Path, now: datetime, overlap: timedelta
) -> tuple[SigningKey, list[SigningKey]]:
    """Add a new key; every key still active retires `overlap` from now (or earlier, if it
    already was to). Returns the new key and every key, as written."""
    if overlap < timedelta(0):
        raise KeyFileError("the overlap must not be negative")
    keys = read_key_file(path)
    retire_at = now + overlap
    updated = [
        replace(k, retires_at=retire_at)
        if k.active(now) and (k.retires_at is None or k.retires_at > retire_at)
        else k
        for k in keys
    ]
    new = _new_key(now)
    updated.append(new)
    _write(path, updated)
    return new, updated


def retire_key(path: Path, key_id: str, now: datetime) -> list[SigningKey]:
    """Retire one key at once (e.g. it leaked). Refused if no other key would sign."""
    keys = read_key_file(path)
    if not any(k.id == key_id for k in keys):
        raise KeyFileError(f"no key {key_id!r} in {path}")
    if not any(k.active(now) for k in keys if k.id != key_id):
        raise KeyFileError(
            f"{key_id} is the only active key: rotate first, so that callbacks stay signed"
        )
    updated = [replace(k, retires_at=now) if k.id == key_id and k.active(now) else k for k in keys]
    _write(path, updated)
    return updated


class KeyRing:
    """A running server's view of the key file: re-read when it changes, created on first start.

    `clock` returns aware UTC datetimes; it is the seam for tests.
    """

    def __init__(self, path: Path, *, clock: Callable[[], datetime]) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: list[SigningKey] = []
        self._seen: tuple[int, int, int] | None = None

    def ensure(self) -> None:
        """Load the key file, creating it with a fresh key if there is none (first start)."""
        keys, created = create_key_file(self.path, self._clock())
        if created:
            log.info("created the webhook signing key file %s", self.path)
        else:
            self._check_permissions()
        with self._lock:
            self._keys = keys
            self._seen = self._stat()

    def _check_permissions(self) -> None:
        with contextlib.suppress(OSError):
            mode = self.path.stat().st_mode
            if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
                log.warning(
                    "the webhook key file %s is readable by others (mode %o); chmod 600 it",
                    self.path,
                    stat.S_IMODE(mode),
                )

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            info = self.path.stat()
        except OSError:
            return None
        return (info.st_mtime_ns, info.st_size, info.st_ino)

    def keys(self) -> list[SigningKey]:
        """Every key in the file (re-read if it changed), oldest first."""
        seen = self._stat()
        with self._lock:
            if seen is not None and seen != self._seen:
                try:
                    self._keys = read_key_file(self.path)
                    log.info("reloaded the webhook key file %s", self.path)
                except KeyFileError as exc:
                    log.error("keeping the previous webhook keys: %s", exc)
                self._seen = seen
            return list(self._keys)

    def signing_keys(self, now: datetime | None = None) -> list[SigningKey]:
        """The keys that sign at `now` (default: the clock's now)."""
        at = self._clock() if now is None else now
        return [k for k in self.keys() if k.active(at)]


# --- per-agent HMAC secrets ------------------------------------------------------------------

webhook_secrets = Table(
    "webhook_secrets",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("agent_id", String(200), ForeignKey("agents.id"), nullable=False, index=True),
    Column("secret", String(128), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime()),
)


@dataclass(frozen=True, slots=True)
class HmacSecretInfo:
    """What may be shown about an HMAC secret: everything but the secret."""

    id: str
    agent_id: str
    created_at: datetime
    revoked_at: datetime | None


def create_hmac_secret(conn: Connection, agent_id: str, now: datetime) -> tuple[str, str]:
    """Mint a `whsec_` secret for `agent_id`'s callbacks; returns (id, secret), shown once.

    Existing secrets keep signing until revoked, so a receiver can switch over.
    """
    if conn.execute(select(agents.c.id).where(agents.c.id == agent_id)).first() is None:
        raise LookupError(f"no agent {agent_id!r}; create a key for it first (signoff keys create)")
    secret_id = new_id("whs")
    secret = generate_hmac_secret()
    conn.execute(
        insert(webhook_secrets).values(
            id=secret_id, agent_id=agent_id, secret=secret, created_at=now, revoked_at=None
        )
    )
    return secret_id, secret


def revoke_hmac_secret(conn: Connection, secret_id: str, now: datetime) -> HmacSecretInfo:
    """Stop signing with one HMAC secret."""
    row = conn.execute(select(webhook_secrets).where(webhook_secrets.c.id == secret_id)).first()
    if row is None:
        raise LookupError(f"no HMAC secret {secret_id!r}")
    if row.revoked_at is None:
        conn.execute(
            update(webhook_secrets).where(webhook_secrets.c.id == secret_id).values(revoked_at=now)
        )
    return HmacSecretInfo(row.id, row.agent_id, row.created_at, row.revoked_at or now)


def list_hmac_secrets(conn: Connection, agent_id: str | None = None) -> list[HmacSecretInfo]:
    """HMAC secrets (without the secrets), oldest first."""
    query = select(
        webhook_secrets.c.id,
        webhook_secrets.c.agent_id,
        webhook_secrets.c.created_at,
        webhook_secrets.c.revoked_at,
    ).order_by(webhook_secrets.c.created_at, webhook_secrets.c.id)
    if agent_id is not None:
        query = query.where(webhook_secrets.c.agent_id == agent_id)
    return [
        HmacSecretInfo(r.id, r.agent_id, r.created_at, r.revoked_at) for r in conn.execute(query)
    ]


def hmac_secrets_for(conn: Connection, agent_id: str) -> list[str]:
    """The `whsec_` secrets that sign `agent_id`'s callbacks."""
    rows = conn.execute(
        select(webhook_secrets.c.secret)
        .where(webhook_secrets.c.agent_id == agent_id, webhook_secrets.c.revoked_at.is_(None))
        .order_by(webhook_secrets.c.created_at, webhook_secrets.c.id)
    )
    return [r.secret for r in rows]
