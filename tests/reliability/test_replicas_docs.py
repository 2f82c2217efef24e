"""docs/deployment.md says what the code does: its commands and flags exist, the variables it
names are read, the metrics it lists are served, the 503 codes it lists are the ones sent."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import httpx
import pytest
from tests.support.server import ServerThread
from typer.testing import CliRunner

from signoff_server import db as db_module
from signoff_server.cli import app as cli
from signoff_server.db import migrate
from signoff_server.settings import Settings

ROOT = Path(__file__).parents[2]
DOC = ROOT / "docs" / "deployment.md"
SOURCES = ROOT / "packages" / "server" / "src" / "signoff_server"


def _commands() -> list[list[str]]:
    """Every `signoff …` command line in the doc's sh blocks (continuations joined)."""
    blocks = re.findall(r"```sh\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    lines = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    return [shlex.split(line) for line in lines if line.strip().startswith("signoff ")]


def test_every_signoff_command_and_flag_in_the_doc_exists() -> None:
    commands = _commands()
    assert len(commands) >= 4
    runner = CliRunner()
    for words in commands:
        path = [w for w in words[1:3] if not w.startswith("-") and "/" not in w and "$" not in w]
        helped = runner.invoke(cli, ["--help"])
        while path:
            helped = runner.invoke(cli, [*path, "--help"], terminal_width=200)
            if helped.exit_code == 0:
                break
            path = path[:-1]
        assert path, words
        for flag in (w.split("=")[0] for w in words if w.startswith("--")):
            assert flag in helped.output, f"{' '.join(words)}: no {flag} in signoff {path}"


def test_every_variable_in_the_doc_is_read_by_the_server() -> None:
    named = set(re.findall(r"\bSIGNOFF_[A-Z_]+\b", DOC.read_text()))
    assert "SIGNOFF_DATABASE_URL" in named
    code = "\n".join(p.read_text() for p in SOURCES.rglob("*.py"))
    assert {v for v in named if v not in code} == set()


def test_every_metric_in_the_doc_is_served(tmp_path: Path) -> None:
    listed = set(re.findall(r"^\| `(signoff_[a-z_]+)", DOC.read_text(), flags=re.M))
    assert len(listed) >= 8
    url = f"sqlite:///{tmp_path / 'signoff.db'}"
    migrate(url)
    settings = Settings(
        database_url=url,
        webhook_keys_path=str(tmp_path / "webhook-keys.json"),
        audit_key_file=str(tmp_path / "audit.key"),
        secret_key_file=str(tmp_path / "secret.key"),
    )
    with ServerThread(settings) as server:
        served = httpx.get(f"{server.url}/metrics", timeout=10).text
    exposed = set(re.findall(r"^# TYPE (\S+)", served, flags=re.M))
    exposed |= {f"{name}_total" for name in exposed}  # counters: HELP/TYPE name without _total
    assert listed - exposed == set(), sorted(exposed)


@pytest.mark.parametrize(
    "code", ["database_unavailable", "database_busy", "disk_full", "database_io_error"]
)
def test_every_503_code_in_the_doc_is_one_the_server_sends(code: str) -> None:
    assert f"| `{code}` |" in DOC.read_text()
    assert code in db_module._MESSAGES  # pyright: ignore[reportPrivateUsage]
