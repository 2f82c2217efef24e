"""The repository's own examples: every `payments.release` they gate must come out gated.

Examples are written by several people at once, so this is tolerant of which exist: each
example file that mentions `payments.release` must yield a `payments.release` action (defined
there, or gated by a gate declared there), every such action must be gated, and so must every
other action in that file that moves money.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from signoff_agent_kit import Category, GateStatus, ScanResult, scan

EXAMPLES = Path(__file__).parents[2] / "examples"
ACTION = "payments.release"


def problems(root: Path) -> tuple[list[Path], list[str]]:
    """The example files that name the action, and what is wrong with the scan of `root`."""
    files = sorted(
        p
        for p in root.rglob("*")
        if p.suffix in (".py", ".json")
        and ACTION in p.read_text(encoding="utf-8", errors="replace")
        and (p.suffix == ".py" or '"nodes"' in p.read_text(encoding="utf-8", errors="replace"))
    )
    if not files:
        return [], []
    result: ScanResult = scan([root])
    found: list[str] = []
    for path in files:
        rel = path.relative_to(root).as_posix()
        actions = [
            a
            for a in result.actions
            if a.display_name == ACTION and (a.file == rel or any(g.file == rel for g in a.gates))
        ]
        if not actions:
            found.append(f"{rel}: no {ACTION} action found")
        found += [
            f"{rel}:{a.line}: {a.display_name} moves money and is {a.status.value}"
            for a in result.actions
            if a.file == rel and a.status is not GateStatus.GATED and Category.MONEY in a.categories
        ]
        for action in actions:
            if action.status is not GateStatus.GATED:
                found.append(f"{rel}:{action.line}: {ACTION} is {action.status.value}")
    found += [f"{w.file}:{w.line}: {w.message}" for w in result.warnings]
    return files, found


def test_every_example_with_payments_release_comes_out_gated() -> None:
    files, found = problems(EXAMPLES)
    if not files:
        pytest.skip(f"no example under examples/ names {ACTION} yet")
    assert found == []


def _write(root: Path, name: str, text: str) -> None:
    (root / name).write_text(textwrap.dedent(text), encoding="utf-8")


def test_the_check_fails_on_an_ungated_example(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "bad.py",
        """
        from langchain_core.tools import tool
        from langgraph.prebuilt import ToolNode

        @tool
        def release_payment(invoice_id: str) -> str:
            '''Release the payment (payments.release).'''
            return ledger.release(invoice_id)

        tools = ToolNode([release_payment])
        """,
    )
    _write(
        tmp_path,
        "good.py",
        """
        from langchain_core.tools import tool
        from signoff_langgraph import ToolGate, gate_tools

        def make_tools():
            @tool
            def release_payment(invoice_id: str) -> str:
                '''Release the payment.'''
                return ledger.release(invoice_id)
            return [release_payment]

        gated = {"release_payment": ToolGate(action="payments.release")}
        node = gate_tools(make_tools(), gated=gated)
        """,
    )
    files, found = problems(tmp_path)
    assert [f.name for f in files] == ["bad.py", "good.py"]
    assert found == [
        "bad.py: no payments.release action found",
        "bad.py:6: release_payment moves money and is ungated",
    ]
