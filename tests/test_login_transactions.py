"""Login transactions (idp/login/transactions.py) and the views around them: "More time" only ever lengthens
a live transaction — it never brings back one a finished login took, nor undoes a concurrent update — and a
failing store leaves the error handlers (and the locale selector they use) answering in OneCard's shape.

The transaction tests run on every ``EphemeralStore`` (the ``store`` fixture); the view tests go through
Flask's test client on a fresh SQLite app.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

import idp.models  # noqa: F401 - every table on the metadata
from idp.app import create_app, initialise_keys
from idp.db import Base
from idp.login.transactions import (
    LoginTransaction,
    create_transaction,
    end_transaction,
    extend_transaction,
    find_transaction,
    update_transaction,
)
from idp.services import Services
from idp.stores.base import EphemeralStore
from idp.web import BROWSER_COOKIE, csrf_token

NOW = 1_700_000_000.0
BROWSER = "b" * 64
TTL = 600


def _start(store: EphemeralStore) -> LoginTransaction:
    return create_transaction(
        store,
        params={"client_id": "portal", "ui_locales": "en"},
        client_id="portal",
        required_acr="urn:onecard:acr:card",
        browser=BROWSER,
        login_hint=None,
        ttl=TTL,
        now=NOW,
    )


def _find(store: EphemeralStore, tx: LoginTransaction, now: float) -> LoginTransaction | None:
    return find_transaction(store, tx.id, browser=BROWSER, now=now)


# --- extend_transaction, on every store ------------------------------------------------------------------


def test_more_time_lengthens_a_live_transaction(store: EphemeralStore) -> None:
    tx = _start(store)
    read = _find(store, tx, NOW + 500)
    assert read is not None
    extended = extend_transaction(store, read, ttl=TTL, longest=3600, now=NOW + 500)
    assert extended is not None and extended.expires_at == NOW + 500 + TTL
    # Alive past its first deadline, until the new one; the deadline read back is the store's.
    later = _find(store, tx, NOW + TTL + 60)
    assert later is not None and later.expires_at == NOW + 500 + TTL
    assert _find(store, tx, NOW + 500 + TTL) is None


def test_more_time_never_passes_the_longest_login(store: EphemeralStore) -> None:
    tx = _start(store)
    extended = extend_transaction(store, tx, ttl=TTL, longest=700, now=NOW + 500)
    assert extended is not None and extended.expires_at == NOW + 700
    assert _find(store, tx, NOW + 699) is not None
    assert _find(store, tx, NOW + 700) is None


def test_more_time_after_the_login_ended_does_not_bring_it_back(store: EphemeralStore) -> None:
    tx = _start(store)
    read = _find(store, tx, NOW + 10)  # "More time" read the transaction …
    assert read is not None
    assert end_transaction(store, tx, now=NOW + 10)  # … and the login finished meanwhile
    assert extend_transaction(store, read, ttl=TTL, longest=3600, now=NOW + 11) is None
    assert _find(store, tx, NOW + 12) is None
    assert end_transaction(store, tx, now=NOW + 12) is False  # still one-time


def test_an_update_after_the_login_ended_does_not_bring_it_back(store: EphemeralStore) -> None:
    tx = _start(store)
    assert end_transaction(store, tx, now=NOW + 5) is True
    update_transaction(store, tx, now=NOW + 6, authenticated_sid="sid-1")
    assert _find(store, tx, NOW + 7) is None
    assert end_transaction(store, tx, now=NOW + 8) is False  # still one-time


def test_more_time_keeps_a_concurrent_update(store: EphemeralStore) -> None:
    tx = _start(store)
    read = _find(store, tx, NOW + 10)
    assert read is not None
    update_transaction(store, tx, now=NOW + 10, authenticated_sid="sid-1")  # the login completed meanwhile
    assert extend_transaction(store, read, ttl=TTL, longest=3600, now=NOW + 11) is not None
    after = _find(store, tx, NOW + 12)
    assert after is not None and after.authenticated_sid == "sid-1" and after.expires_at == NOW + 11 + TTL


def test_an_update_after_more_time_keeps_the_longer_life(store: EphemeralStore) -> None:
    tx = _start(store)
    assert extend_transaction(store, tx, ttl=TTL, longest=3600, now=NOW + 500) is not None
    read = _find(store, tx, NOW + 550)
    assert read is not None
    update_transaction(store, read, now=NOW + 550, consented=True)
    assert _find(store, tx, NOW + TTL + 60) is not None


# --- the views -------------------------------------------------------------------------------------------


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    app = create_app(env="test", database_url=f"sqlite:///{tmp_path}/idp.sqlite3")
    Base.metadata.create_all(app.extensions["onecard"].database.engine)
    initialise_keys(app)
    yield app
    app.extensions["onecard"].database.dispose()


def _browser_transaction(app: Flask, client: FlaskClient) -> tuple[LoginTransaction, str]:
    """A live transaction bound to the test client's browser, and the CSRF token its page would carry."""
    client.get("/login/" + "x" * 32)  # no such transaction: but the browser gets its ocbr cookie
    cookie = client.get_cookie(BROWSER_COOKIE)
    assert cookie is not None
    svc: Services = app.extensions["onecard"]
    tx = create_transaction(
        svc.store,
        params={"client_id": "portal"},
        client_id="portal",
        required_acr="urn:onecard:acr:card",
        browser=hashlib.sha256(cookie.value.encode()).hexdigest(),
        login_hint=None,
        ttl=TTL,
        now=svc.now(),
    )
    with app.test_request_context(headers={"Cookie": f"{BROWSER_COOKIE}={cookie.value}"}):
        csrf = csrf_token(f"login-time:{tx.id}")
    return tx, csrf


