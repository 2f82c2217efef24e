"""callbacks: the callback outbox and per-agent webhook HMAC secrets

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 04:03:21.340631
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_secrets",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("agent_id", sa.String(length=200), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_webhook_secrets_agent_id_agents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_secrets")),
    )
    with op.batch_alter_table("webhook_secrets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_webhook_secrets_agent_id"), ["agent_id"], unique=False)

    op.create_table(
        "callback_outbox",
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("request_id", sa.String(length=40), nullable=False),
        sa.Column("agent_id", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"], ["requests.id"], name=op.f("fk_callback_outbox_request_id_requests")
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_callback_outbox")),
        sa.UniqueConstraint("request_id", name=op.f("uq_callback_outbox_request_id")),
    )
    with op.batch_alter_table("callback_outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_callback_outbox_state"), ["state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("callback_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_callback_outbox_state"))

    op.drop_table("callback_outbox")
    with op.batch_alter_table("webhook_secrets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_secrets_agent_id"))

    op.drop_table("webhook_secrets")
