"""The policy engine's tables (migration 0005): escalation progress and people from the file."""

from __future__ import annotations

from sqlalchemy import JSON, Column, ForeignKey, Integer, String, Table

from signoff_server.schema import UTCDateTime, metadata

__all__ = ["config_people", "escalations"]

escalations = Table(
    "escalations",
    metadata,
    Column("request_id", String(40), ForeignKey("requests.id"), primary_key=True),
    # The chain as it was when the request was created (repeat unrolled), so a later config
    # change never alters what an open request does.
    Column("chain", String(200), nullable=False),
    Column("steps", JSON, nullable=False),
    # The index of the step the armed timer will run; a timer whose fence differs is stale.
    Column("next_step", Integer, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# Who the policy file put into `users`, so a person removed from the file loses their roles
# while people added with `signoff users add` are left alone.
config_people = Table(
    "config_people",
    metadata,
    Column("email", String(320), ForeignKey("users.email"), primary_key=True),
    Column("version", String(64), nullable=False),
    Column("synced_at", UTCDateTime(), nullable=False),
)
