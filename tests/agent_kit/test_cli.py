"""The command: formats, exit codes, errors with file and line, --suggest-config."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from signoff_agent_kit import scan
from signoff_agent_kit.cli import app

CORPUS = Path(__file__).parent / "corpus"
FINANCE = CORPUS / "langgraph_finance"  # criticals all gated; a high and a medium are not
runner = CliRunner()


def test_text_report_lists_agents_actions_coverage_and_gaps() -> None:
    result = runner.invoke(app, [str(FINANCE), "--no-progress"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    shown = (
        "Agents (2)",
        "Risky actions and coverage (6)",
        "payments.release",
        "signoff_langgraph.gate_tools",
        "Gaps, riskiest first (2)",
        "gate it:",
    )
    for text in shown:
        assert text in out
    assert out.index("1. HIGH purge") < out.index("2. MEDIUM email_vendor")


def test_json_report() -> None:
    result = runner.invoke(app, [str(FINANCE), "--format", "json", "--no-progress"])
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert document["summary"]["risky_actions"] == 6
    assert document["summary"]["ungated"] == 2
    release = next(a for a in document["actions"] if a["action"] == "payments.release")
    assert release["status"] == "gated"
    assert release["evidence"][0]["file"] == "tools.py"


@pytest.mark.parametrize(
    ("threshold", "code"), [("critical", 0), ("high", 1), ("medium", 1), ("none", 0)]
)
def test_fail_on(threshold: str, code: int) -> None:
    result = runner.invoke(app, [str(FINANCE), "--fail-on", threshold, "--format", "json"])
    assert result.exit_code == code, result.output
    if code:
        assert f"fail-on {threshold}:" in result.stderr
        assert "purge" in result.stderr


def test_weakly_gated_actions_count_for_fail_on() -> None:
    result = runner.invoke(app, [str(CORPUS / "crewai_ops"), "--fail-on", "critical", "-f", "json"])
    assert result.exit_code == 1
    assert "Rotate API keys" in result.stderr  # only a CrewAI hook in front of it


def test_a_missing_path_is_a_clear_error() -> None:
    result = runner.invoke(app, ["no/such/dir"])
    assert result.exit_code == 2
    assert "no/such/dir: no such file or directory" in result.stderr


def test_a_broken_policy_file_is_named_with_its_line(tmp_path: Path) -> None:
    config = tmp_path / "signoff.yaml"
    config.write_text("policies:\n  - name: a\n    match: {action: [x\n", encoding="utf-8")
    result = runner.invoke(app, [str(FINANCE), "--config", str(config)])
    assert result.exit_code == 2
    assert f"{config}:" in result.stderr
    assert "line" not in result.stderr.split(":", 2)[-1][:5]  # file:line, not prose


def test_a_file_that_does_not_parse_is_a_warning_with_its_line(tmp_path: Path) -> None:
    shutil.copytree(FINANCE, tmp_path / "p")
    (tmp_path / "p" / "bad.py").write_text("def f(:\n    pass\n", encoding="utf-8")
    result = runner.invoke(app, [str(tmp_path / "p"), "--format", "json"])
    assert result.exit_code == 0
    assert "warning: bad.py:1: skipped, does not parse" in result.stderr
    assert json.loads(result.stdout)["summary"]["risky_actions"] == 6  # the scan went on
    text = runner.invoke(app, [str(tmp_path / "p")])
    assert "bad.py:1: skipped, does not parse" in text.stdout


def test_output_file(tmp_path: Path) -> None:
    target = tmp_path / "report.sarif"
    result = runner.invoke(app, [str(FINANCE), "-f", "sarif", "-o", str(target)])
    assert result.exit_code == 0
    assert result.stdout == ""
    assert json.loads(target.read_text())["version"] == "2.1.0"


def test_progress_on_a_non_terminal_does_not_break_the_report() -> None:
    result = runner.invoke(app, [str(FINANCE), "--progress", "-f", "json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["summary"]["risky_actions"] == 6


def test_suggest_config_covers_every_risky_action(tmp_path: Path) -> None:
    target = tmp_path / "signoff.yaml"
    args = [
        str(CORPUS / "mixed"),
        "--suggest-config",
        "--suggest-output",
        str(target),
        "-f",
        "json",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "wrote" in result.stderr
    document = yaml.safe_load(target.read_text())
    actions = scan([CORPUS / "mixed"]).actions
    assert len(document["policies"]) == len(actions)
    covered = scan([CORPUS / "mixed"], config=target)
    for action in covered.actions:
        cov = action.coverage
        assert cov.owned, action.display_name
        assert cov.sla, action.display_name
        assert cov.escalation, action.display_name
        assert cov.on_timeout == "reject", action.display_name
    again = runner.invoke(app, args)
    assert again.exit_code == 2
    assert "exists; pass --force" in again.stderr
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0


def test_the_suggested_config_loads_in_the_server_when_installed(tmp_path: Path) -> None:
    config = pytest.importorskip("signoff_server.policy.config")
    target = tmp_path / "signoff.yaml"
    runner.invoke(app, [str(CORPUS), "--suggest-config", "--suggest-output", str(target)])
    loaded = config.load_config(str(target), check_quorum=False)
    assert len(loaded.file.policies) == len(scan([CORPUS]).actions)


def test_signoff_scan_is_a_command_of_the_server_cli() -> None:
    server_cli = pytest.importorskip("signoff_server.cli")
    result = runner.invoke(server_cli.app, ["scan", str(FINANCE), "-f", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["summary"]["risky_actions"] == 6


def test_console_script_and_module_entry_point() -> None:
    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts["signoff-scan"] == "signoff_agent_kit.cli:main"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "signoff_agent_kit",
            str(FINANCE),
            "--fail-on",
            "high",
            "-f",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert json.loads(done.stdout)["summary"]["gaps"] == 2


def test_exclude_globs() -> None:
    args = [str(CORPUS), "-f", "json", "--exclude", "mixed/*", "--exclude", "n8n_flows"]
    document = json.loads(runner.invoke(app, args).stdout)
    files = {a["file"] for a in document["actions"]}
    assert files
    assert not {f for f in files if f.startswith(("mixed/", "n8n_flows/"))}
