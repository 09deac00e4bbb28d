"""Drivers for the two-region tests with real processes (tests/test_regions_e2e.py, on the servers of
``tests.support.regions_processes``): a browser over real HTTP that keeps its cookies per origin (the regions
answer on one host with different ports, and a browser's cookies are per host: one cookie jar for each
deployment stands in for the separate hosts a real set-up has), a region-B citizen's card login walked page
by page, a portal's code redeemed at region A, and region B's e-card codes made through B's own service
layer against B's database and keys (the servers stay real; this is what B's wallet does when it shows a
code)."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import jwt
import requests

from demo.regions import Deployment, RegionCredentials
from idp.app import create_app
from idp.cardlogin.challenge import origin_of
from idp.config import load_settings
from idp.services import Services
from sdk.card_file import load_card_file
from sdk.keys import KeySet
from tests.support.cardlogin import VirtualCard
from wallet.ecards.service import activate_ecard, find_current_ecard
from wallet.qr.service import issue_ecard_code

REDIRECTS = (301, 302, 303, 307, 308)
MAX_HOPS = 30
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')
PORTAL_SCOPE = "openid profile realname"


def _attribute(page: str, name: str) -> str:
    match = re.search(rf'{name}="([^"]*)"', page)
    assert match, f"no {name} on the page"
    return html.unescape(match.group(1))


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


@dataclass
class Stop:
    """Where the browser stopped: a deployment's page (``response``), or a URL outside the deployments."""

    url: str
    response: requests.Response | None

    @property
    def text(self) -> str:
        assert self.response is not None, f"left the deployments at {self.url}"
        return self.response.text

    @property
    def status(self) -> int:
        assert self.response is not None, f"left the deployments at {self.url}"
        return self.response.status_code


@dataclass
class RegionsBrowser:
    """A browser over real HTTP across the deployments ``origins``: a cookie jar per origin, redirects
    followed until a URL leaves them (a portal's redirect URI), consent pages allowed when asked."""

    origins: tuple[str, ...]
    jars: dict[str, requests.Session] = field(default_factory=dict)
    history: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for one in self.origins:
            session = requests.Session()
            session.headers["Accept-Language"] = "en"  # the tests read the pages' English text
            self.jars[one] = session

    def close(self) -> None:
        for session in self.jars.values():
            session.close()

    def http(self, url: str) -> requests.Session:
        return self.jars[origin(url)]

    def open(self, url: str, *, method: str = "GET", data: Mapping[str, str] | None = None) -> Stop:
        for _ in range(MAX_HOPS):
            session = self.jars.get(origin(url))
            if session is None:
                return Stop(url, None)
            self.history.append(url)
            response = session.request(
                method, url, data=data, allow_redirects=False, headers={"Accept": "text/html"}, timeout=15
            )
            if response.status_code not in REDIRECTS:
                return Stop(url, response)
            url = urljoin(url, response.headers["Location"])
            if response.status_code in (301, 302, 303):
                method, data = "GET", None
        raise AssertionError(f"more than {MAX_HOPS} redirects: {self.history[-5:]}")

    def through_consent(self, stop: Stop) -> Stop:
        """Allow every consent page on the way (the home region's, then region A's)."""
        for _ in range(4):
            if stop.response is None or 'id="allow"' not in stop.text:
                return stop
            match = CSRF_FIELD.search(stop.text)
            assert match is not None
            stop = self.open(stop.url, method="POST", data={"csrf": match.group(1), "decision": "allow"})
        return stop

    def visited(self, url_prefix: str) -> list[str]:
        return [url for url in self.history if url.startswith(url_prefix)]

    def post_json(self, url: str, body: Any, *, csrf: str) -> requests.Response:
        return self.http(url).post(url, json=body, headers={"X-CSRF-Token": csrf}, timeout=15)


@dataclass(frozen=True)
class CardPage:
    url: str
    csrf: str
    challenge_url: str
    precheck_url: str
    verify_url: str


def open_card_page(browser: RegionsBrowser, login_url: str) -> CardPage:
    """From a deployment's login chooser (``…/login/<tx>``) to its card page, as the chooser's link goes."""
    chooser = browser.open(login_url)
    assert chooser.status == 200 and 'id="start-card"' in chooser.text, chooser.text[:300]
    url = login_url.rstrip("/") + "/card"
    page = browser.open(url)
    assert page.status == 200, page.text[:300]
    return CardPage(
        url=url,
        csrf=_attribute(page.text, "data-csrf"),
        challenge_url=urljoin(url, _attribute(page.text, "data-challenge-url")),
        precheck_url=urljoin(url, _attribute(page.text, "data-precheck-url")),
        verify_url=urljoin(url, _attribute(page.text, "data-verify-url")),
    )


