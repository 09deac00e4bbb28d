"""The OpenID Connect provider driven by real client libraries (Authlib's OAuth2Session, PyJWT's JWKS
client) against a live server, on SQLite and on PostgreSQL + Redis (issue #2, "How it is checked")."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

from idp.scopes import ACR_HIGH, ACR_SUBSTANTIAL
from sdk.keys import generate_key
from tests.support.live import REDIRECT, BackChannelReceiver, Browser, LiveIdp, login, portal, query_of

REDIRECT_2 = "https://tax.example.gov.cn/cb"


@pytest.fixture
def idp(live_idp: LiveIdp) -> LiveIdp:
    return live_idp


def validate_id_token(idp: LiveIdp, token: str, client_id: str, nonce: str | None = None) -> dict[str, Any]:
    discovery = requests.get(f"{idp.base_url}/.well-known/openid-configuration", timeout=5).json()
    key = jwt.PyJWKClient(discovery["jwks_uri"]).get_signing_key_from_jwt(token)
    claims: dict[str, Any] = jwt.decode(
        token,
        key.key,
        algorithms=["RS256", "ES256"],
        audience=client_id,
        issuer=discovery["issuer"],
        leeway=60,
    )
    if nonce is not None:
        assert claims["nonce"] == nonce
    return claims


def test_discovery_matches_the_endpoints(idp: LiveIdp) -> None:
    doc = requests.get(f"{idp.base_url}/.well-known/openid-configuration", timeout=5).json()
    assert doc["issuer"] == idp.base_url
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert set(doc["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    }
    assert doc["acr_values_supported"] == [ACR_SUBSTANTIAL, ACR_HIGH]
    jwks = requests.get(doc["jwks_uri"], timeout=5)
    assert "max-age=" in jwks.headers["Cache-Control"]
    assert {k["alg"] for k in jwks.json()["keys"]} == {"RS256", "ES256"}
    again = requests.get(doc["jwks_uri"], headers={"If-None-Match": jwks.headers["ETag"]}, timeout=5)
    assert again.status_code == 304


def test_code_flow_with_pkce_gives_a_valid_id_token(idp: LiveIdp) -> None:
    client = portal(idp)
    token, nonce = login(idp, client, Browser(idp))
    claims = validate_id_token(idp, token["id_token"], client.client_id, nonce)
    assert claims["acr"] == ACR_HIGH
    assert claims["amr"] == ["sc", "pin", "mfa"]
    assert claims["auth_time"] <= time.time() + 1
    assert claims["sid"]
    assert claims["sub"] != idp.citizens["zhang"]  # pairwise by default
    assert "name" not in claims  # scope claims go to userinfo
    assert token["token_type"] == "Bearer" and token["refresh_token"].startswith("ocrt_")


def test_userinfo_get_and_post_release_scoped_claims(idp: LiveIdp) -> None:
    client = portal(idp)
    token, _ = login(idp, client, Browser(idp))
    sub = validate_id_token(idp, token["id_token"], client.client_id)["sub"]
    got = client.get(f"{idp.base_url}/userinfo").json()
    posted = requests.post(
        f"{idp.base_url}/userinfo", data={"access_token": token["access_token"]}, timeout=5
    ).json()
    assert got == posted
    assert got["sub"] == sub
    assert got["name"] == "张三" and got["birthdate"] == "1949-12-31" and got["gender"] == "female"
    assert got["verified_claims"]["verification"]["assurance_level"] == "high"
    assert got["id_number_masked"] == "1101**********002X"
    assert "id_number" not in got  # this portal is not registered for the full number


def test_full_id_number_only_for_allowed_clients(idp: LiveIdp) -> None:
    client = portal(idp, id_number_allowed=True)
    login(idp, client, Browser(idp))
    assert client.get(f"{idp.base_url}/userinfo").json()["id_number"] == "11010519491231002X"


def test_claims_parameter_puts_claims_in_the_id_token(idp: LiveIdp) -> None:
    client = portal(idp)
    claims_request = json.dumps({"id_token": {"name": None, "verified_claims": None}})
    token, nonce = login(idp, client, Browser(idp), claims=claims_request)
    claims = validate_id_token(idp, token["id_token"], client.client_id, nonce)
    assert claims["name"] == "张三"
    assert claims["verified_claims"]["claims"]["name"] == "张三"


def test_public_subject_on_request(idp: LiveIdp) -> None:
    client = portal(idp, subject_type="public")
    token, _ = login(idp, client, Browser(idp))
    assert validate_id_token(idp, token["id_token"], client.client_id)["sub"] == idp.citizens["zhang"]


def test_es256_id_tokens_per_client(idp: LiveIdp) -> None:
    client = portal(idp, id_token_signed_response_alg="ES256")
    token, _ = login(idp, client, Browser(idp))
    assert jwt.get_unverified_header(token["id_token"])["alg"] == "ES256"
    validate_id_token(idp, token["id_token"], client.client_id)


def test_refresh_rotates_and_reuse_revokes_the_family(idp: LiveIdp) -> None:
    client = portal(idp)
    token, _ = login(idp, client, Browser(idp))
    first_refresh = token["refresh_token"]
    refreshed = client.refresh_token(f"{idp.base_url}/token", refresh_token=first_refresh)
    assert refreshed["refresh_token"] != first_refresh
    assert refreshed["id_token"]
    # The old token again: it leaked. The whole family ends, including the newest tokens.
    reuse = requests.post(
        f"{idp.base_url}/token",
        auth=(client.client_id, client.client_secret),
        data={"grant_type": "refresh_token", "refresh_token": first_refresh},
        timeout=5,
    )
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    newest = requests.post(
        f"{idp.base_url}/token",
        auth=(client.client_id, client.client_secret),
        data={"grant_type": "refresh_token", "refresh_token": refreshed["refresh_token"]},
        timeout=5,
    )
    assert newest.json()["error"] == "invalid_grant"
    userinfo = requests.get(
        f"{idp.base_url}/userinfo",
        headers={"Authorization": f"Bearer {refreshed['access_token']}"},
        timeout=5,
    )
    assert userinfo.status_code == 401


def test_client_credentials_introspection_and_revocation(idp: LiveIdp) -> None:
    client_id, secret = idp.register_client(
        name="Operator",
        kind="operator",
        scope="realname:verify",
        token_endpoint_auth_method="client_secret_post",
    )
    operator = OAuth2Session(
        client_id, secret, scope="realname:verify", token_endpoint_auth_method="client_secret_post"
    )
    token = operator.fetch_token(f"{idp.base_url}/token", grant_type="client_credentials")
    assert token["scope"] == "realname:verify"
    auth = {"client_id": client_id, "client_secret": secret}
    active = requests.post(
        f"{idp.base_url}/introspect", data={"token": token["access_token"], **auth}, timeout=5
    ).json()
    assert (
        active["active"] is True and active["client_id"] == client_id and active["scope"] == "realname:verify"
    )
    revoked = requests.post(
        f"{idp.base_url}/revoke", data={"token": token["access_token"], **auth}, timeout=5
    )
    assert revoked.status_code == 200
    after = requests.post(
        f"{idp.base_url}/introspect", data={"token": token["access_token"], **auth}, timeout=5
    ).json()
    assert after == {"active": False}


def test_revoking_a_refresh_token_ends_its_grant(idp: LiveIdp) -> None:
    client = portal(idp)
    token, _ = login(idp, client, Browser(idp))
    auth = (client.client_id, client.client_secret)
    assert (
        requests.post(
            f"{idp.base_url}/introspect", auth=auth, data={"token": token["refresh_token"]}, timeout=5
        ).json()["active"]
        is True
    )
    requests.post(
        f"{idp.base_url}/revoke",
        auth=auth,
        data={"token": token["refresh_token"], "token_type_hint": "refresh_token"},
        timeout=5,
    )
    for kind in ("refresh_token", "access_token"):
        assert requests.post(
            f"{idp.base_url}/introspect", auth=auth, data={"token": token[kind]}, timeout=5
        ).json() == {"active": False}


def test_private_key_jwt_client_authentication(idp: LiveIdp) -> None:
    key = generate_key("ES256")
    client_id, secret = idp.register_client(
        redirect_uris=(REDIRECT,),
        scope="openid profile",
        token_endpoint_auth_method="private_key_jwt",
        jwks={"keys": [key.public_jwk()]},
    )
    assert secret is None

    def assertion(jti: str) -> str:
        now = int(time.time())
        return jwt.encode(
            {
                "iss": client_id,
                "sub": client_id,
                "aud": f"{idp.base_url}/token",
                "jti": jti,
                "iat": now,
                "exp": now + 60,
            },
            key.private_key,  # type: ignore[arg-type]
            algorithm="ES256",
            headers={"kid": key.kid},
        )

    browser = Browser(idp)
    verifier = generate_token(48)
    session = OAuth2Session(
        client_id, scope="openid profile", redirect_uri=REDIRECT, code_challenge_method="S256"
    )
    url, _ = session.create_authorization_url(f"{idp.base_url}/authorize", code_verifier=verifier)
    final = browser.authorize(url, citizen="li")
    form = {
        "grant_type": "authorization_code",
        "code": query_of(final)["code"],
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion("jti-1"),
    }
    ok = requests.post(f"{idp.base_url}/token", data=form, timeout=5)
    assert ok.status_code == 200, ok.text
    # The same assertion again (replayed jti) is refused.
    replay = requests.post(f"{idp.base_url}/token", data={**form, "code": "x"}, timeout=5)
    assert replay.status_code in (400, 401) and replay.json()["error"] == "invalid_client"


def test_sso_across_two_portals_and_back_channel_logout(idp: LiveIdp) -> None:
    with BackChannelReceiver() as rp1, BackChannelReceiver() as rp2:
        first = portal(idp, backchannel_logout_uri=rp1.url, post_logout_redirect_uris=(REDIRECT,))
        second = portal(idp, redirect_uris=(REDIRECT_2,), backchannel_logout_uri=rp2.url)
        browser = Browser(idp)
        token1, _ = login(idp, first, browser)
        # The second portal: no login page this time, only its own consent.
        verifier = generate_token(48)
        url, _ = second.create_authorization_url(f"{idp.base_url}/authorize", code_verifier=verifier)
        final = browser.authorize(url, citizen=None)
        assert "code=" in final and not any("/login/" in page for page in browser.pages[-3:])
        token2 = second.fetch_token(
            f"{idp.base_url}/token", authorization_response=final, code_verifier=verifier
        )
        claims1 = validate_id_token(idp, token1["id_token"], first.client_id)
        claims2 = validate_id_token(idp, token2["id_token"], second.client_id)
        assert claims1["sid"] == claims2["sid"]
        assert claims1["sub"] != claims2["sub"]  # different sectors, different pairwise subjects
        # RP-initiated logout from the first portal with its id_token as hint.
        response = browser.http.get(
            f"{idp.base_url}/logout",
            params={
                "id_token_hint": token1["id_token"],
                "post_logout_redirect_uri": REDIRECT,
                "state": "bye",
            },
            allow_redirects=False,
            timeout=10,
        )
        assert response.status_code == 303
        assert response.headers["Location"] == f"{REDIRECT}?state=bye"
        for receiver, client in ((rp1, first), (rp2, second)):
            assert len(receiver.tokens) == 1
            logout = jwt.decode(receiver.tokens[0], options={"verify_signature": False})
            assert logout["sid"] == claims1["sid"] and logout["aud"] == client.client_id
            assert "http://schemas.openid.net/event/backchannel-logout" in logout["events"]
            assert "nonce" not in logout
        # The session is over: a new authorization needs a login again, and old tokens are dead.
        url, _ = first.create_authorization_url(f"{idp.base_url}/authorize", code_verifier=verifier)
        assert "/login/" in browser.authorize(url, citizen=None)
        assert first.get(f"{idp.base_url}/userinfo").status_code == 401


def test_logout_without_a_hint_asks_first(idp: LiveIdp) -> None:
    client = portal(idp)
    browser = Browser(idp)
    login(idp, client, browser)
    page = browser.http.get(f"{idp.base_url}/logout", timeout=5)
    assert page.status_code == 200 and "confirm-logout" in page.text
    assert client.get(f"{idp.base_url}/userinfo").status_code == 200  # nothing ended yet


def test_step_up_from_substantial_to_high(idp: LiveIdp) -> None:
    client = portal(idp)
    browser = Browser(idp)
    token, _ = login(idp, client, browser, acr=ACR_SUBSTANTIAL)
    assert validate_id_token(idp, token["id_token"], client.client_id)["acr"] == ACR_SUBSTANTIAL
    verifier = generate_token(48)
    url, _ = client.create_authorization_url(
        f"{idp.base_url}/authorize", code_verifier=verifier, acr_values=ACR_HIGH
    )
    # The existing session is not enough: the login page comes back, offering only high-assurance methods.
    login_page = browser.authorize(url, citizen=None)
    assert "/login/" in login_page
    page = browser.http.get(login_page, timeout=5).text
    assert "Test card login" in page and "Test e-card login" not in page
    final = browser.authorize(url, citizen="zhang", acr=ACR_HIGH)
    stepped = client.fetch_token(
        f"{idp.base_url}/token", authorization_response=final, code_verifier=verifier
    )
    assert validate_id_token(idp, stepped["id_token"], client.client_id)["acr"] == ACR_HIGH


def test_prompt_none(idp: LiveIdp) -> None:
    client = portal(idp)
    browser = Browser(idp)
    url, _ = client.create_authorization_url(
        f"{idp.base_url}/authorize", code_verifier=generate_token(48), prompt="none", state="s1"
    )
    answer = query_of(browser.authorize(url))
    assert answer["error"] == "login_required" and answer["state"] == "s1"
    login(idp, client, browser)
    url, _ = client.create_authorization_url(
        f"{idp.base_url}/authorize", code_verifier=generate_token(48), prompt="none"
    )
    assert "code" in query_of(browser.authorize(url))  # logged in and consented: silent
    other = portal(idp, redirect_uris=(REDIRECT_2,))
    url, _ = other.create_authorization_url(
        f"{idp.base_url}/authorize", code_verifier=generate_token(48), prompt="none"
    )
    assert query_of(browser.authorize(url))["error"] == "consent_required"
    url, _ = client.create_authorization_url(
        f"{idp.base_url}/authorize",
        code_verifier=generate_token(48),
        prompt="none",
        acr_values=ACR_HIGH,
        max_age="0",
    )
    idp.clock.advance(5)  # max_age=0 with an older auth_time needs a fresh login
    assert query_of(browser.authorize(url))["error"] == "login_required"


def test_prompt_login_forces_a_fresh_login(idp: LiveIdp) -> None:
    client = portal(idp)
    browser = Browser(idp)
    token, _ = login(idp, client, browser)
    first_auth = validate_id_token(idp, token["id_token"], client.client_id)["auth_time"]
    idp.clock.advance(10)
    token2, _ = login(idp, client, browser, prompt="login")
    assert validate_id_token(idp, token2["id_token"], client.client_id)["auth_time"] >= first_auth + 10


def test_consent_is_remembered_and_denial_is_reported(idp: LiveIdp) -> None:
    client = portal(idp)
    browser = Browser(idp)
    login(idp, client, browser)
    seen = len(browser.pages)
    login(idp, client, browser)
    assert not any("/consent/" in page for page in browser.pages[seen:])
    other = portal(idp, redirect_uris=(REDIRECT_2,))
    url, _ = other.create_authorization_url(
        f"{idp.base_url}/authorize", code_verifier=generate_token(48), state="st"
    )
    answer = query_of(browser.authorize(url, consent="deny"))
    assert answer["error"] == "access_denied" and answer["state"] == "st"


def test_first_party_clients_skip_consent(idp: LiveIdp) -> None:
    client = portal(idp, first_party=True)
    browser = Browser(idp)
    login(idp, client, browser)
    assert not any("/consent/" in page for page in browser.pages)
