"""OneCard behind a reverse proxy (issue "Run it for real"): with ``trusted_proxy_count`` = n the app is
wrapped in Werkzeug's ProxyFix (idp.app), so the client address the rate limiters key on and the scheme come
from what the n trusted proxies appended — never from a hop the client made up — and HSTS is sent exactly
when the issuer is https.

The requests go through Flask's test client into the real WSGI stack (ProxyFix included): REMOTE_ADDR is
the proxy's address, as it is for a node behind nginx. The full topology with a real nginx is in
tests/test_deploy.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Blueprint, Flask, jsonify, request
from flask.testing import FlaskClient

import idp.models  # noqa: F401 - every table on the metadata
import wallet.devices.views
from idp.app import create_app, initialise_keys
from idp.db import Base
from idp.web import HSTS
from tests.support.wallet import csrf_of
from wallet.plugin import init_app as install_wallet

PROXY_ADDRESS = "10.0.0.2"  # the nginx in front of the node, as the node's socket sees it
CLIENT = "203.0.113.7"
OTHER_CLIENT = "203.0.113.8"
MakeClient = Callable[..., FlaskClient]


def install_echo(app: Flask) -> None:
    """A test-only endpoint that shows what the app made of the request."""
    echo = Blueprint("echo", __name__)

    @echo.get("/_test/request")
    def show() -> Any:
        return jsonify(remote_addr=request.remote_addr, scheme=request.scheme, host=request.host)

    app.register_blueprint(echo)


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[MakeClient]:
    """A test client of a fresh app on SQLite (the wallet and the echo endpoint installed), with overrides."""
    apps: list[Flask] = []

    def make(**overrides: Any) -> FlaskClient:
        app = create_app(
            env="test",
            database_url=f"sqlite:///{tmp_path}/idp-{len(apps)}.sqlite3",
            plugins=[install_wallet, install_echo],
            **overrides,
        )
        Base.metadata.create_all(app.extensions["onecard"].database.engine)
        initialise_keys(app)
        apps.append(app)
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = PROXY_ADDRESS
        return client

    yield make
    for app in apps:
        app.extensions["onecard"].database.dispose()


def echo(client: FlaskClient, **headers: str) -> dict[str, str]:
    response = client.get("/_test/request", headers=headers)
    assert response.status_code == 200
    return response.get_json()  # type: ignore[no-any-return]


# --- ProxyFix ---------------------------------------------------------------------------------------------


def test_the_address_a_trusted_proxy_appended_is_the_client_address(make_client: MakeClient) -> None:
    client = make_client(trusted_proxy_count=1)
    assert echo(client, **{"X-Forwarded-For": CLIENT})["remote_addr"] == CLIENT
    # What the client sent itself comes first; the proxy appended the address it saw: only that one counts.
    assert echo(client, **{"X-Forwarded-For": f"198.51.100.66, {CLIENT}"})["remote_addr"] == CLIENT
    # No header (a request that bypassed the proxy's header): the socket's address, not an empty one.
    assert echo(client)["remote_addr"] == PROXY_ADDRESS


def test_two_trusted_proxies_take_the_second_value_from_the_right(make_client: MakeClient) -> None:
    client = make_client(trusted_proxy_count=2)
    forwarded = f"198.51.100.66, {CLIENT}, 10.0.0.9"  # forged, the client seen by the outer proxy, inner
    assert echo(client, **{"X-Forwarded-For": forwarded})["remote_addr"] == CLIENT
    # Fewer values than trusted hops: nothing there can be trusted, the socket's address stays.
    assert echo(client, **{"X-Forwarded-For": CLIENT})["remote_addr"] == PROXY_ADDRESS


def test_without_trusted_proxies_forwarded_headers_are_ignored(make_client: MakeClient) -> None:
    seen = echo(make_client(), **{"X-Forwarded-For": CLIENT, "X-Forwarded-Proto": "https"})
    assert seen["remote_addr"] == PROXY_ADDRESS and seen["scheme"] == "http"


def test_forwarded_proto_from_the_trusted_hop_is_honoured(make_client: MakeClient) -> None:
    client = make_client(trusted_proxy_count=1)
    assert echo(client, **{"X-Forwarded-Proto": "https"})["scheme"] == "https"
    # A client's own "https" in front of what the proxy set is not believed.
    assert echo(client, **{"X-Forwarded-Proto": "https, http"})["scheme"] == "http"


def test_forwarded_host_is_never_trusted(make_client: MakeClient) -> None:
    # URLs come from the issuer setting; the request's host is left as the proxy sent it in Host.
    seen = echo(
        make_client(trusted_proxy_count=1), **{"Host": "id.example", "X-Forwarded-Host": "evil.example"}
    )
    assert seen["host"] == "id.example"


# --- the rate limiter keys on the forwarded address --------------------------------------------------------


def passkey_options(client: FlaskClient, csrf: str, forwarded_for: str) -> int:
    """One passkey sign-in attempt (rate-limited per client IP, wallet.devices.views); its status."""
    response = client.post(
        "/wallet/api/passkeys/authentication-options",
        json={},
        headers={"X-CSRF-Token": csrf, "X-Forwarded-For": forwarded_for},
    )
    return response.status_code


@pytest.fixture
def three_attempts(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(wallet.devices.views, "ATTEMPTS_PER_MINUTE", 3)
    return 3


def test_rate_limits_count_per_forwarded_client(make_client: MakeClient, three_attempts: int) -> None:
    client = make_client(trusted_proxy_count=1)
    csrf = csrf_of(client.get("/wallet/signin").get_data(as_text=True))
    assert [passkey_options(client, csrf, CLIENT) for _ in range(three_attempts)] == [200] * three_attempts
    assert passkey_options(client, csrf, CLIENT) == 429
    # The same proxy forwards another citizen: their own count, not the proxy's.
    assert passkey_options(client, csrf, OTHER_CLIENT) == 200
    # The limited client cannot escape by prepending a made-up hop: the proxy still appends its address.
    assert passkey_options(client, csrf, f"192.0.2.1, {CLIENT}") == 429


def test_without_trusted_proxies_everyone_behind_the_proxy_shares_its_count(
    make_client: MakeClient, three_attempts: int
) -> None:
    # Why the setting matters: unset behind a proxy, one busy client limits every other.
    client = make_client()
    csrf = csrf_of(client.get("/wallet/signin").get_data(as_text=True))
    for index in range(three_attempts):
        assert passkey_options(client, csrf, f"203.0.113.{index + 10}") == 200
    assert passkey_options(client, csrf, OTHER_CLIENT) == 429


# --- HSTS -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("issuer", ["https://id.example.gov.cn", "HTTPS://id.example.gov.cn:8443"])
def test_hsts_under_an_https_issuer(make_client: MakeClient, issuer: str) -> None:
    client = make_client(issuer=issuer)
    for path in ("/healthz", "/.well-known/openid-configuration", "/no-such-page"):
        response = client.get(path)
        assert response.headers["Strict-Transport-Security"] == HSTS, path
    # Not includeSubDomains: an issuer on a shared domain must not force HTTPS on its sibling hosts.
    assert HSTS == "max-age=31536000"
    assert "includesubdomains" not in response.headers["Strict-Transport-Security"].lower()


def test_no_hsts_under_an_http_issuer(make_client: MakeClient) -> None:
    client = make_client(issuer="http://127.0.0.1:8000")
    for path in ("/healthz", "/.well-known/openid-configuration"):
        assert "Strict-Transport-Security" not in client.get(path).headers
    # Not from a forwarded scheme either: the issuer decides, not the request.
    proxied = make_client(issuer="http://127.0.0.1:8000", trusted_proxy_count=1)
    assert (
        "Strict-Transport-Security"
        not in proxied.get("/healthz", headers={"X-Forwarded-Proto": "https"}).headers
    )
