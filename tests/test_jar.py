"""Signed authorization requests (JAR, RFC 9101; FAPI 2.0 Message Signing, issue 15 item 3), attacked: a
request object by value at /authorize or inside a pushed request stands for the request, and one that is
unsigned, MACed, signed by another key or with an unadvertised algorithm, expired, not yet valid, too long
lived, for another audience, from another issuer, of another type, or nesting request/request_uri is refused
with ``invalid_request_object``; a client registered with ``require_signed_request_object`` sends nothing
else. On SQLite and on PostgreSQL + Redis."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
import requests

from tests.support.fapi import KeyedClient, authorize, discovery, error_at_redirect
from tests.support.live import REDIRECT, Browser, LiveIdp, query_of


@pytest.fixture
def idp(live_idp: LiveIdp) -> LiveIdp:
    return live_idp


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(claims: dict[str, Any], alg: str = "none", secret: bytes = b"") -> str:
    header = b64(json.dumps({"alg": alg, "kid": "k1"}).encode())
    signing_input = f"{header}.{b64(json.dumps(claims).encode())}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest() if alg == "HS256" else b""
    return f"{signing_input}.{b64(mac)}"


def by_value(client: KeyedClient, request_object: str, state: str = "outer") -> requests.Response:
    return authorize(client.idp, {"client_id": client.client_id, "request": request_object, "state": state})


def test_a_request_object_by_value_stands_for_the_request(idp: LiveIdp) -> None:
    client = KeyedClient(idp)
    params = client.authorization_params(scope="openid profile", max_age=None)
    request_object = client.request_object({**params, "max_age": 3600, "claims": {"id_token": {"acr": None}}})
    query = {"client_id": client.client_id, "request": request_object, "scope": "openid", "state": "ignored"}
    final = Browser(idp).authorize(
        f"{idp.base_url}/authorize?" + requests.compat.urlencode(query), citizen="zhang"
    )
    answer = query_of(final)
    assert final.startswith(REDIRECT + "?") and answer["code"] and answer["state"] == params["state"]
    token = requests.post(
        f"{idp.base_url}/token",
        data={
            "grant_type": "authorization_code",
            "code": answer["code"],
            "redirect_uri": REDIRECT,
            "code_verifier": client.verifier,
            **client.assertion(),
        },
        timeout=10,
    )
    assert token.status_code == 200 and token.json()["scope"] == "openid profile", token.text


def test_a_request_object_inside_a_pushed_request(idp: LiveIdp) -> None:
    client = KeyedClient(idp)
    params = client.authorization_params()
    response = client.push({"client_id": client.client_id, "request": client.request_object(params)})
    assert response.status_code == 201, response.text
    answer = client.code(client.authorize_url(response.json()["request_uri"]))
    assert answer["code"] and answer["state"] == params["state"]


def _bad_request_objects(client: KeyedClient, other: KeyedClient) -> dict[str, str]:
    params = client.authorization_params()
    now = int(client.idp.clock())
    claims = {"iss": client.client_id, "aud": client.idp.base_url, "exp": now + 300, **params}
    return {
        "none": unsigned(claims),
        "hs256-with-the-public-key": unsigned(claims, "HS256", json.dumps(client.jwk).encode()),
        "another-key": other.sign({**claims}, typ="oauth-authz-req+jwt"),
        "garbage": "not.a.jwt",
        "expired": client.request_object(params, exp=now - 120, nbf=now - 600),
        "no-exp": client.request_object(params, exp=None),
        "not-yet-valid": client.request_object(params, nbf=now + 600, exp=now + 900),
        "lives-too-long": client.request_object(params, nbf=now - 5, exp=now + 7200),
        "wrong-aud": client.request_object(params, aud="https://other-idp.example"),
        "token-endpoint-aud": client.request_object(params, aud=f"{client.idp.base_url}/token"),
        "no-aud": client.request_object(params, aud=None),
        "wrong-iss": client.request_object(params, iss=other.client_id),
        "other-client-id": client.request_object({**params, "client_id": other.client_id}),
        "dpop-typ": client.request_object(params, typ="dpop+jwt"),
        "access-token-typ": client.request_object(params, typ="at+jwt"),
        "nested-request": client.request_object({**params, "request": "x"}),
        "nested-request-uri": client.request_object({**params, "request_uri": "urn:x"}),
        "bad-claim-type": client.request_object({**params, "scope": ["openid"]}),
        "too-long": "a" * 20_000,
        # Text no parameter can hold (review 15, finding 2: a lone surrogate gave a 500 at /par).
        "surrogate-state": client.request_object({**params, "state": "\ud800"}),
        "nul-in-scope": client.request_object({**params, "scope": "openid\x00"}),
        "surrogate-claim-name": client.request_object({**params, "x\ud800": "1"}),
        "surrogate-in-claims": client.request_object({**params, "claims": {"id_token": {"\ud800": None}}}),
        # exp caps the lifetime whether or not nbf is there (review 15, finding 5).
        "no-nbf-lives-for-ever": client.request_object(params, nbf=None, exp=now + 10**9),
        "no-nbf-exp-beyond-an-hour": client.request_object(params, nbf=None, exp=now + 3600 + 120),
    }


BAD = [
    "none",
    "hs256-with-the-public-key",
    "another-key",
    "garbage",
    "expired",
    "no-exp",
    "not-yet-valid",
    "lives-too-long",
    "wrong-aud",
    "token-endpoint-aud",
    "no-aud",
    "wrong-iss",
    "other-client-id",
    "dpop-typ",
    "access-token-typ",
    "nested-request",
    "nested-request-uri",
    "bad-claim-type",
    "too-long",
    "surrogate-state",
    "nul-in-scope",
    "surrogate-claim-name",
    "surrogate-in-claims",
    "no-nbf-lives-for-ever",
    "no-nbf-exp-beyond-an-hour",
]


@pytest.mark.parametrize("case", BAD)
def test_bad_request_objects_are_refused_at_the_authorization_endpoint(idp: LiveIdp, case: str) -> None:
    client = KeyedClient(idp)
    bad = _bad_request_objects(client, KeyedClient(idp))[case]
    answer = error_at_redirect(by_value(client, bad))
    assert answer["error"] == "invalid_request_object", answer
    assert answer["iss"] == idp.base_url and answer["state"] == "outer"


@pytest.mark.parametrize("case", BAD)
def test_bad_request_objects_are_refused_when_pushed(idp: LiveIdp, case: str) -> None:
    client = KeyedClient(idp)
    bad = _bad_request_objects(client, KeyedClient(idp))[case]
    response = client.push({"client_id": client.client_id, "request": bad})
    assert response.status_code == 400 and "Location" not in response.headers
    assert response.json()["error"] == "invalid_request_object", response.text


def test_request_and_request_uri_exclude_each_other(idp: LiveIdp) -> None:
    client = KeyedClient(idp)
    request_object = client.request_object(client.authorization_params())
    query = {"client_id": client.client_id, "request": request_object, "request_uri": "urn:x", "state": "s"}
    assert error_at_redirect(authorize(idp, query))["error"] == "invalid_request"


def test_a_client_without_keys_cannot_sign_request_objects(idp: LiveIdp) -> None:
    signer = KeyedClient(idp)
    client_id, _secret = idp.register_client(redirect_uris=(REDIRECT,), scope="openid")
    params = signer.authorization_params(client_id=client_id)
    request_object = signer.request_object(params, iss=client_id)
    answer = error_at_redirect(authorize(idp, {"client_id": client_id, "request": request_object}))
    assert answer["error"] == "invalid_request_object"


def test_a_client_that_requires_signed_request_objects_sends_nothing_else(idp: LiveIdp) -> None:
    client = KeyedClient(idp, require_signed_request_object=True)
    params = client.authorization_params()
    answer = error_at_redirect(authorize(idp, params))
    assert answer["error"] == "invalid_request" and answer["state"] == params["state"]
    plain_push = client.push(params)
    assert plain_push.status_code == 400 and plain_push.json()["error"] == "invalid_request"
    signed = client.push({"client_id": client.client_id, "request": client.request_object(params)})
    assert signed.status_code == 201, signed.text
    assert client.code(client.authorize_url(signed.json()["request_uri"]))["code"]
    assert client.code(
        f"{idp.base_url}/authorize?"
        + requests.compat.urlencode({"client_id": client.client_id, "request": client.request_object(params)})
    )["code"]


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256"])
def test_each_advertised_request_object_alg_is_accepted(idp: LiveIdp, alg: str) -> None:
    doc = discovery(idp)
    assert doc["request_parameter_supported"] is True
    assert doc["request_object_signing_alg_values_supported"] == ["RS256", "PS256", "ES256"]
    assert doc["require_signed_request_object"] is False
    client = KeyedClient(idp, alg=alg)
    params = client.authorization_params()
    response = by_value(client, client.request_object(params))
    assert response.status_code == 303 and response.headers["Location"].startswith("/login/"), response.text


@pytest.mark.parametrize("alg", ["RS512", "PS384"])
def test_request_object_algs_not_advertised_are_refused(idp: LiveIdp, alg: str) -> None:
    assert alg not in discovery(idp)["request_object_signing_alg_values_supported"]
    client = KeyedClient(idp, alg="RS256")
    response = by_value(client, client.request_object(client.authorization_params(), alg=alg))
    assert error_at_redirect(response)["error"] == "invalid_request_object"


def test_a_request_object_with_a_jti_is_accepted_once(idp: LiveIdp) -> None:
    """A signed request that leaked through the browser is not replayed while it lives (RFC 9101 §10.8)."""
    client = KeyedClient(idp)
    request_object = client.request_object({**client.authorization_params(), "jti": "ro-1"})
    first = by_value(client, request_object)
    assert first.status_code in (302, 303) and "error=" not in first.headers["Location"], first.headers
    answer = error_at_redirect(by_value(client, request_object))
    assert answer["error"] == "invalid_request_object", answer
    other = KeyedClient(idp)  # another client's jti of the same value is its own
    second = by_value(other, other.request_object({**other.authorization_params(), "jti": "ro-1"}))
    assert "error=" not in second.headers["Location"]
