"""Which files a scan reads: Python sources and JSON files that may be n8n workflows."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

__all__ = ["DEFAULT_EXCLUDES", "Discovered", "discover"]

DEFAULT_EXCLUDES = frozenset(
    [
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "venv",
        ".env",
        "env",
        "node_modules",
        "__pycache__",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".hypothesis",
        "build",
        "dist",
        "site-packages",
        ".eggs",
        ".idea",
        ".vscode",
        ".ipynb_checkpoints",
    ]
)
"""Directory names never descended into."""

MAX_JSON_BYTES = 5_000_000


@dataclass(slots=True)
class Discovered:
    """The scan root and the files under it, as paths relative to the root (POSIX style)."""

    root: Path
    python: list[str] = field(default_factory=list[str])
    json: list[str] = field(default_factory=list[str])


def _excluded(rel: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch(rel, p) or fnmatch(rel, p.rstrip("/") + "/*") for p in patterns)


def _root(paths: list[Path]) -> Path:
    resolved = [p.resolve() for p in paths]
    bases = [p if p.is_dir() else p.parent for p in resolved]
    return Path(os.path.commonpath([str(b) for b in bases]))


def discover(paths: list[Path], excludes: tuple[str, ...] = ()) -> Discovered:
    """Walk `paths` (files or directories); raises FileNotFoundError for a missing one."""
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or directory")
    root = _root(paths)
    found = Discovered(root)
    seen: set[str] = set()

    def add(file: Path) -> None:
        rel = Path(os.path.relpath(os.path.abspath(file), root)).as_posix()
        if rel in seen or _excluded(rel, excludes):
            return
        seen.add(rel)
        if file.suffix == ".py":
            found.python.append(rel)
        elif file.suffix == ".json":
            found.json.append(rel)

    for path in paths:
        if path.is_file():
            add(path)
            continue
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames[:] = sorted(
                d for d in dirnames if d not in DEFAULT_EXCLUDES and not d.endswith(".egg-info")
            )
            for name in sorted(filenames):
                if name.endswith((".py", ".json")):
                    add(Path(dirpath) / name)
    found.python.sort()
    found.json.sort()
    return found
