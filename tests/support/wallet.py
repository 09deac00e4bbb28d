"""Helpers for the wallet's tests: a live server on ``localhost`` with the wallet and the test login, a
software WebAuthn authenticator, and register fixtures (cards, venues).

The server is reached as ``http://localhost:<port>``: WebAuthn needs a secure context and a valid RP id,
and Chromium accepts ``localhost`` for both but not ``127.0.0.1`` as an RP id.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import cbor2
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from werkzeug.serving import make_server

import idp.models  # noqa: F401 - every table (the wallet's through the onecard.models entry point)
from idp.app import create_app, initialise_keys
from idp.cards.model import Card, CardStatus
from idp.citizens.service import create_citizen
from idp.db import Base, utc_from_timestamp
from idp.scopes import ACR_HIGH
from tests.support.live import CITIZENS, Browser, LiveIdp, ShiftClock
from tests.support.testlogin import install_test_login
from wallet.plugin import init_app as install_wallet
from wallet.venues.service import VenueRegistration, create_venue

REGION = "420100"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# A software authenticator -------------------------------------------------------------------------------


@dataclass
class SoftAuthenticator:
    """A platform authenticator in Python: ES256, "none" attestation, user verification, a sign counter."""

    rp_id: str
    origin: str
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    credential_id: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    sign_count: int = 0
    user_handle: bytes = b""

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps(
            {1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")}
        )

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin or self.origin, "crossOrigin": False}
        ).encode()

    def create(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        challenge: str | None = None,
        uv: bool = True,
    ) -> str:
        """The ``PublicKeyCredential`` JSON for ``navigator.credentials.create(options)``."""
        self.user_handle = b64url_decode(options["user"]["id"])
        rp_hash = hashlib.sha256(options["rp"]["id"].encode()).digest()
        flags = 0x01 | 0x40 | (0x04 if uv else 0)  # UP, AT, UV
        attested = (
            bytes(16) + len(self.credential_id).to_bytes(2, "big") + self.credential_id + self._cose_key()
        )
        auth_data = rp_hash + bytes([flags]) + self.sign_count.to_bytes(4, "big") + attested
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data("webauthn.create", challenge or options["challenge"], origin)
        return json.dumps(
            {
                "id": b64url(self.credential_id),
                "rawId": b64url(self.credential_id),
                "type": "public-key",
                "response": {
                    "clientDataJSON": b64url(client_data),
                    "attestationObject": b64url(attestation),
                    "transports": ["internal"],
                },
                "clientExtensionResults": {},
                "authenticatorAttachment": "platform",
            }
        )

    def get(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        challenge: str | None = None,
        counter: int | None = None,
        uv: bool = True,
    ) -> str:
        """The ``PublicKeyCredential`` JSON for ``navigator.credentials.get(options)``; counts up."""
        if counter is None:
            self.sign_count += 1
            counter = self.sign_count
        rp_hash = hashlib.sha256(options.get("rpId", self.rp_id).encode()).digest()
        auth_data = rp_hash + bytes([0x01 | (0x04 if uv else 0)]) + counter.to_bytes(4, "big")
        client_data = self._client_data("webauthn.get", challenge or options["challenge"], origin)
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return json.dumps(
            {
                "id": b64url(self.credential_id),
                "rawId": b64url(self.credential_id),
                "type": "public-key",
                "response": {
                    "clientDataJSON": b64url(client_data),
                    "authenticatorData": b64url(auth_data),
                    "signature": b64url(signature),
                    "userHandle": b64url(self.user_handle),
                },
                "clientExtensionResults": {},
                "authenticatorAttachment": "platform",
            }
        )


# A live server with the wallet -----------------------------------------------------------------------------


@dataclass
class LiveWallet(LiveIdp):
    cards: dict[str, str] = field(default_factory=dict)  # citizen label → card id

    def add_card(self, citizen: str, *, region: str = REGION) -> str:
        """A physical card in the register (what `onecard cards issue` records, without the key material)."""
        now = self.clock()
        at = utc_from_timestamp(now)
        card_id = secrets.token_hex(16).upper()
        with self.services.database.session() as session:
            session.add(
                Card(
                    card_id=card_id,
                    card_number="T" + secrets.token_hex(4).upper(),
                    citizen_id=self.citizens[citizen],
                    region=region,
                    status=CardStatus.ACTIVE.value,
                    issuer_kid="test-ca",
                    certificate_serial="01",
                    certificate_fingerprint=secrets.token_hex(32),
                    issued_on=at.date(),
                    expires_on=at.date() + dt.timedelta(days=3650),
                    created_at=at,
                    updated_at=at,
                )
            )
        self.cards[citizen] = card_id
        return card_id

    def add_venue(
        self, name: str, category: str, claims: tuple[str, ...] = (), **kwargs: Any
    ) -> tuple[str, str]:
        """(client id, client secret) of a new venue."""
        with self.services.database.session() as session:
            created = create_venue(
                session, VenueRegistration(name, category, claims, **kwargs), actor="test", now=self.clock()
            )
            return created.venue.id, created.client_secret

    def set_card_status(self, citizen: str, status: CardStatus) -> None:
        from idp.cards.service import change_status, get_card

        with self.services.database.session() as session:
            change_status(
                session, get_card(session, self.cards[citizen]), status, actor="test", now=self.clock()
            )


@contextmanager
def running_wallet(
    database_url: str,
    *,
    host: str = "localhost",
    redis_url: str = "",
    redis_prefix: str = "onecard-test",
    create_schema: bool = True,
    clock: ShiftClock | None = None,
    citizens: bool = True,
    extra_plugins: Sequence[Callable[[Any], None]] = (),
) -> Iterator[LiveWallet]:
    """A threaded werkzeug server on 127.0.0.1 whose issuer is ``http://<host>:<port>``."""
    holder: list[Any] = []

    def app_proxy(environ: Any, start_response: Any) -> Any:
        return holder[0](environ, start_response)

    server = make_server("127.0.0.1", 0, app_proxy, threaded=True)
    base_url = f"http://{host}:{server.server_port}"
    clock = clock or ShiftClock()
    app = create_app(
        env="test",
        issuer=base_url,
        database_url=database_url,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        clock=clock,
        plugins=[install_test_login, install_wallet, *extra_plugins],  # e.g. the halls (tests/test_halls.py)
    )
    holder.append(app)
    live = LiveWallet(base_url, app, clock)
    svc = live.services
    if create_schema:
        Base.metadata.create_all(svc.database.engine)
    initialise_keys(app)
    if citizens:
        with svc.database.session() as session:
            for label, (name, id_number) in CITIZENS.items():
                live.citizens[label] = create_citizen(
                    session, svc.pii_cipher(), name, id_number, now=clock()
                ).id
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield live
    finally:
        server.shutdown()
        thread.join(5)
        svc.database.dispose()


