"""docs/crewai.md's snippets, run as written (one namespace, in order) against a real server."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from crewai.flow.async_feedback import HumanFeedbackPending
from tests.integrations.conformance.harness import Harness
from tests.integrations.crewai.conftest import reviewer_deciding

DOC = Path(__file__).resolve().parents[3] / "docs" / "crewai.md"
PLACEHOLDER_CALLBACK = "https://agents.example.com/signoff/callbacks"


def snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_the_page_has_the_snippets_it_promises() -> None:
    assert len(snippets()) == 3


def test_snippets_run(harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # flows.db, callbacks.db
    monkeypatch.setenv("SIGNOFF_URL", harness.world.url)
    monkeypatch.setenv("SIGNOFF_API_KEY", harness.agent_key)
    namespace: dict[str, Any] = {"__name__": "crewai_docs"}
    tool, guardrail, flow = snippets()
    flow = flow.replace(PLACEHOLDER_CALLBACK, str(harness.inbox_url))
    try:
        with reviewer_deciding(harness, "approve", count=2):  # the tool call, then the flow
            for name, code in (("gate", tool), ("guardrail", guardrail), ("flow", flow)):
                exec(compile(code, f"{DOC}:{name}", "exec"), namespace)  # noqa: S102
            pending = namespace["pending"]
            assert isinstance(pending, HumanFeedbackPending)
            request_id = str(pending.callback_info["signoff_request_id"])
            harness.wait_closed(request_id, timeout=60)
        body, headers = harness.delivery(request_id)  # the server's own signed callback
        answer = asyncio.run(post(namespace["app"], body, headers))
        assert answer.status_code == 200, answer.text
        assert namespace["persistence"].load_pending_feedback(pending.context.flow_id) is None
        outcome = harness.agent.get_request(request_id).outcome
        assert outcome is not None
        assert outcome.status.value == "executed"
    finally:
        if "client" in namespace:
            namespace["client"].close()


async def post(app: Any, body: bytes, headers: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as http:
        return await http.post("/signoff/callbacks", content=body, headers=headers)
