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


CREWAI_OFFLINE = {
    "CREWAI_DISABLE_TELEMETRY": "true",
    "CREWAI_DISABLE_VERSION_CHECK": "true",
    "CREWAI_TRACING_ENABLED": "false",
    "OTEL_SDK_DISABLED": "true",
}


@nox.session(venv_backend="none")
def crewai(session: nox.Session) -> None:
    """signoff-crewai in its own venv: CrewAI pins pydantic<2.13 and openai<3, so its tests (and
    the conformance suite for it) run with pydantic 2.12, next to the core and the server.

    Strict pyright for the adapter runs here too (the default environment has no CrewAI);
    `uv run nox -s crewai -- -k flow` passes arguments on to pytest.
    """
    tmp = Path(session.create_tmp())
    venv = tmp / "venv"
    env = {"UV_PYTHON_DOWNLOADS": "never"}
    session.run(
        "uv", "venv", "--quiet", "--clear", "--python", "3.11", str(venv), external=True, env=env
    )  # fmt: skip
    python = str(venv / "bin" / "python")
    editable = [a for p in ("core", "packages/server", "integrations/crewai") for a in ("-e", p)]
    tools = [
        "pytest>=8.3", "anyio>=4.4", "httpx", "hypothesis>=6.100", "uvicorn>=0.30",
        "respx>=0.22", "standardwebhooks>=1.1", "pyright>=1.1.390",
    ]  # fmt: skip
    session.run(
        "uv", "pip", "install", "--quiet", "--python", python, *editable, *tools,
        external=True, env=env,
    )  # fmt: skip
    session.run(python, "-c", _VERSIONS, external=True)
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    offline = {**CREWAI_OFFLINE, "HOME": str(home), "CREWAI_STORAGE_DIR": str(home / "crewai")}
    session.run(
        python, "-m", "pyright", "--pythonpath", python, "-p", "integrations/crewai",
        external=True, env=offline,
    )  # fmt: skip
    session.run(
        python, "-m", "pytest", "tests/integrations/crewai", "tests/core", "-q",
        *session.posargs, external=True, env=offline,
    )  # fmt: skip


_VERSIONS = (
    "import importlib.metadata as m; "
    "print(', '.join(f'{p} {m.version(p)}' for p in ('crewai', 'pydantic', 'openai')))"
)
