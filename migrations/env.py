"""The Alembic environment for every OneCard table — idp's and the plug-ins' (DESIGN.md §1).

The target is ``idp.models.Base.metadata``: importing ``idp.models`` imports every core model and loads the
plug-in models (the wallet) from the ``onecard.models`` entry point group. The database URL comes from the
Config's ``database_url`` attribute (``idp.dbadmin`` sets it), else ``sqlalchemy.url``, else the OneCard
settings, so ``onecard db …``, plain ``alembic`` and the tests all reach the same environment.

Migrations are rendered in batch mode so that the same script alters tables on SQLite (which rebuilds the
table) and on PostgreSQL (where batch mode is plain ``ALTER TABLE``). Types are compared, and the custom
``UTCDateTime`` is written into scripts as ``sa.DateTime(timezone=True)``, so no migration imports ``idp``.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection, MetaData, text

from idp.dbadmin import migration_engine, render_item
from idp.models import Base

config = context.config
# DO NOT CHANGE: every node must take the same PostgreSQL advisory lock ("ONEMIGRT" in ASCII).
_PG_MIGRATION_LOCK = 0x4F4E454D_49475254


def _database_url() -> str:
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    if url:
        return str(url)
    from idp.config import load_settings

    return load_settings().database_url


def _target_metadata() -> MetaData:
    metadata = config.attributes.get("target_metadata")
    return metadata if isinstance(metadata, MetaData) else Base.metadata


def _options() -> dict[str, Any]:
    return {
        "target_metadata": _target_metadata(),
        "render_as_batch": True,
        "compare_type": True,
        "render_item": render_item,
    }


def run_migrations_offline() -> None:
    context.configure(url=_database_url(), literal_binds=True, **_options())
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    context.configure(connection=connection, **_options())
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Every node runs `onecard serve`, which migrates first: when several start at once, one migrates
            # and the others wait here, then find the database at head (the version is read after the lock,
            # and PostgreSQL's DDL is transactional, so they never see half a migration).
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        context.run_migrations()
        if connection.dialect.name == "sqlite":
            # Foreign keys are not enforced while migrating (see idp.dbadmin.migration_engine); make sure
            # the migrations left none dangling before committing.
            broken = connection.execute(text("PRAGMA foreign_key_check")).fetchall()
            if broken:
                tables = sorted({str(row[0]) for row in broken})
                raise RuntimeError(f"migration left rows with dangling foreign keys in {', '.join(tables)}")


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run(connection)
        return
    engine = migration_engine(_database_url())
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
