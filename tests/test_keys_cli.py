"""``onecard keys`` through click's CliRunner: the lifecycle, KEK rotation and data-key re-encryption."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

import idp.models  # noqa: F401
from idp import dbadmin
from idp.audit.model import AuditEvent
from idp.cli import cli
from idp.config import DEVELOPMENT_KEK
from idp.db import Database
from idp.keys.service import CORE_KEY_SETS

NEW_KEK = "bmV3LWtleS1lbmNyeXB0aW9uLWtleS0wMTIzNDU2Nzg"


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for key in list(os.environ):
        if key.startswith("ONECARD_") and not key.startswith("ONECARD_TEST_"):
            monkeypatch.delenv(key)
    url = f"sqlite:///{tmp_path / 'keys.sqlite3'}"
    monkeypatch.setenv("ONECARD_DATABASE_URL", url)
    monkeypatch.setenv("ONECARD_ENV", "test")
    dbadmin.upgrade(url)
    yield url


def run(*args: str, input: str | None = None) -> Result:
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


def keys_json(*args: str) -> list[dict[str, Any]]:
    result = run("keys", "list", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)  # type: ignore[no-any-return]


def test_rotate_activate_revoke(database_url: str) -> None:
    first = next(k["kid"] for k in keys_json("--set", "qr") if k["state"] == "active")
    rotated = run("keys", "rotate", "qr", "--reason", "quarterly")
    assert rotated.exit_code == 0 and "pending" in rotated.output
    pending = next(k["kid"] for k in keys_json("--set", "qr") if k["state"] == "pending")
    refused = run("keys", "activate", pending)
    assert refused.exit_code == 1 and "pre-publication" in refused.output
    forced = run("keys", "activate", pending, "--force", "--reason", "drill")
    assert forced.exit_code == 0 and "WARNING" in forced.output
    assert {k["kid"]: k["state"] for k in keys_json("--set", "qr")} == {pending: "active", first: "retired"}
    assert run("keys", "revoke", pending, "--yes").exit_code == 2  # --reason is required
    revoked = run("keys", "revoke", pending, "--reason", "INC-7", "--yes")
    assert revoked.exit_code == 0 and "revoke" in revoked.output
    assert pending not in {k["kid"] for k in keys_json("--set", "qr")}
    assert {k["kid"]: k["state"] for k in keys_json("--set", "qr", "--all")}[pending] == "revoked"
    shown = json.loads(run("keys", "show", pending, "--json").output)
    assert shown["state"] == "revoked" and shown["revoked_at"]
    assert run("keys", "rotate", "index").exit_code == 1
    assert "retention" in run("keys", "policy").output
    database = Database(database_url)
    with database.session() as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.target_id == pending)).all()
        assert [(e.action, e.actor.startswith("cli:"), e.details.get("reason")) for e in events] == [
            ("key.create", True, "quarterly"),
            ("key.activate", True, "drill"),
            ("key.revoke", True, "INC-7"),
        ]
    database.dispose()


def test_kek_rotation_rewraps_everything(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    run("keys", "list")  # creates the first keys under the development KEK
    monkeypatch.setenv("ONECARD_KEK", f"{NEW_KEK},{DEVELOPMENT_KEK}")
    result = run("keys", "rewrap", "--reason", "yearly KEK rotation")
    core = len(CORE_KEY_SETS)
    assert result.exit_code == 0 and f"re-wrapped {core} key(s)" in result.output
    assert "0 left" in result.output
    assert "re-wrapped 0 key(s)" in run("keys", "rewrap").output  # idempotent
    monkeypatch.setenv("ONECARD_KEK", NEW_KEK)  # the old KEK is gone: everything still opens
    assert len(keys_json()) == core
    assert run("citizens", "add", "--name", "张三", "--id-number", "11010519491231002X").exit_code == 0


def test_data_key_rotation_and_reencryption(database_url: str) -> None:
    for name, number in (("张三", "11010519491231002X"), ("李四", "420106198001010015")):
        assert run("citizens", "add", "--name", name, "--id-number", number).exit_code == 0
    old = next(k["kid"] for k in keys_json("--set", "data") if k["state"] == "active")
    run("keys", "rotate", "data", "--reason", "yearly")
    new = next(k["kid"] for k in keys_json("--set", "data") if k["state"] == "pending")
    assert run("keys", "activate", new, "--force").exit_code == 0
    assert run("keys", "remove", old, "--force").exit_code == 1  # rows still under it
    result = run("keys", "reencrypt", "--batch-size", "1")
    assert result.exit_code == 0 and "re-encrypted 2 row(s)" in result.output and "0 left" in result.output
    assert "re-encrypted 0 row(s)" in run("keys", "reencrypt", "--quiet").output
    assert {k["kid"]: k.get("rows") for k in keys_json("--set", "data")} == {new: 2, old: 0}
    assert run("keys", "remove", old, "--force", "--reason", "re-encrypted").exit_code == 0
    listed = run("citizens", "list", "--json")
    assert listed.exit_code == 0 and json.loads(listed.output)["total"] == 2


def test_a_key_id_starting_with_a_dash_is_an_argument(database_url: str) -> None:
    # Base64url ids start with "-" one time in 64; click must not take such an id for an option.
    shown = run("keys", "show", "-AAAAAAAAAA")
    assert shown.exit_code == 1 and "No such key" in shown.output


def events_for(database_url: str, kid: str) -> list[tuple[str, str | None]]:
    database = Database(database_url)
    try:
        with database.session() as session:
            events = session.scalars(
                select(AuditEvent).where(AuditEvent.target_id == kid).order_by(AuditEvent.seq)
            ).all()
            return [(e.action, e.details.get("reason")) for e in events]
    finally:
        database.dispose()


def test_rotating_twice_is_refused_and_says_what_to_do(database_url: str) -> None:
    assert run("keys", "rotate", "qr", "--reason", "CHG-1").exit_code == 0
    pending = next(k["kid"] for k in keys_json("--set", "qr") if k["state"] == "pending")
    again = run("keys", "rotate", "qr", "--reason", "CHG-1 again")
    assert again.exit_code == 1
    assert pending in again.output
    assert f"onecard keys activate {pending}" in again.output
    assert f"onecard keys remove {pending}" in again.output
    assert [k["kid"] for k in keys_json("--set", "qr") if k["state"] == "pending"] == [pending]
    # Other sets are not affected, and once the pending key moves on the set rotates again.
    assert run("keys", "rotate", "cookie").exit_code == 0
    assert run("keys", "remove", pending, "--reason", "CHG-1 dropped").exit_code == 0
    assert run("keys", "rotate", "qr").exit_code == 0


def test_every_key_changing_command_records_its_reason(database_url: str) -> None:
    for name, number in (("张三", "11010519491231002X"),):
        assert run("citizens", "add", "--name", name, "--id-number", number).exit_code == 0
    old_qr = next(k["kid"] for k in keys_json("--set", "qr") if k["state"] == "active")
    assert run("keys", "rotate", "qr", "--reason", "R-rotate").exit_code == 0
    new_qr = next(k["kid"] for k in keys_json("--set", "qr") if k["state"] == "pending")
    assert run("keys", "activate", new_qr, "--force", "--reason", "R-activate").exit_code == 0
    assert run("keys", "remove", old_qr, "--force", "--reason", "R-remove").exit_code == 0
    cookie = next(k["kid"] for k in keys_json("--set", "cookie") if k["state"] == "active")
    assert run("keys", "retire", cookie, "--force", "--reason", "R-retire").exit_code == 0
    assert run("keys", "revoke", new_qr, "--yes", "--reason", "R-revoke").exit_code == 0
    assert run("keys", "rewrap", "--reason", "R-rewrap").exit_code == 0
    assert run("keys", "reencrypt", "--quiet", "--reason", "R-reencrypt").exit_code == 0
    assert events_for(database_url, new_qr) == [
        ("key.create", "R-rotate"),
        ("key.activate", "R-activate"),
        ("key.revoke", "R-revoke"),
    ]
    assert events_for(database_url, old_qr) == [("key.retire", "R-activate"), ("key.remove", "R-remove")]
    assert events_for(database_url, cookie) == [("key.retire", "R-retire")]
    database = Database(database_url)
    with database.session() as session:
        bulk = session.scalars(
            select(AuditEvent).where(AuditEvent.action.in_(["keys.rewrap", "keys.reencrypt"]))
        )
        assert sorted((e.action, e.details.get("reason")) for e in bulk) == [
            ("keys.reencrypt", "R-reencrypt"),
            ("keys.rewrap", "R-rewrap"),
        ]
    database.dispose()


@pytest.mark.parametrize("command", [["rotate", "qr"], ["reencrypt", "--quiet"], ["rewrap"], ["tick"]])
def test_an_unusable_reason_stops_the_command_before_it_changes_anything(
    database_url: str, command: list[str]
) -> None:
    # A row under an old data key: re-encryption commits batch by batch, so a reason refused only at its
    # closing audit event would come after the rows had moved.
    assert run("citizens", "add", "--name", "张三", "--id-number", "11010519491231002X").exit_code == 0
    old = next(k["kid"] for k in keys_json("--set", "data") if k["state"] == "active")
    run("keys", "rotate", "data")
    new = next(k["kid"] for k in keys_json("--set", "data") if k["state"] == "pending")
    assert run("keys", "activate", new, "--force").exit_code == 0
    database = Database(database_url)
    with database.session() as session:
        before = session.scalar(select(func.count()).select_from(AuditEvent))
    result = run("keys", *command, "--reason", "x" * 201)
    assert result.exit_code == 1 and "reason" in result.output
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == before
    database.dispose()
    assert {k["kid"]: k.get("rows") for k in keys_json("--set", "data")} == {new: 0, old: 1}
    assert [k["kid"] for k in keys_json("--set", "qr") if k["state"] == "pending"] == []


def test_revoke_without_a_terminal_needs_yes_and_says_so(database_url: str) -> None:
    kid = next(k["kid"] for k in keys_json("--set", "qr") if k["state"] == "active")
    refused = run("keys", "revoke", kid, "--reason", "INC-8")
    assert refused.exit_code == 1 and "--yes" in refused.output and "Aborted" not in refused.output
    assert {k["kid"]: k["state"] for k in keys_json("--set", "qr")}[kid] == "active"
    assert run("keys", "revoke", kid, "--reason", "INC-8", "--yes").exit_code == 0
