"""SARIF 2.1.0: the structure code-scanning UIs rely on.

The output was validated against the OASIS SARIF 2.1.0 JSON schema while this was written; set
SIGNOFF_SARIF_SCHEMA to a copy of that schema to run the full validation here too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from signoff_agent_kit import scan
from signoff_agent_kit.sarif import to_sarif

CORPUS = Path(__file__).parent / "corpus"
LEVELS = {"none", "note", "warning", "error"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    result = scan([CORPUS], config=CORPUS / "mixed" / "signoff.yaml")
    return json.loads(to_sarif(result))


def test_log_and_run(document: dict[str, Any]) -> None:
    assert document["version"] == "2.1.0"
    assert document["$schema"].endswith("sarif-2.1.0.json")
    (run,) = document["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "signoff-scan"
    ids = [r["id"] for r in driver["rules"]]
    assert len(ids) == len(set(ids))
    assert {"ungated/money", "ungated/access", "weak-gate", "no-owner", "auto-approved"} <= set(ids)
    for rule in driver["rules"]:
        assert rule["defaultConfiguration"]["level"] in LEVELS
        float(rule["properties"]["security-severity"])
    assert run["originalUriBaseIds"]["SRCROOT"]["uri"].startswith("file://")
    assert run["originalUriBaseIds"]["SRCROOT"]["uri"].endswith("/")


def test_results(document: dict[str, Any]) -> None:
    run = document["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    results = run["results"]
    assert results
    fingerprints = set()
    for result in results:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] in LEVELS
        assert result["message"]["text"]
        for location in result["locations"] + result["relatedLocations"]:
            physical = location["physicalLocation"]
            assert physical["artifactLocation"]["uriBaseId"] == "SRCROOT"
            assert not physical["artifactLocation"]["uri"].startswith("/")
            assert physical["region"]["startLine"] >= 1
        fingerprints.add(result["partialFingerprints"]["signoffAction/v1"])
    assert len(fingerprints) == len(results)
    by_rule = {r["ruleId"] for r in results}
    assert {"ungated/money", "ungated/data-deletion", "weak-gate", "auto-approved"} <= by_rule
    money = next(r for r in results if r["ruleId"] == "ungated/money")
    assert money["level"] == "error"
    assert "Gate it:" in money["message"]["text"]


def test_parse_failures_are_notifications(document: dict[str, Any]) -> None:
    notes = document["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    (note,) = notes
    location = note["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "mixed/app/broken.py"
    assert location["region"]["startLine"] == 3


@pytest.mark.skipif(not os.environ.get("SIGNOFF_SARIF_SCHEMA"), reason="SIGNOFF_SARIF_SCHEMA unset")
def test_against_the_official_schema(document: dict[str, Any]) -> None:
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    schema = json.loads(Path(os.environ["SIGNOFF_SARIF_SCHEMA"]).read_text(encoding="utf-8"))
    errors = [str(e) for e in jsonschema_rs.validator_for(schema).iter_errors(document)]
    assert errors == []
