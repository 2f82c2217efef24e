"""The server secret that signs email decision links: a file, created on first start.

Like the other key files it never lives in the database, and every replica must read the same
file. It is 32 random bytes, hex-encoded, written with mode 0600.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from sqlalchemy.engine import make_url

from signoff_server.db import normalize_url
from signoff_server.files import create_exclusive

__all__ = ["default_secret_path", "load_secret"]


def default_secret_path(database_url: str) -> Path:
    """Next to a SQLite database file (`signoff.db` → `signoff.secret.key`), else
    `./signoff-secret.key`."""
    url = make_url(normalize_url(database_url))
    database = url.database or ""
    if url.get_backend_name() == "sqlite" and database and database != ":memory:":
        path = Path(database.removeprefix("file:").split("?", 1)[0])
        return path.with_name(f"{path.stem}.secret.key")
    return Path("signoff-secret.key")


def load_secret(path: Path) -> bytes:
    """The secret in `path`, creating the file (mode 0600) if it does not exist yet.

    Raises ValueError for a file that does not hold a secret of at least 32 bytes.
    """
    # Replicas starting together race here: one secret wins, the others read it (complete).
    create_exclusive(path, (secrets.token_hex(32) + "\n").encode())
    text = path.read_text().strip()
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{path} does not hold a hex-encoded secret") from None
    if len(secret) < 32:
        raise ValueError(f"{path} holds a secret shorter than 32 bytes")
    return secret
