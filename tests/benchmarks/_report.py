"""The benchmark report: every figure of every tests/benchmarks/bench_*.py in one table.

A bench script calls `record([...])` with its figures just before it exits. When the
environment variable SIGNOFF_BENCH_REPORT names a file (the nox session `bench` sets it), each
figure is appended to that file as one JSON line; otherwise `record` does nothing, so the
scripts still run alone. The session runs this module twice, before and after the scripts:

    python tests/benchmarks/_report.py begin RECORDS
    python tests/benchmarks/_report.py render RECORDS --report-dir DIR [--status bench_x=1 ...]

`begin` empties RECORDS and notes the machine (CPU count, load average, Python, date); `render`
writes DIR/bench-report.md and DIR/bench-report.json from the figures, the machine at start and
end, and each script's exit status, and prints the markdown.
"""

# pyright: strict

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ENV = "SIGNOFF_BENCH_REPORT"
MARKDOWN = "bench-report.md"
JSON = "bench-report.json"


@dataclass(frozen=True, kw_only=True)
class Figure:
    """One measured figure and what it is held against.

    `target` is text for the reader ("≤ 1.30x bare verify", "< 50 ms"); `passed` is whether the
    script judged it met (None: no target, the figure is there for information). `compared_with`
    names the floor or peer and `compared_value` is its figure in the same `unit`; `ratio` is
    the script's ratio of the two (which one is divided by which: see `target`).
    """

    figure: str
    value: float
    unit: str
    target: str = ""
    passed: bool | None = None
    compared_with: str = ""
    compared_value: float | None = None
    ratio: float | None = None
    note: str = ""
    benchmark: str = ""
    """The script's name (bench_webhooks); `record` fills it in from the running script."""


def record(figures: Iterable[Figure | Mapping[str, Any]]) -> None:
    """Append `figures` (Figures, or mappings of Figure's fields) to the report being collected.

    Does nothing unless SIGNOFF_BENCH_REPORT is set. An unknown field in a mapping raises.
    """
    path = os.environ.get(ENV)
    if not path:
        return
    script = Path(sys.argv[0]).stem
    lines: list[str] = []
    for item in figures:
        figure = item if isinstance(item, Figure) else Figure(**item)
        row = asdict(figure)
        row["benchmark"] = figure.benchmark or script
        lines.append(json.dumps({"kind": "figure", **row}, ensure_ascii=False))
    with Path(path).open("a", encoding="utf-8") as out:
        out.writelines(line + "\n" for line in lines)


# --- collecting and rendering (the nox session) -------------------------------------------------


def machine() -> dict[str, Any]:
    """What the numbers were measured on, now."""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
    }


