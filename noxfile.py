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


TEST_TOOLS = ["pytest>=8.3", "anyio>=4.4", "httpx", "hypothesis>=6.100", "uvicorn>=0.30"]


def _isolated(session: nox.Session, *packages: str, extra: tuple[str, ...] = ()) -> str:
    """A fresh venv holding only the core, the server, `packages` and the test tools.

    Built with uv (never downloading a Python); returns the venv's python.
    """
    venv = Path(session.create_tmp()) / "venv"
    env = {"UV_PYTHON_DOWNLOADS": "never"}
    session.run("uv", "venv", "--quiet", "--python", "3.11", str(venv), external=True, env=env)
    python = str(venv / "bin" / "python")
    editable = [arg for p in ("core", "packages/server", *packages) for arg in ("-e", p)]
    session.run(
        "uv", "pip", "install", "--quiet", "--python", python, *editable, *TEST_TOOLS, *extra,
        external=True, env=env,
    )  # fmt: skip
    return python


@nox.session(venv_backend="none")
def openai_agents(session: nox.Session) -> None:
    """signoff-openai-agents alone with the core, the server and the SDK (openai>=3 pins)."""
    python = _isolated(session, "integrations/openai-agents")
    session.run(python, "-m", "pytest", "tests/integrations/openai_agents", "-q", external=True)
