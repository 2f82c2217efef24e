"""The scanner against the sample projects in corpus/, each with an expected.yaml.

A finding is one (file, action, category) triple: precision is the share of reported triples
that are expected, recall the share of expected triples that are reported. Targets: no
ungated money / access / deletion action missed, precision at least 0.9. The figures are printed
in the terminal summary.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from signoff_agent_kit import ScanResult, scan

CORPUS = Path(__file__).parent / "corpus"
PROJECTS = sorted(p for p in CORPUS.iterdir() if (p / "expected.yaml").is_file())
HIGH_STAKES = {"money", "access", "data-deletion"}

Finding = tuple[str, str, str]


@dataclass
class Case:
    project: Path
    expected: dict[str, Any]
    result: ScanResult

    @property
    def expected_actions(self) -> dict[tuple[str, str], dict[str, Any]]:
        actions = cast(list[dict[str, Any]], self.expected.get("actions", []))
        return {(a["file"], a["name"]): a for a in actions}

    @property
    def reported(self) -> dict[tuple[str, str], Any]:
        return {(a.file, a.display_name): a for a in self.result.actions}


def _case(project: Path) -> Case:
    expected = yaml.safe_load((project / "expected.yaml").read_text(encoding="utf-8"))
    return Case(project, expected, scan([project]))


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    return [_case(p) for p in PROJECTS]


def test_the_corpus_has_a_project_per_framework_and_a_mixed_one() -> None:
    names = {p.name for p in PROJECTS}
    assert {"langgraph_finance", "openai_support", "crewai_ops", "langchain_tools"} <= names
    assert {"n8n_flows", "mixed"} <= names


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.name)
def test_every_expected_action_is_found_with_its_categories_and_gate(project: Path) -> None:
    case = _case(project)
    reported = case.reported
    problems: list[str] = []
    for key, want in case.expected_actions.items():
        got = reported.get(key)
        if got is None:
            problems.append(f"missed {key}")
            continue
        categories = [c.value for c in got.categories]
        if sorted(categories) != sorted(want["categories"]):
            problems.append(f"{key}: categories {categories}, expected {want['categories']}")
        if got.status.value != want["status"]:
            problems.append(f"{key}: {got.status.value}, expected {want['status']}")
    for key in sorted(set(reported) - set(case.expected_actions)):
        problems.append(f"unexpected risky action {key}: {reported[key].evidence[0].reason}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.name)
def test_decoys_agents_and_warnings(project: Path) -> None:
    case = _case(project)
    risky_names = {a.display_name for a in case.result.actions} | {
        a.name for a in case.result.actions
    }
    decoys = set(case.expected.get("decoys", []))
    assert not decoys & risky_names, f"read-only decoys reported as risky: {decoys & risky_names}"
    agents = {a.name for a in case.result.agents}
    missing = set(case.expected.get("agents", [])) - agents
    assert not missing, f"agents not found: {missing} (found {sorted(agents)})"
    warned = {w.file for w in case.result.warnings}
    assert warned == set(case.expected.get("warnings", []))


def _findings(cases: list[Case]) -> tuple[set[Finding], set[Finding]]:
    expected: set[Finding] = set()
    reported: set[Finding] = set()
    for case in cases:
        tag = case.project.name
        for (file, name), want in case.expected_actions.items():
            expected |= {(f"{tag}/{file}", name, c) for c in want["categories"]}
        for action in case.result.actions:
            reported |= {
                (f"{tag}/{action.file}", action.display_name, c.value) for c in action.categories
            }
    return expected, reported


def test_precision_and_recall_on_the_corpus(
    cases: list[Case], corpus_metrics: dict[str, Any]
) -> None:
    expected, reported = _findings(cases)
    hits = expected & reported
    precision = len(hits) / len(reported)
    recall = len(hits) / len(expected)
    # The target: no ungated money / access / deletion action is missed (or called gated).
    critical = {
        (case.project.name, key, c)
        for case in cases
        for key, want in case.expected_actions.items()
        if want["status"] != "gated"
        for c in want["categories"]
        if c in HIGH_STAKES
    }
    caught = {
        (name, key, c)
        for name, key, c in critical
        for case in cases
        if case.project.name == name
        and (got := case.reported.get(key)) is not None
        and got.status.value != "gated"
        and c in {x.value for x in got.categories}
    }
    matched = [
        (want, case.reported[key])
        for case in cases
        for key, want in case.expected_actions.items()
        if key in case.reported
    ]
    status_ok = sum(want["status"] == got.status.value for want, got in matched)
    lines = [
        f"projects: {len(cases)}; expected findings: {len(expected)}; "
        f"reported: {len(reported)}; correct: {len(hits)}",
        f"precision: {precision:.3f}   recall: {recall:.3f}",
        f"ungated money/access/deletion caught: {len(caught)}/{len(critical)}",
        f"gate status right: {status_ok}/{len(matched)}",
    ]
    for case in cases:
        e, r = _findings([case])
        lines.append(
            f"  {case.project.name:<18} precision {len(e & r) / max(len(r), 1):.2f} "
            f"recall {len(e & r) / max(len(e), 1):.2f} ({len(e)} expected)"
        )
    corpus_metrics["lines"] = lines
    corpus_metrics.update(precision=precision, recall=recall)
    assert len(critical) >= 10, "the corpus must exercise ungated high-stakes actions"
    assert caught == critical, f"missed: {sorted(critical - caught)}"
    assert precision >= 0.9, "\n".join(lines)
    assert recall >= 0.9, "\n".join(lines)
    assert status_ok == len(matched), "\n".join(lines)


def test_policy_coverage_of_the_mixed_project() -> None:
    project = CORPUS / "mixed"
    expected = yaml.safe_load((project / "expected.yaml").read_text(encoding="utf-8"))
    result = scan([project], config=project / "signoff.yaml")
    by_name = {a.display_name: a for a in result.actions}
    for name, want in expected["coverage"].items():
        coverage = by_name[name].coverage
        assert coverage.policies == want["policies"], name
        if "owner" in want:
            assert coverage.owned == (want["owner"] is not None), name
            if want["owner"] is not None:
                assert coverage.owner == want["owner"], name
        if "auto" in want:
            assert coverage.auto == want["auto"], name
    gap_names = {a.display_name for a in result.gaps}
    assert "push_release" in gap_names  # gated, but a policy approves it at once
    assert "grant_admin" not in gap_names  # gated and owned
    assert "restart_service" in gap_names


def test_scanning_all_projects_at_once_finds_the_same(cases: list[Case]) -> None:
    # Sibling projects share module names (`tools.py`): imports resolve to the nearest one.
    together = scan([CORPUS])
    combined = {(a.file, a.display_name, a.status.value) for a in together.actions}
    separate = {
        (f"{case.project.name}/{a.file}", a.display_name, a.status.value)
        for case in cases
        for a in case.result.actions
    }
    assert combined == separate