def commit() -> str | None:
    """The checked-out commit (with `+dirty` for local changes), or None outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if dirty else head


def begin(records: Path) -> None:
    """Start a report: RECORDS holds just the machine as it is now."""
    records.parent.mkdir(parents=True, exist_ok=True)
    records.write_text(json.dumps({"kind": "start", **machine()}) + "\n", encoding="utf-8")


def load(records: Path) -> tuple[dict[str, Any], list[Figure]]:
    """The machine at start and the figures recorded in RECORDS."""
    start: dict[str, Any] = {}
    figures: list[Figure] = []
    known = {f.name for f in fields(Figure)}
    for line in records.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row: dict[str, Any] = json.loads(line)
        kind = row.pop("kind", None)
        if kind == "start":
            start = row
        elif kind == "figure":
            figures.append(Figure(**{k: v for k, v in row.items() if k in known}))
    return start, figures


def script_status(code: int, figures: int) -> str:
    """What a script's exit status means (the scripts' convention: 1 missed, 2 could not run)."""
    if code == 0:
        return "ok" if figures else "ok, but recorded no figure"
    if code == 1:
        return "missed a target"
    if code == 2:
        return "could not run"
    return f"failed (exit {code})"


def build(
    start: Mapping[str, Any],
    figures: list[Figure],
    statuses: Mapping[str, int],
    end: Mapping[str, Any],
    revision: str | None = None,
) -> dict[str, Any]:
    """The report as JSON-ready data."""
    counts = {name: sum(1 for f in figures if f.benchmark == name) for name in statuses}
    return {
        "machine": {
            "cpus": end.get("cpus", start.get("cpus")),
            "python": end.get("python", start.get("python")),
            "platform": end.get("platform", start.get("platform")),
            "started": start.get("date"),
            "finished": end.get("date"),
            "load_average_at_start": start.get("load_average"),
            "load_average_at_end": end.get("load_average"),
            "commit": revision,
        },
        "scripts": [
            {"benchmark": name, "exit_code": code, "status": script_status(code, counts[name])}
            for name, code in statuses.items()
        ],
        "summary": {
            "figures": len(figures),
            "passed": sum(1 for f in figures if f.passed is True),
            "failed": sum(1 for f in figures if f.passed is False),
            "informational": sum(1 for f in figures if f.passed is None),
        },
        "figures": [asdict(f) for f in figures],
    }


def number(value: float) -> str:
    """A figure for the table: about three significant digits, thousands separated."""
    size = abs(value)
    if size >= 100:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or "—"


def _load(values: list[float] | None) -> str:
    return "?" if not values else f"{values[0]:.2f}"


def markdown(report: Mapping[str, Any]) -> str:
    """The report as a markdown table, with the machine above it and the scripts below."""
    m = report["machine"]
    started = str(m.get("started") or "?").replace("T", " ").replace("+00:00", " UTC")
    header = (
        f"{started} · Python {m.get('python')} · {m.get('platform')} · {m.get('cpus')} CPUs · "
        f"load average {_load(m.get('load_average_at_start'))} at start, "
        f"{_load(m.get('load_average_at_end'))} at end"
        + (f" · commit {m['commit']}" if m.get("commit") else "")
    )
    lines = [
        "# signoff benchmarks",
        "",
        header,
        "",
        "| benchmark | figure | value | target | compared with | its value | ratio | result "
        "| note |",
        "|---|---|---:|---|---|---:|---:|:---:|---|",
    ]
    for f in report["figures"]:
        unit = f" {f['unit']}" if f["unit"] else ""
        value = f"{number(f['value'])}{unit}"
        compared = "—" if f["compared_value"] is None else f"{number(f['compared_value'])}{unit}"
        ratio = "—" if f["ratio"] is None else f"{f['ratio']:.2f}x"
        result = {True: "pass", False: "**FAIL**", None: "—"}[f["passed"]]
        name = str(f["benchmark"]).removeprefix("bench_")
        lines.append(
            f"| {_cell(name)} | {_cell(f['figure'])} | {value} | {_cell(f['target'])} "
            f"| {_cell(f['compared_with'])} | {compared} | {ratio} | {result} "
            f"| {_cell(f['note'])} |"
        )
    s = report["summary"]
    lines += [
        "",
        f"{s['figures']} figures: {s['passed']} met their target, {s['failed']} missed it, "
        f"{s['informational']} for information.",
        "",
        "Scripts: "
        + ("; ".join(f"{x['benchmark']} {x['status']}" for x in report["scripts"]) or "none ran")
        + ".",
    ]
    return "\n".join(lines) + "\n"


def write(report: Mapping[str, Any], directory: Path) -> tuple[Path, Path]:
    """Write bench-report.md and bench-report.json into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    md, js = directory / MARKDOWN, directory / JSON
    md.write_text(markdown(report), encoding="utf-8")
    js.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return md, js


def _status(text: str) -> tuple[str, int]:
    name, _, code = text.partition("=")
    if not name or not code.lstrip("-").isdigit():
        raise argparse.ArgumentTypeError(f"expected NAME=EXIT_CODE, got {text!r}")
    return name, int(code)


def main(argv: list[str] | None = None) -> int:
    """`begin RECORDS` or `render RECORDS --report-dir DIR [--status NAME=CODE ...]`."""
    parser = argparse.ArgumentParser(description="Collect and render the benchmark report.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("begin").add_argument("records", type=Path)
    render = sub.add_parser("render")
    render.add_argument("records", type=Path)
    render.add_argument("--report-dir", type=Path, required=True)
    render.add_argument("--status", type=_status, action="append", default=[])
    args = parser.parse_args(argv)
    if args.command == "begin":
        begin(args.records)
        return 0
    start, figures = load(args.records)
    statuses: dict[str, int] = dict(args.status)
    report = build(start, figures, statuses, machine(), commit())
    md, js = write(report, args.report_dir)
    print(markdown(report))
    print(f"report: {md} and {js}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
