"""Cross-region login (issue 12 item 2), the relying-party side: a portal at region A, a citizen of region
B. Real deployments in one process (``tests.support.federation.running_two_regions``), a browser that
follows redirects across them, A's real calls to B's token, JWKS and userinfo endpoints.

B logs its citizen in with the tests' login method (``tests.support.testlogin``: no card reader here). B
registers A automatically (OpenID Federation §12.1) at A's first request: nobody registers A at B.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import html
import json
import logging
import re
import secrets
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
from sqlalchemy import func, select

from idp.cards.issuance import issue_card
from idp.citizens.service import create_citizen
from idp.clients.service import ClientRegistration, create_client, get_client
from idp.federation.login_model import FederatedSession, FederatedSubject, find_home_claims
from idp.federation.metadata import relying_party_metadata
from idp.federation.transport import HttpAnswer
from idp.keys.service import FEDERATION_RP_KEYS, OIDC_ES256, OIDC_RS256
from idp.login.service import end_sso_session
from idp.oauth.claims import subject_for
from idp.scopes import ACR_HIGH, ACR_SUBSTANTIAL
from idp.sessions.model import SsoSession
from sdk.keys import KeySet, generate_key
from sdk.oidc import VERIFIED_CLAIMS
from tests.fixtures.services import create_database_or_skip, drop_database
from tests.support.federation import (
    REGION_A_ID,
    REGION_B_CODE,
    REGION_B_ID,
    Region,
    TwoRegions,
    resign,
    running_two_regions,
)
from tests.support.federation_browser import (
    CrossRegionBrowser,
    TamperingHttp,
    Visit,
    durable_rows,
    route_back_channel,
)
from tests.support.idnumbers import make_id_number
from tests.support.testlogin import install_test_login

CALLBACK = f"{REGION_A_ID}/federation/login/callback"
VERIFIER = "cross-region-test-verifier-" + "v" * 30
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=").decode()
HOME_NAME = "李四"
HOME_ID_NUMBER = make_id_number("500101", date(1980, 5, 6), 123)


@dataclasses.dataclass
class Setup:
    two: TwoRegions
    citizen: str  # the citizen's id in B's register
    portals: dict[str, tuple[str, str]]  # name → (client_id, secret) at A


def _portal(region: Region, name: str, redirect_uri: str) -> tuple[str, str]:
    with region.services.database.session() as session:
        client, secret = create_client(
            session,
            ClientRegistration(
                name=name,
                redirect_uris=(redirect_uri,),
                scope="openid profile realname idcard",
                backchannel_logout_uri=redirect_uri.rsplit("/", 1)[0] + "/backchannel-logout",
                post_logout_redirect_uris=(redirect_uri.rsplit("/", 1)[0] + "/signed-out",),
            ),
            now=region.services.now(),
        )
    assert secret is not None
    return client.client_id, secret


def _setup(two: TwoRegions) -> Setup:
    b = two.b.services
    with b.database.session() as session:
        citizen = create_citizen(session, b.pii_cipher(), HOME_NAME, HOME_ID_NUMBER, now=b.now()).id
    portals = {
        "one": _portal(two.a, "成都社保", "http://127.0.0.1/one/callback"),
        "two": _portal(two.a, "成都公积金", "http://localhost/two/callback"),
    }
    return Setup(two, str(citizen), portals)


@pytest.fixture(autouse=True)
def _plain_http(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test deployments speak plain HTTP on names that are not loopback ones; Authlib allows it so."""
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    with running_two_regions(tmp_path, plugins=[install_test_login]) as two:
        yield _setup(two)


@pytest.fixture(params=["sqlite", pytest.param("postgres-redis", marks=pytest.mark.postgres)])
def setup_on_each_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
    if request.param == "sqlite":
        with running_two_regions(tmp_path, plugins=[install_test_login]) as two:
            yield _setup(two)
        return
    admin_url: str = request.getfixturevalue("postgres_admin_url")
    redis_url: str = request.getfixturevalue("redis_url")
    names = [create_database_or_skip(admin_url) for _ in range(3)]
    try:
        base = admin_url.rsplit("/", 1)[0]
        urls = (f"{base}/{names[0]}", f"{base}/{names[1]}", f"{base}/{names[2]}")
        with running_two_regions(tmp_path, urls, redis_url=redis_url, plugins=[install_test_login]) as two:
            yield _setup(two)
    finally:
        for name in names:
            drop_database(admin_url, name)


def authorize_url(
    setup: Setup,
    portal: str,
    *,
    acr: str = ACR_HIGH,
    hint: str | None = None,
    scope: str = "openid profile realname idcard",
    extra: dict[str, str] | None = None,
) -> tuple[str, str]:
    """A's authorization request for ``portal``; returns it and the nonce."""
    client_id, _secret = setup.portals[portal]
    nonce = secrets.token_urlsafe(12)
    params = {
        "client_id": client_id,
        "response_type": "code",
        "scope": scope,
        "redirect_uri": _redirect_uri(portal),
        "state": "portal-state",
        "nonce": nonce,
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
        "acr_values": acr,
    }
    if hint is not None:
        params["login_hint"] = hint
    params.update(extra or {})
    return f"{REGION_A_ID}/authorize?{urlencode(params)}", nonce


