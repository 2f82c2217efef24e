"""The examples in docs/scan.md run, and print what the doc says they print.

Blocks are marked with an HTML comment before them:
`<!-- scan-test: file PATH -->` writes the next block to PATH (in a temp directory),
`<!-- scan-test: run [exit=N] -->` runs each `$ signoff-scan ...` line of the next block there
and checks that every other line of the block appears in its output (stdout and stderr,
whitespace-trimmed) and the exit status, and `<!-- scan-test: python -->` runs the block.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from signoff_agent_kit.cli import app

DOC = Path(__file__).parents[2] / "docs" / "scan.md"
MARKED = re.compile(
    r"^<!-- scan-test: (?P<what>\w+)(?: (?P<arg>[^>]*?))? -->\n```\w*\n(?P<body>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)
BLOCKS = list(MARKED.finditer(DOC.read_text(encoding="utf-8")))


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def test_the_doc_has_runnable_examples() -> None:
    kinds = [b["what"] for b in BLOCKS]
    assert kinds.count("file") >= 1
    assert kinds.count("run") >= 3
    assert kinds.count("python") >= 1


def test_the_examples_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SIGNOFF_CONFIG", raising=False)
    runner = CliRunner()
    for block in BLOCKS:
        what, arg, body = block["what"], (block["arg"] or "").strip(), block["body"]
        if what == "file":
            target = tmp_path / arg
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(body, encoding="utf-8")
        elif what == "python":
            exec(compile(body, f"{DOC.name} (python block)", "exec"), {})  # noqa: S102
        elif what == "run":
            expected_exit = int(arg.removeprefix("exit=")) if arg else 0
            command, *shown = body.splitlines()
            assert command.startswith("$ signoff-scan "), command
            result = runner.invoke(app, shlex.split(command.removeprefix("$ signoff-scan ")))
            output = set(_lines(result.stdout)) | set(_lines(result.stderr))
            missing = [line for line in _lines("\n".join(shown)) if line not in output]
            assert not missing, f"{command}: not in the output: {missing}\n{result.output}"
            assert result.exit_code == expected_exit, f"{command}\n{result.output}"
        else:
            pytest.fail(f"unknown scan-test marker {what!r}")