# Driving the wallet over HTTP ------------------------------------------------------------------------------

_CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


class WalletUser:
    """A citizen's phone browser over requests: logs in with the test card login, binds and uses a passkey."""

    def __init__(self, live: LiveWallet, citizen: str) -> None:
        self.live = live
        self.citizen = citizen
        self.browser = Browser(live)
        self.http = self.browser.http
        self.authenticator = SoftAuthenticator(rp_id="localhost", origin=live.base_url)

    def url(self, path: str) -> str:
        return self.live.base_url + path

    def login_with_card(self) -> str:
        """The wallet's "log in with card and PIN" (the test login stands in for the card), at loa:high."""
        return self.browser.authorize(self.url("/wallet/login-card"), citizen=self.citizen, acr=ACR_HIGH)

    def activate(self) -> requests.Response:
        home = self.http.get(self.url("/wallet/"), timeout=10)
        card_id = self.live.cards[self.citizen]
        return self.http.post(
            self.url("/wallet/activate"),
            data={"csrf": csrf_of(home.text), "card_id": card_id},
            allow_redirects=False,
            timeout=10,
        )

    def registration_options(self) -> tuple[str, dict[str, Any], str]:
        page = self.http.get(self.url("/wallet/devices"), timeout=10)
        csrf = csrf_of(page.text)
        answer = self.http.post(
            self.url("/wallet/api/passkeys/registration-options"),
            json={},
            headers={"X-CSRF-Token": csrf},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        data = answer.json()
        return data["ceremony"], data["options"], csrf

    def bind_passkey(self, **kwargs: Any) -> requests.Response:
        ceremony, options, csrf = self.registration_options()
        credential = self.authenticator.create(options, **kwargs)
        return self.http.post(
            self.url("/wallet/devices"),
            data={"csrf": csrf, "ceremony": ceremony, "credential": credential, "name": "Test phone"},
            allow_redirects=False,
            timeout=10,
        )

    def authentication_options(self) -> tuple[str, dict[str, Any], str]:
        page = self.http.get(self.url("/wallet/signin"), timeout=10)
        csrf = csrf_of(page.text)
        answer = self.http.post(
            self.url("/wallet/api/passkeys/authentication-options"),
            json={},
            headers={"X-CSRF-Token": csrf},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        data = answer.json()
        return data["ceremony"], data["options"], csrf

    def sign_in_with_passkey(self, **kwargs: Any) -> requests.Response:
        self.http.cookies.pop("ocss", None)
        ceremony, options, csrf = self.authentication_options()
        credential = self.authenticator.get(options, **kwargs)
        return self.http.post(
            self.url("/wallet/signin"),
            data={"csrf": csrf, "ceremony": ceremony, "credential": credential},
            allow_redirects=False,
            timeout=10,
        )

    def code(self) -> dict[str, Any]:
        answer = self.http.get(self.url("/wallet/api/code"), timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]

    def set_up(self) -> None:
        """Card login, e-card activation, passkey binding, then a passkey sign-in (loa:substantial)."""
        self.login_with_card()
        assert self.activate().status_code == 303
        assert self.bind_passkey().status_code == 303
        assert self.sign_in_with_passkey().status_code == 303
