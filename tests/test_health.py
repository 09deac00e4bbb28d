"""``/healthz`` and ``/readyz`` (issue #11, item 1): ready only on a migrated database whose store answers and
whose keys unwrap under the configured KEKs; a reason per check, never a secret."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from idp.crypto.kek import KeyEncryptionKeys
from tests.support.live import LiveIdp, running_idp


@pytest.fixture
def migrated(migrated_idp: LiveIdp) -> LiveIdp:
    return migrated_idp


def test_healthz_answers(idp: LiveIdp) -> None:
    response = requests.get(f"{idp.base_url}/healthz", timeout=5)
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_ready_on_a_migrated_database(migrated: LiveIdp) -> None:
    response = requests.get(f"{migrated.base_url}/readyz", timeout=5)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"database", "store", "keys", "scheduler"}
    assert all(check["ok"] for check in body["checks"].values())
    assert response.headers["Cache-Control"] == "no-store"


def test_not_ready_on_a_database_never_migrated(idp: LiveIdp) -> None:
    # running_idp creates the tables without Alembic: no revision, so not at head.
    response = requests.get(f"{idp.base_url}/readyz", timeout=5)
    assert response.status_code == 503
    database = response.json()["checks"]["database"]
    assert not database["ok"] and "onecard db upgrade" in database["reason"]


def test_not_ready_when_the_kek_does_not_unwrap_the_keys(migrated: LiveIdp) -> None:
    svc = migrated.services
    wrong = KeyEncryptionKeys.from_strings(["d3Jvbmcta2V5LWZvci10aGUtaGVhbHRoLXRlc3QtMDE"])
    right, svc.keks = svc.keks, wrong
    try:
        response = requests.get(f"{migrated.base_url}/readyz", timeout=5)
    finally:
        svc.keks = right
    assert response.status_code == 503
    keys = response.json()["checks"]["keys"]
    assert not keys["ok"] and "does not unwrap" in keys["reason"]
    assert "d3Jvbmc" not in response.text  # never key material
    assert requests.get(f"{migrated.base_url}/readyz", timeout=5).status_code == 200


@pytest.fixture
def store_down(tmp_path: Path) -> Iterator[LiveIdp]:
    from idp import dbadmin

    url = f"sqlite:///{tmp_path}/idp.sqlite3"
    dbadmin.upgrade(url)
    # A Redis nobody listens on: the short-lived store is unreachable.
    with running_idp(url, create_schema=False, redis_url="redis://127.0.0.1:9/0") as live:
        yield live


def test_not_ready_when_the_store_is_unreachable(store_down: LiveIdp) -> None:
    response = requests.get(f"{store_down.base_url}/readyz", timeout=10)
    assert response.status_code == 503
    assert not response.json()["checks"]["store"]["ok"]