def challenge_of(browser: RegionsBrowser, page: CardPage) -> str:
    answer = browser.post_json(page.challenge_url, {}, csrf=page.csrf)
    assert answer.status_code == 200, answer.text
    value: str = answer.json()["challenge"]
    return value


def card_of(credentials: RegionCredentials) -> VirtualCard:
    return VirtualCard(load_card_file(credentials.card_file))


def log_in_with_card(
    browser: RegionsBrowser, login_url: str, card: VirtualCard, pin: str
) -> requests.Response:
    """At the home region's login chooser: its card page, challenge, the card's signature (PIN), verify."""
    page = open_card_page(browser, login_url)
    challenge = challenge_of(browser, page)
    token = card.sign(origin_of(login_url), challenge, pin)
    answer = browser.post_json(page.verify_url, {"challenge": challenge, "token": token}, csrf=page.csrf)
    assert answer.status_code == 200, answer.text
    return answer


# The portal at region A ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PortalRequest:
    url: str
    nonce: str
    verifier: str
    state: str


def portal_request(
    a_url: str, credentials: RegionCredentials, *, login_hint: str | None = None
) -> PortalRequest:
    """The region-A portal's authorization request (code + PKCE, loa:high)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    nonce, state = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    params = {
        "client_id": credentials.portal_client_id,
        "response_type": "code",
        "scope": PORTAL_SCOPE,
        "redirect_uri": credentials.portal_redirect_uri,
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "acr_values": "loa:high",
    }
    if login_hint is not None:
        params["login_hint"] = login_hint
    return PortalRequest(f"{a_url}/authorize?{urlencode(params)}", nonce, verifier, state)


def redeem_at_a(
    a_url: str, credentials: RegionCredentials, request: PortalRequest, final_url: str
) -> dict[str, Any]:
    """The portal's code → tokens at A (client_secret_basic)."""
    assert final_url.startswith(credentials.portal_redirect_uri), final_url
    query = query_of(final_url)
    assert query["state"] == request.state and query["iss"] == a_url, query
    answer = requests.post(
        f"{a_url}/token",
        data={
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": credentials.portal_redirect_uri,
            "code_verifier": request.verifier,
        },
        auth=(credentials.portal_client_id, credentials.portal_client_secret),
        timeout=15,
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def verified_id_token(a_url: str, token: str, *, audience: str) -> dict[str, Any]:
    keys = KeySet.from_jwks(requests.get(f"{a_url}/jwks.json", timeout=10).json())
    key = keys.get(jwt.get_unverified_header(token)["kid"])
    public_key: Any = key.public_key
    claims: dict[str, Any] = jwt.decode(
        token, public_key, algorithms=[key.alg], audience=audience, issuer=a_url, leeway=5
    )
    return claims


# Region B's e-card codes --------------------------------------------------------------------------------


@contextmanager
def deployment_services(deployment: Deployment) -> Iterator[Services]:
    """The service layer of ``deployment`` in this process: its settings, database and keys (as its
    ``onecard`` commands build it), no server and no background work; its connections closed at the end."""
    app = create_app(load_settings(environ=dict(deployment.settings)))
    svc: Services = app.extensions["onecard"]
    try:
        yield svc
    finally:
        svc.database.dispose()


def ensure_ecard(svc: Services, credentials: RegionCredentials) -> None:
    """The region citizen's e-card for their card (activated once, as the wallet does after a card login)."""
    with svc.database.session() as session:
        if find_current_ecard(session, credentials.citizen_id) is None:
            activate_ecard(
                session, citizen_id=credentials.citizen_id, card_id=credentials.card_id, now=time.time()
            )


def fresh_ecard_code(svc: Services, credentials: RegionCredentials) -> str:
    """A fresh ESSC1 code of the citizen's e-card, signed with the region's QR key."""
    with svc.database.session() as session:
        view = find_current_ecard(session, credentials.citizen_id)
        assert view is not None, "no e-card: ensure_ecard first"
        return issue_ecard_code(session, keyring=svc.keyring, cipher=None, view=view, now=time.time()).text
