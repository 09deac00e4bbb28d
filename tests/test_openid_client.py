"""A certified relying party against a live OneCard (issue 15, item 4): openid-client 6 (npm, OpenID
Certified) does discovery, private_key_jwt, PAR (RFC 9126), PKCE S256, DPoP (RFC 9449), the code, refresh and
client_credentials grants and userinfo with its own APIs, for a client registered with the FAPI 2.0 profile;
the test plays the citizen's browser (the test login) between the library's steps. On SQLite and on
PostgreSQL + Redis. The PAR and DPoP negative cases in detail are in their own tests; here are those a
library user meets.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from joserfc.jwk import ECKey

from sdk.keys import b64url, generate_key
from tests.support.live import REDIRECT, Browser, LiveIdp, query_of
from tests.support.openid_client import OpenIdClient

SCOPE = "openid profile realname"


@pytest.fixture
def idp(live_idp: LiveIdp) -> LiveIdp:
    return live_idp


def private_key_jwt_client(idp: LiveIdp, scope: str = SCOPE, **flags: bool) -> tuple[str, dict[str, str]]:
    """A client registered for private_key_jwt with a fresh key; returns its client_id and the private JWK
    the library signs its assertions with."""
    key = generate_key("ES256")
    client_id, secret = idp.register_client(
        redirect_uris=(REDIRECT,) if "openid" in scope.split() else (),
        scope=scope,
        token_endpoint_auth_method="private_key_jwt",
        jwks={"keys": [key.public_jwk()]},
        **flags,
    )
    assert secret is None
    private_value = key.private_key.private_numbers().private_value  # type: ignore[union-attr]
    return client_id, {**key.public_jwk(), "d": b64url(private_value.to_bytes(32, "big"))}


def fapi_client(idp: LiveIdp, scope: str = SCOPE) -> tuple[str, dict[str, str]]:
    """A client registered with the FAPI 2.0 Security Profile."""
    return private_key_jwt_client(idp, scope, fapi2_security_profile=True)


def configure(
    openid_client: OpenIdClient, idp: LiveIdp, client_id: str, private_jwk: dict[str, str]
) -> dict[str, Any]:
    return openid_client.call(
        "configure",
        issuer=idp.base_url,
        client_id=client_id,
        auth="private_key_jwt",
        private_jwk=private_jwk,
        redirect_uri=REDIRECT,
    )


def thumbprint(jwk: dict[str, str | list[str]]) -> str:
    """The RFC 7638 thumbprint of the library's DPoP public key, as cnf.jkt must carry it."""
    return str(ECKey.import_key(jwk).thumbprint())


def with_query(url: str, **changes: str | None) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    for name, value in changes.items():
        if value is None:
            query.pop(name, None)
        else:
            query[name] = value
    return urlunsplit(parts._replace(query=urlencode(query)))


def authorize(openid_client: OpenIdClient, idp: LiveIdp, citizen: str = "zhang") -> str:
    """PAR through the library, the citizen's login and consent in the test browser; the callback URL."""
    url = openid_client.call("authorize", redirect_uri=REDIRECT, scope=SCOPE)["url"]
    # The front channel carries a reference to the pushed request, nothing of the request itself.
    assert url.startswith(f"{idp.base_url}/authorize?")
    assert set(query_of(url)) == {"client_id", "request_uri"}
    assert query_of(url)["request_uri"].startswith("urn:ietf:params:oauth:request_uri:")
    callback = Browser(idp).authorize(url, citizen=citizen)
    assert callback.startswith(REDIRECT) and "code=" in callback, callback
    return callback


def test_discovery_tells_the_library_what_a_fapi_client_needs(
    idp: LiveIdp, openid_client: OpenIdClient
) -> None:
    client_id, private_jwk = fapi_client(idp)
    server = configure(openid_client, idp, client_id, private_jwk)["server"]
    assert server["issuer"] == idp.base_url
    assert server["pushed_authorization_request_endpoint"] == f"{idp.base_url}/par"
    assert server["authorization_response_iss_parameter_supported"] is True
    assert "ES256" in server["dpop_signing_alg_values_supported"]
    assert "private_key_jwt" in server["token_endpoint_auth_methods_supported"]
    assert "ES256" in server["token_endpoint_auth_signing_alg_values_supported"]
    assert server["code_challenge_methods_supported"] == ["S256"]


