"""Alembic environment: signoff runs migrations programmatically (`signoff migrate`, `serve`)."""

from __future__ import annotations

from alembic import context

from signoff_server.schema import metadata

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
)
with context.begin_transaction():
    context.run_migrations()
