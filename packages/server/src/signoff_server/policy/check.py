"""`signoff check`: validate a policy file and print its control map.

Exit status: 0 when the file is valid and the map has no problem, 1 when a policy's quorum
cannot be met or a role with `gap_policy: fail` has a gap within the horizon, 2 when the file
cannot be used at all (each error named `file:line: field: message`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.console import Console

from signoff_server.policy.config import ConfigError, load_config
from signoff_server.policy.controlmap import ControlMap, CoverageSegment, RoleMap, build_control_map

__all__ = ["check_command", "print_control_map"]

_MAX_ROWS = 30


def check_command(
    config: Annotated[
        str,
        typer.Option(
            "--config",
            envvar="SIGNOFF_CONFIG",
            help="The policy file, signoff.yaml (see docs/policies.md).",
            show_default=False,
        ),
    ],
    days: Annotated[int, typer.Option(min=1, max=90, help="Coverage horizon in days.")] = 14,
    as_json: Annotated[bool, typer.Option("--json", help="Print the map as JSON.")] = False,
) -> None:
    """Validate the policy file and print its control map (coverage, gaps, quorums)."""
    err = Console(stderr=True, soft_wrap=True)
    try:
        loaded = load_config(config, check_quorum=False)
    except ConfigError as exc:
        for issue in exc.issues:
            err.print(f"[red]error:[/red] {issue.render(exc.path)}", markup=True, highlight=False)
        raise typer.Exit(code=2) from None
    control = build_control_map(loaded, datetime.now(UTC), days=days)
    if as_json:
        typer.echo(control.model_dump_json(indent=2))
    else:
        print_control_map(control, Console(soft_wrap=True))
    raise typer.Exit(code=0 if control.ok else 1)


def _when(value: datetime, zone: str | None) -> str:
    local = value.astimezone(ZoneInfo(zone)) if zone else value
    return local.strftime("%a %Y-%m-%d %H:%M")


def _segment_line(segment: CoverageSegment, role: RoleMap) -> str:
    span = f"{_when(segment.start, role.timezone)} → {_when(segment.end, role.timezone)}"
    if not segment.gap:
        return f"{span}  {', '.join(segment.on_shift)}  [dim]({segment.source})[/dim]"
    covered = ", ".join(segment.covered_by) or "escalates at once"
    color = "red" if role.uncovered else "yellow"
    return f"{span}  [{color}]gap[/{color}] → {covered} [dim](gap_policy {role.gap_policy})[/dim]"


def print_control_map(control: ControlMap, console: Console) -> None:
    """The control map for people: each role with its coverage, the policies, the findings."""
    console.print(
        f"[bold]{control.path}[/bold]  version {control.version[:12]}\n"
        f"coverage from {control.start:%Y-%m-%d %H:%M} to {control.end:%Y-%m-%d %H:%M} UTC",
        highlight=False,
    )
    for role in control.roles:
        console.print()
        title = f"[bold]role {role.role}[/bold]"
        console.print(title + (f" — {role.description}" if role.description else ""))
        gap = role.gap_policy + (f" ({', '.join(role.fallback)})" if role.fallback else "")
        links = ", ".join(f"{link.policy} ({link.via})" for link in role.policies)
        for label, value in (
            ("members", ", ".join(role.members) or "(none)"),
            ("on shift now", ", ".join(role.on_shift_now) or "(nobody)"),
            ("schedule", f"{role.timezone} time" if role.timezone else "none: every member"),
            ("gap policy", gap),
            ("policies", links or "(none)"),
        ):
            console.print(f"  {label + ':':<14}{value}", highlight=False)
        console.print(f"  coverage ({len(role.gaps)} gap(s)):")
        for segment in role.coverage[:_MAX_ROWS]:
            console.print(f"    {_segment_line(segment, role)}", highlight=False)
        if len(role.coverage) > _MAX_ROWS:
            console.print(f"    … {len(role.coverage) - _MAX_ROWS} more segments")
    console.print()
    console.print("[bold]policies[/bold] (first match wins)")
    for policy in control.policies:
        console.print(f"  [bold]{policy.name}[/bold]  {policy.rule}", highlight=False)
        if policy.auto is not None:
            console.print(f"    → decided at once: auto {policy.auto}", highlight=False)
            continue
        approvals = policy.approvals
        mode = approvals.mode.value if approvals is not None else "single"
        parts = [
            f"→ {policy.route}",
            f"{mode}: {policy.needed} of {len(policy.eligible)} eligible",
        ]
        if policy.sla:
            parts.append(f"SLA {policy.sla}")
        if policy.escalation:
            parts.append(f"escalation {policy.escalation} (waits {policy.escalation_wait})")
        verdict = (
            "[green]quorum can be met[/green]"
            if policy.satisfiable
            else f"[red]quorum cannot be met: {policy.reason}[/red]"
        )
        console.print(f"    {', '.join(parts)}; {verdict}", highlight=False)
    console.print()
    for problem in control.problems:
        console.print(f"[red]problem:[/red] {problem}", highlight=False)
    for warning in control.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    console.print("[green]ok[/green]" if control.ok else "[red]not ok[/red]")