def test_fapi_code_flow_with_par_dpop_and_private_key_jwt(idp: LiveIdp, openid_client: OpenIdClient) -> None:
    client_id, private_jwk = fapi_client(idp)
    dpop_jwk = configure(openid_client, idp, client_id, private_jwk)["dpop_jwk"]
    callback = authorize(openid_client, idp)
    assert query_of(callback)["iss"] == idp.base_url  # RFC 9207

    exchanged = openid_client.call("callback", url=callback)
    tokens, claims = exchanged["tokens"], exchanged["claims"]
    assert tokens["token_type"].lower() == "dpop"  # RFC 9449 §5
    assert tokens["refresh_token"].startswith("ocrt_")
    assert claims["iss"] == idp.base_url and claims["aud"] == client_id
    jkt = thumbprint(dpop_jwk)
    introspected = openid_client.call("introspect", token=tokens["access_token"])["introspection"]
    assert introspected["active"] is True
    assert introspected["client_id"] == client_id
    assert introspected["cnf"] == {"jkt": jkt}  # RFC 9449 §6.2
    assert introspected["token_type"] == "DPoP"

    userinfo = openid_client.call("userinfo")["userinfo"]
    assert userinfo["sub"] == claims["sub"]
    assert userinfo["name"] == "张三"

    refreshed = openid_client.call("refresh")["tokens"]
    assert refreshed["token_type"].lower() == "dpop"
    assert refreshed["access_token"] != tokens["access_token"]
    assert refreshed["refresh_token"] != tokens["refresh_token"]  # rotated
    again = openid_client.call("introspect", token=refreshed["access_token"])["introspection"]
    assert again["active"] is True and again["cnf"] == {"jkt": jkt}
    assert openid_client.call("userinfo")["userinfo"]["sub"] == claims["sub"]


def test_the_library_checks_the_iss_of_the_authorization_response(
    idp: LiveIdp, openid_client: OpenIdClient
) -> None:
    """OneCard advertises RFC 9207, so the library refuses a response without iss, or with another one,
    before it redeems the code — and the genuine response still works afterwards."""
    client_id, private_jwk = fapi_client(idp)
    configure(openid_client, idp, client_id, private_jwk)
    callback = authorize(openid_client, idp)
    for forged in (with_query(callback, iss=None), with_query(callback, iss="https://mix-up.example")):
        error = openid_client.refused("callback", url=forged)
        assert error["code"] == "OAUTH_INVALID_RESPONSE", error
        assert "iss" in error["cause"], error
    assert openid_client.call("callback", url=callback)["tokens"]["token_type"].lower() == "dpop"


def test_a_dpop_bound_token_is_refused_without_its_proof_or_with_another_key(
    idp: LiveIdp, openid_client: OpenIdClient
) -> None:
    client_id, private_jwk = fapi_client(idp)
    configure(openid_client, idp, client_id, private_jwk)
    openid_client.call("callback", url=authorize(openid_client, idp))
    userinfo = f"{idp.base_url}/userinfo"
    # Presented as a Bearer token (the library sends no proof without a DPoP handle): RFC 9449 §7.1.
    bearer = openid_client.refused("resource", url=userinfo, dpop=False)
    assert bearer["status"] == 401 and bearer["error"] == "invalid_token", bearer
    # With a proof, but signed by a key the token is not bound to: the DPoP challenge of RFC 9449 §7.1.
    new_key = openid_client.call("new_dpop_key")["dpop_jwk"]
    other_key = openid_client.refused("userinfo")
    assert other_key["status"] == 401 and other_key["error"] == "invalid_dpop_proof", other_key
    assert [c["scheme"] for c in other_key["challenges"]] == ["dpop"]
    assert "ES256" in other_key["challenges"][0]["parameters"]["algs"].split()
    # A confidential client's refresh token is constrained by its authentication, not by a key (§5): the
    # refresh with the new key binds the new access token to it, and userinfo accepts that pair.
    refreshed = openid_client.call("refresh")["tokens"]
    introspected = openid_client.call("introspect", token=refreshed["access_token"])["introspection"]
    assert introspected["cnf"] == {"jkt": thumbprint(new_key)}
    assert openid_client.call("userinfo")["userinfo"]["name"] == "张三"