def query_of_url(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def _redirect_uri(portal: str) -> str:
    return {"one": "http://127.0.0.1/one/callback", "two": "http://localhost/two/callback"}[portal]


def login_at_home(browser: CrossRegionBrowser, setup: Setup, visit: Visit, *, acr: str = ACR_HIGH) -> Visit:
    """At B's login page: log the citizen in (the tests' login method), consent to A, back towards A."""
    assert visit.url.startswith(f"{REGION_B_ID}/login/"), visit.url
    tx = visit.url.rsplit("/", 1)[1]
    at_b = browser.open(f"{REGION_B_ID}/test-login/{tx}?{urlencode({'citizen': setup.citizen, 'acr': acr})}")
    return browser.allow_consent(at_b)


def portal_code(
    setup: Setup, portal: str, *, hint: str | None = f"region:{REGION_B_CODE}"
) -> tuple[Visit, str]:
    """The whole way from the portal's request to the code at its redirect URI; returns that and the nonce."""
    browser = CrossRegionBrowser.for_regions(setup.two.a, setup.two.b)
    return _portal_code(browser, setup, portal, hint=hint)


def _portal_code(
    browser: CrossRegionBrowser,
    setup: Setup,
    portal: str,
    *,
    hint: str | None = f"region:{REGION_B_CODE}",
    scope: str = "openid profile realname idcard",
) -> tuple[Visit, str]:
    url, nonce = authorize_url(setup, portal, hint=hint, scope=scope)
    visit = browser.open(url)
    if visit.url.startswith(f"{REGION_B_ID}/login/"):
        visit = login_at_home(browser, setup, visit)
    elif visit.url.startswith(REGION_B_ID):  # B's SSO session: only its consent to the wider scope
        visit = browser.allow_consent(visit)
    visit = browser.allow_consent(visit)
    assert visit.url.startswith(_redirect_uri(portal)), (visit.url, visit.response and visit.text[:500])
    return visit, nonce


def redeem(setup: Setup, portal: str, code: str) -> dict[str, Any]:
    client_id, secret = setup.portals[portal]
    answer = setup.two.a.client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": _redirect_uri(portal),
            "code_verifier": VERIFIER,
        },
        headers={"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()},
    )
    assert answer.status_code == 200, answer.data
    body: dict[str, Any] = answer.get_json()
    return body


def a_id_token_claims(setup: Setup, token: str, portal: str) -> dict[str, Any]:
    keys = KeySet.from_jwks(setup.two.a.client.get("/jwks.json").get_json())
    kid = jwt.get_unverified_header(token)["kid"]
    key = keys.get(kid)
    claims: dict[str, Any] = jwt.decode(
        token,
        key.public_key,  # type: ignore[arg-type]
        algorithms=[key.alg],
        audience=setup.portals[portal][0],
        issuer=REGION_A_ID,
        options={"verify_iat": False, "verify_exp": False},  # judged by the federation's clock below
    )
    assert claims["iat"] <= setup.two.clock() < claims["exp"]
    return claims


def count(region: Region, model: Any) -> int:
    with region.services.database.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


# A's metadata and keys -----------------------------------------------------------------------------------


def test_a_publishes_its_relying_party_metadata(setup: Setup) -> None:
    a = setup.two.a
    configuration = jwt.decode(
        a.client.get("/.well-known/openid-federation").data, options={"verify_signature": False}
    )
    rp = configuration["metadata"]["openid_relying_party"]
    assert rp["client_registration_types"] == ["automatic"]
    assert rp["redirect_uris"] == [CALLBACK]
    assert rp["backchannel_logout_uri"] == f"{REGION_A_ID}/federation/backchannel-logout"
    assert rp["backchannel_logout_session_required"] is True
    assert rp["token_endpoint_auth_method"] == "private_key_jwt"
    assert rp["scope"] == "openid profile realname" and rp["subject_type"] == "pairwise"
    published = {key["kid"] for key in rp["jwks"]["keys"]}
    own = a.services.keyring.key_set(FEDERATION_RP_KEYS.name, now=a.services.now())
    assert published == {key.kid for key in own} and all("d" not in key for key in rp["jwks"]["keys"])
    # The anchor is no relying party.
    assert relying_party_metadata(setup.two.anchor.federation.config, now=0, keys=own) is None


# The round trip ------------------------------------------------------------------------------------------


def test_round_trip_gives_a_own_tokens_with_the_home_acr(setup_on_each_database: Setup) -> None:
    setup = setup_on_each_database
    a, b = setup.two.a, setup.two.b
    browser = CrossRegionBrowser.for_regions(a, b)
    visit, nonce = _portal_code(browser, setup, "one")
    assert browser.visited(REGION_B_ID), "the citizen logged in at home"
    token = redeem(setup, "one", visit.query["code"])
    claims = a_id_token_claims(setup, token["id_token"], "one")
    assert claims["nonce"] == nonce and claims["acr"] == ACR_HIGH
    with a.services.database.session() as session:
        subject = session.scalars(select(FederatedSubject)).one()
        assert subject.home_entity_id == REGION_B_ID and subject.home_subject != claims["sub"]
        client = get_client(session, setup.portals["one"][0])
        salt = a.services.settings.pairwise_salt or a.services.settings.issuer
        assert claims["sub"] == subject_for(client, subject.id, salt=salt)  # A's own pairwise sub
    # Userinfo at A: the home claims, verified_claims naming B as the verifier, never the full ID number.
    info = a.client.get("/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"}).get_json()
    assert info["sub"] == claims["sub"]
    assert info["name"] == HOME_NAME
    verified = info[VERIFIED_CLAIMS]
    assert verified["claims"]["name"] == HOME_NAME
    evidence = verified["verification"]["evidence"][0]
    assert evidence["verifier"]["organization"] == b.federation.config.organization_name
    assert evidence["verifier"]["txn"]
    assert verified["verification"]["verification_process"] == REGION_B_ID
    assert verified["verification"]["assurance_level"] == "high"
    assert "id_number" not in info and info["id_number_masked"].count("*") >= 8
    assert HOME_ID_NUMBER not in json.dumps(info)
    # A keeps no register entry: no citizen row, and the home claims only encrypted.
    with a.services.database.session() as session:
        stored = session.scalars(select(FederatedSession)).one()
        assert HOME_NAME.encode() not in stored.claims_ct
    assert count(a, FederatedSubject) == 1


