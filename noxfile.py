"""nox sessions beyond the default pytest run, e.g. `uv run nox -s bench`."""

from __future__ import annotations

from pathlib import Path

import nox
from nox.command import CommandFailed

ROOT = Path(__file__).parent
BENCHMARKS = sorted((ROOT / "tests" / "benchmarks").glob("bench_*.py"))
BENCH_REPORTER = "tests/benchmarks/_report.py"


def _bench_args(posargs: list[str]) -> tuple[list[str], Path]:
    """The name filters and the report directory (`--report-dir DIR`, default .bench/)."""
    words: list[str] = []
    report_dir = ROOT / ".bench"
    args = iter(posargs)
    for arg in args:
        if arg == "--report-dir":
            report_dir = ROOT / next(args, ".bench")
        elif arg.startswith("--report-dir="):
            report_dir = ROOT / arg.partition("=")[2]
        else:
            words.append(arg)
    return words, report_dir


@nox.session(venv_backend="none")
def bench(session: nox.Session) -> None:
    """Run the benchmark scripts in tests/benchmarks/ in the workspace environment.

    Every script by default; `uv run nox -s bench -- webhooks` runs those whose file name
    contains one of the given words. A script that misses its target exits non-zero; the
    session runs the others anyway, then fails naming it. Every figure the scripts record
    (tests/benchmarks/_report.py) ends up in one report, printed and written to
    bench-report.md and bench-report.json in .bench/ (`-- --report-dir DIR` for another place).
    """
    words, report_dir = _bench_args(session.posargs)
    scripts = [s for s in BENCHMARKS if not words or any(w in s.stem for w in words)]
    if not scripts:
        session.error(f"no benchmark in tests/benchmarks/ matches {words}")
    records = str(report_dir / "bench-records.jsonl")
    session.run("uv", "run", "python", BENCH_REPORTER, "begin", records, external=True)
    failed: list[str] = []
    statuses: list[str] = []
    for script in scripts:
        path = str(script.relative_to(ROOT))
        code = 0
        try:
            session.run(
                "uv", "run", "python", path, external=True, env={"SIGNOFF_BENCH_REPORT": records}
            )  # fmt: skip
        except CommandFailed as exc:
            code = exc.return_code if exc.return_code is not None else -1
            failed.append(path)
        statuses += ["--status", f"{script.stem}={code}"]
    session.run(
        "uv", "run", "python", BENCH_REPORTER, "render", records, "--report-dir", str(report_dir),
        *statuses, external=True,
    )  # fmt: skip
    if failed:
        session.error(f"missed the target or failed: {', '.join(failed)}")


SOAK_TESTS = ["tests/reliability/test_crash.py", "tests/reliability/test_faults.py"]


@nox.session(venv_backend="none")
def soak(session: nox.Session) -> None:
    """The crash and fault suite as a long soak: `uv run nox -s soak -- [SECONDS] [RUNS]`.

    Each run loads every crash set-up (SQLite single node; PostgreSQL with two replicas) for
    SECONDS (default 300) while SIGKILLing the servers at random moments, then runs the fault
    tests; RUNS (default 1) repeats that. Every test prints a `SOAK …` line; the session ends
    with one `SOAK TOTAL` line over all runs: runs, kills, requests, decisions, callbacks,
    lost, duplicated decisions, audit verify.
    """
    import json

    numbers = [a for a in session.posargs if a.replace(".", "", 1).isdigit()]
    seconds = numbers[0] if numbers else "300"
    runs = int(numbers[1]) if len(numbers) > 1 else 1
    extra = [a for a in session.posargs if a not in numbers]
    report = Path(session.create_tmp()) / "soak.jsonl"
    report.write_text("")
    env = {"SIGNOFF_SOAK_SECONDS": seconds, "SIGNOFF_SOAK_REPORT": str(report)}
    for _ in range(runs):
        session.run(
            "uv", "run", "pytest", *SOAK_TESTS, "-n0", "-q", "-s", "-p", "no:cacheprovider", *extra,
            external=True, env=env,
        )  # fmt: skip
    rows = [json.loads(line) for line in report.read_text().splitlines() if line.strip()]
    crashes = [r for r in rows if str(r["label"]).startswith("crash-")]
    counted = "kills requests decisions expired callbacks deliveries duplicate_deliveries lost"
    counted += " duplicated_decisions timers_fired_twice"
    total = {
        "runs": len(crashes),
        "seconds_each": seconds,
        **{key: sum(int(r.get(key, 0)) for r in crashes) for key in counted.split()},
        "audit_verify": "pass"
        if crashes and all(r.get("audit_verify") == "pass" for r in rows)
        else "FAIL",
        "fault_tests": len(rows) - len(crashes),
    }
    session.log("SOAK TOTAL: " + " ".join(f"{k}={v}" for k, v in total.items()))


TEST_TOOLS = [
    "pytest>=8.3", "pytest-xdist>=3.6", "anyio>=4.4", "httpx", "hypothesis>=6.100",
    "uvicorn>=0.30",
]  # fmt: skip


