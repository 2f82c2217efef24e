"""The server secret that signs email decision links: a file, created on first start.

Like the other key files it never lives in the database, and every replica must read the same
file. It is 32 random bytes, hex-encoded, written with mode 0600.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from pathlib import Path

from sqlalchemy.engine import make_url

from signoff_server.db import normalize_url

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
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
    text = path.read_text().strip()
    for _ in range(50):  # another process created it a moment ago and is still writing
        if text:
            break
        time.sleep(0.02)
        text = path.read_text().strip()
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{path} does not hold a hex-encoded secret") from None
    if len(secret) < 32:
        raise ValueError(f"{path} holds a secret shorter than 32 bytes")
    return secret
