"""``onecard keys`` through click's CliRunner: the lifecycle, KEK rotation and data-key re-encryption."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

import idp.models  # noqa: F401
from idp import dbadmin
from idp.audit.model import AuditEvent
from idp.cli import cli
from idp.config import DEVELOPMENT_KEK
from idp.db import Database

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
    assert result.exit_code == 0 and "re-wrapped 6 key(s)" in result.output and "0 left" in result.output
    assert "re-wrapped 0 key(s)" in run("keys", "rewrap").output  # idempotent
    monkeypatch.setenv("ONECARD_KEK", NEW_KEK)  # the old KEK is gone: everything still opens
    assert len(keys_json()) == 6
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

