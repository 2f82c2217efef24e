"""policy engine: escalation progress and people synced from signoff.yaml

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "escalations",
        sa.Column("request_id", sa.String(length=40), nullable=False),
        sa.Column("chain", sa.String(length=200), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("next_step", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"], ["requests.id"], name=op.f("fk_escalations_request_id_requests")
        ),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_escalations")),
    )
    op.create_table(
        "config_people",
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["email"], ["users.email"], name=op.f("fk_config_people_email_users")
        ),
        sa.PrimaryKeyConstraint("email", name=op.f("pk_config_people")),
    )


def downgrade() -> None:
    op.drop_table("config_people")
    op.drop_table("escalations")
