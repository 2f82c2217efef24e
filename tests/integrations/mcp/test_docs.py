"""docs/mcp.md's Python snippet, run as written against a real signoff server: the agent it
builds asks through `signoff-mcp serve` (the installed console script) and, once a reviewer
approves, performs the gated action."""

from __future__ import annotations

import os
import re
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("agents", reason="the OpenAI Agents SDK is not installed")

from tests.integrations.mcp.agent import ApprovalAgent
from tests.integrations.mcp.conftest import INVOICE, reviewer_deciding
from tests.support.server import World

pytestmark = pytest.mark.anyio
DOC = Path(__file__).resolve().parents[3] / "docs" / "mcp.md"


def snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_the_page_has_the_snippet_it_promises() -> None:
    assert len(snippets()) == 1


async def test_openai_agents_snippet_runs(
    signoff_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNOFF_URL", signoff_world.url)
    monkeypatch.setenv("SIGNOFF_API_KEY", signoff_world.agent_key())
    # `signoff-mcp` is the console script installed next to this interpreter.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    namespace: dict[str, Any] = {"__name__": "mcp_docs"}
    exec(compile(snippets()[0], f"{DOC}:openai-agents", "exec"), namespace)  # noqa: S102
    approval = ApprovalAgent(f"payments.release_{uuid.uuid4().hex[:6]}", INVOICE)
    with reviewer_deciding(signoff_world, "approve", action=approval.action):
        async with namespace["signoff"]:
            final = await approval.run_as(namespace["agent"])
    assert approval.read[-1]["approved"] is True
    assert approval.released == [INVOICE]
    assert final.startswith("released")
