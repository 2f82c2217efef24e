"""The `signoff` command line.

Every command takes `--db URL` (default `SIGNOFF_DATABASE_URL`, else `sqlite:///./signoff.db`).
Commands that mint a secret print it alone on stdout and everything else on stderr, so
`KEY=$(signoff keys create --agent a)` works.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from sqlalchemy.exc import ArgumentError, OperationalError

from signoff_server.audit_cli import audit_app, evidence_command
from signoff_server.callbacks.cli import webhook_keys_app, webhooks_app
from signoff_server.db import Database, migrate, normalize_url
from signoff_server.identity import create_agent_key, create_token, set_user
from signoff_server.policy.check import check_command
from signoff_server.reviewer_cli import register as register_reviewer_commands
from signoff_server.reviewer_cli import reviewer_settings
from signoff_server.settings import DEFAULT_DATABASE_THREADS, DEFAULT_DATABASE_URL, Settings

app = typer.Typer(
    name="signoff",
    help="signoff: approval gates for AI agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(help="Agent API keys (sk_…).", no_args_is_help=True)
users_app = typer.Typer(help="Reviewers and their roles.", no_args_is_help=True)
tokens_app = typer.Typer(help="Reviewers' personal API tokens (pt_…).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(webhook_keys_app, name="webhook-keys")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(audit_app, name="audit")
app.command("evidence")(evidence_command)
try:  # `signoff scan` ships with signoff-agent-kit; the server works without it
    from signoff_agent_kit.cli import scan_command
except ImportError:  # pragma: no cover - the agent kit is not installed
    pass
else:
    app.command("scan")(scan_command)

_PASSTHROUGH: dict[str, Any] = {
    "allow_extra_args": True,
    "ignore_unknown_options": True,
    "help_option_names": [],
}


@app.command("claude-code", context_settings=_PASSTHROUGH, add_help_option=False)
def claude_code_command(ctx: typer.Context) -> None:
    """Install the Claude Code gate: `signoff claude-code install [--project|--user]`."""
    try:
        from signoff_claude_code.install import main as claude_code_main
    except ImportError as exc:
        raise _fail(
            "`signoff claude-code` needs signoff-claude-code: pip install signoff-claude-code"
        ) from exc
    raise typer.Exit(claude_code_main(ctx.args))


@app.command("mcp-proxy", context_settings=_PASSTHROUGH, add_help_option=False)
def mcp_proxy_command(ctx: typer.Context) -> None:
    """Gate another MCP server's tools: `signoff mcp-proxy --name N -- CMD ...`."""
    try:
        from signoff_mcp.cli import main as mcp_main
    except ImportError as exc:
        raise _fail("`signoff mcp-proxy` needs signoff-mcp: pip install signoff-mcp") from exc
    raise typer.Exit(mcp_main(["proxy", *ctx.args]))


err = Console(stderr=True, soft_wrap=True)

DbOption = Annotated[
    str,
    typer.Option(
        "--db",
        envvar="SIGNOFF_DATABASE_URL",
        help="Database URL: sqlite:///path or postgresql://…",
        show_default=True,
    ),
]
ConfigOption = Annotated[
    str | None,
    typer.Option(
        "--config",
        envvar="SIGNOFF_CONFIG",
        help="The policy file, signoff.yaml (see docs/policies.md).",
        show_default=False,
    ),
]


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code=2)


def _open(db_url: str) -> Database:
    """Migrate (cheap when current) and open the database, with a clear error if we cannot."""
    try:
        normalize_url(db_url)
        migrate(db_url)
    except ArgumentError as exc:
        raise _fail(
            f"--db {db_url!r} is not a database URL: use sqlite:///path or postgresql://…"
        ) from exc
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    except OperationalError as exc:
        raise _fail(f"cannot open the database {db_url}: {exc.orig}") from exc
    return Database(db_url)