def test_a_fapi_clients_code_is_not_redeemed_without_a_proof(
    idp: LiveIdp, openid_client: OpenIdClient
) -> None:
    """The FAPI profile demands DPoP-bound tokens (RFC 9449 §5.2): no proof, no tokens — and the refused
    request burnt nothing, the code still works with a proof."""
    client_id, private_jwk = fapi_client(idp)
    configure(openid_client, idp, client_id, private_jwk)
    callback = authorize(openid_client, idp)
    error = openid_client.refused("callback", url=callback, dpop=False)
    assert error["status"] == 400 and error["error"] == "invalid_dpop_proof", error
    assert openid_client.call("callback", url=callback)["tokens"]["token_type"].lower() == "dpop"
    assert openid_client.refused("refresh", dpop=False)["error"] == "invalid_dpop_proof"


def test_the_code_is_bound_to_the_dpop_key_of_the_pushed_request(
    idp: LiveIdp, openid_client: OpenIdClient
) -> None:
    """The library sends a DPoP proof with the pushed request (RFC 9449 §10): the code it gets can only be
    redeemed with that key."""
    client_id, private_jwk = fapi_client(idp)
    configure(openid_client, idp, client_id, private_jwk)
    callback = authorize(openid_client, idp)
    openid_client.call("new_dpop_key")
    error = openid_client.refused("callback", url=callback)
    assert error["status"] == 400 and error["error"] == "invalid_grant", error


def test_a_fapi_client_is_refused_when_it_tries_a_shared_secret(
    idp: LiveIdp, openid_client: OpenIdClient
) -> None:
    client_id, _ = fapi_client(idp)
    for method in ("client_secret_basic", "client_secret_post"):
        openid_client.call(
            "configure",
            issuer=idp.base_url,
            client_id=client_id,
            auth=method,
            client_secret="occs_guessed",
            redirect_uri=REDIRECT,
        )
        error = openid_client.refused("authorize", redirect_uri=REDIRECT, scope=SCOPE)
        assert error["status"] == 401 and error["error"] == "invalid_client", error


def test_a_fapi_client_must_push_its_authorization_request(idp: LiveIdp, openid_client: OpenIdClient) -> None:
    client_id, private_jwk = fapi_client(idp)
    configure(openid_client, idp, client_id, private_jwk)
    url = openid_client.call("authorize", redirect_uri=REDIRECT, scope=SCOPE, par=False)["url"]
    browser = Browser(idp)
    callback = browser.authorize(url, citizen="zhang")
    # Refused before any login, back to the (registered) redirect URI with the RFC 9126 §6 error.
    assert callback.startswith(REDIRECT), callback
    assert not any("/login/" in page for page in browser.pages), browser.pages
    assert query_of(callback)["error"] == "invalid_request", callback
    assert "code" not in query_of(callback)