def test_the_request_object_is_signed_by_a_federation_rp_key(setup: Setup) -> None:
    a = setup.two.a
    browser = CrossRegionBrowser.for_regions(a, setup.two.b)
    browser.stop_at = lambda url: url.startswith(f"{REGION_B_ID}/authorize")
    url, _nonce = authorize_url(setup, "one", hint=f"region:{REGION_B_CODE}")
    visit = browser.open(url)
    assert visit.response is None and visit.url.startswith(f"{REGION_B_ID}/authorize")
    request_object = visit.query["request"]
    header = jwt.get_unverified_header(request_object)
    assert header["typ"] == "oauth-authz-req+jwt"
    keys = a.services.keyring.key_set(FEDERATION_RP_KEYS.name, now=a.services.now())
    key = keys.get(header["kid"])
    claims = jwt.decode(
        request_object,
        key.public_key,  # type: ignore[arg-type]
        algorithms=["ES256"],
        audience=REGION_B_ID,
        options={"verify_iat": False, "verify_exp": False, "verify_nbf": False},
    )
    assert claims["iss"] == claims["client_id"] == REGION_A_ID == visit.query["client_id"]
    assert claims["redirect_uri"] == CALLBACK and claims["code_challenge_method"] == "S256"
    assert claims["exp"] - claims["iat"] <= 300 and claims["acr_values"] == ACR_HIGH
    assert claims["state"] and claims["nonce"] and claims["jti"]


@pytest.mark.parametrize(
    ("portal_scope", "home_scope"),
    [
        ("openid profile", "openid profile"),
        ("openid idcard", "openid"),
        ("openid realname", "openid realname"),
    ],
)
def test_a_asks_home_only_for_the_scopes_the_portal_asked_for(
    setup: Setup, portal_scope: str, home_scope: str
) -> None:
    browser = CrossRegionBrowser.for_regions(setup.two.a, setup.two.b)
    browser.stop_at = lambda url: url.startswith(f"{REGION_B_ID}/authorize")
    url, _nonce = authorize_url(setup, "one", hint=f"region:{REGION_B_CODE}", scope=portal_scope)
    visit = browser.open(url)
    assert visit.response is None and visit.url.startswith(f"{REGION_B_ID}/authorize")
    claims = jwt.decode(visit.query["request"], options={"verify_signature": False})
    assert claims["scope"] == visit.query["scope"] == home_scope


# SSO and logout -----------------------------------------------------------------------------------------


def test_a_second_portal_gets_sso_without_going_home_again(setup: Setup) -> None:
    a, b = setup.two.a, setup.two.b
    browser = CrossRegionBrowser.for_regions(a, b)
    first, _nonce = _portal_code(browser, setup, "one")
    first_claims = a_id_token_claims(setup, redeem(setup, "one", first.query["code"])["id_token"], "one")
    at_home = len(browser.visited(REGION_B_ID))
    second, _nonce = _portal_code(browser, setup, "two")
    assert len(browser.visited(REGION_B_ID)) == at_home, "SSO at A: B is not asked again"
    second_claims = a_id_token_claims(setup, redeem(setup, "two", second.query["code"])["id_token"], "two")
    assert second_claims["sid"] == first_claims["sid"] and second_claims["acr"] == ACR_HIGH
    assert second_claims["sub"] != first_claims["sub"]  # another sector, another pairwise sub


def test_a_portal_asking_for_more_than_the_home_login_brought_sends_the_citizen_home_again(
    setup: Setup,
) -> None:
    a, b = setup.two.a, setup.two.b
    browser = CrossRegionBrowser.for_regions(a, b)
    first, _nonce = _portal_code(browser, setup, "one", scope="openid profile")
    first_claims = a_id_token_claims(setup, redeem(setup, "one", first.query["code"])["id_token"], "one")
    with a.services.database.session() as session:
        kept = session.scalars(select(FederatedSession)).one()
        home = find_home_claims(session, a.services.pii_cipher(), kept.sid, now=a.services.now())
    assert home is not None and home.scope == "openid profile"
    # prompt=none cannot go home: the portal hears login_required, not a token without its claims.
    url, _nonce = authorize_url(setup, "two", scope="openid realname", extra={"prompt": "none"})
    silent = browser.open(url)
    assert silent.url.startswith(_redirect_uri("two")) and silent.query["error"] == "login_required"
    # The second portal needs realname: home again (its SSO session there: no PIN), back with the claims.
    at_home = len(browser.visited(REGION_B_ID))
    second, _nonce = _portal_code(browser, setup, "two", scope="openid realname")
    home_visits = browser.visited(REGION_B_ID)[at_home:]
    assert any(url.startswith(f"{REGION_B_ID}/authorize") for url in home_visits), home_visits
    token = redeem(setup, "two", second.query["code"])
    second_claims = a_id_token_claims(setup, token["id_token"], "two")
    assert second_claims["sid"] == first_claims["sid"], "the same session at A, its home claims widened"
    info = a.client.get("/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"}).get_json()
    assert info[VERIFIED_CLAIMS]["claims"]["name"] == HOME_NAME
    # Now the session holds both: the first portal again goes nowhere near home.
    at_home = len(browser.visited(REGION_B_ID))
    again, _nonce = _portal_code(browser, setup, "one", scope="openid profile realname")
    assert len(browser.visited(REGION_B_ID)) == at_home
    redeem(setup, "one", again.query["code"])


