"""The `signoff` command line, run as a real subprocess (DESIGN.md §4 "CLI conventions").

Secrets alone on stdout, everything for people on stderr; one-line errors with exit code 2 and
no traceback; `--db` defaulting to `SIGNOFF_DATABASE_URL`, else `./signoff.db`; `serve --demo`
answers `/healthz` and prints credentials that work.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import httpx
import pytest

from signoff_server.settings import Settings

from .conftest import ServerThread, free_port

SECRET = re.compile(r"(sk|pt)_[A-Za-z0-9_-]{32,}")


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`signoff ARGS` in a subprocess, with no SIGNOFF_* variables but those in `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
    return subprocess.run(
        [sys.executable, "-m", "signoff_server", *args],
        cwd=cwd,
        env={**base, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_secret_alone(result: subprocess.CompletedProcess[str], prefix: str) -> str:
    """Exit 0, stdout is exactly one line holding one secret, stderr has the rest."""
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("\n"), repr(result.stdout)
    assert len(result.stdout.splitlines()) == 1, repr(result.stdout)
    secret = result.stdout.strip()
    assert secret.startswith(prefix), secret
    assert SECRET.fullmatch(secret), secret
    assert result.stderr.strip(), "the human text belongs on stderr"
    assert secret not in result.stderr
    return secret


def assert_clean_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit 2, nothing on stdout, one line on stderr naming the problem, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].lower().startswith("error"), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def invoice(amount: str = "500.00") -> dict[str, Any]:
    return {
        "action": {
            "name": "payments.release",
            "arguments": {"invoice_id": "INV-1042", "amount": amount, "currency": "EUR"},
        },
        "business_object": {"type": "invoice", "id": "INV-1042"},
        "route": {"role": "finance-approver"},
    }


def test_entry_point_is_installed() -> None:
    (script,) = entry_points(group="console_scripts", name="signoff")
    assert script.value == "signoff_server.cli:app"
    assert (Path(sys.executable).parent / "signoff").exists()


def test_migrate(tmp_path: Path, db_url: str) -> None:
    result = run("migrate", "--db", db_url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "up to date" in result.stderr
    assert (tmp_path / "cli.db").exists()
    again = run("migrate", "--db", db_url, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert not (tmp_path / "signoff.db").exists()


def test_keys_users_tokens_and_they_work_against_a_server(tmp_path: Path, db_url: str) -> None:
    key = assert_secret_alone(
        run("keys", "create", "--agent", "a", "--db", db_url, cwd=tmp_path), "sk_"
    )

    added = run(
        "users",
        "add",
        "alice@example.com",
        "--role",
        "finance-approver",
        "--db",
        db_url,
        cwd=tmp_path,
    )
    assert added.returncode == 0, added.stderr
    assert added.stdout == ""
    assert "alice@example.com" in added.stderr
    assert "finance-approver" in added.stderr

    token = assert_secret_alone(
        run("tokens", "create", "--user", "alice@example.com", "--db", db_url, cwd=tmp_path), "pt_"
    )

    with (
        ServerThread(Settings(database_url=db_url)) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        created = http.post(
            "/v1/requests", json=invoice(), headers={"Authorization": f"Bearer {key}"}
        )
        assert created.status_code == 201, created.text
        assert created.json()["agent"]["id"] == "a"
        assert created.json()["assignees"] == ["alice@example.com"]
        decided = http.post(
            f"/v1/requests/{created.json()['id']}/decisions",
            json={"verdict": "approve"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert decided.status_code == 200, decided.text
        assert decided.json()["decisions"][-1]["decided_by"]["user"] == "alice@example.com"


def test_users_add_updates_roles(tmp_path: Path, db_url: str) -> None:
    first = run(
        "users",
        "add",
        "Bob@Example.com",
        "--role",
        "a",
        "--role",
        "b",
        "--db",
        db_url,
        cwd=tmp_path,
    )
    assert first.returncode == 0, first.stderr
    again = run("users", "add", "bob@example.com", "--role", "c", "--db", db_url, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    token = assert_secret_alone(
        run("tokens", "create", "--user", "BOB@example.com", "--db", db_url, cwd=tmp_path), "pt_"
    )
    key = assert_secret_alone(
        run("keys", "create", "--agent", "a", "--db", db_url, cwd=tmp_path), "sk_"
    )
    with (
        ServerThread(Settings(database_url=db_url)) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        for role, visible in (("a", False), ("c", True)):
            body = {**invoice(), "route": {"role": role}}
            made = http.post("/v1/requests", json=body, headers={"Authorization": f"Bearer {key}"})
            assert made.status_code == 201, made.text
            seen = http.get(
                f"/v1/requests/{made.json()['id']}", headers={"Authorization": f"Bearer {token}"}
            )
            assert (seen.status_code == 200) is visible, (role, seen.text)


def test_tokens_for_unknown_user_is_a_clean_error(tmp_path: Path, db_url: str) -> None:
    result = run("tokens", "create", "--user", "nobody@example.com", "--db", db_url, cwd=tmp_path)
    assert_clean_error(result, "nobody@example.com")


@pytest.mark.parametrize(
    "args",
    [["keys", "create", "--agent", "a"], ["serve", "--port", "1"]],
    ids=["keys", "serve"],
)
def test_unsupported_db_url_is_a_clean_error(tmp_path: Path, args: list[str]) -> None:
    result = run(*args, "--db", "mysql://x", cwd=tmp_path)
    assert_clean_error(result, "mysql")


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("sqlite:///{tmp}/no/such/dir/x.db", id="sqlite missing dir"),
        pytest.param("postgresql://nobody@127.0.0.1:{closed}/signoff", id="postgres refused"),
        pytest.param("::", id="not a url"),
    ],
)
def test_unusable_db_is_a_clean_error(tmp_path: Path, url: str) -> None:
    url = url.format(tmp=tmp_path, closed=free_port())
    result = run("keys", "create", "--agent", "a", "--db", url, cwd=tmp_path)
    assert result.returncode != 0
    assert result.stdout == ""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip(), "says what is wrong"


def test_invalid_arguments_are_usage_errors(tmp_path: Path, db_url: str) -> None:
    not_email = run("users", "add", "alice", "--role", "r", "--db", db_url, cwd=tmp_path)
    assert_clean_error(not_email, "alice")
    blank_agent = run("keys", "create", "--agent", " ", "--db", db_url, cwd=tmp_path)
    assert_clean_error(blank_agent, "--agent")


def test_database_url_from_environment(tmp_path: Path) -> None:
    store = tmp_path / "from-env.db"
    env = {"SIGNOFF_DATABASE_URL": f"sqlite:///{store}"}
    key = assert_secret_alone(
        run("keys", "create", "--agent", "env-agent", cwd=tmp_path, env=env), "sk_"
    )
    assert store.exists()
    assert not (tmp_path / "signoff.db").exists()
    with (
        ServerThread(Settings(database_url=f"sqlite:///{store}")) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        listed = http.get("/v1/requests", headers={"Authorization": f"Bearer {key}"})
        assert listed.status_code == 200, listed.text
    # An explicit --db still wins over the environment.
    other = tmp_path / "explicit.db"
    run("migrate", "--db", f"sqlite:///{other}", cwd=tmp_path, env=env)
    assert other.exists()


def test_default_database_is_signoff_db_in_the_working_directory(tmp_path: Path) -> None:
    assert_secret_alone(run("keys", "create", "--agent", "a", cwd=tmp_path), "sk_")
    assert (tmp_path / "signoff.db").exists()


# serve --demo ---------------------------------------------------------------------------------


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`signoff serve --demo` in a subprocess; yields its URL and stderr file; always stopped."""
    port = free_port()
    log = tmp_path / "serve.log"
    args = ["serve", "--demo", "--port", str(port), "--db", f"sqlite:///{tmp_path / 'demo.db'}"]
    base = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "signoff_server", *args],
            cwd=tmp_path,
            env={**base, "NO_COLOR": "1", "COLUMNS": "200"},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, log.read_text()
                try:
                    if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"no /healthz in 60 s:\n{log.read_text()}"
                time.sleep(0.1)
            yield url, log
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=20)


def test_serve_demo(demo: tuple[str, Path]) -> None:
    url, log = demo
    text = log.read_text()
    agent = re.search(r"agent key[^:]*:\s*(sk_\S+)", text)
    reviewer = re.search(r"reviewer token \(([^)]+)\):\s*(pt_\S+)", text)
    assert agent, text
    assert reviewer, text
    assert httpx.get(f"{url}/healthz", timeout=5).json() == {"status": "ok"}

    with httpx.Client(base_url=url, timeout=30) as http:
        created = http.post(
            "/v1/requests",
            json=invoice(),
            headers={"Authorization": f"Bearer {agent.group(1)}"},
        )
        assert created.status_code == 201, created.text
        request_id = created.json()["id"]
        decided = http.post(
            f"/v1/requests/{request_id}/decisions",
            json={"verdict": "approve", "comment": "matches PO-7781"},
            headers={"Authorization": f"Bearer {reviewer.group(2)}"},
        )
        assert decided.status_code == 200, decided.text
        assert decided.json()["status"] == "approved"
        assert decided.json()["decisions"][-1]["decided_by"]["user"] == reviewer.group(1)