def test_client_credentials_with_dpop_for_a_fapi_service_client(
    idp: LiveIdp, openid_client: OpenIdClient
) -> None:
    client_id, private_jwk = fapi_client(idp, scope="admin")
    dpop_jwk = configure(openid_client, idp, client_id, private_jwk)["dpop_jwk"]
    tokens = openid_client.call("client_credentials", scope="admin")["tokens"]
    assert tokens["token_type"].lower() == "dpop"
    assert "refresh_token" not in tokens
    introspected = openid_client.call("introspect", token=tokens["access_token"])["introspection"]
    assert introspected["cnf"] == {"jkt": thumbprint(dpop_jwk)}
    api = f"{idp.base_url}/api/v1/admin/keys/policy"
    ok = openid_client.call("resource", url=api, access_token=tokens["access_token"])
    assert ok["status"] == 200, ok
    bearer = openid_client.refused("resource", url=api, access_token=tokens["access_token"], dpop=False)
    # The JSON APIs' refusal: the scheme in the challenge, the error in OneCard's JSON shape.
    assert bearer["status"] == 401 and bearer["body"]["error"] == "unauthorized", bearer


def test_a_portal_without_the_profile_gets_bearer_tokens_unless_it_sends_a_proof(
    idp: LiveIdp, openid_client: OpenIdClient
) -> None:
    """DPoP is the client's choice where its registration does not demand it (RFC 9449 §5): the same
    library, a private_key_jwt portal, the plain front-channel request."""
    client_id, private_jwk = private_key_jwt_client(idp)
    dpop_jwk = configure(openid_client, idp, client_id, private_jwk)["dpop_jwk"]
    for dpop in (False, True):
        url = openid_client.call("authorize", redirect_uri=REDIRECT, scope=SCOPE, par=False)["url"]
        callback = Browser(idp).authorize(url, citizen="li")
        tokens = openid_client.call("callback", url=callback, dpop=dpop)["tokens"]
        assert tokens["token_type"].lower() == ("dpop" if dpop else "bearer")
        introspected = openid_client.call("introspect", token=tokens["access_token"])["introspection"]
        assert introspected.get("cnf") == ({"jkt": thumbprint(dpop_jwk)} if dpop else None)
        assert openid_client.call("userinfo", dpop=dpop)["userinfo"]["name"] == "李四"


def test_signed_request_objects_pushed_through_par(idp: LiveIdp, openid_client: OpenIdClient) -> None:
    """FAPI 2.0 Message Signing: the library signs the request (JAR, RFC 9101) with the client's key and
    pushes the request object; a client registered for it cannot push unsigned parameters."""
    client_id, private_jwk = private_key_jwt_client(
        idp, fapi2_security_profile=True, require_signed_request_object=True
    )
    configure(openid_client, idp, client_id, private_jwk)
    unsigned = openid_client.refused("authorize", redirect_uri=REDIRECT, scope=SCOPE)
    assert unsigned["status"] == 400 and unsigned["error"] == "invalid_request", unsigned
    url = openid_client.call("authorize", redirect_uri=REDIRECT, scope=SCOPE, jar=True)["url"]
    assert set(query_of(url)) == {"client_id", "request_uri"}
    callback = Browser(idp).authorize(url, citizen="zhang")
    exchanged = openid_client.call("callback", url=callback)
    assert exchanged["tokens"]["token_type"].lower() == "dpop"
    assert openid_client.call("userinfo")["userinfo"]["name"] == "张三"


def test_a_signed_request_object_in_the_front_channel(idp: LiveIdp, openid_client: OpenIdClient) -> None:
    """JAR without PAR (RFC 9101 §5.1) for a client that is not FAPI but asks for signed requests."""
    client_id, private_jwk = private_key_jwt_client(idp, require_signed_request_object=True)
    configure(openid_client, idp, client_id, private_jwk)
    url = openid_client.call("authorize", redirect_uri=REDIRECT, scope=SCOPE, jar=True, par=False)["url"]
    assert set(query_of(url)) == {"client_id", "request"}
    exchanged = openid_client.call("callback", url=Browser(idp).authorize(url, citizen="li"))
    assert exchanged["claims"]["aud"] == client_id
    unsigned = openid_client.call("authorize", redirect_uri=REDIRECT, scope=SCOPE, par=False)["url"]
    refused = query_of(Browser(idp).authorize(unsigned, citizen="li"))
    assert refused["error"] == "invalid_request" and "code" not in refused, refused
