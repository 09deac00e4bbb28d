"""Card login test helpers: issue cards into a live IdP, sign challenges with an in-process virtual card
(the bridge's real card protocol and operations over ``VirtualTerminal``), and walk the login pages as a
browser would (cookies, CSRF token, JSON calls)."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import jwt
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from click.testing import CliRunner

from idp.cardlogin.challenge import CardLoginPolicy, origin_of
from idp.cardlogin.context import create_card_login_context
from idp.cards.issuance import issue_card
from idp.cli import cli
from reader_bridge.emulator import CardEmulator
from reader_bridge.operations import Operation, authenticate, change_pin
from reader_bridge.pin import Announce, PinRequest
from reader_bridge.virtual import VirtualTerminal
from sdk.card_file import Protocol, VirtualCardFile, load_card_file, save_card_file
from tests.support.live import REDIRECT, Browser, LiveIdp, query_of

PIN = "123456"


class FixedPins:
    """A PIN source answering from a list, as a cardholder typing would (kind "terminal")."""

    kind = "terminal"

    def __init__(self, *pins: str) -> None:
        self.pins = list(pins)
        self.requests: list[PinRequest] = []

    def ask_pin(self, request: PinRequest, announce: Announce) -> str:
        announce({})
        self.requests.append(request)
        return self.pins.pop(0)

    def ask_pin_change(self, request: PinRequest, announce: Announce) -> tuple[str, str]:
        announce({})
        self.requests.append(request)
        return self.pins.pop(0), self.pins.pop(0)


@dataclass
class VirtualCard:
    """A card file in an emulator that keeps its PIN state in memory (like the chip's EEPROM)."""

    card_file: VirtualCardFile
    emulator: CardEmulator = field(init=False)

    def __post_init__(self) -> None:
        def store(updated: VirtualCardFile) -> None:
            self.card_file = updated

        self.emulator = CardEmulator(self.card_file, store=store)

    @property
    def card_id(self) -> str:
        return self.card_file.card_id.hex().upper()

    @property
    def certificate_b64(self) -> str:
        """The certificate as the bridge's ``card_read`` event carries it (and the page pre-checks it)."""
        return base64.b64encode(self.card_file.certificate_der).decode("ascii")

    def sign(self, origin: str, challenge: str, *pins: str) -> dict[str, Any]:
        """What the bridge hands the page: the card-auth token for ``challenge`` at ``origin``."""
        from sdk.keys import b64url_decode

        operation = Operation("test", "authenticate", origin)
        return authenticate(
            VirtualTerminal(self.emulator),
            FixedPins(*(pins or (PIN,))),
            operation,
            origin=origin,
            nonce=b64url_decode(challenge),
        )

    def change_pin(self, old: str, new: str) -> dict[str, Any]:
        operation = Operation("test", "change_pin", "https://portal.test")
        return change_pin(VirtualTerminal(self.emulator), FixedPins(old, new), operation)


def issue_test_card(
    idp: LiveIdp,
    citizen: str = "zhang",
    *,
    region: str = "420100",
    pin: str = PIN,
    protocol: Protocol = "T=1",
    replace: bool = False,
    now: float | None = None,
) -> VirtualCard:
    svc = idp.services
    with svc.database.session() as session:
        issued = issue_card(
            session,
            svc.keks,
            citizen_id=idp.citizens[citizen],
            actor="test",
            now=idp.clock() if now is None else now,
            region=region,
            pin=pin,
            protocol=protocol,
            replace=replace,
            pii=svc.pii_cipher(),
        )
    refresh_trust(idp)
    return VirtualCard(issued.card_file)


def refresh_trust(idp: LiveIdp) -> None:
    svc = idp.services
    svc.keyring.invalidate()
    svc.card_login.trust_list.invalidate()


def use_policy(idp: LiveIdp, policy: CardLoginPolicy) -> None:
    svc = idp.services
    svc.card_login = create_card_login_context(svc.settings, svc.database, svc.store, svc.keyring, policy)


def _attribute(page: str, name: str) -> str:
    match = re.search(rf'{name}="([^"]*)"', page)
    assert match, f"no {name} on the card login page"
    return html.unescape(match.group(1))


@dataclass
class CardLoginPage:
    """The card login page as its script sees it."""

    url: str
    tx: str
    csrf: str
    challenge_url: str
    precheck_url: str
    verify_url: str


class CardBrowser:
    """A browser stand-in that logs in with a card: the page's JSON calls, then the redirects."""

    def __init__(self, idp: LiveIdp, *, base_url: str | None = None) -> None:
        self.idp = idp
        self.base_url = base_url or idp.base_url
        self.browser = Browser(idp)
        self.http: requests.Session = self.browser.http

    @property
    def origin(self) -> str:
        return origin_of(self.idp.base_url)

    def open(self, authorization_url: str) -> CardLoginPage:
        """From the portal's authorization URL to the card login page."""
        login_url = self.browser.authorize(authorization_url)
        assert "/login/" in login_url, login_url
        chooser = self.http.get(login_url, timeout=10)
        assert 'id="start-card"' in chooser.text, "the login page does not offer the card"
        tx = login_url.rstrip("/").rsplit("/", 1)[1]
        return self.open_card_page(tx)

    def open_card_page(self, tx: str) -> CardLoginPage:
        url = f"{self.base_url}/login/{tx}/card"
        page = self.http.get(url, timeout=10)
        assert page.status_code == 200, page.text[:300]
        return CardLoginPage(
            url=url,
            tx=tx,
            csrf=_attribute(page.text, "data-csrf"),
            challenge_url=urljoin(url, _attribute(page.text, "data-challenge-url")),
            precheck_url=urljoin(url, _attribute(page.text, "data-precheck-url")),
            verify_url=urljoin(url, _attribute(page.text, "data-verify-url")),
        )

    def _post(
        self, page: CardLoginPage, url: str, body: Any, *, csrf: str | None = None
    ) -> requests.Response:
        url = url.replace(self.idp.base_url, self.base_url)
        return self.http.post(
            url, json=body, headers={"X-CSRF-Token": page.csrf if csrf is None else csrf}, timeout=10
        )

    def challenge(self, page: CardLoginPage) -> str:
        response = self._post(page, page.challenge_url, {})
        assert response.status_code == 200, response.text
        value: str = response.json()["challenge"]
        return value

    def precheck(
        self, page: CardLoginPage, challenge: str, card_certificate: str, **kwargs: Any
    ) -> requests.Response:
        """The page's question after the bridge read the card: can it log in here?"""
        body = {"challenge": challenge, "card_certificate": card_certificate}
        return self._post(page, page.precheck_url, body, **kwargs)

    def verify(
        self, page: CardLoginPage, challenge: str, token: Mapping[str, Any], **kwargs: Any
    ) -> requests.Response:
        return self._post(page, page.verify_url, {"challenge": challenge, "token": dict(token)}, **kwargs)

    def finish(self, response: requests.Response) -> str:
        """After a successful verify: follow to the portal (consent allowed); returns the final URL."""
        assert response.status_code == 200, response.text
        return self.browser.authorize(urljoin(self.idp.base_url, response.json()["redirect_to"]))

    def login(self, page: CardLoginPage, card: VirtualCard, *pins: str) -> str:
        challenge = self.challenge(page)
        return self.finish(self.verify(page, challenge, card.sign(self.origin, challenge, *pins)))


def card_portal(idp: LiveIdp) -> OAuth2Session:
    """A portal registered for the card-login tests, and an Authlib client session for it."""
    client_id, secret = idp.register_client(redirect_uris=(REDIRECT,), scope="openid profile")
    return OAuth2Session(
        client_id, secret, scope="openid profile", redirect_uri=REDIRECT, code_challenge_method="S256"
    )


class Flow:
    """One portal's code + PKCE flow up to the card login page."""

    def __init__(self, idp: LiveIdp, client: OAuth2Session | None = None, **params: Any) -> None:
        self.idp = idp
        self.client = client or card_portal(idp)
        self.verifier = generate_token(48)
        self.nonce = generate_token(16)
        self.url, _ = self.client.create_authorization_url(
            f"{idp.base_url}/authorize", code_verifier=self.verifier, nonce=self.nonce, **params
        )
        self.browser = CardBrowser(idp)
        self.page: CardLoginPage = self.browser.open(self.url)

    def id_token_claims(self, final_url: str) -> dict[str, Any]:
        assert "code=" in final_url, final_url
        assert query_of(final_url)["iss"] == self.idp.base_url
        token = self.client.fetch_token(
            f"{self.idp.base_url}/token", authorization_response=final_url, code_verifier=self.verifier
        )
        jwks = requests.get(f"{self.idp.base_url}/jwks.json", timeout=5).json()
        key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token["id_token"])["kid"]]
        claims: dict[str, Any] = jwt.decode(
            token["id_token"],
            key.key,
            algorithms=["RS256", "ES256"],
            audience=self.client.client_id,
            issuer=self.idp.base_url,
        )
        assert claims["nonce"] == self.nonce
        return claims


def refused(response: requests.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error, body
    assert body["error_description"]
    assert "ocss" not in response.cookies


def onecard(idp: LiveIdp, *args: str) -> str:
    env = {
        "ONECARD_DATABASE_URL": idp.services.settings.database_url,
        "ONECARD_ENV": "test",
        "ONECARD_ISSUER": idp.base_url,
    }
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def issue(idp: LiveIdp, tmp_path: Path, protocol: str = "T=1") -> Path:
    path = tmp_path / f"card-{protocol.replace('=', '')}.json"
    onecard(
        idp,
        "cards",
        "issue",
        "--citizen",
        idp.citizens["zhang"],
        "--out",
        str(path),
        "--pin",
        PIN,
        "--protocol",
        protocol,
    )
    refresh_trust(idp)
    return path


def emulator(path: Path) -> CardEmulator:
    def store(card: VirtualCardFile) -> None:
        save_card_file(path, card)  # tries and PIN changes persist, like the chip's EEPROM

    return CardEmulator(load_card_file(path), store=store)
