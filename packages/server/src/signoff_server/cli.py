"""The `signoff` command line.

Every command takes `--db URL` (default `SIGNOFF_DATABASE_URL`, else `sqlite:///./signoff.db`).
Commands that mint a secret print it alone on stdout and everything else on stderr, so
`KEY=$(signoff keys create --agent a)` works.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy.exc import OperationalError

from signoff_server.db import Database, migrate, normalize_url
from signoff_server.identity import create_agent_key, create_token, set_user
from signoff_server.settings import DEFAULT_DATABASE_URL, Settings

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


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code=2)


def _open(db_url: str) -> Database:
    """Migrate (cheap when current) and open the database, with a clear error if we cannot."""
    try:
        normalize_url(db_url)
        migrate(db_url)
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
) -> None:
    """Run the signoff server (migrates the database first)."""
    import uvicorn

    from signoff_server.app import create_app
    from signoff_server.logs import configure_logging

    database = _open(db)
    if demo:
        from signoff_server.demo import DEMO_PASSWORD, seed_demo

        creds = seed_demo(database)
        base = f"http://{host}:{port}"
        err.print(f"[bold green]signoff demo[/bold green] on {base}  (database {db})")
        err.print(f"  agent key (finance-agent):     [bold]{creds.agent_key}[/bold]")
        err.print(f"  reviewer token ({creds.reviewer}): [bold]{creds.reviewer_token}[/bold]")
        err.print(f"  admin token (admin@example.com): [bold]{creds.admin_token}[/bold]")
        err.print(f"  reviewers' password: {DEMO_PASSWORD}")
        err.print("  Try it (see README 'Try it'):")
        err.print(
            f"    curl -s -X POST {base}/v1/requests -H 'authorization: Bearer {creds.agent_key}'"
            " -H 'content-type: application/json' -d @examples/demo/request.json"
        )
    database.dispose()
    configure_logging(log_level)
    uvicorn.run(
        create_app(Settings(database_url=db)),
        host=host,
        port=port,
        log_config=None,
        access_log=True,
    )


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


def main() -> None:
    """Entry point for `python -m signoff_server`."""
    app()
