"""Alembic environment: signoff runs migrations programmatically (`signoff migrate`, `serve`)."""

from __future__ import annotations

from typing import Literal

from alembic import context

import signoff_server.app  # noqa: F401  # pyright: ignore[reportUnusedImport] - registers every table
from signoff_server.schema import UTCDateTime, metadata


def _render_item(type_: str, obj: object, autogen_context: object) -> str | Literal[False]:
    # Migrations stay plain SQLAlchemy: the UTC conversion is the application's business.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "signoff migrations run through signoff_server.db.migrate(), not bare alembic"
    )

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    render_item=_render_item,
)
with context.begin_transaction():
    context.run_migrations()
