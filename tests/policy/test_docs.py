"""Every YAML block of docs/policies.md is a valid policy file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from signoff_server.policy.config import parse_config

DOC = Path(__file__).resolve().parents[2] / "docs" / "policies.md"
BLOCKS = re.findall(r"^```yaml\n(.*?)^```$", DOC.read_text(), flags=re.MULTILINE | re.DOTALL)


def test_the_doc_has_yaml_blocks() -> None:
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{n}" for n in range(len(BLOCKS))])
def test_yaml_block_loads(block: str) -> None:
    parse_config(block, path="docs/policies.md")


def test_the_invoice_example_matches_the_demo_file() -> None:
    doc = parse_config(BLOCKS[0])
    demo = parse_config((DOC.parents[1] / "examples" / "demo" / "signoff.yaml").read_text())
    assert [(p.name, p.body.route, p.body.sla, p.body.auto) for p in doc.policies] == [
        (p.name, p.body.route, p.body.sla, p.body.auto) for p in demo.policies
    ]
    assert [p.match for p in doc.policies] == [p.match for p in demo.policies]
    assert doc.chains == demo.chains
    assert {r: s.members for r, s in doc.roles.items()} == {
        r: s.members for r, s in demo.roles.items()
    }
