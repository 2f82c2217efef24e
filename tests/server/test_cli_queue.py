"""`signoff queue` and `signoff decide` for terminal reviewers, run as real subprocesses against
a running server with personal tokens (`--url`/`SIGNOFF_URL`, `--token`/`SIGNOFF_TOKEN`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from signoff.models import Status
from signoff_server.cli import app

from .conftest import free_port
from .reviewer_support import Reviewers, reviewers_server


@pytest.fixture(scope="module")
def server(module_store_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reviewers]:
    with reviewers_server(module_store_url, tmp_path_factory.mktemp("cli")) as world:
        yield world


@dataclass(frozen=True)
class Result:
    """What one `signoff` run printed, and its exit code."""

    returncode: int
    stdout: str
    stderr: str


def signoff(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
    """`signoff ARGS` in this process (CliRunner), with no SIGNOFF_* variables but `env`'s."""
    clean: dict[str, str | None] = {k: None for k in os.environ if k.startswith("SIGNOFF_")}
    runner = CliRunner(env={**clean, "NO_COLOR": "1", "COLUMNS": "250", **(env or {})})
    result = runner.invoke(app, list(args), input=stdin)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Result(result.exit_code, result.stdout, result.stderr)


def signoff_process(*args: str, env: dict[str, str], cwd: Path) -> Result:
    """`signoff ARGS` as a real subprocess (the installed entry point's module)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
    done = subprocess.run(
        [sys.executable, "-m", "signoff_server", *args],
        env={**base, "NO_COLOR": "1", "COLUMNS": "250", **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=cwd,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def as_reviewer(server: Reviewers, email: str) -> dict[str, str]:
    server.as_user(email)  # mints the token
    return {"SIGNOFF_URL": server.url, "SIGNOFF_TOKEN": server.tokens[email]}


def test_queue_lists_my_pending_requests_soonest_first(server: Reviewers, tmp_path: Path) -> None:
    later = server.create(sla="PT4H")
    sooner = server.create(sla="PT30M", risk="critical")
    elsewhere = server.create(route={"role": "sales"})
    env = as_reviewer(server, "alice@example.com")

    table = signoff("queue", env=env)
    assert table.returncode == 0, table.stderr
    assert table.stdout.index(sooner) < table.stdout.index(later)
    assert elsewhere not in table.stdout
    assert "invoice INV-1042" in table.stdout
    assert "pending request(s)" in table.stderr

    lines = signoff_process("queue", "--json", "--risk", "critical", env=env, cwd=tmp_path)
    assert lines.returncode == 0, lines.stderr
    rows = [json.loads(line) for line in lines.stdout.splitlines()]
    assert sooner in [r["id"] for r in rows]
    assert {r["risk"] for r in rows} == {"critical"}
    assert rows[0]["business_object"] == "invoice INV-1042"

    flags = signoff(
        "queue", "--url", server.url, "--token", server.tokens["alice@example.com"],
        "--json")  # fmt: skip
    assert later in flags.stdout

    dave = signoff("queue", "--json", env=as_reviewer(server, "dave@example.com"))
    assert dave.returncode == 0
    assert later not in dave.stdout
    assert sooner not in dave.stdout


def test_decide_approves_edits_rejects_and_responds(server: Reviewers, tmp_path: Path) -> None:
    env = as_reviewer(server, "alice@example.com")
    admin = server.as_user("admin@example.com")

    approve = server.create()
    done = signoff("decide", approve, "--approve", "--comment", "PO matches.", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{approve}: approved\n"
    decision = admin.get_request(approve).decisions[0]
    assert (decision.decided_by.user, decision.comment) == ("alice@example.com", "PO matches.")

    edit = server.create()
    corrected = tmp_path / "args.json"
    corrected.write_text(json.dumps({"invoice_id": "INV-1042", "amount": 12250.0}))
    edited = signoff("decide", edit, "--edit", str(corrected), env=env)
    assert edited.stdout == f"{edit}: approved\n", edited.stderr
    assert admin.get_request(edit).decisions[0].arguments == {
        "invoice_id": "INV-1042",
        "amount": 12250.0,
    }

    piped = server.create()
    from_stdin = signoff("decide", piped, "--edit", "-", stdin='{"amount": 1.0}', env=env)
    assert from_stdin.returncode == 0, from_stdin.stderr

    needs_comment = server.create(comment_required="on_reject")
    refused = signoff("decide", needs_comment, "--reject", env=env)
    assert refused.returncode == 1
    assert "needs a comment" in refused.stderr
    assert admin.get_request(needs_comment).status is Status.PENDING
    rejected = signoff(
        "decide", needs_comment, "--reject", "--comment", "Duplicate.", "--reason", "duplicate",
        env=env)  # fmt: skip
    assert rejected.stdout == f"{needs_comment}: rejected\n", rejected.stderr
    assert admin.get_request(needs_comment).decisions[0].reason_code == "duplicate"

    respond = server.create()
    answered = signoff(
        "decide", respond, "--respond", "Ask for the 2% early-payment discount first.",
        env=env)  # fmt: skip
    assert answered.stdout == f"{respond}: responded\n", answered.stderr

    again = signoff("decide", approve, "--reject", "--comment", "late", env=env)
    assert again.returncode == 1
    assert "409" in again.stderr


def test_usage_mistakes_are_exit_code_2(server: Reviewers, tmp_path: Path) -> None:
    request_id = server.create()
    env = as_reviewer(server, "alice@example.com")
    none = signoff("decide", request_id, env=env)
    both = signoff("decide", request_id, "--approve", "--reject", env=env)
    no_token = signoff("decide", request_id, "--approve", "--url", server.url)
    agent_key = signoff("queue", env={"SIGNOFF_URL": server.url, "SIGNOFF_TOKEN": "sk_" + "x" * 40})
    (tmp_path / "bad.json").write_text("[1, 2")
    bad_json = signoff("decide", request_id, "--edit", str(tmp_path / "bad.json"), env=env)
    for result in (none, both, no_token, agent_key, bad_json):
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
    assert "exactly one of" in both.stderr
    assert "SIGNOFF_TOKEN" in no_token.stderr
    assert "not valid JSON" in bad_json.stderr

    down = signoff("queue", env={**env, "SIGNOFF_URL": f"http://127.0.0.1:{free_port()}"})
    assert down.returncode == 1
    assert "Traceback" not in down.stderr
    assert server.as_user("admin@example.com").get_request(request_id).status is Status.PENDING
