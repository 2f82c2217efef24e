"""The terminal report: agents, risky actions with their coverage, gaps ranked by risk.

`render_text(result, console)` prints with rich; `to_json(result)` is the `--format json`
document (the same data, `ScanResult.to_dict`).
"""

from __future__ import annotations

import json

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from signoff_agent_kit.model import Action, GateKind, GateStatus, Risk, ScanResult
from signoff_agent_kit.suggest import suggested_gate

__all__ = ["render_text", "to_json"]

_RISK_STYLE = {Risk.CRITICAL: "bold red", Risk.HIGH: "red", Risk.MEDIUM: "yellow", Risk.LOW: "dim"}
_STATUS_STYLE = {GateStatus.GATED: "green", GateStatus.WEAK: "yellow", GateStatus.UNGATED: "red"}


def _n(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def to_json(result: ScanResult) -> str:
    """The `--format json` document."""
    return json.dumps(result.to_dict(), indent=2, sort_keys=False) + "\n"


def _where(action: Action) -> str:
    return f"{action.file}:{action.line}"


def _gate_text(action: Action) -> str:
    status = action.status
    style = _STATUS_STYLE[status]
    if status is GateStatus.UNGATED:
        return f"[{style}]ungated[/{style}]"
    strongest = sorted(action.gates, key=lambda g: list(GateKind).index(g.kind))[0]
    label = "weak: " if status is GateStatus.WEAK else ""
    return f"[{style}]{label}{escape(strongest.mechanism)}[/{style}]"


def _dash(value: str | None) -> str:
    return escape(value) if value else "[dim]—[/dim]"


def _agents_table(result: ScanResult) -> Table:
    table = Table(title=f"Agents ({len(result.agents)})", title_justify="left", expand=False)
    for column in ("Agent", "Framework", "Kind", "Tools", "Where"):
        table.add_column(column, overflow="fold")
    for agent in result.agents:
        tools = ", ".join(agent.tools[:8]) + (
            f" +{len(agent.tools) - 8}" if len(agent.tools) > 8 else ""
        )
        table.add_row(
            escape(agent.name),
            agent.framework,
            agent.kind,
            escape(tools) or "[dim]—[/dim]",
            f"{escape(agent.file)}:{agent.line}",
        )
    return table


def _coverage_table(result: ScanResult) -> Table:
    actions = result.actions
    table = Table(
        title=f"Risky actions and coverage ({len(actions)})", title_justify="left", expand=False
    )
    for column in (
        "Risk",
        "Action",
        "Does",
        "Gate",
        "Owner",
        "SLA",
        "Escalation",
        "Timeout",
        "Audit",
        "Where",
    ):
        table.add_column(column, overflow="fold", no_wrap=column in ("Risk", "Action", "Where"))
    for a in actions:
        cov = a.coverage
        owner = _dash(cov.owner) + (" [dim](default)[/dim]" if cov.by_default else "")
        if cov.auto == "approve" and not cov.conditional:
            owner = "[red]auto-approved[/red]"
        table.add_row(
            f"[{_RISK_STYLE[a.risk]}]{a.risk.label}[/]",
            escape(a.display_name),
            ", ".join(c.value for c in a.categories),
            _gate_text(a),
            owner,
            _dash(cov.sla),
            _dash(cov.escalation),
            _dash(cov.on_timeout),
            "[green]signoff[/green]" if a.audited else "[dim]no[/dim]",
            escape(_where(a)),
        )
    return table


def _gap_reason(action: Action, with_config: bool) -> str:
    if action.status is GateStatus.UNGATED:
        return "not gated"
    if action.status is GateStatus.WEAK:
        return "only weakly gated"
    if action.coverage.auto == "approve":
        return "auto-approved by policy"
    return "gated, but no policy names an owner" if with_config else "gated"


def _gaps(result: ScanResult, console: Console) -> None:
    gaps = result.gaps
    with_config = result.config is not None
    console.print(f"[bold]Gaps, riskiest first ({len(gaps)})[/bold]")
    if not gaps:
        console.print("  [green]none[/green]")
    for n, action in enumerate(gaps, 1):
        style = _RISK_STYLE[action.risk]
        console.print(
            f"  {n}. [{style}]{action.risk.label.upper()}[/{style}] "
            f"[bold]{escape(action.display_name)}[/bold] "
            f"({', '.join(c.value for c in action.categories)}) — "
            f"{_gap_reason(action, with_config)}  [dim]{escape(_where(action))}[/dim]"
        )
        for evidence in action.evidence[:3]:
            console.print(
                f"     [dim]{escape(evidence.file)}:{evidence.line}[/dim] {escape(evidence.reason)}"
            )
        for note in [*action.notes, *action.coverage.notes]:
            console.print(f"     [yellow]note:[/yellow] {escape(note)}")
        if action.status is not GateStatus.GATED:
            console.print(f"     [cyan]gate it:[/cyan] {escape(suggested_gate(action))}")


def render_text(result: ScanResult, console: Console) -> None:
    """Print the full report."""
    actions = result.actions
    console.print(
        f"[bold]signoff scan[/bold] {escape(result.root)}  "
        f"[dim]({_n(result.files, 'file')}: {result.python_files} Python, "
        f"{_n(result.workflow_files, 'n8n workflow')}; {result.seconds:.2f} s)[/dim]"
    )
    console.print()
    console.print(_agents_table(result))
    console.print()
    if actions:
        console.print(_coverage_table(result))
    else:
        console.print("[bold]Risky actions[/bold]: none found")
    if result.config is None:
        console.print(
            "[dim]No --config: owner and SLA come only from the gates' own arguments; pass "
            "--config signoff.yaml to check the policies.[/dim]"
        )
    else:
        console.print(f"[dim]Policies from {escape(result.config)}.[/dim]")
    console.print()
    _gaps(result, console)
    if result.warnings:
        console.print()
        console.print(f"[bold]Warnings ({len(result.warnings)})[/bold]")
        for warning in result.warnings:
            console.print(f"  [yellow]{escape(str(warning))}[/yellow]")
    gated = sum(a.status is GateStatus.GATED for a in actions)
    weak = sum(a.status is GateStatus.WEAK for a in actions)
    audited = sum(a.audited for a in actions)
    console.print()
    console.print(
        f"[bold]{_n(len(actions), 'risky action')}[/bold], "
        f"{_n(len(result.agents), 'agent')}: {gated} gated ({audited} by signoff), "
        f"{weak} weakly gated, {len(actions) - gated - weak} ungated; "
        f"{_n(len(result.gaps), 'gap')}."
    )
