"""docs/security.md: its defaults are the code's, and its configuration snippet runs and does
what it says against a real server."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

import httpx
from tests.support.server import ServerThread

from signoff_server.db import Database, migrate
from signoff_server.identity import create_agent_key
from signoff_server.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"
README = DOC.parents[1] / "README.md"


def test_the_documented_defaults_are_the_settings_defaults() -> None:
    text = DOC.read_text()
    defaults = Settings()
    assert defaults.max_body_bytes == 1024 * 1024
    assert "1 MiB (`max_body_bytes`)" in text
    assert f"{defaults.max_json_depth} levels of arrays/objects (`max_json_depth`)" in text
    assert f"`auth_failure_limit` failures (default {defaults.auth_failure_limit})" in text
    assert f"`auth_failure_window` seconds (default {defaults.auth_failure_window:g})" in text
    assert "docs/security.md" in README.read_text()


def test_the_configuration_snippet_runs(tmp_path: Path) -> None:
    (snippet,) = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    url = f"sqlite:///{tmp_path / 'signoff.db'}"
    migrate(url)
    namespace: dict[str, Any] = {"database_url": url}
    exec(compile(snippet, str(DOC), "exec"), namespace)  # noqa: S102 - our own docs
    db = Database(url)
    try:
        with db.write() as conn:
            key = create_agent_key(conn, "finance-agent")
        with (
            ServerThread(app=namespace["app"]) as server,
            httpx.Client(base_url=server.url, timeout=30) as http,
        ):
            agent = {"Authorization": f"Bearer {key}", "content-type": "application/json"}
            big = http.post("/v1/requests", content=b" " * (256 * 1024 + 1), headers=agent)
            assert big.status_code == 413
            deep = http.post("/v1/requests", content=b"[" * 17 + b"]" * 17, headers=agent)
            assert deep.status_code == 422
            assert deep.json()["error"]["code"] == "json_too_deep"
            statuses = [
                http.get(
                    "/v1/requests",
                    headers={"Authorization": f"Bearer sk_{secrets.token_urlsafe(32)}"},
                ).status_code
                for _ in range(6)
            ]
            assert statuses == [401] * 5 + [429]
    finally:
        db.dispose()
