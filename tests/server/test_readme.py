"""The README's snippets run against a real server, so the docs cannot go stale."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import World

README = Path(__file__).parents[2] / "README.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_quickstart_has_exactly_the_two_commands() -> None:
    quickstart = README.read_text().split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)```", quickstart, flags=re.DOTALL)
    assert [c.strip() for c in commands] == [
        "pip install uv && uv run signoff serve --demo",
        "pip install uv && uv run pytest",
    ]


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_python_snippet_runs(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    (snippet,) = _blocks("python")
    monkeypatch.setenv("SIGNOFF_URL", world.url)
    monkeypatch.setenv("SIGNOFF_AGENT_KEY", world.agent_key("finance-agent"))
    monkeypatch.setenv("SIGNOFF_REVIEWER_TOKEN", world.reviewer_token("finance-approver"))
    namespace: dict[str, object] = {}
    exec(compile(snippet, str(README), "exec"), namespace)  # noqa: S102 - our own README
    decided = namespace["decided"]
    assert getattr(decided, "status").value == "approved"  # noqa: B009
    request_id = getattr(namespace["request"], "id")  # noqa: B009
    with world.client(world.reviewer_token("admin")) as admin:
        assert admin.get_request(request_id).outcome is not None