def test_more_time_view_after_the_login_ended_says_expired(app: Flask) -> None:
    client = app.test_client()
    tx, csrf = _browser_transaction(app, client)
    svc: Services = app.extensions["onecard"]
    ok = client.post(
        f"/login/{tx.id}/more-time", headers={"X-CSRF-Token": csrf, "Accept": "application/json"}
    )
    assert ok.status_code == 200 and ok.get_json()["expires_in"] > 0
    assert end_transaction(svc.store, tx, now=svc.now())
    gone = client.post(
        f"/login/{tx.id}/more-time", headers={"X-CSRF-Token": csrf, "Accept": "application/json"}
    )
    assert gone.status_code == 400 and gone.get_json()["error"] == "login_expired"
    assert svc.store.get("login_tx", tx.id, now=svc.now()) is None


class _DownStore:
    """A store whose every operation fails, as one that is unreachable does."""

    def __getattr__(self, name: str) -> Any:
        def fail(*_args: Any, **_kwargs: Any) -> Any:
            raise ConnectionError("store unreachable")

        return fail


@pytest.mark.parametrize(
    ("method", "suffix", "accept"),
    [
        ("POST", "/more-time", "application/json"),
        ("GET", "", "text/html"),
        ("GET", "", "application/json"),
    ],
)
def test_a_store_outage_gets_onecards_error_not_werkzeugs(
    app: Flask, monkeypatch: pytest.MonkeyPatch, method: str, suffix: str, accept: str
) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production: the app's own handler answers
    client = app.test_client()
    tx, csrf = _browser_transaction(app, client)
    monkeypatch.setattr(app.extensions["onecard"], "store", _DownStore())
    response = client.open(
        f"/login/{tx.id}{suffix}", method=method, headers={"X-CSRF-Token": csrf, "Accept": accept}
    )
    assert response.status_code == 500
    assert response.is_json, response.get_data(as_text=True)[:200]
    assert response.get_json()["error"] == "server_error"
    assert set(response.get_json()) == {"error", "error_description"}
