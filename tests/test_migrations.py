"""Migrations, tested with data on SQLite and PostgreSQL, and checked for drift (STYLE.md "Tests").

Like Hydra's ``migratest``: the database is migrated one revision at a time; after each step the rows
seeded so far must still be there and readable, and each revision that creates a table seeds rows into it
(``SEEDS``). At head the rows are read back through the real services — the citizen decrypts, the audit
chain verifies, the store entry is found. Then the database goes down one revision at a time to base,
which must leave no table behind, and back up to head.

When a later migration changes a seeded table, give its revision its own seed and check here, written
against the schema of that revision.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from alembic.autogenerate import produce_migrations, render_python_code
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, MetaData, String, create_engine, inspect, make_url, text

from idp import dbadmin
from idp.audit.service import record_event, verify_chain
from idp.citizens.service import create_citizen, decrypt_profile, find_by_id_number
from idp.clients.service import ClientRegistration, create_client, get_client
from idp.crypto.pii import PiiCipher
from idp.db import Database
from idp.models import Base
from idp.stores.sql import SqlStore
from tests.fixtures.services import create_database_or_skip, drop_database

NOW = 1_790_000_000.0  # 2026-09-21 UTC
CIPHER = PiiCipher([("data-test", os.urandom(32))], os.urandom(32))
CITIZEN = ("张三", "11010519491231002X")
STORE_ENTRY = ("login", "tx-1", b"transaction state")


@dataclass
class Seeded:
    """What the seeds put in, and the checks that it is all still there."""

    checks: list[Callable[[Database], None]] = field(default_factory=list)

    def verify(self, database: Database) -> None:
        for check in self.checks:
            check(database)


def seed_0001(database: Database, seeded: Seeded) -> None:
    """A client, a citizen, an audit event and a store entry in the tables of the initial schema."""
    with database.session() as session:
        create_client(
            session,
            ClientRegistration(
                name="Portal", redirect_uris=("https://portal.example/cb",), client_id="portal"
            ),
            now=NOW,
        )
        citizen = create_citizen(session, CIPHER, *CITIZEN, now=NOW)
        record_event(
            session, actor="test", action="client.create", target_type="client", target_id="portal", now=NOW
        )
        citizen_id = citizen.id
    SqlStore(database).put(*STORE_ENTRY, ttl=3600, now=NOW)

    def check(database: Database) -> None:
        with database.session() as session:
            client = get_client(session, "portal")
            assert client.redirect_uris == ["https://portal.example/cb"]
            assert client.created_at.timestamp() == NOW
            citizen = find_by_id_number(session, CIPHER, CITIZEN[1])
            assert citizen is not None and citizen.id == citizen_id
            assert decrypt_profile(CIPHER, citizen).name == CITIZEN[0]
            verification = verify_chain(session)
            assert verification.ok and verification.events_checked == 1
        assert SqlStore(database).get(*STORE_ENTRY[:2], now=NOW) == STORE_ENTRY[2]

    seeded.checks.append(check)


SEEDS: dict[str, Callable[[Database, Seeded], None]] = {"0001": seed_0001}


def revisions_oldest_first() -> list[str]:
    script = ScriptDirectory.from_config(dbadmin.alembic_config("sqlite://"))
    return [revision.revision for revision in reversed(list(script.walk_revisions("base", "heads")))]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on each backend; on PostgreSQL a database of its own, dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrate.sqlite3'}"
        return
    # Not the session's shared database: these tests create and drop the whole schema, and a half-migrated
    # schema left by a failing test must not break the tests that use create_all.
    admin_url: str = request.getfixturevalue("postgres_admin_url")
    name = create_database_or_skip(admin_url)
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        drop_database(admin_url, name)


def table_names(url: str) -> set[str]:
    database = Database(url)
    try:
        return set(inspect(database.engine).get_table_names())
    finally:
        database.dispose()


def test_upgrade_and_downgrade_keep_and_drop_data(empty_url: str) -> None:
    revisions = revisions_oldest_first()
    assert revisions, "no migrations"
    assert dbadmin.current(empty_url) == ()
    seeded = Seeded()
    database = Database(empty_url)
    try:
        for revision in revisions:
            dbadmin.upgrade(empty_url, revision)
            assert dbadmin.current(empty_url) == (revision,)
            seeded.verify(database)
            if revision in SEEDS:
                SEEDS[revision](database, seeded)
                seeded.verify(database)
        assert dbadmin.current(empty_url) == dbadmin.head_revisions()
        assert table_names(empty_url) >= set(Base.metadata.tables)

        # Upgrading a database at head changes nothing, and the data is still all there.
        dbadmin.upgrade(empty_url)
        seeded.verify(database)
        database.engine.dispose()  # PostgreSQL cannot drop tables under an open session

        for older in [*reversed(revisions[:-1]), "base"]:
            dbadmin.downgrade(empty_url, older)
            assert dbadmin.current(empty_url) == (() if older == "base" else (older,))
        # Nothing of the schema is left but Alembic's empty version table.
        assert table_names(empty_url) <= {"alembic_version"}

        # The downgrade was clean: the whole way up works again, on an empty schema.
        dbadmin.upgrade(empty_url)
        with database.session() as session:
            assert find_by_id_number(session, CIPHER, CITIZEN[1]) is None
    finally:
        database.dispose()


def test_store_entries_table_has_its_purge_index(empty_url: str) -> None:
    dbadmin.upgrade(empty_url)
    database = Database(empty_url)
    try:
        indexes = {index["name"]: index for index in inspect(database.engine).get_indexes("store_entries")}
    finally:
        database.dispose()
    assert indexes["ix_store_entries_expires_at"]["column_names"] == ["expires_at"]


def test_models_and_migrations_match(empty_url: str) -> None:
    dbadmin.upgrade(empty_url)
    dbadmin.check(empty_url)


def _copy_of_models() -> MetaData:
    metadata = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.sorted_tables:
        table.to_metadata(metadata)
    return metadata


def test_check_finds_a_model_change_without_migration(empty_url: str) -> None:
    dbadmin.upgrade(empty_url)
    drifted = _copy_of_models()
    drifted.tables["oauth_clients"].append_column(Column("logo_uri", String(1000), nullable=True))
    with pytest.raises(dbadmin.SchemaDriftError) as caught:
        dbadmin.check(empty_url, metadata=drifted)
    assert caught.value.differences == ("add_column oauth_clients.logo_uri",)


def test_check_compares_column_types(empty_url: str) -> None:
    dbadmin.upgrade(empty_url)
    drifted = _copy_of_models()
    drifted.tables["oauth_clients"].c.name.type = String(400)
    with pytest.raises(dbadmin.SchemaDriftError) as caught:
        dbadmin.check(empty_url, metadata=drifted)
    assert [difference.split(":")[0] for difference in caught.value.differences] == [
        "modify_type oauth_clients.name"
    ]


def test_check_finds_a_database_changed_by_hand(empty_url: str) -> None:
    dbadmin.upgrade(empty_url)
    database = Database(empty_url)
    try:
        with database.engine.begin() as connection:
            connection.execute(text("DROP INDEX ix_store_entries_expires_at"))
    finally:
        database.dispose()
    with pytest.raises(dbadmin.SchemaDriftError) as caught:
        dbadmin.check(empty_url)
    assert caught.value.differences == ("add_index store_entries.ix_store_entries_expires_at",)


def test_check_needs_a_database_at_head(empty_url: str) -> None:
    with pytest.raises(dbadmin.SchemaNotCurrentError, match="onecard db upgrade"):
        dbadmin.check(empty_url)


def test_migrations_import_nothing_from_the_application() -> None:
    # A migration describes the schema at its revision; importing today's models would change it later.
    versions = sorted((dbadmin.MIGRATIONS_DIR / "versions").glob("*.py"))
    assert any(path.name != "__init__.py" for path in versions)
    for path in versions:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {
            alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
        }
        imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not {name for name in imported if name.split(".")[0] in ("idp", "wallet")}, path.name


def test_migration_files_are_named_by_date_and_purpose() -> None:
    for path in (dbadmin.MIGRATIONS_DIR / "versions").glob("*.py"):
        if path.name == "__init__.py":
            continue
        date, sequence, purpose = path.stem.split("_", 2)
        assert len(date) == 8 and date.isdigit() and sequence.isdigit() and purpose, path.name


def test_utc_datetime_is_rendered_as_a_plain_timezone_aware_datetime() -> None:
    # What autogenerate writes for the whole schema against an empty database.
    engine = create_engine("sqlite://")
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            upgrade_ops = produce_migrations(context, Base.metadata).upgrade_ops
            assert upgrade_ops is not None
            code = render_python_code(upgrade_ops, render_item=dbadmin.render_item)
    finally:
        engine.dispose()
    assert "sa.DateTime(timezone=True)" in code
    assert "UTCDateTime" not in code and "idp" not in code


def test_commands_work_from_any_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'elsewhere.sqlite3'}"
    dbadmin.upgrade(url)
    assert dbadmin.current(url) == dbadmin.head_revisions()


@pytest.mark.postgres
def test_nodes_starting_together_migrate_once(postgres_admin_url: str) -> None:
    # `onecard serve` migrates on every node; started at the same moment, each must end at head, unharmed.
    name = create_database_or_skip(postgres_admin_url)
    url = make_url(postgres_admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        code = "import sys; from idp.dbadmin import upgrade; upgrade(sys.argv[1])"
        nodes = [
            subprocess.Popen([sys.executable, "-c", code, url], stderr=subprocess.PIPE) for _ in range(3)
        ]
        for node in nodes:
            _out, err = node.communicate(timeout=120)
            assert node.returncode == 0, err.decode()
        assert dbadmin.current(url) == dbadmin.head_revisions()
        dbadmin.check(url)
    finally:
        drop_database(postgres_admin_url, name)
