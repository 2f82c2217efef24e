"""docs/langgraph.md: every ```python block runs, in order, in one namespace, against a real
signoff server (blocks fenced as ```python skip are shown, not run)."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from tests.integrations.conformance.harness import Harness

DOC = Path(__file__).resolve().parents[3] / "docs" / "langgraph.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def test_the_langgraph_doc_runs(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = BLOCK.findall(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 5, "the doc's snippets were not found"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SIGNOFF_URL", harness.world.url)
    monkeypatch.setenv("SIGNOFF_API_KEY", harness.agent_key)
    monkeypatch.setenv("SIGNOFF_REVIEWER_TOKEN", harness.world.reviewer_token("finance-approver"))
    module = types.ModuleType("langgraph_doc")  # typing.get_type_hints looks modules up
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace: dict[str, Any] = module.__dict__
    try:
        for number, block in enumerate(blocks, start=1):
            code = compile(block, f"{DOC.name}, python block {number}", "exec")
            exec(code, namespace)  # noqa: S102 - the doc's own snippets
        final = namespace["graph"].get_state(namespace["config"]).values
        assert final["log"] == ["paid 12250.00 for INV-1042"]
    finally:
        if "client" in namespace:
            namespace["client"].close()
        if "connection" in namespace:
            namespace["connection"].close()
