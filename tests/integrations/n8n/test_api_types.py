# pyright: strict
"""The n8n node's TypeScript API types are the server's OpenAPI schema, not a copy that drifts.

`integrations/n8n/nodes/shared/api.generated.ts` is written by
`integrations/n8n/scripts/generate_api_types.py` from `create_app(...).openapi()`; this test
fails when a server change was not regenerated into it (and the node's TypeScript build fails
when a field it uses changes). Needs neither Node nor n8n.
"""

from __future__ import annotations

import runpy
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "integrations" / "n8n" / "scripts" / "generate_api_types.py"
GENERATED = ROOT / "integrations" / "n8n" / "nodes" / "shared" / "api.generated.ts"

_script = runpy.run_path(str(SCRIPT))  # the generator's functions, without running main()
render = cast(Callable[[], str], _script["render"])
main = cast(Callable[[Sequence[str]], int], _script["main"])


def test_the_committed_types_match_the_servers_openapi() -> None:
    regenerate = "uv run python integrations/n8n/scripts/generate_api_types.py"
    assert render() == GENERATED.read_text(), f"api.generated.ts is out of date: {regenerate}"


def test_the_check_fails_on_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "api.generated.ts"
    stale.write_text(GENERATED.read_text().replace("\tdue_at?: string | null;\n", "", 1))
    assert main(["--check", "--output", str(stale)]) == 1
    captured = capsys.readouterr()
    assert "+\tdue_at?: string | null;" in captured.out
    assert "out of date" in captured.err
    assert main(["--output", str(stale)]) == 0  # regenerating fixes it
    assert main(["--check", "--output", str(stale)]) == 0


def test_the_types_the_node_relies_on_are_there() -> None:
    text = GENERATED.read_text()
    for declaration in (
        "export interface RequestCreate {",
        "export interface Request {",
        "export interface Decision {",
        "export interface CallbackEvent {",
        "export interface OutcomeReport {",
        "export interface CancelBody {",
        'export type Status = "pending" | "approved" | "rejected" | "responded" | "expired"',
    ):
        assert declaration in text
    for field in ("\tcorrelation?: Record<string, string>;", "\tcallback?: CallbackTarget | null;"):
        assert field in text
