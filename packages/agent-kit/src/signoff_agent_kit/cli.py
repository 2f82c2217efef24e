"""The `scan` command: `signoff scan` (with the server) and `signoff-scan` (without it).

Exit status: 0 when the scan ran (and `--fail-on` found nothing), 1 when `--fail-on RISK` found
an ungated or weakly gated action at or above RISK, 2 when the scan could not run (a missing
path, an unreadable policy file, a report or config file that cannot be written). Reports go to
stdout (or `--output`); warnings, progress and messages go to stderr.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from signoff_agent_kit.model import Risk, ScanResult
from signoff_agent_kit.policy import PolicyFileError
from signoff_agent_kit.report import render_text, to_json
from signoff_agent_kit.sarif import to_sarif
from signoff_agent_kit.scanner import scan
from signoff_agent_kit.suggest import suggest_config

__all__ = ["Format", "app", "main", "scan_command"]

_PROGRESS_MIN_FILES = 50


class Format(StrEnum):
    """Report formats."""

    TEXT = "text"
    JSON = "json"
    SARIF = "sarif"


class FailOn(StrEnum):
    """`--fail-on` thresholds."""

    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


def _fail(err: Console, message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(code=2)


def _run(
    paths: list[Path], config: Path | None, excludes: list[str], show_progress: bool, err: Console
) -> ScanResult:
    if not show_progress:
        return scan(paths, config=config, excludes=excludes)
    columns = (
        TextColumn("scanning"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("scan", total=None)

        def tick(done: int, total: int) -> None:
            if done == 1 or done % 25 == 0 or done == total:
                bar.update(task, completed=done, total=total)

        return scan(paths, config=config, excludes=excludes, progress=tick)


def _write_suggestion(result: ScanResult, target: Path, force: bool, err: Console) -> None:
    text = suggest_config(result)
    if str(target) == "-":
        sys.stdout.write(text)
        return
    if target.exists() and not force:
        raise _fail(err, f"{target} exists; pass --force to overwrite it")
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise _fail(err, f"cannot write {target}: {exc.strerror}") from None
    err.print(
        f"wrote {escape(str(target))}: {len(result.actions)} policies, one per risky action; "
        f"fill in the people, then run `signoff check --config {escape(str(target))}`",
        highlight=False,
    )


def _emit(result: ScanResult, fmt: Format, output: Path | None, err: Console) -> None:
    if fmt is not Format.TEXT:
        text = to_json(result) if fmt is Format.JSON else to_sarif(result)
        for warning in result.warnings:
            err.print(f"[yellow]warning:[/yellow] {escape(str(warning))}", highlight=False)
        if output is None:
            sys.stdout.write(text)
            return
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise _fail(err, f"cannot write {output}: {exc.strerror}") from None
        return
    if output is None:
        width = None if sys.stdout.isatty() else 160
        render_text(result, Console(width=width, soft_wrap=False, highlight=False))
        return
    try:
        with output.open("w", encoding="utf-8") as handle:
            render_text(result, Console(file=handle, width=160, no_color=True, highlight=False))
    except OSError as exc:
        raise _fail(err, f"cannot write {output}: {exc.strerror}") from None


def scan_command(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Files or directories to scan (default: the current directory).",
            metavar="PATH",
            show_default=False,
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            envvar="SIGNOFF_CONFIG",
            help="signoff.yaml: check which actions a policy routes to an owner with an SLA.",
        ),
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Report format.")] = Format.TEXT,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the report to this file.")
    ] = None,
    fail_on: Annotated[
        FailOn,
        typer.Option(
            help="Exit 1 if an ungated (or weakly gated) action at or above this risk exists."
        ),
    ] = FailOn.NONE,
    suggest: Annotated[
        bool,
        typer.Option(
            "--suggest-config", help="Write a starting signoff.yaml, one policy per risky action."
        ),
    ] = False,
    suggest_output: Annotated[
        Path, typer.Option(help="Where --suggest-config writes ('-' for stdout).")
    ] = Path("signoff.yaml"),
    force: Annotated[bool, typer.Option(help="Let --suggest-config overwrite a file.")] = False,
    exclude: Annotated[
        list[str] | None,
        typer.Option("--exclude", help="Glob of paths to skip, relative to the root (repeatable)."),
    ] = None,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress", help="Progress bar on stderr (default: when interactive)."
        ),
    ] = None,
) -> None:
    """Map agents and risky actions in a codebase: what is gated, owned and audited.

    Reads Python with `ast` (nothing is imported or run) and n8n workflow JSON.
    """
    err = Console(stderr=True, soft_wrap=True)
    targets = paths or [Path()]
    show = progress if progress is not None else err.is_terminal
    try:
        result = _run(targets, config, list(exclude or []), bool(show), err)
    except FileNotFoundError as exc:
        raise _fail(err, str(exc)) from None
    except PolicyFileError as exc:
        raise _fail(err, str(exc)) from None
    if show and result.files >= _PROGRESS_MIN_FILES:
        err.print(f"scanned {result.files} files in {result.seconds:.2f} s", highlight=False)
    _emit(result, fmt, output, err)
    if suggest:
        _write_suggestion(result, suggest_output, force, err)
    if fail_on is not FailOn.NONE:
        threshold = Risk.parse(fail_on.value)
        failing = result.ungated_at_or_above(threshold)
        if failing:
            names = ", ".join(a.display_name for a in failing[:5])
            more = f" and {len(failing) - 5} more" if len(failing) > 5 else ""
            err.print(
                f"[red]fail-on {fail_on.value}:[/red] {len(failing)} ungated action(s) at or "
                f"above {fail_on.value}: {escape(names)}{more}",
                highlight=False,
            )
            raise typer.Exit(code=1)


app = typer.Typer(
    name="signoff-scan",
    add_completion=False,
    pretty_exceptions_enable=False,
    help="signoff scan: map agents and risky actions, and what is gated, owned and audited.",
)
app.command(name="scan")(scan_command)


def main() -> None:
    """The `signoff-scan` console script (the same command as `signoff scan`)."""
    app(prog_name="signoff-scan")
