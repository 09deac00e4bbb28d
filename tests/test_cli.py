"""The ``onecard`` command, driven through click's CliRunner against a SQLite file per test.

Every command reads the real settings from the environment (``ONECARD_DATABASE_URL``, ``ONECARD_ENV``),
so the tests set those and nothing else. Outputs are checked for what an operator needs — ids, counts, line
numbers, one-line errors without a traceback — and for what must never show: names and full ID numbers.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from demo.data import DEMO_CITIZENS, DEMO_PORTAL_SECRET
from idp import cli_support, dbadmin, serve_cli
from idp.audit.model import AuditEvent
from idp.audit.service import verify_chain
from idp.cli import cli
from idp.clients.model import Client
from idp.db import Database
from sdk.keys import generate_key
from tests.support.idnumbers import make_id_number


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """ONECARD_DATABASE_URL on an empty SQLite file, ONECARD_ENV=test, and no other server setting."""
    for key in list(os.environ):
        if key.startswith("ONECARD_") and not key.startswith("ONECARD_TEST_"):
            monkeypatch.delenv(key)
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    monkeypatch.setenv("ONECARD_DATABASE_URL", url)
    monkeypatch.setenv("ONECARD_ENV", "test")
    yield url


@pytest.fixture
def migrated(database_url: str) -> str:
    dbadmin.upgrade(database_url)
    return database_url


def run(*args: str, input: str | None = None) -> Result:
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    # Whatever happened, the operator never sees a stack trace.
    assert "Traceback" not in result.output
    return result


def audit_actions(url: str) -> list[tuple[str, str, str]]:
    database = Database(url)
    try:
        with database.session() as session:
            assert verify_chain(session).ok
            rows = session.execute(
                select(AuditEvent.actor, AuditEvent.action, AuditEvent.target_id).order_by(AuditEvent.seq)
            )
            return [(row.actor, row.action, row.target_id) for row in rows]
    finally:
        database.dispose()


def citizens_csv(rows: list[tuple[str, str]]) -> str:
    return "name,id_number\n" + "".join(f"{name},{number}\n" for name, number in rows)


def valid_rows(count: int) -> list[tuple[str, str]]:
    return [
        (f"测试{index}", make_id_number("420106", date(1980, 1, 1 + index % 28), index))
        for index in range(count)
    ]


# db ----------------------------------------------------------------------------------------------------


def test_db_upgrade_current_and_check(database_url: str) -> None:
    assert run("db", "current").output.strip() == "empty (never migrated)"
    result = run("db", "upgrade")
    assert result.exit_code == 0
    head = ", ".join(dbadmin.head_revisions())
    assert result.stdout.strip() == f"database at {head} (head)"
    assert run("db", "current").stdout.strip() == f"{head} (head)"
    result = run("db", "check")
    assert result.exit_code == 0 and "match" in result.stdout


def test_db_upgrade_creates_the_directory_of_the_sqlite_file(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONECARD_DATABASE_URL", f"sqlite:///{tmp_path / 'var' / 'onecard.sqlite3'}")
    assert run("db", "upgrade").exit_code == 0
    assert (tmp_path / "var" / "onecard.sqlite3").is_file()


def test_db_downgrade_asks_first(migrated: str) -> None:
    result = run("db", "downgrade", "base", input="n\n")
    assert result.exit_code == 1
    assert dbadmin.current(migrated) == dbadmin.head_revisions()
    result = run("db", "downgrade", "base", "--yes")
    assert result.exit_code == 0 and "empty (never migrated)" in result.stdout
    assert dbadmin.current(migrated) == ()


def test_commands_refuse_a_database_that_is_not_migrated(database_url: str) -> None:
    result = run("clients", "list")
    assert result.exit_code == 1
    head = ", ".join(dbadmin.head_revisions())
    assert result.stderr.strip() == (
        f"Error: the database schema is at empty (never migrated), not at {head}; run `onecard db upgrade`"
    )


def test_configuration_errors_are_one_line(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONECARD_ACESS_TOKEN_TTL", "60")  # a typo must not fall back to the default
    result = run("db", "current")
    assert result.exit_code == 1
    assert result.stderr == "Error: configuration: unknown setting ONECARD_ACESS_TOKEN_TTL\n"


def test_an_unreachable_database_is_one_line(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONECARD_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    result = run("db", "upgrade")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: database: ") and result.stderr.count("\n") == 1


# clients -----------------------------------------------------------------------------------------------


def test_clients_add_list_show_remove(migrated: str) -> None:
    result = run(
        "clients", "add", "--name", "Library portal", "--redirect-uri", "https://library.example/cb",
        "--redirect-uri", "https://library.example/cb2", "--post-logout-redirect-uri", "https://library.example/",
        "--scope", "openid profile realname", "--backchannel-logout-uri", "https://library.example/bcl",
        "--alg", "ES256", "--first-party", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    added = json.loads(result.stdout)
    client_id, secret = added["client_id"], added["client_secret"]
    assert client_id.startswith("oc_") and secret.startswith("occs_")
    assert "cannot be shown again" in result.stderr
    assert added["redirect_uris"] == ["https://library.example/cb", "https://library.example/cb2"]
    assert added["id_token_signed_response_alg"] == "ES256" and added["first_party"] is True

    listed = run("clients", "list").stdout
    assert client_id in listed and "Library portal" in listed
    assert [item["client_id"] for item in json.loads(run("clients", "list", "--json").stdout)] == [client_id]

    shown = json.loads(run("clients", "show", client_id, "--json").stdout)
    assert shown == {key: value for key, value in added.items() if key != "client_secret"}
    text_view = run("clients", "show", client_id).stdout
    assert "https://library.example/cb, https://library.example/cb2" in text_view
    assert secret not in text_view  # the secret is shown at registration only

    assert run("clients", "remove", client_id, "--yes").exit_code == 0
    result = run("clients", "show", client_id)
    assert result.exit_code == 1 and result.stderr == f"Error: No such client: {client_id}\n"

    actor = cli_support.cli_actor()
    assert actor.startswith("cli:")
    assert audit_actions(migrated) == [
        (actor, "client.create", client_id),
        (actor, "client.remove", client_id),
    ]


def test_clients_add_with_the_fapi2_profile(migrated: str, tmp_path: Path) -> None:
    jwks = tmp_path / "keys.json"
    jwks.write_text(json.dumps({"keys": [{**generate_key("ES256").public_jwk(), "kid": "k1"}]}))
    result = run(
        "clients", "add", "--name", "Tax portal", "--redirect-uri", "https://tax.example/cb",
        "--auth-method", "private_key_jwt", "--jwks", str(jwks), "--fapi2", "--require-signed-request-object",
        "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    added = json.loads(result.stdout)
    assert added["client_secret"] is None and added["fapi2_security_profile"] is True
    assert added["require_signed_request_object"] is True
    assert (
        added["require_pushed_authorization_requests"] is False and added["dpop_bound_access_tokens"] is False
    )
    # A FAPI 2.0 client has no shared secret.
    refused = run(
        "clients", "add", "--name", "Tax portal", "--redirect-uri", "https://tax.example/cb", "--fapi2"
    )
    assert refused.exit_code == 1 and "private_key_jwt" in refused.stderr


def test_clients_add_text_output_and_chosen_id(migrated: str) -> None:
    result = run("clients", "add", "--name", "Museum", "--kind", "venue", "--scope", "gate:verify",
                 "--client-id", "museum")  # fmt: skip
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["client_id", "museum"]
    assert lines[1].split()[0] == "client_secret" and lines[1].split()[1].startswith("occs_")
    again = run("clients", "add", "--name", "Museum", "--scope", "gate:verify", "--client-id", "museum")
    assert again.exit_code == 1 and again.stderr == "Error: A client with this id already exists: museum\n"


def test_private_key_jwt_client_gets_no_secret(migrated: str, tmp_path: Path) -> None:
    from sdk.keys import generate_key

    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [generate_key("ES256").public_jwk()]}))
    result = run("clients", "add", "--name", "Operator", "--kind", "operator", "--scope", "realname:verify",
                 "--auth-method", "private_key_jwt", "--jwks", str(jwks), "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["client_secret"] is None
    assert "shown" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--redirect-uri", "https://portal.example/cb#top"],
            "redirect_uri must be absolute and without fragment: https://portal.example/cb#top",
        ),
        (["--redirect-uri", "https://portal.example/cb", "--scope", "openid email"], "unknown scopes: email"),
        (["--scope", "openid profile"], "a portal needs at least one redirect_uri"),
    ],
)
def test_clients_add_rejects_bad_metadata(migrated: str, args: list[str], message: str) -> None:
    result = run("clients", "add", "--name", "Bad", *args)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {message}") and result.stderr.count("\n") == 1
    assert json.loads(run("clients", "list", "--json").stdout) == []


def test_clients_add_rejects_unreadable_jwks(migrated: str, tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text("{not json")
    result = run("clients", "add", "--name", "Op", "--scope", "admin", "--auth-method", "private_key_jwt",
                 "--jwks", str(jwks))  # fmt: skip
    assert result.exit_code == 2 and "is not a readable JSON file" in result.stderr


def test_clients_remove_asks_first(migrated: str) -> None:
    run("clients", "add", "--name", "Keep", "--scope", "admin", "--client-id", "keep")
    assert run("clients", "remove", "keep", input="n\n").exit_code == 1
    assert run("clients", "show", "keep").exit_code == 0
    result = run("clients", "remove", "keep", input="y\n")
    assert result.exit_code == 0 and "removed client keep" in result.stdout
    assert run("clients", "remove", "nobody", "--yes").stderr == "Error: No such client: nobody\n"


# citizens ----------------------------------------------------------------------------------------------


def assert_no_pii(output: str, rows: list[tuple[str, str]]) -> None:
    for name, number in rows:
        assert (not name or name not in output) and number not in output


def test_citizens_import_good_file(migrated: str, tmp_path: Path) -> None:
    rows = valid_rows(30)
    source = tmp_path / "register.csv"
    source.write_text(citizens_csv(rows), encoding="utf-8")

    dry = run("citizens", "import", str(source), "--dry-run")
    assert dry.exit_code == 0 and "all 30 rows are valid; nothing imported" in dry.stdout

    result = run("citizens", "import", str(source))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "imported 30 rows"
    # The progress bars, one per stage, each reaching the row count.
    for stage in ("validate", "check", "insert"):
        assert stage in result.stderr
    assert "30/30" in result.stderr
    assert_no_pii(result.output, rows)

    listed = run("citizens", "list", "--limit", "10", "--offset", "25")
    assert listed.stdout.splitlines()[0] == "30 citizen(s); showing 26–30"
    assert len(listed.stdout.splitlines()) == 6
    masked = {number[:4] + "*" * 10 + number[-4:] for _name, number in rows}
    shown = [line.split()[1] for line in listed.stdout.splitlines()[1:]]
    assert set(shown) <= masked
    assert_no_pii(listed.output, rows)
    page = json.loads(run("citizens", "list", "--json").stdout)
    assert page["total"] == 30 and len(page["citizens"]) == 30
    actions = audit_actions(migrated)
    assert [action for _actor, action, _target in actions] == ["citizens.import"]


def test_citizens_import_bad_file_reports_lines_and_imports_nothing(migrated: str, tmp_path: Path) -> None:
    rows = valid_rows(4)
    bad_checksum = rows[1][1][:-1] + ("0" if rows[1][1][-1] != "0" else "1")
    lines = [rows[0], (rows[1][0], bad_checksum), rows[2], ("", rows[3][1]), rows[2]]
    source = tmp_path / "bad.csv"
    source.write_text(citizens_csv(lines), encoding="utf-8")

    result = run("citizens", "import", str(source), "--quiet")
    assert result.exit_code == 1
    report = result.stdout.splitlines()
    assert report[0] == "bad.csv: 3 problem(s)"
    # Line numbers count the header: the data rows start at line 2.
    assert [line.split()[:3] for line in report[1:]] == [
        ["line", "3:", "bad_checksum"],
        ["line", "5:", "empty_name"],
        ["line", "6:", "duplicate_in_file"],
    ]
    assert result.stderr == "Error: nothing imported: 3 problem(s) in 5 rows\n"
    assert_no_pii(result.output, lines)
    assert json.loads(run("citizens", "list", "--json").stdout)["total"] == 0
    assert audit_actions(migrated) == []


def test_citizens_import_without_a_header_row_names_no_one(migrated: str, tmp_path: Path) -> None:
    rows = valid_rows(3)
    source = tmp_path / "no-header.csv"
    source.write_text("".join(f"{name},{number}\n" for name, number in rows), encoding="utf-8")
    result = run("citizens", "import", str(source), "--quiet")
    assert result.exit_code == 1
    first_name, first_number = rows[0]
    for fragment in (first_name, first_number, first_number[:-1], first_number[:14]):
        assert fragment not in result.output
    assert_no_pii(result.output, rows)
    assert result.stdout.splitlines()[1].split()[:3] == ["line", "1:", "bad_header"]
    assert "header row is probably missing" in result.stdout
    assert json.loads(run("citizens", "list", "--json").stdout)["total"] == 0


def test_citizens_import_refuses_numbers_already_registered(migrated: str, tmp_path: Path) -> None:
    rows = valid_rows(3)
    first = tmp_path / "first.csv"
    first.write_text(citizens_csv(rows[:2]), encoding="utf-8")
    assert run("citizens", "import", str(first), "--quiet").exit_code == 0
    second = tmp_path / "second.csv"
    second.write_text(citizens_csv(rows[1:]), encoding="utf-8")
    result = run("citizens", "import", str(second), "--quiet")
    assert result.exit_code == 1 and "  line 2: already_registered" in result.stdout.splitlines()
    assert json.loads(run("citizens", "list", "--json").stdout)["total"] == 2


def test_citizens_import_missing_file_is_a_usage_error(migrated: str, tmp_path: Path) -> None:
    result = run("citizens", "import", str(tmp_path / "nowhere.csv"))
    assert result.exit_code == 2 and "does not exist" in result.stderr


def test_citizens_add_and_show_masked(migrated: str) -> None:
    name, number = "李四", make_id_number("310101", date(1975, 5, 20), 123)
    result = run("citizens", "add", "--name", name, "--id-number", number)
    assert result.exit_code == 0, result.output
    masked = number[:4] + "*" * 10 + number[-4:]
    citizen_id = result.stdout.split()[2]
    assert result.stdout.strip() == f"registered citizen {citizen_id} ({masked})"

    shown = run("citizens", "show", citizen_id)
    assert f"id_number    {masked}" in shown.stdout and "active" in shown.stdout
    assert json.loads(run("citizens", "show", citizen_id, "--json").stdout)["id_number"] == masked
    assert_no_pii(shown.output, [(name, number)])

    again = run("citizens", "add", "--name", name, "--id-number", number)
    assert again.exit_code == 1
    assert again.stderr == "Error: A citizen with this ID number is already registered.\n"
    assert [action for _a, action, _t in audit_actions(migrated)] == ["citizen.create"]


def test_citizens_add_prompts_and_validates(migrated: str) -> None:
    number = make_id_number("310101", date(1975, 5, 20), 124)
    wrong = number[:-1] + ("0" if number[-1] != "0" else "1")
    result = run("citizens", "add", input=f"李四\n{wrong}\n")
    assert result.exit_code == 1
    assert "check digit is wrong" in result.stderr
    assert wrong not in result.stderr
    assert run("citizens", "show", "no-such-id").stderr == "Error: No such citizen.\n"


# demo --------------------------------------------------------------------------------------------------


def test_demo_seed_is_idempotent(migrated: str) -> None:
    first = run("demo", "seed")
    assert first.exit_code == 0, first.output
    assert [line.split()[:3] for line in first.stdout.splitlines()][:2] == [
        ["created", "client", "demo-portal"],
        ["created", "client", "demo-admin"],
    ]
    assert sum(line.startswith("created  citizen") for line in first.stdout.splitlines()) == 2
    assert_no_pii(first.output, list(DEMO_CITIZENS))

    second = run("demo", "seed")
    assert second.exit_code == 0
    assert all(line.startswith("exists") for line in second.stdout.splitlines())
    assert len(second.stdout.splitlines()) == 4
    # The same citizens both times.
    assert [line.split()[2] for line in first.stdout.splitlines()[2:]] == [
        line.split()[2] for line in second.stdout.splitlines()[2:]
    ]

    clients: list[dict[str, Any]] = json.loads(run("clients", "list", "--json").stdout)
    by_id = {client["client_id"]: client for client in clients}
    assert set(by_id) == {"demo-portal", "demo-admin"}
    portal = by_id["demo-portal"]
    assert portal["redirect_uris"] == ["http://127.0.0.1:8001/callback"]
    assert portal["post_logout_redirect_uris"] == ["http://127.0.0.1:8001/"]
    assert portal["backchannel_logout_uri"] == "http://127.0.0.1:8001/backchannel-logout"
    assert portal["scope"] == "openid profile realname idcard offline_access"
    assert by_id["demo-admin"]["grant_types"] == ["client_credentials"]
    assert json.loads(run("citizens", "list", "--json").stdout)["total"] == 2

    database = Database(migrated)
    try:
        with database.session() as session:
            stored = session.get(Client, "demo-portal")
            assert stored is not None and stored.check_client_secret(DEMO_PORTAL_SECRET)
    finally:
        database.dispose()
    assert [action for _a, action, _t in audit_actions(migrated)].count("client.create") == 2


def test_demo_citizens_have_valid_id_numbers() -> None:
    from idp.citizens.idnumber import validate_id_number

    for _name, number in DEMO_CITIZENS:
        assert validate_id_number(number) == number


def test_demo_seed_is_refused_in_production(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONECARD_ENV", "production")
    monkeypatch.setenv("ONECARD_ISSUER", "https://id.example")
    monkeypatch.setenv("ONECARD_DATABASE_URL", "postgresql://onecard@db.example/onecard")
    monkeypatch.setenv("ONECARD_KEK", "cHJvZHVjdGlvbi1rZWstZm9yLXRoZS10ZXN0LW9ubHk")
    monkeypatch.setenv("ONECARD_PAIRWISE_SALT", "salt")
    result = run("demo", "seed")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: demo data has fixed, published secrets; refused with ONECARD_ENV=production\n"
    )


# serve and wsgi ----------------------------------------------------------------------------------------


def test_serve_dev_migrates_creates_keys_and_runs_werkzeug(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, int, Any]] = []
    import werkzeug.serving

    monkeypatch.setattr(
        werkzeug.serving, "run_simple", lambda host, port, app, **kw: calls.append((host, port, app))
    )
    result = run("serve", "--dev", "--port", "8123")
    assert result.exit_code == 0, result.output
    assert calls and calls[0][:2] == ("127.0.0.1", 8123)
    assert dbadmin.current(database_url) == dbadmin.head_revisions()
    assert "created the first key of:" in result.stderr
    # A second start finds everything in place.
    assert "created the first key" not in run("serve", "--dev").stderr


@pytest.mark.parametrize("server", ["granian", "gunicorn"])
def test_serve_runs_its_server_with_the_workers_asked_for(
    database_url: str, monkeypatch: pytest.MonkeyPatch, server: str
) -> None:
    seen: dict[str, Any] = {}

    def fake_gunicorn(app: Any, *, bind: str, workers: int, threads: int) -> None:
        seen.update(server="gunicorn", app=app, bind=bind, workers=workers, threads=threads)

    def fake_granian(app: Any, *, host: str, port: int, workers: int, threads: int) -> None:
        bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        seen.update(server="granian", app=app, bind=bind, workers=workers, threads=threads)

    monkeypatch.setattr(serve_cli, "_run_gunicorn", fake_gunicorn)
    monkeypatch.setattr(serve_cli, "_run_granian", fake_granian)
    chosen = [] if server == serve_cli.DEFAULT_SERVER else ["--server", server]
    result = run("serve", *chosen, "--host", "::1", "--port", "9000", "--workers", "3")
    assert result.exit_code == 0, result.output
    assert seen["server"] == server
    assert seen["bind"] == "[::1]:9000" and seen["workers"] == 3 and seen["threads"] == 1
    assert seen["app"].extensions["onecard"].settings.database_url == database_url
    assert run("serve", *chosen, "--workers", "2", "--threads", "8").exit_code == 0
    assert seen["workers"] == 2 and seen["threads"] == 8


def test_wsgi_module_builds_the_app_with_keys(migrated: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "idp.wsgi", raising=False)
    module = importlib.import_module("idp.wsgi")
    try:
        client = module.app.test_client()
        response = client.get("/.well-known/openid-configuration")
        assert response.status_code == 200
        assert response.get_json()["issuer"] == "http://127.0.0.1:8000"
        # The keys exist: the signing keys are published.
        assert {key["alg"] for key in client.get("/jwks.json").get_json()["keys"]} >= {"RS256", "ES256"}
    finally:
        module.app.extensions["onecard"].database.dispose()
        sys.modules.pop("idp.wsgi", None)


def test_wsgi_module_refuses_a_database_not_migrated(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(sys.modules, "idp.wsgi", raising=False)
    with pytest.raises(dbadmin.SchemaNotCurrentError):
        importlib.import_module("idp.wsgi")
    sys.modules.pop("idp.wsgi", None)