def _isolated(session: nox.Session, *packages: str, extra: tuple[str, ...] = ()) -> str:
    """A fresh venv holding only the core, the server, `packages` and the test tools.

    Built with uv (never downloading a Python); returns the venv's python.
    """
    venv = Path(session.create_tmp()) / "venv"
    env = {"UV_PYTHON_DOWNLOADS": "never"}
    session.run(
        "uv", "venv", "--quiet", "--clear", "--python", "3.11", str(venv), external=True, env=env
    )  # fmt: skip
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


LANGGRAPH_FLOORED = ("langgraph", "langchain-core", "langgraph-checkpoint-sqlite")


def _declared_floors(pyproject: Path, names: tuple[str, ...]) -> dict[str, str]:
    """The `>=` lower bound that `pyproject` declares for each of `names` (extras included)."""
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads(pyproject.read_text())["project"]
    extras: dict[str, list[str]] = project.get("optional-dependencies", {})
    floors: dict[str, str] = {}
    for line in [*project["dependencies"], *(r for group in extras.values() for r in group)]:
        requirement = Requirement(line)
        for spec in requirement.specifier:
            if requirement.name in names and spec.operator == ">=":
                floors[requirement.name] = spec.version
    if missing := set(names) - set(floors):
        raise ValueError(f"{pyproject} declares no >= floor for {sorted(missing)}")
    return floors


@nox.session(venv_backend="none")
def langgraph_floor(session: nox.Session) -> None:
    """signoff-langgraph's tests on the lowest versions it claims: langgraph, langchain-core and
    langgraph-checkpoint-sqlite pinned to the `>=` floors in integrations/langgraph/pyproject.toml.

    `uv run nox -s langgraph_floor -- -k tool_gate` passes arguments on to pytest.
    """
    floors = _declared_floors(ROOT / "integrations/langgraph/pyproject.toml", LANGGRAPH_FLOORED)
    pins = tuple(f"{name}=={floor}" for name, floor in floors.items())
    python = _isolated(session, "integrations/langgraph", extra=pins)
    dists = (*LANGGRAPH_FLOORED, "langgraph-prebuilt", "langgraph-checkpoint", "aiosqlite")
    session.run(
        python, "-c",
        "import importlib.metadata as m; "
        f"print(', '.join(f'{{p}} {{m.version(p)}}' for p in {dists!r}))",
        external=True,
    )  # fmt: skip
    session.run(
        python, "-m", "pytest", "tests/integrations/langgraph", "-q", *session.posargs,
        external=True,
    )  # fmt: skip


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
        "pytest>=8.3", "pytest-xdist>=3.6", "anyio>=4.4", "httpx", "hypothesis>=6.100",
        "uvicorn>=0.30", "respx>=0.22", "standardwebhooks>=1.1", "pyright>=1.1.390",
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


N8N_PACKAGE = ROOT / "integrations" / "n8n"


@nox.session(venv_backend="none")
def n8n(session: nox.Session) -> None:
    """The n8n community node (integrations/n8n) and the real-n8n end-to-end tests.

    In integrations/n8n: `npm ci --ignore-scripts` (skipped while node_modules matches
    package-lock.json), `npm test` (typecheck + vitest), `n8n-node lint` and `n8n-node build`.
    Then n8n 2.41 with Node 24 from the npm registry, installed once into ~/.cache/signoff-n8n
    (`SIGNOFF_N8N_CACHE` moves it; tests/integrations/n8n/install_n8n.py), runs the example
    workflow against a real signoff server: `pytest tests/integrations/n8n`. `uv run nox -s n8n
    -- -k approve` passes arguments on to pytest.
    """
    import hashlib
    import shutil
    import time

    if shutil.which("npm") is None:
        session.error("npm is needed for the n8n node (Node 20 or later)")
    lock = hashlib.sha256((N8N_PACKAGE / "package-lock.json").read_bytes()).hexdigest()
    stamp = N8N_PACKAGE / "node_modules" / ".signoff-package-lock.sha256"
    with session.chdir(N8N_PACKAGE):
        if not stamp.is_file() or stamp.read_text().strip() != lock:
            session.run(
                "npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", external=True
            )  # fmt: skip
            stamp.write_text(lock + "\n")
        session.run("npm", "test", external=True)
        session.run("npx", "--no-install", "n8n-node", "lint", external=True)
        session.run("npx", "--no-install", "n8n-node", "build", external=True)
    install = "tests/integrations/n8n/install_n8n.py"
    started = time.monotonic()
    session.run("uv", "run", "python", install, external=True)  # a no-op when cached
    home = str(session.run("uv", "run", "python", install, "--where", external=True, silent=True))
    home = home.strip().splitlines()[-1]
    session.log(f"n8n install: {home} ({time.monotonic() - started:.0f} s)")
    session.run(
        "uv", "run", "pytest", "tests/integrations/n8n", "-n0", "-q", "-p", "no:cacheprovider",
        *session.posargs, external=True, env={"SIGNOFF_N8N_HOME": home},
    )  # fmt: skip
