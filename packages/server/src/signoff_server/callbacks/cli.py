"""`signoff webhook-keys …` (signing keys, HMAC secrets) and `signoff webhooks …` (replay).

Like every signoff command, these take `--db URL`; the key commands also take
`--webhook-keys PATH` (default: next to a SQLite database, see `signoff_server.settings`).
Commands that mint a secret print it alone on stdout and everything else on stderr.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy.exc import OperationalError

from signoff.durations import parse_duration
from signoff_server import audit
from signoff_server.callbacks.keys import (
    KeyFileError,
    SigningKey,
    create_hmac_secret,
    create_key_file,
    list_hmac_secrets,
    read_key_file,
    retire_key,
    revoke_hmac_secret,
    rotate_keys,
)
from signoff_server.callbacks.outbox import find, replay
from signoff_server.callbacks.service import key_path
from signoff_server.db import Database, migrate, normalize_url
from signoff_server.errors import ServiceError
from signoff_server.settings import DEFAULT_DATABASE_URL, Settings

__all__ = ["webhook_keys_app", "webhooks_app"]

webhook_keys_app = typer.Typer(
    help="Webhook signing keys: Ed25519 (whsk_/whpk_) in the key file, per-agent HMAC (whsec_).",
    no_args_is_help=True,
)
webhooks_app = typer.Typer(
    help="Signed decision callbacks: status and replay.", no_args_is_help=True
)

err = Console(stderr=True, soft_wrap=True)

DbOption = Annotated[
    str,
    typer.Option(
        "--db", envvar="SIGNOFF_DATABASE_URL", help="Database URL: sqlite:///path or postgresql://…"
    ),
]
KeysOption = Annotated[
    str | None,
    typer.Option(
        "--webhook-keys",
        envvar="SIGNOFF_WEBHOOK_KEYS",
        help="The webhook signing key file (default: next to a SQLite database).",
        show_default=False,
    ),
]


def _now() -> datetime:
    return datetime.now(UTC)


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code=2)


def _open(db_url: str) -> Database:
    try:
        normalize_url(db_url)
        migrate(db_url)
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    except OperationalError as exc:
        raise _fail(f"cannot open the database {db_url}: {exc.orig}") from exc
    return Database(db_url)


def _key_file(db_url: str, keys: str | None) -> Path:
    try:
        return key_path(Settings(database_url=db_url, webhook_keys_path=keys))
    except ValueError as exc:
        raise _fail(str(exc)) from exc


def _state(key: SigningKey, now: datetime) -> str:
    if key.active(now):
        return "active" if key.retires_at is None else f"retiring at {key.retires_at.isoformat()}"
    return "retired"


# --- signing keys -------------------------------------------------------------------------------


@webhook_keys_app.command("list")
def list_keys(db: DbOption = DEFAULT_DATABASE_URL, webhook_keys: KeysOption = None) -> None:
    """Show the signing keys (public halves only) and whether each still signs."""
    path = _key_file(db, webhook_keys)
    try:
        keys = read_key_file(path)
    except KeyFileError as exc:
        raise _fail(str(exc)) from exc
    now = _now()
    for key in keys:
        sys.stdout.write(f"{key.id}  {key.public}  {_state(key, now)}\n")


@webhook_keys_app.command("rotate")
def rotate(
    overlap: Annotated[
        str,
        typer.Option(help="ISO-8601 duration during which the old and new keys both sign."),
    ] = "P7D",
    db: DbOption = DEFAULT_DATABASE_URL,
    webhook_keys: KeysOption = None,
) -> None:
    """Add a new signing key; the current ones keep signing for --overlap, then retire.

    Prints the new public key (whpk_…) alone on stdout: give it to your receivers.
    """
    try:
        window = parse_duration(overlap)
    except ValueError as exc:
        raise _fail(f"--overlap: {exc}") from exc
    path = _key_file(db, webhook_keys)
    database = _open(db)
    now = _now()
    try:
        keys, created = create_key_file(path, now)
        if created:
            new, retiring = keys[0], []
        else:
            new, keys = rotate_keys(path, now, window)
            retiring = [k for k in keys if k.id != new.id and k.active(now)]
        with database.write() as conn:
            audit.append(
                conn,
                type="webhook_keys.rotated",
                actor="cli",
                at=now,
                data={
                    "key_id": new.id,
                    "public_key": new.public,
                    "retiring": [
                        {
                            "id": k.id,
                            "retires_at": k.retires_at.isoformat() if k.retires_at else None,
                        }
                        for k in retiring
                    ],
                },
            )
    except KeyFileError as exc:
        raise _fail(str(exc)) from exc
    finally:
        database.dispose()
    if created:
        err.print(f"created {path} with its first key {new.id}")
    for key in retiring:
        assert key.retires_at is not None
        err.print(f"{key.id} keeps signing until {key.retires_at.isoformat()}")
    err.print(f"new key {new.id} signs from now on; servers pick it up on their next callback")
    sys.stdout.write(new.public + "\n")


@webhook_keys_app.command("retire")
def retire(
    key_id: Annotated[str, typer.Argument(help="The key's id (whk_…), from `list`.")],
    db: DbOption = DEFAULT_DATABASE_URL,
    webhook_keys: KeysOption = None,
) -> None:
    """Stop signing with one key at once (e.g. it leaked). Another key must be active."""
    path = _key_file(db, webhook_keys)
    database = _open(db)
    now = _now()
    try:
        retire_key(path, key_id, now)
        with database.write() as conn:
            audit.append(
                conn, type="webhook_keys.retired", actor="cli", at=now, data={"key_id": key_id}
            )
    except KeyFileError as exc:
        raise _fail(str(exc)) from exc
    finally:
        database.dispose()
    err.print(f"{key_id} no longer signs")


# --- HMAC secrets -------------------------------------------------------------------------------


@webhook_keys_app.command("hmac-create")
def hmac_create(
    agent: Annotated[str, typer.Option(help="The agent whose callbacks it signs.")],
    db: DbOption = DEFAULT_DATABASE_URL,
) -> None:
    """Mint a whsec_ secret: the agent's callbacks also carry a v1 (HMAC-SHA256) signature.

    Prints the secret once, alone on stdout. Earlier secrets keep signing until revoked.
    """
    database = _open(db)
    now = _now()
    try:
        with database.write() as conn:
            secret_id, secret = create_hmac_secret(conn, agent.strip(), now)
            audit.append(
                conn,
                type="webhook_secret.created",
                actor="cli",
                at=now,
                data={"secret_id": secret_id, "agent_id": agent.strip()},
            )
    except LookupError as exc:
        raise _fail(str(exc.args[0])) from exc
    finally:
        database.dispose()
    err.print(f"created HMAC secret {secret_id} for agent {agent!r}; it is shown only now")
    sys.stdout.write(secret + "\n")


@webhook_keys_app.command("hmac-list")
def hmac_list(
    agent: Annotated[str | None, typer.Option(help="Only this agent's secrets.")] = None,
    db: DbOption = DEFAULT_DATABASE_URL,
) -> None:
    """Show HMAC secrets (ids and dates, never the secrets)."""
    database = _open(db)
    try:
        with database.read() as conn:
            infos = list_hmac_secrets(conn, agent)
    finally:
        database.dispose()
    for info in infos:
        state = f"revoked {info.revoked_at.isoformat()}" if info.revoked_at else "active"
        sys.stdout.write(f"{info.id}  {info.agent_id}  {info.created_at.isoformat()}  {state}\n")


@webhook_keys_app.command("hmac-revoke")
def hmac_revoke(
    secret_id: Annotated[str, typer.Argument(help="The secret's id (whs_…), from `hmac-list`.")],
    db: DbOption = DEFAULT_DATABASE_URL,
) -> None:
    """Stop signing with one HMAC secret."""
    database = _open(db)
    now = _now()
    try:
        with database.write() as conn:
            info = revoke_hmac_secret(conn, secret_id, now)
            audit.append(
                conn,
                type="webhook_secret.revoked",
                actor="cli",
                at=now,
                data={"secret_id": secret_id, "agent_id": info.agent_id},
            )
    except LookupError as exc:
        raise _fail(str(exc.args[0])) from exc
    finally:
        database.dispose()
    err.print(f"{secret_id} ({info.agent_id}) no longer signs")


# --- callbacks ----------------------------------------------------------------------------------


@webhooks_app.command("replay")
def replay_command(
    request_id: Annotated[
        str, typer.Argument(help="The request (req_…) whose callback to resend.")
    ],
    db: DbOption = DEFAULT_DATABASE_URL,
) -> None:
    """Re-send a closed request's callback, now, with the same webhook-id.

    Queues a new delivery (with a full retry schedule); a running server sends it.
    """
    database = _open(db)
    try:
        with database.write() as conn:
            event_id = replay(conn, request_id, _now(), actor="cli")
    except ServiceError as exc:
        raise _fail(exc.message) from exc
    finally:
        database.dispose()
    err.print(f"queued {event_id} for {request_id}; a running server delivers it")


@webhooks_app.command("status")
def status_command(
    request_id: Annotated[str, typer.Argument(help="The request (req_…).")],
    db: DbOption = DEFAULT_DATABASE_URL,
) -> None:
    """Show where a request's callback stands."""
    database = _open(db)
    try:
        with database.read() as conn:
            row = find(conn, request_id)
    finally:
        database.dispose()
    if row is None:
        raise _fail(f"{request_id} has no callback")
    last = (
        f"last attempt {row.last_attempt_at.isoformat()}: "
        f"{row.last_error or f'HTTP {row.last_status_code}'}"
        if row.last_attempt_at
        else "not attempted yet"
    )
    nxt = f", next at {row.next_attempt_at.isoformat()}" if row.next_attempt_at else ""
    sys.stdout.write(f"{row.event_id}  {row.state}  attempts={row.attempts}  {last}{nxt}\n")
