"""Kiosk terminals registered to one hall (issue 13): the admin API and the command line, on SQLite and
PostgreSQL + Redis (``live_stack``). A kiosk is a private_key_jwt client of kind ``kiosk`` bound to its
hall; its keys rotate; removing it or its hall removes its client. Every refusal — unknown hall, a JWK Set
that is not one, a private key in it, a bridge URL that is not a local bridge's, a duplicate name — is a
clear 4xx and changes no row.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import select

from halls.register.service import create_hall
from idp import dbadmin
from idp.audit.model import AuditEvent
from idp.cli import cli
from idp.clients.model import Client
from sdk.keys import generate_key
from tests.support.live import LiveIdp
from tests.support.rows import durable_rows

HALL = "kiosk-register-hall"


def _jwks() -> dict[str, Any]:
    return {"keys": [generate_key("ES256").public_jwk()]}


@pytest.fixture
def admin(live_stack: LiveIdp) -> tuple[LiveIdp, dict[str, str]]:
    with live_stack.services.database.session() as session:
        create_hall(session, name="江汉区政务服务中心", hall_id=HALL, actor="test", now=live_stack.clock())
    return live_stack, live_stack.service_token_headers()


def _url(idp: LiveIdp, path: str = "") -> str:
    return f"{idp.base_url}/api/v1/admin/halls/{HALL}/kiosks{path}"


def test_kiosk_registration_rotation_and_removal(admin: tuple[LiveIdp, dict[str, str]]) -> None:
    idp, headers = admin
    created = requests.post(
        _url(idp),
        json={"name": "自助机1", "jwks": _jwks(), "bridge_url": "http://127.0.0.1:47401"},
        headers=headers,
        timeout=10,
    )
    assert created.status_code == 201, created.text
    kiosk = created.json()
    client_id = kiosk["client_id"]
    assert kiosk["hall_id"] == HALL and kiosk["bridge_url"] == "http://127.0.0.1:47401"
    with idp.services.database.session() as session:
        client = session.get(Client, client_id)
        assert client is not None and client.kind == "kiosk"
        assert client.token_endpoint_auth_method == "private_key_jwt" and client.client_secret_hash is None
    listed = requests.get(_url(idp), headers=headers, timeout=10).json()["kiosks"]
    assert [k["client_id"] for k in listed] == [client_id]
    hall = requests.get(f"{idp.base_url}/api/v1/admin/halls/{HALL}", headers=headers, timeout=10).json()
    assert [k["client_id"] for k in hall["kiosks"]] == [client_id]
    new_keys = _jwks()
    rotated = requests.put(
        _url(idp, f"/{client_id}/jwks"), json={"jwks": new_keys}, headers=headers, timeout=10
    )
    assert rotated.status_code == 200, rotated.text
    with idp.services.database.session() as session:
        client = session.get(Client, client_id)
        assert client is not None and client.jwks == new_keys
    assert requests.delete(_url(idp, f"/{client_id}"), headers=headers, timeout=10).status_code == 204
    assert requests.delete(_url(idp, f"/{client_id}"), headers=headers, timeout=10).status_code == 404
    with idp.services.database.session() as session:
        assert session.get(Client, client_id) is None
        actions = list(
            session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("hall.kiosk.%")))
        )
    assert sorted(actions) == ["hall.kiosk.keys", "hall.kiosk.register", "hall.kiosk.remove"]


def test_removing_the_hall_removes_its_kiosks_clients(admin: tuple[LiveIdp, dict[str, str]]) -> None:
    idp, headers = admin
    created = requests.post(_url(idp), json={"name": "自助机1", "jwks": _jwks()}, headers=headers, timeout=10)
    client_id = created.json()["client_id"]
    assert created.json()["bridge_url"] is None
    assert (
        requests.delete(f"{idp.base_url}/api/v1/admin/halls/{HALL}", headers=headers, timeout=10).status_code
        == 204
    )
    with idp.services.database.session() as session:
        assert session.get(Client, client_id) is None


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [
        ("/api/v1/admin/halls/no-such-hall/kiosks", {"name": "自助机1"}, 404, "hall_not_found"),
        ("", {"name": "自助机1", "jwks": {"keys": "nope"}}, 400, "invalid_hall"),
        ("", {"name": "自助机1", "jwks": {"keys": []}}, 400, "invalid_hall"),
        ("", {"name": "自助机1", "jwks": "private"}, 400, "invalid_hall"),
        ("", {"name": "", "jwks": None}, 400, "invalid_hall"),
        ("", {"name": "自助机1", "jwks": None, "bridge_url": "https://127.0.0.1:47401"}, 400, "invalid_hall"),
        (
            "",
            {"name": "自助机1", "jwks": None, "bridge_url": "http://192.168.0.9:47401"},
            400,
            "invalid_hall",
        ),
        (
            "",
            {"name": "自助机1", "jwks": None, "bridge_url": "http://127.0.0.1:47401/x"},
            400,
            "invalid_hall",
        ),
        ("", {"name": "自助机1", "jwks": None, "bridge_url": 47401}, 400, "invalid_hall"),
        ("", {"name": "已有", "jwks": None}, 409, "hall_exists"),
    ],
)
def test_refused_registrations_change_no_row(
    admin: tuple[LiveIdp, dict[str, str]], path: str, body: dict[str, Any], status: int, error: str
) -> None:
    idp, headers = admin
    existing = requests.post(_url(idp), json={"name": "已有", "jwks": _jwks()}, headers=headers, timeout=10)
    assert existing.status_code == 201
    key = generate_key("ES256")
    if body.get("jwks") is None:
        body = {**body, "jwks": {"keys": [key.public_jwk()]}}
    elif body["jwks"] == "private":  # the private part pasted by mistake
        private = {**key.public_jwk(), "d": "AAAA"}
        body = {**body, "jwks": {"keys": [private]}}
    before = durable_rows(idp)
    url = f"{idp.base_url}{path}" if path else _url(idp)
    answer = requests.post(url, json=body, headers=headers, timeout=10)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == error
    assert durable_rows(idp) == before


def test_kiosks_by_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("ONECARD_") and not name.startswith("ONECARD_TEST_"):
            monkeypatch.delenv(name)
    url = f"sqlite:///{tmp_path / 'kiosks.sqlite3'}"
    monkeypatch.setenv("ONECARD_DATABASE_URL", url)
    monkeypatch.setenv("ONECARD_ENV", "test")
    dbadmin.upgrade(url)
    runner = CliRunner()
    hall = runner.invoke(cli, ["halls", "add", "--name", "江汉区政务服务中心", "--id", HALL])
    assert hall.exit_code == 0, hall.output
    jwks_file = tmp_path / "kiosk.jwks.json"
    jwks_file.write_text(json.dumps(_jwks()))
    base = ["halls", "register-kiosk", HALL, "--name", "自助机1", "--jwks", str(jwks_file)]
    refused = runner.invoke(cli, [*base, "--bridge-url", "http://localhost:47401"])
    assert refused.exit_code != 0 and "bridge_url" in refused.output
    added = runner.invoke(cli, [*base, "--bridge-url", "http://127.0.0.1:47401", "--json"])
    assert added.exit_code == 0, added.output
    client_id = json.loads(added.output)["client_id"]
    assert runner.invoke(cli, base).exit_code != 0  # the same name again
    shown = runner.invoke(cli, ["halls", "show", HALL, "--json"])
    assert [k["client_id"] for k in json.loads(shown.output)["kiosks"]] == [client_id]
    replaced = runner.invoke(cli, ["halls", "replace-kiosk-keys", HALL, client_id, "--jwks", str(jwks_file)])
    assert replaced.exit_code == 0, replaced.output
    removed = runner.invoke(cli, ["halls", "remove-kiosk", HALL, client_id])
    assert removed.exit_code == 0 and client_id in removed.output
