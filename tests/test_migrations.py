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
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

import pytest
from alembic.autogenerate import produce_migrations, render_python_code
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    MetaData,
    String,
    column,
    create_engine,
    inspect,
    make_url,
    select,
    text,
)
from sqlalchemy import (
    table as table_of_columns,
)

from idp import dbadmin
from idp.audit.service import record_event, verify_chain
from idp.citizens.service import create_citizen, decrypt_profile, find_by_id_number
from idp.clients.model import Client
from idp.clients.service import get_client
from idp.crypto.pii import PiiCipher
from idp.db import Database, utc_from_timestamp
from idp.models import Base
from idp.stores.sql import SqlStore
from sdk.keys import generate_key
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


# oauth_clients as revision 0001 made it: later revisions add columns (0004), so its seed and check use
# these columns only, not the model of today.
CLIENTS_0001 = table_of_columns(
    "oauth_clients",
    *(
        column(name, String())
        for name in ("client_id", "name", "kind", "token_endpoint_auth_method", "scope")
    ),
    *(column(name, String()) for name in ("subject_type", "id_token_signed_response_alg")),
    *(column(name, JSON()) for name in ("redirect_uris", "post_logout_redirect_uris", "grant_types")),
    *(column(name, Boolean()) for name in ("first_party", "id_number_allowed")),
    column("created_at", DateTime(timezone=True)),
)


def seed_0001(database: Database, seeded: Seeded) -> None:
    """A client, a citizen, an audit event and a store entry in the tables of the initial schema."""
    with database.session() as session:
        session.execute(
            CLIENTS_0001.insert().values(
                client_id="portal",
                name="Portal",
                kind="portal",
                token_endpoint_auth_method="client_secret_basic",
                scope="openid profile",
                subject_type="pairwise",
                id_token_signed_response_alg="RS256",
                redirect_uris=["https://portal.example/cb"],
                post_logout_redirect_uris=[],
                grant_types=["authorization_code", "refresh_token"],
                first_party=False,
                id_number_allowed=False,
                created_at=utc_from_timestamp(NOW),
            )
        )
        citizen = create_citizen(session, CIPHER, *CITIZEN, now=NOW)
        record_event(
            session, actor="test", action="client.create", target_type="client", target_id="portal", now=NOW
        )
        citizen_id = citizen.id
    SqlStore(database).put(*STORE_ENTRY, ttl=3600, now=NOW)

    def check(database: Database) -> None:
        with database.session() as session:
            query = select(CLIENTS_0001.c.redirect_uris, CLIENTS_0001.c.created_at)
            redirect_uris, created_at = session.execute(
                query.where(CLIENTS_0001.c.client_id == "portal")
            ).one()
            assert redirect_uris == ["https://portal.example/cb"]
            assert created_at.replace(tzinfo=created_at.tzinfo or UTC).timestamp() == NOW
            citizen = find_by_id_number(session, CIPHER, CITIZEN[1])
            assert citizen is not None and citizen.id == citizen_id
            assert decrypt_profile(CIPHER, citizen).name == CITIZEN[0]
            verification = verify_chain(session)
            assert verification.ok and verification.events_checked == 1
        assert SqlStore(database).get(*STORE_ENTRY[:2], now=NOW) == STORE_ENTRY[2]

    seeded.checks.append(check)


# oauth_clients as revision 0004 left it: 0012 adds federation_expires_at, so this seed and check use the
# columns up to 0004 only; the model of today reads them from 0012 on (seed_0012).
CLIENT_FLAGS_0004 = (
    "fapi2_security_profile",
    "require_pushed_authorization_requests",
    "require_signed_request_object",
    "dpop_bound_access_tokens",
)
CLIENTS_0004 = table_of_columns(
    "oauth_clients",
    *(column(c.name, c.type) for c in CLIENTS_0001.columns),
    column("jwks", JSON()),
    *(column(name, Boolean()) for name in CLIENT_FLAGS_0004),
)


def seed_0004(database: Database, seeded: Seeded) -> None:
    """The FAPI flags (issue 15): the client of 0001 has them all off, and a FAPI 2.0 client keeps its own."""
    keys = {"keys": [{**generate_key("ES256").public_jwk(), "kid": "k1"}]}
    with database.session() as session:
        session.execute(
            CLIENTS_0004.insert().values(
                client_id="fapi",
                name="FAPI portal",
                kind="portal",
                token_endpoint_auth_method="private_key_jwt",
                scope="openid profile",
                subject_type="pairwise",
                id_token_signed_response_alg="ES256",
                redirect_uris=["https://fapi.example/cb"],
                post_logout_redirect_uris=[],
                grant_types=["authorization_code", "refresh_token"],
                first_party=False,
                id_number_allowed=False,
                created_at=utc_from_timestamp(NOW),
                jwks=keys,
                fapi2_security_profile=True,
                require_pushed_authorization_requests=False,
                require_signed_request_object=True,
                dpop_bound_access_tokens=False,
            )
        )

    def check(database: Database) -> None:
        with database.session() as session:
            flags = [CLIENTS_0004.c[name] for name in CLIENT_FLAGS_0004]
            rows = session.execute(select(CLIENTS_0004.c.client_id, *flags)).all()
            found = {row[0]: tuple(bool(flag) for flag in row[1:]) for row in rows}
            assert found["portal"] == (False, False, False, False)
            assert found["fapi"] == (True, False, True, False)

    seeded.checks.append(check)


