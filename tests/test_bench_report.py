"""The benchmark report (tests/benchmarks/_report.py): recording figures and rendering the table.

The bench scripts themselves are not collected (they are slow and machine-bound); this keeps
the part every one of them shares, and the report `uv run nox -s bench` writes, from going stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from tests.benchmarks import _report
from tests.benchmarks._report import Figure, record

SAMPLE = [
    Figure(
        benchmark="bench_webhooks",
        figure="v1 verify: signoff Verifier.verify_signature, time per call",
        value=7.861,
        unit="µs/op",
        target="time ≤ 1.00x theirs",
        passed=True,
        compared_with="standardwebhooks Webhook.verify",
        compared_value=14.8,
        ratio=0.5311,
    ),
    Figure(
        benchmark="bench_server",
        figure="sqlite: create+decide+wait cycles, 16 clients",
        value=612.4,
        unit="HTTP req/s",
        target="≥ 0.50x floor",
        passed=False,
        compared_with="floor: minimal Starlette app | same stack",
        compared_value=1450.0,
        ratio=0.4223,
    ),
    Figure(
        benchmark="bench_callbacks",
        figure="sqlite: verified callbacks/s",
        value=230.25,
        unit="callbacks/s",
        note="16 clients",
    ),
]
START = {"date": "2026-11-27T10:00:00+00:00", "cpus": 2, "load_average": [1.5, 1.2, 1.0],
         "python": "3.11.7", "platform": "Linux x86_64"}  # fmt: skip
END = {**START, "date": "2026-11-27T10:20:00+00:00", "load_average": [2.25, 1.8, 1.2]}
STATUSES = {"bench_callbacks": 0, "bench_server": 1, "bench_timers": 2, "bench_webhooks": 0}


def sample_report() -> dict[str, object]:
    return _report.build(START, SAMPLE, STATUSES, END, revision="abc1234")


def table_rows(markdown: str) -> list[list[str]]:
    """The table's cells, row by row (header and rule included)."""
    rows: list[list[str]] = []
    for line in markdown.splitlines():
        if line.startswith("|"):
            cells = line.strip().removeprefix("|").removesuffix("|")
            rows.append([c.strip() for c in cells.replace("\\|", "\0").split("|")])
    return [[c.replace("\0", "|") for c in row] for row in rows]


def test_the_table_has_one_row_per_figure_with_target_floor_ratio_and_verdict() -> None:
    text = _report.markdown(sample_report())
    header, rule, *rows = table_rows(text)
    assert header == [
        "benchmark", "figure", "value", "target", "compared with", "its value", "ratio",
        "result", "note",
    ]  # fmt: skip
    assert len(rule) == len(header)
    assert rows == [
        [
            "webhooks", "v1 verify: signoff Verifier.verify_signature, time per call",
            "7.86 µs/op", "time ≤ 1.00x theirs", "standardwebhooks Webhook.verify", "14.8 µs/op",
            "0.53x", "pass", "—",
        ],
        [
            "server", "sqlite: create+decide+wait cycles, 16 clients", "612 HTTP req/s",
            "≥ 0.50x floor", "floor: minimal Starlette app | same stack", "1,450 HTTP req/s",
            "0.42x", "**FAIL**", "—",
        ],
        [
            "callbacks", "sqlite: verified callbacks/s", "230 callbacks/s", "—", "—", "—", "—",
            "—", "16 clients",
        ],
    ]  # fmt: skip


def test_the_machine_and_every_script_are_named() -> None:
    text = _report.markdown(sample_report())
    assert (
        "2026-11-27 10:00:00 UTC · Python 3.11.7 · Linux x86_64 · 2 CPUs · load average 1.50 at "
        "start, 2.25 at end · commit abc1234"
    ) in text
    assert "3 figures: 1 met their target, 1 missed it, 1 for information." in text
    assert (
        "Scripts: bench_callbacks ok; bench_server missed a target; bench_timers could not run; "
        "bench_webhooks ok."
    ) in text


def test_the_json_report_holds_the_figures_machine_and_scripts() -> None:
    report = json.loads(json.dumps(sample_report()))
    assert report["machine"] == {
        "cpus": 2, "python": "3.11.7", "platform": "Linux x86_64",
        "started": "2026-11-27T10:00:00+00:00", "finished": "2026-11-27T10:20:00+00:00",
        "load_average_at_start": [1.5, 1.2, 1.0], "load_average_at_end": [2.25, 1.8, 1.2],
        "commit": "abc1234",
    }  # fmt: skip
    assert report["summary"] == {"figures": 3, "passed": 1, "failed": 1, "informational": 1}
    assert [s["status"] for s in report["scripts"]] == [
        "ok", "missed a target", "could not run", "ok",
    ]  # fmt: skip
    assert report["figures"][1]["ratio"] == 0.4223
    assert report["figures"][1]["compared_with"] == "floor: minimal Starlette app | same stack"


def test_a_script_that_passed_without_recording_anything_is_flagged() -> None:
    report = _report.build(START, [], {"bench_replicas": 0, "bench_x": 137}, END)
    assert [s["status"] for s in report["scripts"]] == [
        "ok, but recorded no figure",
        "failed (exit 137)",
    ]


@pytest.mark.parametrize(
    ("value", "text"),
    [(12345.6, "12,346"), (612.4, "612"), (14.84, "14.8"), (7.861, "7.86"), (0.04321, "0.0432")],
)
def test_numbers_keep_about_three_significant_digits(value: float, text: str) -> None:
    assert _report.number(value) == text


def test_record_does_nothing_unless_a_report_is_being_collected(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(_report.ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    record([Figure(figure="f", value=1.0, unit="s")])
    assert list(tmp_path.iterdir()) == []


def test_begin_record_render_end_to_end(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    records = tmp_path / "records.jsonl"
    assert _report.main(["begin", str(records)]) == 0
    monkeypatch.setenv(_report.ENV, str(records))
    monkeypatch.setattr(sys, "argv", ["tests/benchmarks/bench_scan.py"])
    record([Figure(figure="scan", value=6.88, unit="s", target="≤ 10 s", passed=True)])
    monkeypatch.setattr(sys, "argv", ["tests/benchmarks/bench_replicas.py"])
    record([{"figure": "2 replicas / 1", "value": 1.62, "unit": "x", "ratio": 1.62}])
    with pytest.raises(TypeError):
        record([{"figure": "typo", "value": 1.0, "unit": "s", "pased": True}])

    out = tmp_path / "report"
    argv = ["render", str(records), "--report-dir", str(out), "--status", "bench_scan=0",
            "--status", "bench_replicas=1"]  # fmt: skip
    assert _report.main(argv) == 0

    report = json.loads((out / _report.JSON).read_text(encoding="utf-8"))
    assert [(f["benchmark"], f["figure"]) for f in report["figures"]] == [
        ("bench_scan", "scan"),
        ("bench_replicas", "2 replicas / 1"),
    ]
    machine = report["machine"]
    assert all(machine[key] for key in ("cpus", "python", "started", "finished"))
    assert len(machine["load_average_at_start"]) == len(machine["load_average_at_end"]) == 3
    rows = table_rows((out / _report.MARKDOWN).read_text(encoding="utf-8"))
    assert [row[:3] for row in rows[2:]] == [
        ["scan", "scan", "6.88 s"],
        ["replicas", "2 replicas / 1", "1.62 x"],
    ]