@app.command()
def serve(
    db: DbOption = DEFAULT_DATABASE_URL,
    host: Annotated[str, typer.Option(envvar="SIGNOFF_HOST", help="Interface to bind.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(envvar="SIGNOFF_PORT", help="Port to listen on.")] = 8080,
    demo: Annotated[
        bool,
        typer.Option(help="Seed the invoice-payment demo: reviewers, roles and an agent key."),
    ] = False,
    log_level: Annotated[str, typer.Option(envvar="SIGNOFF_LOG_LEVEL")] = "info",
    webhook_keys: Annotated[
        str | None,
        typer.Option(
            envvar="SIGNOFF_WEBHOOK_KEYS",
            help="Callback signing key file (created on first start; default: next to a SQLite "
            "database).",
            show_default=False,
        ),
    ] = None,
    callback_allow: Annotated[
        str,
        typer.Option(
            envvar="SIGNOFF_CALLBACK_ALLOW",
            help="Comma-separated hosts (*.example.com) and networks (10.0.0.0/8) callbacks may "
            "go to; empty: any http(s) URL.",
        ),
    ] = "",
    audit_key: Annotated[
        str | None,
        typer.Option(
            envvar="SIGNOFF_AUDIT_KEY",
            help="Audit log signing key file (created, mode 0600, on first start; default: next "
            "to a SQLite database, else ./signoff-audit.key). Never in the database.",
            show_default=False,
        ),
    ] = None,
    audit_origin: Annotated[
        str | None,
        typer.Option(
            envvar="SIGNOFF_AUDIT_ORIGIN",
            help="The audit log's name for a new key (e.g. audit.example.com/signoff).",
            show_default=False,
        ),
    ] = None,
    audit_publish_dir: Annotated[
        str | None,
        typer.Option(
            envvar="SIGNOFF_AUDIT_PUBLISH_DIR",
            help="Also write every signed audit checkpoint to this directory.",
            show_default=False,
        ),
    ] = None,
    database_threads: Annotated[
        int,
        typer.Option(
            envvar="SIGNOFF_DATABASE_THREADS",
            min=1,
            help="Threads that run API calls' database work; few is faster (the GIL).",
        ),
    ] = DEFAULT_DATABASE_THREADS,
    config: ConfigOption = None,
) -> None:
    """Run the signoff server (migrates the database first)."""
    import uvicorn

    from signoff_server.app import create_app
    from signoff_server.logs import configure_logging

    if demo and config is None:
        from signoff_server.demo import demo_config_path

        config = str(demo_config_path())
    if config is not None:
        _check_config(config)  # a broken file stops here, naming file:line
    database = _open(db)
    if demo:
        from signoff_server.demo import DEMO_PASSWORD, seed_demo

        creds = seed_demo(database)
        base = f"http://{host}:{port}"
        err.print(f"[bold green]signoff demo[/bold green] on {base}  (database {db})")
        err.print(f"  agent key (finance-agent):     [bold]{creds.agent_key}[/bold]")
        err.print(f"  reviewer token ({creds.reviewer}): [bold]{creds.reviewer_token}[/bold]")
        err.print(
            f"  reviewer token ({creds.second_reviewer}): "
            f"[bold]{creds.second_reviewer_token}[/bold]"
        )
        err.print(f"  policies: {config} (payments over 10,000 need two approvers)")
        err.print(f"  admin token (admin@example.com): [bold]{creds.admin_token}[/bold]")
        err.print(f"  reviewers' password: {DEMO_PASSWORD}")
        err.print(f"  web inbox: {base}/  (sign in as alice@example.com)")
        err.print("  Try it (see README 'Try it'):")
        err.print(
            f"    curl -s -X POST {base}/v1/requests -H 'authorization: Bearer {creds.agent_key}'"
            " -H 'content-type: application/json' -d @examples/demo/request.json"
        )
    database.dispose()
    configure_logging(log_level)
    try:  # SIGNOFF_PUBLIC_URL, SIGNOFF_SMTP_*, SIGNOFF_SLACK_* (docs/inbox.md)
        reviewers = reviewer_settings(host, port)
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    settings = Settings(
        **reviewers,
        database_url=db,
        webhook_keys_path=webhook_keys,
        callback_allow=tuple(h.strip() for h in callback_allow.split(",") if h.strip()),
        audit_key_file=audit_key,
        audit_origin=audit_origin,
        audit_publish_dir=audit_publish_dir,
        database_threads=database_threads,
        config_path=config,
    )
    try:
        application = create_app(settings)
    except ValueError as exc:  # e.g. a malformed --callback-allow entry
        raise _fail(str(exc)) from exc
    uvicorn.run(
        application,
        host=host,
        port=port,
        log_config=None,
        access_log=True,
        # Long-polls would hold a shutdown for up to a minute; cut them off instead (clients
        # retry a dropped wait), so a restart or rolling deploy takes seconds.
        timeout_graceful_shutdown=5,
    )


def _check_config(path: str) -> None:
    from signoff_server.policy.config import ConfigError, load_config

    try:
        load_config(path)
    except ConfigError as exc:
        raise _fail(f"the policy file is not usable:\n{exc}") from exc


app.command("check")(check_command)


@app.command("migrate")
def migrate_command(db: DbOption = DEFAULT_DATABASE_URL) -> None:
    """Create or upgrade the database schema."""
    _open(db).dispose()
    err.print(f"database {db} is up to date")


@keys_app.command("create")
def keys_create(
    agent: Annotated[str, typer.Option(help="The agent's id, e.g. finance-agent.")],
    db: DbOption = DEFAULT_DATABASE_URL,
) -> None:
    """Mint an agent key. Prints the secret once, alone on stdout."""
    if not agent.strip():
        raise _fail("--agent must not be empty")
    database = _open(db)
    with database.write() as conn:
        secret = create_agent_key(conn, agent.strip())
    database.dispose()
    err.print(f"created a key for agent {agent!r}; it is shown only now")
    sys.stdout.write(secret + "\n")


@users_app.command("add")
def users_add(
    email: Annotated[str, typer.Argument(help="The reviewer's email.")],
    role: Annotated[list[str], typer.Option("--role", help="A role they hold (repeatable).")],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read a password for the web inbox from stdin.")
    ] = False,
    db: DbOption = DEFAULT_DATABASE_URL,
) -> None:
    """Create or update a reviewer; their roles become exactly the given ones."""
    if "@" not in email:
        raise _fail(f"{email!r} is not an email address")
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    if password_stdin and not password:
        raise _fail("--password-stdin was given but stdin held no password")
    database = _open(db)
    with database.write() as conn:
        set_user(conn, email, role, name=name, password=password)
    database.dispose()
    err.print(f"{email.lower()} holds {', '.join(role)}")


@tokens_app.command("create")
def tokens_create(
    user: Annotated[str, typer.Option(help="The reviewer's email.")],
    db: DbOption = DEFAULT_DATABASE_URL,
) -> None:
    """Mint a personal API token. Prints the secret once, alone on stdout."""
    database = _open(db)
    try:
        with database.write() as conn:
            secret = create_token(conn, user)
    except LookupError as exc:
        raise _fail(str(exc.args[0])) from exc
    finally:
        database.dispose()
    err.print(f"created a token for {user.lower()}; it is shown only now")
    sys.stdout.write(secret + "\n")


register_reviewer_commands(app)  # signoff queue / signoff decide (over HTTP)


def main() -> None:
    """Entry point for `python -m signoff_server`."""
    app()