def seed_0012(database: Database, seeded: Seeded) -> None:
    """Automatic registration (issue 12): the clients of 0001 and 0004 read through today's model with no
    expiry, and a federation client keeps its own."""
    with database.session() as session:
        session.add(
            Client(
                client_id="https://region-a.example.gov.cn",
                name="Region A",
                kind="federation",
                token_endpoint_auth_method="private_key_jwt",
                jwks={"keys": [generate_key("ES256").public_jwk()]},
                redirect_uris=["https://region-a.example.gov.cn/federation/login/callback"],
                post_logout_redirect_uris=[],
                grant_types=["authorization_code"],
                scope="openid profile realname",
                subject_type="pairwise",
                id_token_signed_response_alg="ES256",
                require_signed_request_object=True,
                created_at=utc_from_timestamp(NOW),
                federation_expires_at=utc_from_timestamp(NOW + 3600),
            )
        )

    def check(database: Database) -> None:
        with database.session() as session:
            old = get_client(session, "portal")
            assert not (old.requires_par or old.requires_dpop or old.require_signed_request_object)
            fapi = get_client(session, "fapi")
            assert fapi.requires_par and fapi.requires_dpop and fapi.require_signed_request_object
            assert not fapi.require_pushed_authorization_requests and not fapi.dpop_bound_access_tokens
            assert old.federation_expires_at is None and fapi.federation_expires_at is None
            federated = get_client(session, "https://region-a.example.gov.cn")
            assert federated.kind == "federation" and federated.federation_expires_at is not None
            assert federated.federation_expires_at.timestamp() == NOW + 3600

    seeded.checks.append(check)


def seed_0006(database: Database, seeded: Seeded) -> None:
    """The application catalogue (issue 13): an entry with two versions in its history, written as rows of
    this revision's tables; at head it reads back through the catalogue service."""
    from wallet.catalogue.service import entry_history, get_entry

    at = utc_from_timestamp(NOW)
    content = {"name": "武汉图书馆", "category": "library", "region": "420103", "address": "建设大道861号"}
    with database.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO wallet_catalogue_entries (id, name, category, region, address, latitude, "
                "longitude, capabilities, claims, venue_id, version, created_at, updated_at, withdrawn_at) "
                "VALUES ('library', :name, :category, :region, :address, 30.6, 114.27, '[\"borrowing\"]', "
                "'[\"name\"]', NULL, 2, :at, :at, NULL)"
            ),
            {**content, "at": at},
        )
        for version, action, address in ((1, "create", "旧址"), (2, "update", content["address"])):
            connection.execute(
                text(
                    "INSERT INTO wallet_catalogue_revisions (entry_id, version, action, actor, at, changed, "
                    "snapshot) VALUES ('library', :version, :action, 'cli:staff', :at, '[\"address\"]', "
                    ":snapshot)"
                ),
                {
                    "version": version,
                    "action": action,
                    "at": at,
                    "snapshot": json.dumps({**content, "address": address}, ensure_ascii=False),
                },
            )

    def check(database: Database) -> None:
        with database.session() as session:
            entry = get_entry(session, "library")
            assert (entry.name, entry.region, entry.capabilities, entry.version) == (
                "武汉图书馆",
                "420103",
                ["borrowing"],
                2,
            )
            history = entry_history(session, "library")
            assert [(r.version, r.action, r.snapshot["address"]) for r in history] == [
                (1, "create", "旧址"),
                (2, "update", "建设大道861号"),
            ]
            assert history[0].at == at

    seeded.checks.append(check)


