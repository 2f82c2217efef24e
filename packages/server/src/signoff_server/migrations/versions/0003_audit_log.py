"""audit log: Merkle tree state and checkpoints; append-only triggers

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 04:30:00

Events recorded before this revision are renumbered from 0 in their original order (seq becomes
the RFC 6962 leaf index; PostgreSQL sequences may have left gaps) and hashed into the tree.

UPDATE and DELETE on audit_events and audit_checkpoints are refused by triggers
(and TRUNCATE on PostgreSQL). A later SQLite migration that rebuilds one of these tables with
batch_alter_table drops its triggers: such a migration must create them again
(`create_triggers` below).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from signoff.merkle import Frontier, leaf_hash
from signoff_server.audit import encode_entry
from signoff_server.schema import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

APPEND_ONLY = ("audit_events", "audit_checkpoints")


def create_triggers(table: str) -> None:
    """Refuse UPDATE and DELETE (and TRUNCATE) on `table`."""
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {verb} refused'); END"
            )
        return
    op.execute(
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION signoff_append_only()"
    )
    op.execute(
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION signoff_append_only()"
    )


def drop_triggers(table: str) -> None:
    """Undo `create_triggers`."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
        return
    op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
    op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")


def _backfill(bind: sa.Connection) -> tuple[int, list[str]]:
    """Renumber existing events from 0, hash them into the tree; returns the frontier."""
    events = sa.table(
        "audit_events",
        sa.column("seq", sa.BigInteger()),
        sa.column("at", UTCDateTime()),
        sa.column("type", sa.String()),
        sa.column("request_id", sa.String()),
        sa.column("actor", sa.String()),
        sa.column("data", sa.JSON()),
        sa.column("leaf_hash", sa.String()),
        sa.column("entry", sa.Text()),
        sa.column("nodes", sa.JSON()),
    )
    rows = list(bind.execute(sa.select(events).order_by(events.c.seq)).mappings())
    tree = Frontier()
    rewritten: list[dict[str, Any]] = []
    for seq, row in enumerate(rows):
        entry, data = encode_entry(
            seq=seq,
            at=row["at"],
            type=row["type"],
            request_id=row["request_id"],
            actor=row["actor"],
            data=row["data"] or {},
        )
        leaf = leaf_hash(entry)
        completed = [h.hex() for _, _, h in tree.append(leaf)] or None
        rewritten.append(
            {
                **row,
                "seq": seq,
                "data": data,
                "leaf_hash": leaf.hex(),
                "entry": entry.decode(),
                "nodes": completed,
            }
        )
    if rows:
        bind.execute(sa.delete(events))
        bind.execute(sa.insert(events), rewritten)
    return tree.size, [h.hex() for h in tree.hashes]


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("entry", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("nodes", sa.JSON(), nullable=True))

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("frontier", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root_hash", sa.String(length=64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("prev_size", sa.BigInteger(), nullable=True),
        sa.Column("consistency", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("size", name=op.f("pk_audit_checkpoints")),
    )

    if bind.dialect.name != "sqlite":
        # seq is assigned by audit.append under the log lock, never by a sequence (which
        # leaves gaps when a transaction rolls back).
        op.execute("ALTER TABLE audit_events ALTER COLUMN seq DROP DEFAULT")
        op.execute("DROP SEQUENCE IF EXISTS audit_events_seq_seq")

    size, hashes = _backfill(bind)
    log = sa.table(
        "audit_log", sa.column("id", sa.Integer()), sa.column("size", sa.BigInteger()),
        sa.column("frontier", sa.JSON()),
    )  # fmt: skip
    bind.execute(sa.insert(log).values(id=1, size=size, frontier=hashes))

    if bind.dialect.name != "sqlite":
        op.execute(
            "CREATE FUNCTION signoff_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP "
            "USING ERRCODE = 'insufficient_privilege'; END $$"
        )
    for table in APPEND_ONLY:
        create_triggers(table)


def downgrade() -> None:
    bind = op.get_bind()
    for table in APPEND_ONLY:
        drop_triggers(table)
    if bind.dialect.name != "sqlite":
        op.execute("DROP FUNCTION IF EXISTS signoff_append_only()")
        op.execute("CREATE SEQUENCE audit_events_seq_seq OWNED BY audit_events.seq")
        op.execute(
            "SELECT setval('audit_events_seq_seq', COALESCE(MAX(seq), 0) + 1, false) "
            "FROM audit_events"
        )
        op.execute(
            "ALTER TABLE audit_events ALTER COLUMN seq SET DEFAULT nextval('audit_events_seq_seq')"
        )
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_log")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_column("nodes")
        batch_op.drop_column("entry")
