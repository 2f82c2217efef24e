"""nox sessions beyond the default pytest run, e.g. `uv run nox -s bench`."""

from __future__ import annotations

from pathlib import Path

import nox
from nox.command import CommandFailed

ROOT = Path(__file__).parent
BENCHMARKS = sorted((ROOT / "tests" / "benchmarks").glob("bench_*.py"))


@nox.session(venv_backend="none")
def bench(session: nox.Session) -> None:
    """Run the benchmark scripts in tests/benchmarks/ in the workspace environment.

    Every script by default; `uv run nox -s bench -- webhooks` runs those whose file name
    contains one of the given words. A script that misses its target exits non-zero; the
    session runs the others anyway, then fails naming it.
    """
    scripts = [
        s for s in BENCHMARKS if not session.posargs or any(w in s.stem for w in session.posargs)
    ]
    if not scripts:
        session.error(f"no benchmark in tests/benchmarks/ matches {session.posargs}")
    failed: list[str] = []
    for script in scripts:
        path = str(script.relative_to(ROOT))
        try:
            session.run("uv", "run", "python", path, external=True)
        except CommandFailed:
            failed.append(path)
    if failed:
        session.error(f"missed the target or failed: {', '.join(failed)}")