def seed_0007(database: Database, seeded: Seeded) -> None:
    """Service halls and queue numbers (issue 13): a hall (on a venue row of 0003's table) with a service, a
    counter bound to its registered device (a client row) and a waiting ticket of the citizen of 0001, as rows
    of this revision's tables; at head the ticket reads back through the queue service, with its place in
    line, and the device finds its counter."""
    from halls.queue.model import Ticket
    from halls.queue.service import ticket_view
    from halls.register.service import counter_of_device

    at = utc_from_timestamp(NOW)
    with database.session() as session:
        session.execute(
            CLIENTS_0001.insert().values(
                client_id="dev_w1",
                name="市民之家 1号窗口",
                kind="device",
                token_endpoint_auth_method="private_key_jwt",
                scope="hall:counter",
                subject_type="pairwise",
                id_token_signed_response_alg="RS256",
                redirect_uris=[],
                post_logout_redirect_uris=[],
                grant_types=["client_credentials"],
                first_party=False,
                id_number_allowed=False,
                created_at=at,
            )
        )
    with database.engine.begin() as connection:
        citizen_id = connection.execute(text("SELECT id FROM citizens")).scalar_one()
        connection.execute(
            text(
                "INSERT INTO wallet_venues (id, name, category, client_id, claims, regions, created_at, "
                "removed_at) VALUES ('hall_civic', '市民之家', 'government', NULL, '[]', '[]', :at, NULL)"
            ),
            {"at": at},
        )
        connection.execute(
            text(
                "INSERT INTO halls_halls (id, name, address, venue_id, created_at, removed_at) "
                "VALUES ('civic', '市民之家', '民族大道1号', 'hall_civic', :at, NULL)"
            ),
            {"at": at},
        )
        connection.execute(
            text(
                "INSERT INTO halls_services (id, hall_id, code, name, name_en, prefix, created_at, "
                "removed_at) VALUES ('hs1', 'civic', 'card', '社保卡补换', 'Card', 'A', :at, NULL)"
            ),
            {"at": at},
        )
        connection.execute(
            text(
                "INSERT INTO halls_counters (id, hall_id, code, name, service_ids, device_client_id, "
                "created_at, removed_at) "
                "VALUES ('hc1', 'civic', 'w1', '1号窗口', '[\"hs1\"]', 'dev_w1', :at, NULL)"
            ),
            {"at": at},
        )
        connection.execute(
            text("INSERT INTO halls_number_sequences (service_id, day, last_seq) VALUES ('hs1', :day, 12)"),
            {"day": at.date()},
        )
        connection.execute(
            text(
                "INSERT INTO halls_tickets (id, hall_id, service_id, day, seq, number, citizen_id, channel, "
                "terminal_id, status, active_key, counter_id, taken_at, called_at, finished_at) VALUES "
                "(:id, 'civic', 'hs1', :day, 12, 'A012', :citizen, 'kiosk', 'kiosk-1', 'waiting', :key, "
                "NULL, :at, NULL, NULL)"
            ),
            {"id": "t" * 32, "day": at.date(), "citizen": citizen_id, "key": f"hs1:{citizen_id}", "at": at},
        )

    def check(database: Database) -> None:
        with database.session() as session:
            ticket = session.get(Ticket, "t" * 32)
            assert ticket is not None
            view = ticket_view(session, ticket)
            assert (view.number, view.status, view.ahead) == ("A012", "waiting", 0)
            assert view.service_name == "社保卡补换"
            assert view.taken_at == at
            counter = counter_of_device(session, "dev_w1")
            assert counter is not None and counter.code == "w1"

    seeded.checks.append(check)


def seed_0009(database: Database, seeded: Seeded) -> None:
    """Kiosk terminals (issue 13): a kiosk client registered to the hall of 0007, with its own bridge URL;
    at head the register finds it for that hall."""
    from halls.register.service import find_kiosk

    at = utc_from_timestamp(NOW)
    with database.session() as session:
        session.execute(
            CLIENTS_0001.insert().values(
                client_id="kio_1",
                name="市民之家 自助机1",
                kind="kiosk",
                token_endpoint_auth_method="private_key_jwt",
                scope="openid",
                subject_type="pairwise",
                id_token_signed_response_alg="RS256",
                redirect_uris=["https://login.example/kiosk"],
                post_logout_redirect_uris=[],
                grant_types=["authorization_code", "refresh_token"],
                first_party=False,
                id_number_allowed=False,
                created_at=at,
            )
        )
    with database.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO kiosk_terminals (client_id, hall_id, name, bridge_url, created_at) "
                "VALUES ('kio_1', 'civic', '自助机1', 'http://127.0.0.1:47401', :at)"
            ),
            {"at": at},
        )

    def check(database: Database) -> None:
        with database.session() as session:
            kiosk = find_kiosk(session, "kio_1")
            assert kiosk is not None and kiosk.hall_id == "civic"
            assert kiosk.bridge_url == "http://127.0.0.1:47401" and kiosk.created_at == at

    seeded.checks.append(check)


SEEDS: dict[str, Callable[[Database, Seeded], None]] = {
    "0001": seed_0001,
    "0004_fapi": seed_0004,
    "0006_catalogue": seed_0006,
    "0007_queue": seed_0007,
    "0009_kiosk_terminals": seed_0009,
    "0012_federated_clients": seed_0012,
}


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