def test_a_logout_at_a_ends_the_home_session_and_returns_to_the_portal(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = setup.two.a, setup.two.b
    channel = route_back_channel(monkeypatch, a, b)
    browser = CrossRegionBrowser.for_regions(a, b)
    visit, _nonce = _portal_code(browser, setup, "one")
    id_token = redeem(setup, "one", visit.query["code"])["id_token"]
    signed_out = "http://127.0.0.1/one/signed-out"
    query = urlencode({"id_token_hint": id_token, "post_logout_redirect_uri": signed_out, "state": "p-s"})
    done = browser.open(f"{REGION_A_ID}/logout?{query}")
    # A ended its session, B ended the home session (no confirmation: A's hint names it), back to the portal.
    assert done.response is None and done.url == f"{signed_out}?state=p-s", done.url
    assert any(url.startswith(f"{REGION_B_ID}/logout?") for url in browser.history)
    for region in (a, b):
        with region.services.database.session() as session:
            assert all(s.ended_at is not None for s in session.scalars(select(SsoSession))), region.entity_id
    assert count(a, FederatedSession) == 0
    # B's logout told A by back channel too: A's session had already ended, so that changed nothing.
    assert (f"{REGION_A_ID}/federation/backchannel-logout", 200) in channel.answers
    # The way back is one-time: the same return address again only shows the signed-out page.
    back = next(url for url in browser.history if url.startswith(f"{REGION_A_ID}/federation/logout/done"))
    replay = browser.open(back)
    assert replay.response is not None and replay.response.status_code == 200
    # A fresh login at the portal must go home again: nothing of the home session is left behind.
    url, _nonce = authorize_url(setup, "one", hint=f"region:{REGION_B_CODE}")
    assert browser.open(url).url.startswith(f"{REGION_B_ID}/login/")


def test_the_way_back_from_the_home_logout_is_this_browsers_only(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = setup.two.a, setup.two.b
    route_back_channel(monkeypatch, a, b)
    browser = CrossRegionBrowser.for_regions(a, b)
    visit, _nonce = _portal_code(browser, setup, "one")
    id_token = redeem(setup, "one", visit.query["code"])["id_token"]
    browser.stop_at = lambda url: url.startswith(f"{REGION_A_ID}/federation/logout/done")
    signed_out = "http://127.0.0.1/one/signed-out"
    query = urlencode({"id_token_hint": id_token, "post_logout_redirect_uri": signed_out, "state": "s"})
    back = browser.open(f"{REGION_A_ID}/logout?{query}").url
    assert back.startswith(f"{REGION_A_ID}/federation/logout/done?state=")
    # Sent to another browser, it leads nowhere: the signed-out page, and the state is still the owner's.
    other = CrossRegionBrowser.for_regions(a, b).open(back)
    assert other.response is not None and other.response.status_code == 200
    browser.stop_at = lambda url: False
    assert browser.open(back).url == f"{signed_out}?state=s"


def test_another_citizen_coming_back_from_home_gets_only_what_the_portal_asked_for(setup: Setup) -> None:
    """The home login asks for the scopes the browser's session holds too; if another citizen logs in at
    home (a shared computer), A keeps only what this portal's request covers."""
    a, b = setup.two.a, setup.two.b
    with b.services.database.session() as session:
        other = create_citizen(
            session,
            b.services.pii_cipher(),
            "王五",
            make_id_number("500101", date(1975, 1, 2), 7),
            now=b.services.now(),
        ).id
    browser = CrossRegionBrowser.for_regions(a, b)
    first, _nonce = _portal_code(browser, setup, "one", scope="openid profile realname")
    redeem(setup, "one", first.query["code"])
    url, _nonce = authorize_url(setup, "two", scope="openid profile", extra={"prompt": "login"}, hint=None)
    url += "&" + urlencode({"login_hint": f"region:{REGION_B_CODE}"})
    visit = browser.open(url)
    assert visit.url.startswith(f"{REGION_B_ID}/login/"), visit.url
    asked = next(u for u in reversed(browser.history) if u.startswith(f"{REGION_B_ID}/authorize"))
    assert (
        "realname" in jwt.decode(query_of_url(asked)["request"], options={"verify_signature": False})["scope"]
    )
    tx = visit.url.rsplit("/", 1)[1]
    at_b = browser.open(
        f"{REGION_B_ID}/test-login/{tx}?{urlencode({'citizen': str(other), 'acr': ACR_HIGH})}"
    )
    visit = browser.allow_consent(browser.allow_consent(at_b))
    assert visit.url.startswith(_redirect_uri("two")), visit.url
    with a.services.database.session() as session:
        kept = [
            find_home_claims(session, a.services.pii_cipher(), row.sid, now=a.services.now())
            for row in session.scalars(select(FederatedSession))
        ]
    (home,) = [claims for claims in kept if claims is not None]
    assert home.scope == "openid profile" and VERIFIED_CLAIMS not in home.claims
    assert "id_number_masked" not in home.claims


def test_a_citizen_who_declines_at_home_is_reported_to_the_portal(setup: Setup) -> None:
    a, b = setup.two.a, setup.two.b
    browser = CrossRegionBrowser.for_regions(a, b)
    url, _nonce = authorize_url(setup, "one", hint=f"region:{REGION_B_CODE}")
    visit = browser.open(url)
    tx = visit.url.rsplit("/", 1)[1]
    at_b = browser.open(
        f"{REGION_B_ID}/test-login/{tx}?{urlencode({'citizen': setup.citizen, 'acr': ACR_HIGH})}"
    )
    match = re.search(r'name="csrf" value="([^"]+)"', at_b.text)
    assert match is not None and 'id="allow"' in at_b.text, at_b.url
    before = count(a, FederatedSession)
    declined = browser.open(
        at_b.url, method="POST", data={"csrf": html.unescape(match.group(1)), "decision": "deny"}
    )
    # B tells A access_denied; A tells the portal, at its registered redirect URI, with its state.
    assert declined.url.startswith(_redirect_uri("one")), declined.url
    assert declined.query["error"] == "access_denied" and declined.query["state"] == "portal-state"
    assert declined.query["iss"] == REGION_A_ID
    assert count(a, FederatedSession) == before


@pytest.mark.parametrize("state", ["", "x", "s" * 5000, "%00%ff"])
def test_a_wrong_logout_return_shows_the_signed_out_page(setup: Setup, state: str) -> None:
    before = durable_rows(setup.two.a)
    answer = setup.two.a.client.get(f"/federation/logout/done?state={state}", headers={"Accept": "text/html"})
    # The signed-out page, or the app's 400 for a NUL in the query: never a redirect anywhere.
    assert answer.status_code in (200, 400) and "Location" not in answer.headers
    assert durable_rows(setup.two.a) == before


@pytest.mark.parametrize("demand", [{"prompt": "login"}, {"max_age": "0"}])
def test_a_portals_demand_for_a_fresh_login_reaches_the_home_region(
    setup: Setup, demand: dict[str, str]
) -> None:
    a, b = setup.two.a, setup.two.b
    browser = CrossRegionBrowser.for_regions(a, b)
    first, _nonce = _portal_code(browser, setup, "one")
    redeem(setup, "one", first.query["code"])
    setup.two.clock.advance(120)
    url, nonce = authorize_url(setup, "one", hint=f"region:{REGION_B_CODE}", extra=demand)
    visit = browser.open(url)
    # Not B's SSO session of two minutes ago: the citizen authenticates at home again.
    assert visit.url.startswith(f"{REGION_B_ID}/login/"), visit.url
    visit = browser.allow_consent(login_at_home(browser, setup, visit))
    assert visit.url.startswith(_redirect_uri("one")), visit.url
    claims = a_id_token_claims(setup, redeem(setup, "one", visit.query["code"])["id_token"], "one")
    assert claims["nonce"] == nonce and setup.two.clock() - claims["auth_time"] <= 1


def test_an_old_home_authentication_does_not_meet_the_portals_max_age(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "idp.federation.login_views")
    a = setup.two.a
    before = durable_rows(a)

    def change(token: str) -> bytes:
        return resign(token, _b_key(setup), change=lambda c: c.update(auth_time=c["iat"] - 3600))

    tampering = TamperingHttp(a.federation.http)
    a.federation.http = tampering

    def swap(answer: HttpAnswer) -> HttpAnswer:
        body = json.loads(answer.body)
        body["id_token"] = change(body["id_token"]).decode()
        return dataclasses.replace(answer, body=json.dumps(body).encode())

    tampering.rules.append((f"{REGION_B_ID}/token", swap))
    browser = CrossRegionBrowser.for_regions(a, setup.two.b)
    url, _nonce = authorize_url(setup, "one", hint=f"region:{REGION_B_CODE}", extra={"max_age": "600"})
    visit = login_at_home(browser, setup, browser.open(url))
    assert visit.url.startswith(CALLBACK) and visit.response is not None
    assert visit.response.status_code == 400
    assert any("invalid_id_token (auth_too_old)" in r.getMessage() for r in caplog.records), caplog.text
    assert durable_rows(a) == before


def test_the_end_of_the_home_session_ends_a_session_at_a(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = setup.two.a, setup.two.b
    channel = route_back_channel(monkeypatch, a, b)
    browser = CrossRegionBrowser.for_regions(a, b)
    for portal in ("one", "two"):
        visit, _nonce = _portal_code(browser, setup, portal)
        redeem(setup, portal, visit.query["code"])
    with b.app.test_request_context():
        from idp.web import db_session

        session = db_session()
        home = session.scalars(select(SsoSession).where(SsoSession.citizen_id == setup.citizen)).one()
        end_sso_session(home, now=b.services.now())
    assert (f"{REGION_A_ID}/federation/backchannel-logout", 200) in channel.answers
    with a.services.database.session() as session:
        ended = session.scalars(select(SsoSession)).one()
        assert ended.ended_at is not None
    assert count(a, FederatedSession) == 0, "the home claims went with the session"
    # A's portals heard of it through A's own back-channel logout.
    assert sorted(uri for uri, _token in channel.outside) == [
        "http://127.0.0.1/one/backchannel-logout",
        "http://localhost/two/backchannel-logout",
    ]
    # The same logout token again is refused (its jti is spent), and changes nothing.
    before = durable_rows(a)
    _uri, token = channel.delivered[0]
    replayed = a.client.post("/federation/backchannel-logout", data={"logout_token": token})
    assert replayed.status_code == 400 and durable_rows(a) == before
    # A fresh browser at the first portal must go home again.
    again = CrossRegionBrowser.for_regions(a, b)
    url, _ = authorize_url(setup, "one", hint=f"region:{REGION_B_CODE}")
    assert again.open(url).url.startswith(f"{REGION_B_ID}/login/")


def test_a_logout_at_a_deletes_the_home_claims_at_once(setup: Setup) -> None:
    a, b = setup.two.a, setup.two.b
    browser = CrossRegionBrowser.for_regions(a, b)
    visit, _nonce = _portal_code(browser, setup, "one")
    redeem(setup, "one", visit.query["code"])
    assert count(a, FederatedSession) == 1
    with a.app.test_request_context():
        from idp.web import db_session

        at_a = db_session().scalars(select(SsoSession)).one()
        end_sso_session(at_a, now=a.services.now())  # the citizen signs out at A (RP-initiated logout)
    assert count(a, FederatedSession) == 0, "the home claims are not kept after the session's end"


@pytest.mark.parametrize(
    "query",
    ["", "state=", "state=" + "s" * 5000, "state=x&code=" + "c" * 5000, "error=x", "state=%00%ff&iss=%ff"],
)
def test_a_malformed_callback_is_a_clear_refusal(setup: Setup, query: str) -> None:
    a = setup.two.a
    before = durable_rows(a)
    answer = a.client.get(f"/federation/login/callback?{query}")
    assert answer.status_code == 400  # a page, or the application's answer to control characters
    assert durable_rows(a) == before


@pytest.mark.parametrize(
    "token",
    ["a.b.c", "..", "x" * 20_000, "eyJhbGciOiJFUzI1NiJ9.W10.c", "eyJhbGciOiJFUzI1NiJ9.%%%.c", "\u00ff"],
)
def test_a_malformed_logout_token_is_a_clear_refusal(setup: Setup, token: str) -> None:
    a = setup.two.a
    before = durable_rows(a)
    answer = a.client.post("/federation/backchannel-logout", data={"logout_token": token})
    assert answer.status_code == 400 and answer.get_json()["error"] == "invalid_request"
    assert durable_rows(a) == before


def test_forged_kids_do_not_turn_into_requests_to_the_home_region(setup: Setup) -> None:
    a = setup.two.a
    tampering = TamperingHttp(a.federation.http)
    a.federation.http = tampering
    fetched: list[str] = []

    def counted(answer: HttpAnswer) -> HttpAnswer:
        fetched.append("jwks")
        return answer

    tampering.rules.append((f"{REGION_B_ID}/jwks", counted))
    for _ in range(5):
        stranger = generate_key("ES256")
        forged = jwt.encode(
            {"iss": REGION_B_ID, "aud": REGION_A_ID, "jti": secrets.token_urlsafe(8)},
            stranger.private_key,  # type: ignore[arg-type]
            algorithm="ES256",
            headers={"kid": stranger.kid, "typ": "logout+jwt"},
        )
        answer = a.client.post("/federation/backchannel-logout", data={"logout_token": forged})
        assert answer.status_code == 400
    assert len(fetched) == 1, "one fetch of B's keys, not one per forged kid"


def test_a_forged_logout_token_is_refused(setup: Setup) -> None:
    a = setup.two.a
    before = durable_rows(a)
    forged = resign(
        jwt.encode({"iss": REGION_B_ID, "kid": "x"}, "k" * 32, algorithm="HS256"),
        generate_key("ES256"),
        kid="x",
    )
    answer = a.client.post("/federation/backchannel-logout", data={"logout_token": forged.decode()})
    assert answer.status_code == 400 and answer.get_json()["error"] == "invalid_request"
    answer = a.client.post("/federation/backchannel-logout", data={})
    assert answer.status_code == 400
    assert durable_rows(a) == before


# Attacks: each refused with a clear page, nothing changed ------------------------------------------------


def _refused(caplog: pytest.LogCaptureFixture, code: str) -> bool:
    return any(f"cross-region login refused: {code}" in record.getMessage() for record in caplog.records)


def _stop_at_callback(browser: CrossRegionBrowser) -> None:
    browser.stop_at = lambda url: url.startswith(CALLBACK)


def test_a_wrong_or_replayed_state_is_refused(setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "idp.federation.login_views")
    a, b = setup.two.a, setup.two.b
    browser = CrossRegionBrowser.for_regions(a, b)
    _stop_at_callback(browser)
    url, _nonce = authorize_url(setup, "one", hint=f"region:{REGION_B_CODE}")
    at_callback = login_at_home(browser, setup, browser.open(url))
    assert at_callback.url.startswith(CALLBACK) and at_callback.response is None
    browser.stop_at = lambda url: False
    before = durable_rows(a)
    wrong = browser.open(f"{CALLBACK}?state=not-the-state&code={at_callback.query['code']}")
    assert wrong.response is not None and wrong.response.status_code == 400
    assert _refused(caplog, "invalid_state") and "<h1>" in wrong.text
    # Another browser with the right state and code: refused too (the state is bound to the browser).
    other = CrossRegionBrowser.for_regions(a, b)
    stolen = other.open(at_callback.url)
    assert stolen.response is not None and stolen.response.status_code == 400
    assert durable_rows(a) == before
    done = browser.allow_consent(browser.open(at_callback.url))
    assert done.url.startswith(_redirect_uri("one"))
    after_login = durable_rows(a)
    replay = browser.open(at_callback.url)
    assert replay.response is not None and replay.response.status_code == 400
    assert durable_rows(a) == after_login


def _tampered_login(setup: Setup, change: Any) -> Visit:
    """The round trip with A's view of B's token response changed by ``change(claims)`` / a new key."""
    a, b = setup.two.a, setup.two.b
    tampering = TamperingHttp(a.federation.http)
    a.federation.http = tampering

    def swap(answer: HttpAnswer) -> HttpAnswer:
        body = json.loads(answer.body)
        body["id_token"] = change(body["id_token"]).decode()
        return dataclasses.replace(answer, body=json.dumps(body).encode())

    tampering.rules.append((f"{REGION_B_ID}/token", swap))
    browser = CrossRegionBrowser.for_regions(a, b)
    url, _nonce = authorize_url(setup, "one", hint=f"region:{REGION_B_CODE}")
    return login_at_home(browser, setup, browser.open(url))


def _b_key(setup: Setup) -> Any:
    b = setup.two.b
    return b.services.keyring.key_set(OIDC_ES256.name, now=b.services.now()).signing_key()


@pytest.mark.parametrize(
    "forgery, reason",
    [
        ("wrong_key", "unknown_key"),
        ("wrong_key_same_kid", "bad_signature"),
        ("wrong_aud", "wrong_audience"),
        ("wrong_nonce", "wrong_nonce"),
        ("unknown_acr", "unknown_acr"),
        ("other_region", "unknown_key"),
        ("other_issuer", "wrong_issuer"),
        ("expired", "expired"),
        ("wrong_azp", "wrong_azp"),
        ("other_algorithm", "unknown_key"),
    ],
)
def test_a_forged_id_token_is_refused(
    setup: Setup, caplog: pytest.LogCaptureFixture, forgery: str, reason: str
) -> None:
    caplog.set_level(logging.INFO, "idp.federation.login_views")
    a = setup.two.a
    before = durable_rows(a)
    stranger = generate_key("ES256")

    def change(token: str) -> bytes:
        if forgery == "wrong_key":
            return resign(token, stranger, kid=stranger.kid)
        if forgery == "wrong_key_same_kid":
            return resign(token, stranger)
        if forgery == "other_region":
            # An id_token from an OneCard that is not in A's directory.
            return resign(
                token,
                stranger,
                kid=stranger.kid,
                change=lambda c: c.update(iss="http://region-x.onecard.test"),
            )
        if forgery == "other_algorithm":
            # B's own RS256 key, though A registered ES256 id_tokens (the algorithm is pinned).
            b = setup.two.b
            rs256 = b.services.keyring.key_set(OIDC_RS256.name, now=b.services.now()).signing_key()
            return resign(token, rs256, kid=rs256.kid)
        if forgery == "expired":
            return resign(token, _b_key(setup), change=lambda c: c.update(exp=c["iat"] - 60))
        edits = {
            "wrong_aud": {"aud": "http://region-x.onecard.test"},
            "wrong_azp": {"azp": "http://region-x.onecard.test"},
            "wrong_nonce": {"nonce": "another-nonce"},
            "unknown_acr": {"acr": "urn:elsewhere:loa:supreme"},
            "other_issuer": {"iss": "http://region-x.onecard.test"},
        }[forgery]
        return resign(token, _b_key(setup), change=lambda c: c.update(edits))

    visit = _tampered_login(setup, change)
    assert visit.url.startswith(CALLBACK) and visit.response is not None
    assert visit.response.status_code == 400, visit.text[:300]
    assert any(f"invalid_id_token ({reason})" in r.getMessage() for r in caplog.records), caplog.text
    assert durable_rows(a) == before


def test_a_login_hint_for_an_unknown_region_is_refused(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "idp.federation.login_views")
    a, b = setup.two.a, setup.two.b
    before = durable_rows(a)
    browser = CrossRegionBrowser.for_regions(a, b)
    url, _nonce = authorize_url(setup, "one", hint="region:650000")
    visit = browser.open(url)
    assert visit.url.startswith(f"{REGION_A_ID}/login/") and visit.response is not None
    assert visit.response.status_code == 400 and _refused(caplog, "unknown_region")
    assert not browser.visited(REGION_B_ID)
    bogus = browser.open(visit.url.rsplit("/", 1)[0] + "/http%3A%2F%2Fregion-x.onecard.test")
    assert bogus.response is not None and bogus.response.status_code == 400
    assert durable_rows(a) == before


def _without_trust_mark(setup: Setup) -> None:
    """B loses the anchor's loa:high trust mark (its entity configuration shows none), and A sees it."""
    b, a = setup.two.b, setup.two.a
    b.federation.config = dataclasses.replace(b.federation.config, trust_marks=())
    a.federation.resolver.clear()
    a.federation.directory.invalidate()
    region = a.federation.directory.get(REGION_B_ID, now=a.services.now())
    assert region is not None and a.federation.config.loa_high_trust_mark not in region.trust_mark_types


def test_a_region_without_the_trust_mark_cannot_give_loa_high(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "idp.federation.login_views")
    a, b = setup.two.a, setup.two.b
    _without_trust_mark(setup)
    before = durable_rows(a)
    browser = CrossRegionBrowser.for_regions(a, b)
    url, _nonce = authorize_url(setup, "one", hint=f"region:{REGION_B_CODE}")
    visit = browser.open(url)
    assert visit.response is not None and visit.response.status_code == 403
    assert _refused(caplog, "region_not_trusted") and not browser.visited(REGION_B_ID)
    assert durable_rows(a) == before
    # Not in the list of regions either.
    url, _nonce = authorize_url(setup, "one")
    tx = browser.open(url).url.rsplit("/", 1)[1]
    listing = browser.open(f"{REGION_A_ID}/login/{tx}/region")
    assert listing.response is not None and f'id="region-{REGION_B_CODE}"' not in listing.text


def test_a_region_without_the_trust_mark_is_capped_at_substantial(setup: Setup) -> None:
    """A portal asking for loa:substantial may use such a region; its loa:high counts as substantial."""
    a, b = setup.two.a, setup.two.b
    _without_trust_mark(setup)
    browser = CrossRegionBrowser.for_regions(a, b)
    url, _nonce = authorize_url(setup, "one", acr=ACR_SUBSTANTIAL, hint=f"region:{REGION_B_CODE}")
    visit = browser.allow_consent(login_at_home(browser, setup, browser.open(url)))
    assert visit.url.startswith(_redirect_uri("one")), visit.url
    claims = a_id_token_claims(setup, redeem(setup, "one", visit.query["code"])["id_token"], "one")
    assert claims["acr"] == ACR_SUBSTANTIAL


# The login page --------------------------------------------------------------------------------------------


def test_the_login_page_offers_another_regions_card_and_lists_the_regions(setup: Setup) -> None:
    a, b = setup.two.a, setup.two.b
    browser = CrossRegionBrowser.for_regions(a, b)
    url, _nonce = authorize_url(setup, "one")
    chooser = browser.open(url)
    assert chooser.response is not None and 'id="start-region"' in chooser.text
    assert "其他地区" in chooser.text  # Chinese by default
    tx = chooser.url.rsplit("/", 1)[1]
    listing = browser.open(f"{REGION_A_ID}/login/{tx}/region")
    assert listing.response is not None and listing.response.status_code == 200
    assert f'id="region-{REGION_B_CODE}"' in listing.text
    assert b.federation.config.organization_name in listing.text
    home = browser.open(f"{REGION_A_ID}/login/{tx}/region/{REGION_B_CODE}")
    assert home.url.startswith(f"{REGION_B_ID}/login/")


def _card_certificate(setup: Setup, region: str) -> str:
    """A card of ``region`` issued by B to B's citizen, as the bridge reads its certificate."""
    b = setup.two.b.services
    with b.database.session() as session:
        issued = issue_card(
            session, b.keks, citizen_id=setup.citizen, actor="test", now=b.now(), region=region, replace=True
        )
    return base64.b64encode(issued.card_file.certificate_der).decode("ascii")


def _precheck_at_a(setup: Setup, certificate: str) -> tuple[CrossRegionBrowser, str, Any]:
    """A's card page for a new login, its challenge, and A's pre-check of ``certificate``."""
    browser = CrossRegionBrowser.for_regions(setup.two.a, setup.two.b)
    url, _nonce = authorize_url(setup, "one", hint=None)
    chooser = browser.open(url)
    tx = chooser.url.rstrip("/").rsplit("/", 1)[1]
    page = browser.open(f"{REGION_A_ID}/login/{tx}/card").text
    match = re.search(r'data-csrf="([^"]+)"', page)
    assert match is not None
    headers = {"X-CSRF-Token": html.unescape(match.group(1))}
    at_a = browser.clients[REGION_A_ID]
    challenge = at_a.post(f"/login/{tx}/card/challenge", json={}, headers=headers).get_json()["challenge"]
    answer = at_a.post(
        f"/login/{tx}/card/precheck",
        json={"challenge": challenge, "card_certificate": certificate},
        headers=headers,
    )
    return browser, tx, answer


def test_another_regions_card_is_sent_to_its_home_region_before_the_pin(setup: Setup) -> None:
    browser, tx, answer = _precheck_at_a(setup, _card_certificate(setup, REGION_B_CODE))
    assert answer.status_code == 200, answer.data
    body = answer.get_json()
    assert body["usable"] is False
    assert body["home_region"] == {"name": setup.two.b.federation.config.organization_name}
    assert body["redirect_to"] == f"/login/{tx}/region/{REGION_B_CODE}"
    at_home = browser.open(REGION_A_ID + body["redirect_to"])
    assert at_home.url.startswith(f"{REGION_B_ID}/login/"), at_home.url


def test_a_card_whose_region_no_trusted_region_is_home_for_is_refused_as_before(setup: Setup) -> None:
    _browser, _tx, answer = _precheck_at_a(setup, _card_certificate(setup, "420100"))
    assert answer.status_code == 403, answer.data
    assert answer.get_json()["error"] == "card_not_usable"
    assert "redirect_to" not in answer.get_json()


@pytest.mark.parametrize("certificate", ["\u00c7\u00a4-", "not base64!", ""])
def test_a_certificate_that_does_not_decode_is_a_clear_error_with_federation_on(
    setup: Setup, certificate: str
) -> None:
    """The hand-over reads the certificate before the pre-check does: bad text is still the pre-check's
    400, never a 500 (schemathesis found a non-ASCII one)."""
    _browser, _tx, answer = _precheck_at_a(setup, certificate)
    assert answer.status_code in (400, 403), answer.data
    assert answer.get_json()["error"] in ("invalid_card_auth", "invalid_request", "card_not_usable")
