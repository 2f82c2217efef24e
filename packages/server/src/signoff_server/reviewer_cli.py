"""`signoff queue` and `signoff decide`: deciding from a terminal.

These talk to a running server over its HTTP API with the core `signoff.Client` and a reviewer's
personal token (`pt_…`, from `signoff tokens create --user EMAIL`), so they work from any
machine: `--url` / `SIGNOFF_URL` (default `http://127.0.0.1:8080`) and `--token` /
`SIGNOFF_TOKEN`. They take no `--db`: the server applies the same checks as for the web inbox.

Exit codes: 0 done, 1 the server refused or could not be reached, 2 a usage mistake.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from signoff import Client
from signoff.errors import ApiError, SignoffError
from signoff.models import Request, Risk, Status, Verdict
from signoff_server.notifications.config import from_environment

__all__ = ["decide_command", "queue_command", "register", "reviewer_settings"]

DEFAULT_URL = "http://127.0.0.1:8080"

err = Console(stderr=True, soft_wrap=True)

UrlOption = Annotated[
    str,
    typer.Option("--url", envvar="SIGNOFF_URL", help="The signoff server.", show_default=True),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="SIGNOFF_TOKEN",
        help="Your personal token (pt_…): signoff tokens create --user EMAIL.",
        show_default=False,
    ),
]


def _fail(message: str, code: int) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False, markup=True)
    return typer.Exit(code=code)


def _client(url: str, token: str | None) -> Client:
    if not token:
        raise _fail("no token: pass --token or set SIGNOFF_TOKEN (a pt_… personal token)", 2)
    if not token.startswith("pt_"):
        raise _fail("--token must be a reviewer's personal token (pt_…), not an agent key", 2)
    return Client(base_url=url, api_key=token, retries=1, timeout=30)


def _countdown(due_at: datetime | None, now: datetime) -> str:
    if due_at is None:
        return "—"
    seconds = int((due_at - now).total_seconds())
    late, seconds = seconds < 0, abs(seconds)
    hours, rest = divmod(seconds, 3600)
    text = f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"
    return f"-{text} (overdue)" if late else text


def _approvals(request: Request) -> str:
    given = {
        d.decided_by.user for d in request.decisions if d.verdict in (Verdict.APPROVE, Verdict.EDIT)
    }
    approvals = request.approvals
    if approvals.mode.value == "single":
        needed = 1
    elif approvals.mode.value == "all_of":
        needed = max(approvals.required, len(approvals.roles or []))
    else:
        needed = approvals.required
    return f"{len(given)}/{needed}"


def _row(request: Request) -> dict[str, Any]:
    return {
        "id": request.id,
        "due_at": request.due_at.isoformat() if request.due_at else None,
        "risk": request.risk.value,
        "action": request.action.name,
        "business_object": f"{request.business_object.type} {request.business_object.id}",
        "agent": request.agent.id,
        "role": request.route.role,
        "escalation_level": request.escalation_level,
        "approvals": _approvals(request),
    }


def queue_command(
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    role: Annotated[str | None, typer.Option(help="Only requests routed to this role.")] = None,
    risk: Annotated[Risk | None, typer.Option(help="Only this risk level.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 200,
) -> None:
    """Pending requests you may decide, soonest deadline first."""
    with _client(url, token) as client:
        try:
            found: list[Request] = []
            for request in client.iter_requests(status=Status.PENDING, role=role, page_size=200):
                if risk is None or request.risk is risk:
                    found.append(request)
                if len(found) >= 5000:
                    break
        except SignoffError as exc:
            raise _fail(str(exc), 1) from None
    far = datetime.max.replace(tzinfo=UTC)
    found.sort(key=lambda r: (r.due_at or far, r.created_at))
    found = found[:limit]
    if as_json:
        for request in found:
            sys.stdout.write(json.dumps(_row(request)) + "\n")
        return
    now = datetime.now(UTC)
    table = Table(title=None, show_edge=False, pad_edge=False)
    for column in (
        "ID",
        "DUE IN",
        "RISK",
        "ACTION",
        "BUSINESS OBJECT",
        "AGENT",
        "ROLE",
        "ESC",
        "APPROVALS",
    ):
        table.add_column(column, no_wrap=column in ("ID", "DUE IN"))
    for request in found:
        row = _row(request)
        table.add_row(
            request.id,
            _countdown(request.due_at, now),
            row["risk"],
            row["action"],
            row["business_object"],
            str(row["agent"]),
            row["role"],
            str(request.escalation_level or ""),
            row["approvals"],
        )
    if found:
        # Made here, not at import: the width comes from the terminal (or COLUMNS) of this run.
        Console(soft_wrap=True).print(table)
    err.print(f"{len(found)} pending request(s)")


def _read_arguments(path: Path) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text()
    except OSError as exc:
        raise _fail(f"cannot read {path}: {exc.strerror}", 2) from None
    try:
        value: Any = json.loads(text)
    except ValueError as exc:
        raise _fail(f"{path} is not valid JSON: {exc}", 2) from None
    if not isinstance(value, dict):
        raise _fail(f"{path} must hold a JSON object (the corrected arguments)", 2)
    return value  # pyright: ignore[reportUnknownVariableType]


def decide_command(
    request_id: Annotated[str, typer.Argument(help="The request, req_….")],
    approve: Annotated[bool, typer.Option("--approve", help="Approve as asked.")] = False,
    reject: Annotated[bool, typer.Option("--reject", help="Reject.")] = False,
    edit: Annotated[
        Path | None,
        typer.Option(
            "--edit",
            help="Approve with corrected arguments from this JSON file ('-': stdin).",
            show_default=False,
        ),
    ] = None,
    respond: Annotated[
        str | None,
        typer.Option("--respond", help="Answer with this instruction instead.", show_default=False),
    ] = None,
    comment: Annotated[str | None, typer.Option(help="Why (some requests require it).")] = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="A reason code, e.g. wrong-amount.")
    ] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Approve, reject, edit or respond to one request."""
    chosen = [
        verdict
        for verdict, given in (
            (Verdict.APPROVE, approve),
            (Verdict.REJECT, reject),
            (Verdict.EDIT, edit is not None),
            (Verdict.RESPOND, respond is not None),
        )
        if given
    ]
    if len(chosen) != 1:
        raise _fail("choose exactly one of --approve, --reject, --edit FILE, --respond TEXT", 2)
    verdict = chosen[0]
    arguments = _read_arguments(edit) if edit is not None else None
    text = respond if verdict is Verdict.RESPOND else comment
    if verdict is Verdict.RESPOND and comment:
        text = f"{respond}\n\n{comment}"
    with _client(url, token) as client:
        try:
            result = client.decide(
                request_id, verdict, arguments=arguments, comment=text, reason_code=reason
            )
        except ApiError as exc:
            raise _fail(f"refused ({exc.status_code} {exc.code}): {exc.message}", 1) from None
        except SignoffError as exc:
            raise _fail(str(exc), 1) from None
    if result.status is Status.PENDING:
        sys.stdout.write(f"{result.id}: approval recorded ({_approvals(result)}); still pending\n")
    else:
        sys.stdout.write(f"{result.id}: {result.status.value}\n")


def reviewer_settings(host: str, port: int) -> dict[str, Any]:
    """`Settings` fields for `signoff serve` from `SIGNOFF_PUBLIC_URL`, `SIGNOFF_SMTP_*` and
    `SIGNOFF_SLACK_*`; links point at `http://HOST:PORT` unless a public URL is set.
    ValueError for a malformed variable."""
    found = from_environment()
    found.setdefault("public_url", f"http://{host}:{port}")
    return found


def register(app: typer.Typer) -> None:
    """Add `queue` and `decide` to the `signoff` command."""
    app.command("queue")(queue_command)
    app.command("decide")(decide_command)
