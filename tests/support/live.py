"""A OneCard server running for real in this process (werkzeug, threaded), a browser stand-in that follows
the login pages, and a relying party's back-channel endpoint. Tests drive them with real client libraries.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import redis
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from flask import Flask
from werkzeug.serving import make_server

import idp.models  # noqa: F401 - every table on the metadata
from idp.app import create_app, initialise_keys
from idp.citizens.service import create_citizen
from idp.clients.service import ClientRegistration, create_client
from idp.db import Base
from idp.scopes import ACR_HIGH
from idp.services import Services
from tests.support.testlogin import install_test_login

# Valid GB 11643 numbers (check digits computed) for the test register.
CITIZENS = {"zhang": ("张三", "11010519491231002X"), "li": ("李四", "420106198001010015")}
REDIRECT = "https://portal.example.gov.cn/callback"


class ShiftClock:
    """Real time plus an offset the test can move (the server also talks to libraries that read the
    wall clock, so a frozen clock would not do)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class LiveIdp:
    base_url: str
    app: Flask
    clock: ShiftClock
    citizens: dict[str, str] = field(default_factory=dict)

    @property
    def services(self) -> Services:
        return self.app.extensions["onecard"]  # type: ignore[no-any-return]

    def register_client(self, **kwargs: Any) -> tuple[str, str | None]:
        kwargs.setdefault("name", "Test portal")
        with self.services.database.session() as session:
            client, secret = create_client(session, ClientRegistration(**kwargs), now=self.clock())
            return client.client_id, secret

    def service_token_headers(self, scope: str = "admin", *, name: str = "Ops") -> dict[str, str]:
        """A new operator client's client_credentials token for ``scope``, as request headers."""
        client_id, secret = self.register_client(name=name, kind="operator", scope=scope)
        assert secret
        answer = requests.post(
            self.base_url + "/token",
            data={"grant_type": "client_credentials", "scope": scope},
            auth=(client_id, secret),
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        return {"Authorization": "Bearer " + answer.json()["access_token"]}


def _pick_server(app_holder: list[Flask]) -> Any:
    def placeholder(environ: Any, start_response: Any) -> Any:
        return app_holder[0](environ, start_response)

    return make_server("127.0.0.1", 0, placeholder, threaded=True)


@contextmanager
def running_idp(
    database_url: str,
    *,
    redis_url: str = "",
    redis_prefix: str = "onecard-test",
    create_schema: bool = True,
    plugins: Sequence[Callable[[Flask], None]] = (install_test_login,),
    **overrides: Any,
) -> Iterator[LiveIdp]:
    holder: list[Flask] = []
    server = _pick_server(holder)
    base_url = f"http://127.0.0.1:{server.server_port}"
    clock = ShiftClock()
    app = create_app(
        env="test",
        issuer=base_url,
        database_url=database_url,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        clock=clock,
        plugins=list(plugins),
        **overrides,
    )
    holder.append(app)
    svc: Services = app.extensions["onecard"]
    if create_schema:
        Base.metadata.create_all(svc.database.engine)
    initialise_keys(app)
    live = LiveIdp(base_url, app, clock)
    with svc.database.session() as session:
        for label, (name, id_number) in CITIZENS.items():
            live.citizens[label] = create_citizen(session, svc.pii_cipher(), name, id_number, now=clock()).id
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield live
    finally:
        server.shutdown()
        thread.join(5)
        svc.database.dispose()


class Browser:
    """Follows redirects like a browser, answering the test login and consent pages."""

    def __init__(self, idp: LiveIdp) -> None:
        self.idp = idp
        self.http = requests.Session()
        # A reader of English: the tests read the pages' English text (Chinese is the default).
        self.http.headers["Accept-Language"] = "en"
        self.pages: list[str] = []

    def authorize(
        self,
        url: str,
        *,
        citizen: str | None = None,
        acr: str = ACR_HIGH,
        consent: str = "allow",
        stop_at: str | None = None,
    ) -> str:
        """Go from the authorization URL until the browser is sent outside the IdP; returns that URL."""
        response = self.http.get(url, allow_redirects=False, timeout=10)
        for _ in range(12):
            self.pages.append(response.url)
            if response.status_code in (301, 302, 303):
                location = urljoin(response.url, response.headers["Location"])
                if not location.startswith(self.idp.base_url):
                    return location
                if stop_at and stop_at in location:
                    return location
                response = self.http.get(location, allow_redirects=False, timeout=10)
                continue
            if response.status_code != 200:
                raise AssertionError(f"{response.status_code} at {response.url}: {response.text[:300]}")
            path = urlsplit(response.url).path
            if path.startswith("/login/"):
                if citizen is None:
                    return response.url
                match = re.search(r'href="(/test-login/[^"]+)"', response.text)
                assert match, "the login page offers no test login"
                query = f"?citizen={self.idp.citizens[citizen]}&acr={acr}"
                response = self.http.get(
                    urljoin(response.url, match.group(1)) + query, allow_redirects=False, timeout=10
                )
            elif path.startswith("/consent/"):
                csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', response.text)
                assert csrf
                response = self.http.post(
                    response.url,
                    data={"csrf": csrf.group(1), "decision": consent},
                    allow_redirects=False,
                    timeout=10,
                )
            else:
                return response.url
        raise AssertionError("too many redirects")


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


class BackChannelReceiver:
    """A relying party's back-channel logout endpoint: records every logout_token POSTed to it."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        received = self.tokens

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                received.extend(form.get("logout_token", []))
                self.send_response(200)
                self.send_header("Cache-Control", "no-store")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/backchannel-logout"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> BackChannelReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _live_on_each_database(
    request: pytest.FixtureRequest, tmp_path: Any, plugins: Sequence[Callable[[Flask], None]]
) -> Iterator[LiveIdp]:
    if request.param == "sqlite":
        with running_idp(f"sqlite:///{tmp_path}/idp.sqlite3", plugins=plugins) as live:
            yield live
        return
    postgres_url = request.getfixturevalue("postgres_url")
    redis_url = request.getfixturevalue("redis_url")
    prefix = "oc-test-" + secrets.token_hex(4)
    with running_idp(postgres_url, redis_url=redis_url, redis_prefix=prefix, plugins=plugins) as live:
        try:
            yield live
        finally:
            Base.metadata.drop_all(live.services.database.engine)
            client = redis.Redis.from_url(redis_url)
            for key in client.scan_iter(f"{prefix}:*"):
                client.delete(key)
            client.close()


@pytest.fixture(name="idp")  # a function named idp would hide the idp package imported here
def sqlite_idp(tmp_path: Any) -> Iterator[LiveIdp]:
    """The shared live provider on a fresh SQLite file, with the test login method; a test module that
    needs other settings or databases defines its own ``idp``."""
    with running_idp(f"sqlite:///{tmp_path}/idp.sqlite3") as live:
        yield live


@pytest.fixture
def migrated_idp(tmp_path: Any) -> Iterator[LiveIdp]:
    """Like ``idp``, on a database migrated with Alembic (the CLI insists on one) instead of create_all."""
    from idp import dbadmin

    url = f"sqlite:///{tmp_path}/idp.sqlite3"
    dbadmin.upgrade(url)
    with running_idp(url, create_schema=False) as live:
        yield live


@pytest.fixture(params=["sqlite", "postgres-redis"])
def live_idp(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[LiveIdp]:
    """A live OneCard provider on SQLite, and again on PostgreSQL + Redis (skipped where they are
    unreachable, failed under CI=true: tests/fixtures/services.py)."""
    yield from _live_on_each_database(request, tmp_path, (install_test_login,))


@pytest.fixture(params=["sqlite", "postgres-redis"])
def live_stack(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[LiveIdp]:
    """Like ``live_idp``, with the wallet and halls plug-ins too: every endpoint OneCard serves."""
    from halls.plugin import init_app as install_halls  # nor the halls
    from wallet.plugin import init_app as install_wallet  # tests may use the wallet; idp never does

    yield from _live_on_each_database(request, tmp_path, (install_test_login, install_wallet, install_halls))


def portal(idp: LiveIdp, **kwargs: Any) -> OAuth2Session:
    """A registered portal (client_secret_basic unless told) and an Authlib client session for it."""
    kwargs.setdefault("redirect_uris", (REDIRECT,))
    kwargs.setdefault("scope", "openid profile realname idcard")
    client_id, secret = idp.register_client(**kwargs)
    method = kwargs.get("token_endpoint_auth_method", "client_secret_basic")
    return OAuth2Session(
        client_id,
        secret,
        scope=kwargs["scope"],
        redirect_uri=kwargs["redirect_uris"][0],
        code_challenge_method="S256",
        token_endpoint_auth_method=method,
    )


def login(
    idp: LiveIdp,
    client: OAuth2Session,
    browser: Browser,
    *,
    citizen: str = "zhang",
    acr: str = ACR_HIGH,
    **params: Any,
) -> tuple[dict[str, Any], str]:
    """The whole code + PKCE flow; returns the token response and the nonce."""
    verifier = generate_token(48)
    nonce = generate_token(16)
    url, _state = client.create_authorization_url(
        f"{idp.base_url}/authorize", code_verifier=verifier, nonce=nonce, **params
    )
    final = browser.authorize(url, citizen=citizen, acr=acr)
    assert "code=" in final, final
    assert query_of(final)["iss"] == idp.base_url  # RFC 9207
    token = client.fetch_token(f"{idp.base_url}/token", authorization_response=final, code_verifier=verifier)
    return dict(token), nonce
