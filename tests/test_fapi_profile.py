"""The FAPI 2.0 client profile (issue 15 item 3), attacked: a client registered with
``fapi2_security_profile`` gets codes only through PAR, with PKCE S256 and a redirect_uri, authenticates only
with ``private_key_jwt`` (PS256 or ES256, ``aud`` the issuer alone) at every endpoint, gets codes that live
60 seconds at most and DPoP-bound tokens, and sees ``iss`` in every authorization response; discovery holds
the fields such a client reads. On SQLite and on PostgreSQL + Redis."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import requests
from sqlalchemy import update

from idp.bearer_secrets import hash_bearer_secret
from idp.clients.errors import InvalidClientMetadataError
from idp.clients.model import Client
from idp.clients.service import ClientRegistration, validate_registration
from sdk.dpop import DpopKey, DpopSigner
from tests.support.fapi import ASSERTION_TYPE, KeyedClient, authorize, discovery, error_at_redirect
from tests.support.live import REDIRECT, LiveIdp
from tests.support.openapi import bearer, token_for

ENDPOINTS = ("/par", "/token", "/introspect", "/revoke")


@pytest.fixture
def idp(live_idp: LiveIdp) -> LiveIdp:
    return live_idp


def fapi_client(idp: LiveIdp, alg: str = "ES256") -> KeyedClient:
    return KeyedClient(idp, alg=alg, fapi2_security_profile=True)


def exchange(
    client: KeyedClient, code: str, *, dpop: DpopSigner | None = None, wall_clock: bool = False
) -> requests.Response:
    url = f"{client.idp.base_url}/token"
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": client.verifier,
    }
    if dpop is None:
        return requests.post(url, data={**form, **client.assertion(wall_clock=wall_clock)}, timeout=10)
    # A fresh assertion per attempt: a nonce retry must not replay the first one's jti.
    return dpop.send(
        "POST",
        url,
        lambda headers: requests.post(
            url, data={**form, **client.assertion(wall_clock=wall_clock)}, headers=headers, timeout=10
        ),
    )


def test_the_admin_api_registers_the_flags_and_refuses_a_fapi_client_with_a_secret(idp: LiveIdp) -> None:
    _operator, token = token_for(idp, "admin")
    url = f"{idp.base_url}/api/v1/admin/clients"
    jwks = {"keys": [KeyedClient(idp).jwk]}
    base = {"name": "Tax portal", "redirect_uris": [REDIRECT], "scope": "openid realname"}
    fapi = {
        **base,
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": jwks,
        "fapi2_security_profile": True,
    }
    created = requests.post(
        url, json={**fapi, "dpop_bound_access_tokens": True}, headers=bearer(token), timeout=10
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert "client_secret" not in body and body["fapi2_security_profile"] is True
    assert body["dpop_bound_access_tokens"] is True and body["require_pushed_authorization_requests"] is False
    with_secret = requests.post(
        url, json={**base, "fapi2_security_profile": True}, headers=bearer(token), timeout=10
    )
    assert with_secret.status_code == 400 and with_secret.json()["error"] == "invalid_client_metadata"
    not_a_flag = requests.post(
        url, json={**fapi, "fapi2_security_profile": "yes"}, headers=bearer(token), timeout=10
    )
    assert not_a_flag.status_code == 400


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_a_fapi_client_cannot_be_registered_with_a_shared_secret(method: str) -> None:
    registration = ClientRegistration(
        name="FAPI portal",
        redirect_uris=(REDIRECT,),
        scope="openid",
        token_endpoint_auth_method=method,
        fapi2_security_profile=True,
    )
    with pytest.raises(InvalidClientMetadataError):
        validate_registration(registration)


def test_a_fapi_client_signs_id_tokens_with_es256_and_never_rs256(idp: LiveIdp) -> None:
    """FAPI 2.0 Security Profile §5.4.1: PS256, ES256 or EdDSA only (review 15, finding 4)."""
    jwks = {"keys": [KeyedClient(idp).jwk]}
    fapi = ClientRegistration(
        name="FAPI portal",
        redirect_uris=(REDIRECT,),
        scope="openid",
        token_endpoint_auth_method="private_key_jwt",
        jwks=jwks,
        fapi2_security_profile=True,
    )
    validate_registration(fapi)
    assert fapi.id_token_alg == "ES256"  # the default for a FAPI client
    assert ClientRegistration(name="Portal").id_token_alg == "RS256"  # unchanged for the others
    with pytest.raises(InvalidClientMetadataError):
        validate_registration(replace(fapi, id_token_signed_response_alg="RS256"))
    _operator, token = token_for(idp, "admin")
    url = f"{idp.base_url}/api/v1/admin/clients"
    form = {
        "name": "Tax portal",
        "redirect_uris": [REDIRECT],
        "scope": "openid",
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": jwks,
        "fapi2_security_profile": True,
    }
    refused = requests.post(
        url, json={**form, "id_token_signed_response_alg": "RS256"}, headers=bearer(token), timeout=10
    )
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_client_metadata", refused.text
    created = requests.post(url, json=form, headers=bearer(token), timeout=10)
    assert created.status_code == 201 and created.json()["id_token_signed_response_alg"] == "ES256"


def test_the_fapi_flow_end_to_end_pushes_proves_and_gets_a_dpop_bound_token(idp: LiveIdp) -> None:
    client = fapi_client(idp)
    params = client.authorization_params(scope="openid profile")
    pushed = client.push({"client_id": client.client_id, "request": client.request_object(params)})
    assert pushed.status_code == 201, pushed.text
    answer = client.code(client.authorize_url(pushed.json()["request_uri"]))
    assert answer["iss"] == idp.base_url and answer["state"] == params["state"]
    signer = DpopSigner(DpopKey.generate("ES256"), clock=idp.clock)
    token = exchange(client, answer["code"], dpop=signer)
    assert token.status_code == 200, token.text
    assert token.json()["token_type"] == "DPoP"


def test_a_fapi_client_gets_no_token_without_a_dpop_proof(idp: LiveIdp) -> None:
    client = fapi_client(idp)
    request_uri, _params = client.pushed_request_uri()
    code = client.code(client.authorize_url(request_uri))["code"]
    refused = exchange(client, code)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_dpop_proof", refused.text


def test_a_fapi_client_must_push_its_requests(idp: LiveIdp) -> None:
    client = fapi_client(idp)
    params = client.authorization_params()
    plain = error_at_redirect(authorize(idp, params))
    assert plain["error"] == "invalid_request" and plain["iss"] == idp.base_url
    signed = authorize(
        idp, {"client_id": client.client_id, "request": client.request_object(params), "state": "s"}
    )
    assert error_at_redirect(signed)["error"] == "invalid_request"


@pytest.mark.parametrize(
    "change",
    [
        {"code_challenge": None, "code_challenge_method": None},
        {"code_challenge_method": "plain"},
        {"code_challenge_method": None},
        {"redirect_uri": None},  # FAPI 2.0 §5.3.2.2: required in the pushed request
    ],
    ids=["no-pkce", "plain", "no-method", "no-redirect-uri"],
)
def test_a_fapi_push_needs_pkce_s256_and_a_redirect_uri(idp: LiveIdp, change: dict[str, str | None]) -> None:
    client = fapi_client(idp)
    response = client.push(client.authorization_params(**change))
    assert response.status_code == 400 and response.json()["error"] == "invalid_request", response.text
    # The same without a redirect_uri is fine for an ordinary client with one registered URI.
    if change == {"redirect_uri": None}:
        ordinary = KeyedClient(idp)
        assert ordinary.push(ordinary.authorization_params(redirect_uri=None)).status_code == 201


@pytest.mark.parametrize("path", ENDPOINTS)
def test_client_secrets_are_refused_at_every_endpoint_even_in_an_edited_row(idp: LiveIdp, path: str) -> None:
    client = fapi_client(idp)
    secret = "occs_" + "s" * 40
    # A row edited by hand to hold a secret and claim client_secret_basic: still private_key_jwt only.
    with idp.services.database.session() as session:
        session.execute(
            update(Client)
            .where(Client.client_id == client.client_id)
            .values(
                client_secret_hash=hash_bearer_secret(secret),
                token_endpoint_auth_method="client_secret_basic",
            )
        )
    data: dict[str, Any] = {"token": "x"} if path in ("/introspect", "/revoke") else {}
    if path == "/par":
        data = client.authorization_params()
    elif path == "/token":
        data = {"grant_type": "authorization_code", "code": "c", "redirect_uri": REDIRECT}
    url = f"{idp.base_url}{path}"
    basic = requests.post(url, data=data, auth=(client.client_id, secret), timeout=10)
    post = requests.post(
        url, data={**data, "client_id": client.client_id, "client_secret": secret}, timeout=10
    )
    for response in (basic, post):
        assert response.status_code in (400, 401), response.text
        assert response.json()["error"] == "invalid_client", response.text


@pytest.mark.parametrize(
    ("aud", "alg"),
    [
        ("{issuer}/token", "ES256"),
        ("{issuer}/par", "ES256"),
        (["{issuer}"], "ES256"),
        ("{issuer}", "RS256"),
    ],
    ids=["token-endpoint-aud", "par-endpoint-aud", "aud-as-list", "rs256"],
)
def test_fapi_client_assertions_name_the_issuer_alone_and_use_fapi_algs(
    idp: LiveIdp, aud: Any, alg: str
) -> None:
    client = fapi_client(idp, alg="RS256" if alg == "RS256" else "ES256")
    audience = (
        [a.format(issuer=idp.base_url) for a in aud]
        if isinstance(aud, list)
        else aud.format(issuer=idp.base_url)
    )
    for path in ENDPOINTS[:1] + ENDPOINTS[2:]:
        data = client.authorization_params() if path == "/par" else {"token": "x"}
        response = requests.post(
            f"{idp.base_url}{path}", data={**data, **client.assertion(aud=audience, alg=alg)}, timeout=10
        )
        assert response.status_code in (400, 401) and response.json()["error"] == "invalid_client", (
            response.text
        )
    # An ordinary client may name the endpoint (RFC 7523 §3).
    ordinary = KeyedClient(idp)
    response = ordinary.push(
        ordinary.authorization_params(), auth=ordinary.assertion(aud=f"{idp.base_url}/par")
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("alg", ["PS256", "ES256"])
def test_fapi_client_assertions_with_fapi_algs_authenticate(idp: LiveIdp, alg: str) -> None:
    client = fapi_client(idp, alg=alg)
    response = client.push(client.authorization_params(), auth=client.assertion(alg=alg))
    assert response.status_code == 201, response.text
    introspected = requests.post(
        f"{idp.base_url}/introspect", data={"token": "x", **client.assertion(alg=alg)}, timeout=10
    )
    assert introspected.status_code == 200 and introspected.json() == {"active": False}


def test_a_fapi_code_lives_60_seconds_at_most(idp: LiveIdp) -> None:
    settings = idp.services.settings
    idp.services.settings = settings.replace(authorization_code_ttl=300)
    try:
        fapi = fapi_client(idp)
        ordinary = KeyedClient(idp)
        fapi_code = fapi.code(fapi.authorize_url(fapi.pushed_request_uri()[0]))["code"]
        ordinary_code = ordinary.code(ordinary.authorize_url(ordinary.pushed_request_uri()[0]))["code"]
        idp.clock.advance(61)
        signer = DpopSigner(DpopKey.generate("ES256"), clock=idp.clock)
        expired = exchange(fapi, fapi_code, dpop=signer, wall_clock=True)
        assert expired.status_code == 400 and expired.json()["error"] == "invalid_grant", expired.text
        assert exchange(ordinary, ordinary_code, wall_clock=True).status_code == 200
    finally:
        idp.services.settings = settings


def test_fapi_request_objects_need_nbf_and_fapi_algs(idp: LiveIdp) -> None:
    client = fapi_client(idp, alg="RS256")
    params = client.authorization_params()
    for request_object in (
        client.request_object(params, alg="RS256"),  # RS256 is not a FAPI algorithm
        client.request_object(params, alg="PS256", nbf=None),
    ):
        response = client.push(
            {"client_id": client.client_id, "request": request_object}, auth=client.assertion(alg="PS256")
        )
        assert response.status_code == 400 and response.json()["error"] == "invalid_request_object", (
            response.text
        )
    good = client.push(
        {"client_id": client.client_id, "request": client.request_object(params, alg="PS256")},
        auth=client.assertion(alg="PS256"),
    )
    assert good.status_code == 201, good.text


def test_discovery_holds_what_a_fapi_client_reads(idp: LiveIdp) -> None:
    doc = discovery(idp)
    assert doc["pushed_authorization_request_endpoint"] == f"{idp.base_url}/par"
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["response_types_supported"] == ["code"]
    assert "private_key_jwt" in doc["token_endpoint_auth_methods_supported"]
    for field in (
        "token_endpoint_auth_signing_alg_values_supported",
        "request_object_signing_alg_values_supported",
    ):
        assert {"PS256", "ES256"} <= set(doc[field])
    assert {"PS256", "ES256"} & set(doc["dpop_signing_alg_values_supported"])


@pytest.mark.parametrize("claim", ["sub", "iss", "jti"])
@pytest.mark.parametrize("value", ["\ud800", "oc\x00", "x" * 300])
def test_an_assertion_naming_no_possible_client_is_invalid_client(
    idp: LiveIdp, claim: str, value: str
) -> None:
    """A lone surrogate in ``sub`` reached the client lookup and gave a 500 (review 15, finding 7)."""
    client = KeyedClient(idp)
    claims = {**client.assertion_claims(wall_clock=True), claim: value}
    form = {"client_assertion_type": ASSERTION_TYPE, "client_assertion": client.sign(claims)}
    for path, data in (
        ("/token", {"grant_type": "authorization_code", "code": "c", "redirect_uri": REDIRECT}),
        ("/par", client.authorization_params()),
    ):
        answer = requests.post(f"{idp.base_url}{path}", data={**data, **form}, timeout=10)
        assert answer.status_code in (400, 401), (path, answer.text)
        assert answer.json()["error"] == "invalid_client", (path, answer.text)
