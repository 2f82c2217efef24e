"""The database schema, in SQLAlchemy Core. Alembic migrations create it; tests use them too."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores no offset of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use UTC-aware ones")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite's INTEGER PRIMARY KEY is the rowid only when spelled INTEGER, not BIGINT.
AutoId = BigInteger().with_variant(Integer(), "sqlite")

agents = Table(
    "agents",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("created_at", UTCDateTime(), nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("agent_id", String(200), ForeignKey("agents.id"), nullable=False),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("scopes", JSON, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime()),
)

users = Table(
    "users",
    metadata,
    Column("email", String(320), primary_key=True),
    Column("name", String(200)),
    Column("password_hash", String(200)),
    Column("created_at", UTCDateTime(), nullable=False),
)

user_roles = Table(
    "user_roles",
    metadata,
    Column("email", String(320), ForeignKey("users.email"), primary_key=True),
    Column("role", String(200), primary_key=True),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("email", String(320), ForeignKey("users.email"), nullable=False),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime()),
)

requests = Table(
    "requests",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("agent_id", String(200), ForeignKey("agents.id"), nullable=False),
    Column("status", String(16), nullable=False),
    # Bumped by every change; a decision applies only if the version it read is still current,
    # so of two racing decisions the database lets exactly one through.
    Column("version", Integer, nullable=False),
    Column("route_role", String(200), nullable=False),
    Column("risk", String(16), nullable=False),
    Column("object_type", String(200), nullable=False),
    Column("object_id", String(200), nullable=False),
    Column("idempotency_key", String(255)),
    Column("body_hash", String(64), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("policy", JSON),
    Column("assignees", JSON, nullable=False),
    Column("escalation_level", Integer, nullable=False),
    Column("callback_status", String(16)),
    Column("outcome", JSON),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("due_at", UTCDateTime()),
    Column("closed_at", UTCDateTime()),
    UniqueConstraint("agent_id", "idempotency_key"),
    Index(None, "status", "due_at"),
    Index(None, "route_role", "status"),
    Index(None, "object_type", "object_id"),
)

# The roles that may decide a request (its route plus any quorum roles), for visibility queries.
request_roles = Table(
    "request_roles",
    metadata,
    Column("request_id", String(40), ForeignKey("requests.id"), primary_key=True),
    Column("role", String(200), primary_key=True, index=True),
)

decisions = Table(
    "decisions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("request_id", String(40), ForeignKey("requests.id"), nullable=False, index=True),
    Column("verdict", String(16), nullable=False),
    Column("arguments", JSON),
    Column("comment", Text),
    Column("reason_code", String(64)),
    Column("decided_by", String(320), nullable=False),
    Column("role", String(200)),
    Column("via", String(16), nullable=False),
    Column("closing", Boolean, nullable=False),
    Column("at", UTCDateTime(), nullable=False),
)

# The audit log (DESIGN.md §7; `audit.py` writes it). `seq` is the RFC 6962 leaf index, assigned
# gap-free by `audit.append` under the lock of the `audit_log` row, never by the database. `entry`
# holds the exact RFC 8785 bytes that `leaf_hash` hashes, so proofs and exports never depend on
# re-encoding. `nodes` holds the interior tree nodes this leaf completed (hex, level 1 upward;
# null if none), so any proof costs O(log n) row lookups. Database triggers (migration 0003)
# refuse UPDATE and DELETE on audit_events and audit_checkpoints.
audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", AutoId, primary_key=True, autoincrement=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("type", String(64), nullable=False),
    Column("request_id", String(40), index=True),
    Column("actor", String(320), nullable=False),
    Column("data", JSON, nullable=False),
    Column("leaf_hash", String(64)),
    Column("entry", Text),
    Column("nodes", JSON),
)

# One row (id 1): the tree's size and frontier (roots of its perfect subtrees, largest first,
# hex). Appends lock it, which serializes them and makes `seq` gap-free.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("size", BigInteger, nullable=False),
    Column("frontier", JSON, nullable=False),
)

# Every signed checkpoint (C2SP signed note), with the RFC 6962 consistency proof from the
# checkpoint before it, checked before signing.
audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root_hash", String(64), nullable=False),
    Column("note", Text, nullable=False),
    Column("prev_size", BigInteger),
    Column("consistency", JSON, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)
