"""The Alembic migrations build exactly the schema the code declares, on SQLite and PostgreSQL.

`store_url` hands out a database already migrated to head (PostgreSQL ones are copies of a
migrated template), so these tests check what the migrations produced.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    insert,
    inspect,
    select,
)
from sqlalchemy.pool import NullPool

import signoff_server.app  # noqa: F401  # pyright: ignore[reportUnusedImport] - registers every table
from signoff_server.db import MIGRATIONS, migrate, normalize_url
from signoff_server.schema import agents, metadata


def _engine(url: str) -> Engine:
    return create_engine(normalize_url(url), poolclass=NullPool)


def _diffs(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={"compare_type": True, "render_as_batch": conn.dialect.name == "sqlite"},
        )
        return compare_metadata(context, metadata)


def _head() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def _current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _snapshot(engine: Engine) -> dict[str, Any]:
    """Tables with their columns, indexes, unique constraints and foreign keys, as reflected."""
    inspector = inspect(engine)
    return {
        table: {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)
            ],
            "pk": inspector.get_pk_constraint(table)["constrained_columns"],
            "indexes": sorted(
                (i["name"] or "", tuple(i["column_names"])) for i in inspector.get_indexes(table)
            ),
            "unique": sorted(
                (u["name"] or "", tuple(u["column_names"]))
                for u in inspector.get_unique_constraints(table)
            ),
            "fks": sorted(
                (f["constrained_columns"][0], f["referred_table"])
                for f in inspector.get_foreign_keys(table)
            ),
        }
        for table in sorted(inspector.get_table_names())
    }


def test_metadata_registers_the_tables_the_app_uses() -> None:
    # Guards the comparison below: an empty or partial metadata would compare "clean" too.
    assert {
        "agents",
        "api_keys",
        "users",
        "tokens",
        "requests",
        "decisions",
        "audit_events",
    } <= set(metadata.tables)


def test_migrated_schema_matches_metadata(store_url: str) -> None:
    engine = _engine(store_url)
    try:
        assert _current(engine) == _head()
        diffs = _diffs(engine)
        assert diffs == [], "\n".join(map(str, diffs))
        tables = set(inspect(engine).get_table_names()) - {"alembic_version"}
        assert tables == set(metadata.tables)
    finally:
        engine.dispose()


def test_comparison_would_see_a_drift(store_url: str) -> None:
    """The check above can fail: a table or column the migrations lack is reported."""
    drifted = MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.tables.values():
        table.to_metadata(drifted)
    Table("not_migrated", drifted, Column("id", String(10), primary_key=True))
    Table("agents", drifted, Column("not_migrated", Integer), extend_existing=True)
    engine = _engine(store_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = compare_metadata(context, drifted)
    finally:
        engine.dispose()
    found = {
        (d[0], d[1].name if d[0] == "add_table" else f"{d[2]}.{d[3].name}")
        for d in diffs
        if isinstance(d, tuple) and d[0] in {"add_table", "add_column"}
    }
    assert found == {("add_table", "not_migrated"), ("add_column", "agents.not_migrated")}, diffs


def test_migrating_again_is_a_no_op(store_url: str) -> None:
    engine = _engine(store_url)
    try:
        before = _snapshot(engine)
        now = datetime.now(UTC)
        with engine.begin() as conn:
            conn.execute(insert(agents).values(id="survivor", created_at=now))

        migrate(store_url)
        migrate(store_url)

        assert _current(engine) == _head()
        assert _snapshot(engine) == before
        assert _diffs(engine) == []
        with engine.connect() as conn:
            assert conn.execute(select(agents.c.id)).scalars().all() == ["survivor"]
    finally:
        engine.dispose()


def test_migrate_from_scratch_twice(tmp_path: Path) -> None:
    """A brand-new SQLite file: the first run builds everything, the second changes nothing."""
    url = f"sqlite:///{tmp_path}/fresh.db"
    migrate(url)
    engine = _engine(url)
    try:
        first = _snapshot(engine)
        migrate(url)
        assert _snapshot(engine) == first
        assert _diffs(engine) == []
    finally:
        engine.dispose()
