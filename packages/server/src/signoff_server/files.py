"""Secret files written so that a reader never sees one half-written.

Replicas that start together on a shared volume all try to create the same key files. Each
writes its candidate to a private temporary file beside the target (mode 0600, synced), then
links it into place: the link fails if the target exists, so exactly one candidate wins, and
the target appears complete or not at all.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["create_exclusive", "replace_atomically", "sync_dir", "write_temporary"]


def write_temporary(path: Path, data: bytes) -> Path:
    """`data` in a new 0600 file beside `path` (same file system: link and rename are atomic)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def sync_dir(directory: Path) -> None:
    """Make a new directory entry durable (where the platform can)."""
    with contextlib.suppress(OSError):  # not every platform can fsync a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def create_exclusive(path: Path, data: bytes) -> bool:
    """Create `path` holding `data` unless it exists; True if this call created it."""
    if path.exists():
        return False
    temporary = write_temporary(path, data)
    try:
        os.link(temporary, path)
    except FileExistsError:
        return False
    finally:
        temporary.unlink(missing_ok=True)
    sync_dir(path.parent)
    return True


def replace_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path`, replacing what was there in one step."""
    temporary = write_temporary(path, data)
    os.replace(temporary, path)
    sync_dir(path.parent)
