"""Every promise discovery and the docs make about the authorization and token endpoints, attacked (issue #9,
items 1-3): PKCE S256 for every kind of client before any login, RFC 9207 ``iss`` and ``state`` on every
authorization response, unsigned request objects and foreign request URIs refused, and a discovery document
that says exactly what the endpoints do. On SQLite and on PostgreSQL + Redis."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
import requests
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from cryptography.hazmat.primitives.asymmetric import rsa

from sdk.keys import b64url, generate_key
from tests.support.live import REDIRECT, Browser, LiveIdp, portal, query_of

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture
def idp(live_idp: LiveIdp) -> LiveIdp:
    return live_idp


def discovery(idp: LiveIdp) -> dict[str, Any]:
    return requests.get(f"{idp.base_url}/.well-known/openid-configuration", timeout=5).json()  # type: ignore[no-any-return]


def authorization_params(client_id: str, **change: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid",
        "state": "st-" + generate_token(8),
        "nonce": "n",
        "code_challenge": create_s256_code_challenge(generate_token(48)),
        "code_challenge_method": "S256",
        **change,
    }
    return {key: value for key, value in params.items() if value is not None}


def authorize(idp: LiveIdp, params: dict[str, str], http: Any = requests) -> requests.Response:
    return http.get(f"{idp.base_url}/authorize", params=params, allow_redirects=False, timeout=5)  # type: ignore[no-any-return]


def assert_error_redirect(idp: LiveIdp, response: requests.Response, state: str, error: str) -> None:
    """An error sent back to the registered redirect URI, naming its issuer and echoing the state."""
    assert response.status_code in (302, 303), response.text[:300]
    location = response.headers["Location"]
    assert location.startswith(REDIRECT + "?"), location
    answer = query_of(location)
    assert answer["error"] == error, answer
    assert answer["iss"] == idp.base_url and answer["state"] == state


class Registered:
    """A client of each token endpoint authentication method, able to authenticate itself."""

    def __init__(self, idp: LiveIdp, method: str, *, alg: str = "ES256") -> None:
        self.idp = idp
        self.method = method
        self.alg = alg
        self.secret: str | None = None
        if method == "private_key_jwt":
            if alg.startswith("RS") or alg.startswith("PS"):
                self.private_key: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            else:
                self.private_key = generate_key("ES256").private_key
            family = jwt.algorithms.RSAAlgorithm if alg[0] in "RP" else jwt.algorithms.ECAlgorithm
            self.jwk = {**family.to_jwk(self.private_key.public_key(), as_dict=True), "kid": "k1"}
            self.client_id, _ = idp.register_client(
                redirect_uris=(REDIRECT,),
                scope="openid profile",
                token_endpoint_auth_method=method,
                jwks={"keys": [self.jwk]},
            )
        else:
            self.client_id, self.secret = idp.register_client(
                redirect_uris=(REDIRECT,), scope="openid profile", token_endpoint_auth_method=method
            )

    def post(self, path: str, data: dict[str, str]) -> requests.Response:
        url = f"{self.idp.base_url}{path}"
        if self.method == "client_secret_basic":
            return requests.post(url, data=data, auth=(self.client_id, self.secret or ""), timeout=5)
        if self.method == "client_secret_post":
            credentials = {"client_id": self.client_id, "client_secret": self.secret or ""}
            return requests.post(url, data={**data, **credentials}, timeout=5)
        now = int(time.time())
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": url, "jti": generate_token(16)}
        payload = {**claims, "iat": now, "exp": now + 60}
        if self.alg in ("none", "HS256"):
            # Algorithm confusion: unsigned, or MACed with the client's public key as the secret.
            header = b64url(json.dumps({"alg": self.alg, "kid": "k1"}).encode())
            signing_input = f"{header}.{b64url(json.dumps(payload).encode())}"
            mac = hmac.new(json.dumps(self.jwk).encode(), signing_input.encode(), hashlib.sha256).digest()
            assertion = f"{signing_input}." + (b64url(mac) if self.alg == "HS256" else "")
        else:
            assertion = jwt.encode(payload, self.private_key, algorithm=self.alg, headers={"kid": "k1"})
        form = {**data, "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
        return requests.post(url, data=form, timeout=5)

    def code(self, verifier: str) -> str:
        params = authorization_params(self.client_id, code_challenge=create_s256_code_challenge(verifier))
        final = Browser(self.idp).authorize(
            f"{self.idp.base_url}/authorize?" + requests.compat.urlencode(params), citizen="zhang"
        )
        return query_of(final)["code"]


@pytest.mark.parametrize("method", AUTH_METHODS)
@pytest.mark.parametrize(
    "change",
    [
        {"code_challenge": None, "code_challenge_method": None},  # no PKCE at all
        {"code_challenge_method": None},  # a challenge, but no method: Authlib would store "plain"
        {"code_challenge_method": "plain"},
        {"code_challenge": None},  # a method without a challenge
        {"code_challenge": "short"},
        {"code_challenge_method": "S512"},
    ],
    ids=["none", "no-method", "plain", "no-challenge", "bad-challenge", "unknown-method"],
)
def test_pkce_s256_is_required_of_every_client_before_any_login(
    idp: LiveIdp, method: str, change: dict[str, str | None]
) -> None:
    client = Registered(idp, method)
    params = authorization_params(client.client_id, **change)
    response = authorize(idp, params)
    # Refused at once, to the client: no login page, no login transaction.
    assert_error_redirect(idp, response, params["state"], "invalid_request")


@pytest.mark.parametrize("method", AUTH_METHODS)
def test_every_client_must_present_the_verifier(idp: LiveIdp, method: str) -> None:
    client = Registered(idp, method)
    verifier = generate_token(48)
    code = client.code(verifier)
    exchange = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    missing = client.post("/token", exchange)
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    challenge_as_verifier = client.post(
        "/token", {**exchange, "code_verifier": create_s256_code_challenge(verifier)}
    )
    assert challenge_as_verifier.json()["error"] == "invalid_grant"
    ok = client.post("/token", {**exchange, "code_verifier": verifier})
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": 'co"de\\'}, "unsupported_response_type"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"scope": "openid admin"}, "invalid_scope"),
        ({"prompt": "none"}, "login_required"),
        ({"prompt": "shout"}, "invalid_request"),
        ({"max_age": "²"}, "invalid_request"),
        ({"claims": '{"id_token": {"acr": {"values": "urn:onecard:loa:high"}}}'}, "invalid_request"),
        ({"claims": '{"id_token": {"acr": {"essential": "yes"}}}'}, "invalid_request"),
        ({"claims": '{"userinfo": []}'}, "invalid_request"),
        ({"response_mode": "fragment"}, "invalid_request"),
        ({"request": "eyJhbGciOiJub25lIn0.e30."}, "invalid_request_object"),
        ({"request_uri": "urn:ietf:params:oauth:request_uri:abc"}, "invalid_request_uri"),
        ({"request_uri": "https://portal.example.gov.cn/request.jwt"}, "request_uri_not_supported"),
    ],
)
def test_every_error_response_carries_iss_and_state(idp: LiveIdp, change: dict[str, str], error: str) -> None:
    client = portal(idp)
    params = authorization_params(client.client_id, **change)
    assert_error_redirect(idp, authorize(idp, params), params["state"], error)


def test_the_success_and_the_denial_carry_iss_and_state(idp: LiveIdp) -> None:
    client = portal(idp)
    params = authorization_params(client.client_id)
    url = f"{idp.base_url}/authorize?" + requests.compat.urlencode(params)
    success = query_of(Browser(idp).authorize(url, citizen="zhang"))
    assert success["code"] and success["iss"] == idp.base_url and success["state"] == params["state"]
    # Consent is remembered for zhang at this portal: li declines.
    denied = query_of(Browser(idp).authorize(url, citizen="li", consent="deny"))
    assert denied["error"] == "access_denied"
    assert denied["iss"] == idp.base_url and denied["state"] == params["state"]


def test_unregistered_redirect_uris_with_odd_characters_get_a_page_not_a_500(idp: LiveIdp) -> None:
    client = portal(idp)
    for redirect_uri in ['https://evil.example.com/"cb', "https://evil.example.com/\\cb", "javascript:x"]:
        response = authorize(idp, authorization_params(client.client_id, redirect_uri=redirect_uri))
        assert response.status_code == 400 and "Location" not in response.headers


def test_discovery_has_no_empty_lists_and_advertises_rfc9207(idp: LiveIdp) -> None:
    doc = discovery(idp)
    assert not [key for key, value in doc.items() if value == []]
    assert doc["authorization_response_iss_parameter_supported"] is True
    # Request objects yes (tests/test_jar.py); request_uri only from the PAR endpoint (tests/test_par.py).
    assert doc["request_parameter_supported"] is True and doc["request_uri_parameter_supported"] is False
    for endpoint in ("token", "introspection", "revocation"):
        assert "private_key_jwt" in doc[f"{endpoint}_endpoint_auth_methods_supported"]
        assert doc[f"{endpoint}_endpoint_auth_signing_alg_values_supported"] == ["RS256", "PS256", "ES256"]


def test_advertised_prompt_values_are_accepted_and_others_refused(idp: LiveIdp) -> None:
    doc = discovery(idp)
    client = portal(idp)
    for prompt in doc["prompt_values_supported"]:
        params = authorization_params(client.client_id, prompt=prompt)
        response = authorize(idp, params)
        if prompt == "none":
            assert_error_redirect(idp, response, params["state"], "login_required")
        else:
            assert response.status_code == 303 and response.headers["Location"].startswith("/login/")
    params = authorization_params(client.client_id, prompt="create")
    assert_error_redirect(idp, authorize(idp, params), params["state"], "invalid_request")


def test_prompt_select_account_shows_the_login_page_to_a_logged_in_citizen(idp: LiveIdp) -> None:
    client = portal(idp)
    browser = Browser(idp)
    first = authorization_params(client.client_id)
    assert "code" in query_of(
        browser.authorize(f"{idp.base_url}/authorize?" + requests.compat.urlencode(first), citizen="zhang")
    )
    again = authorization_params(client.client_id, prompt="select_account")
    response = authorize(idp, again, browser.http)
    assert response.status_code == 303 and response.headers["Location"].startswith("/login/")
    without = authorize(idp, authorization_params(client.client_id), browser.http)
    assert query_of(without.headers["Location"])["code"]  # SSO otherwise


def test_advertised_response_types_modes_and_pkce_methods_are_the_accepted_ones(idp: LiveIdp) -> None:
    doc = discovery(idp)
    client = portal(idp)
    assert doc["response_types_supported"] == ["code"]
    assert doc["response_modes_supported"] == ["query"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    ok = authorize(idp, authorization_params(client.client_id, response_mode="query"))
    assert ok.status_code == 303 and ok.headers["Location"].startswith("/login/")
    for mode in ("fragment", "form_post"):
        params = authorization_params(client.client_id, response_mode=mode)
        assert_error_redirect(idp, authorize(idp, params), params["state"], "invalid_request")


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256"])
def test_each_advertised_assertion_alg_authenticates_a_private_key_jwt_client(idp: LiveIdp, alg: str) -> None:
    assert alg in discovery(idp)["token_endpoint_auth_signing_alg_values_supported"]
    client = Registered(idp, "private_key_jwt", alg=alg)
    verifier = generate_token(48)
    code = client.code(verifier)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    data["code_verifier"] = verifier
    response = client.post("/token", data)
    assert response.status_code == 200, response.text
    introspected = client.post("/introspect", {"token": response.json()["access_token"]})
    assert introspected.json().get("active") is True, introspected.text


@pytest.mark.parametrize("alg", ["PS512", "RS512", "HS256", "none"])
def test_assertion_algs_not_advertised_are_refused(idp: LiveIdp, alg: str) -> None:
    assert alg not in discovery(idp)["token_endpoint_auth_signing_alg_values_supported"]
    client = Registered(idp, "private_key_jwt", alg=alg)
    response = client.post("/token", {"grant_type": "client_credentials"})
    assert response.status_code in (400, 401) and response.json()["error"] == "invalid_client"


def test_advertised_grant_types_are_the_ones_served(idp: LiveIdp) -> None:
    doc = discovery(idp)
    assert set(doc["grant_types_supported"]) == {"authorization_code", "refresh_token", "client_credentials"}
    client = Registered(idp, "client_secret_basic")
    for grant_type in ("password", "implicit", "urn:ietf:params:oauth:grant-type:device_code"):
        response = client.post("/token", {"grant_type": grant_type})
        assert response.json()["error"] == "unsupported_grant_type", grant_type


def test_the_qr_key_set_uri_is_advertised_and_answers(idp: LiveIdp) -> None:
    uri = discovery(idp)["onecard_qr_keys_uri"]
    assert uri == f"{idp.base_url}/.well-known/onecard-qr-keys.json"
    response = requests.get(uri, timeout=5)
    assert response.status_code == 200 and response.json()["keys"]
    assert {key["alg"] for key in response.json()["keys"]} == {"EdDSA"}


def test_userinfo_refusals_are_rfc6750_answers(idp: LiveIdp) -> None:
    url = f"{idp.base_url}/userinfo"
    missing = requests.get(url, timeout=5)
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    invalid = requests.get(url, headers={"Authorization": "Bearer not-a-token"}, timeout=5)
    assert invalid.status_code == 401 and invalid.json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in invalid.headers["WWW-Authenticate"]
    operator_id, secret = idp.register_client(name="Operator", kind="operator", scope="realname:verify")
    token = requests.post(
        f"{idp.base_url}/token",
        auth=(operator_id, secret or ""),
        data={"grant_type": "client_credentials"},
        timeout=5,
    ).json()["access_token"]
    service_token = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert service_token.status_code == 403 and service_token.json()["error"] == "insufficient_scope"
    assert 'error="insufficient_scope"' in service_token.headers["WWW-Authenticate"]
