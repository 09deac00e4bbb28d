"""DPoP at the token endpoint and in introspection (RFC 9449 §4–§6, §8), attacked: replayed proofs (at one
node and across two), proofs for another URL or method, stale and future ones, private keys and symmetric or
absent algorithms, missing nonces, clients that must use DPoP, and refresh tokens bound to another key.
On SQLite and on PostgreSQL + Redis."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from authlib.common.security import generate_token
from cryptography.hazmat.primitives.asymmetric import ec

from idp.grants.model import Grant
from idp.oauth.dpop import (
    CLOCK_SKEW,
    PROOF_MAX_AGE,
    DpopFailure,
    InvalidDpopProofError,
    UseDpopNonceError,
    verify_dpop_proof,
)
from idp.oauth.dpop_nonce import DpopNonces
from idp.stores.base import EphemeralStore
from sdk.dpop import DpopKey, DpopSigner, access_token_hash, normalize_htu
from sdk.keys import b64url
from tests.support.dpop import claims_of, code_flow, nonce_of, operator, proof_for, token_request
from tests.support.live import REDIRECT, Browser, LiveIdp, portal, query_of, running_idp
from tests.support.nodes import migrated_deployment, running_nodes

NOW = 1_800_000_000.0


def introspect(idp: LiveIdp, auth: tuple[str, str], token: str) -> dict[str, Any]:
    response = requests.post(f"{idp.base_url}/introspect", auth=auth, data={"token": token}, timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_valid_proof_binds_the_access_token_and_introspection_says_so(live_idp: LiveIdp) -> None:
    auth = operator(live_idp)
    key = DpopKey.generate()
    response = token_request(live_idp, auth, proof_for(live_idp, key))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "DPoP"
    assert claims_of(body["access_token"])["cnf"] == {"jkt": key.thumbprint}
    assert response.headers["DPoP-Nonce"]  # the next proof's nonce, without a refusal first (§8.2)
    introspected = introspect(live_idp, auth, body["access_token"])
    assert introspected["active"] is True
    assert introspected["token_type"] == "DPoP" and introspected["cnf"] == {"jkt": key.thumbprint}


def test_without_a_proof_a_bearer_token_as_before(live_idp: LiveIdp) -> None:
    auth = operator(live_idp)
    body = token_request(live_idp, auth, None).json()
    assert body["token_type"] == "Bearer" and "cnf" not in claims_of(body["access_token"])
    assert introspect(live_idp, auth, body["access_token"])["token_type"] == "Bearer"


def test_a_proof_without_the_nonce_is_answered_with_one(live_idp: LiveIdp) -> None:
    auth = operator(live_idp)
    key = DpopKey.generate()
    refused = token_request(live_idp, auth, proof_for(live_idp, key, nonce=None))
    assert refused.status_code == 400 and refused.json()["error"] == "use_dpop_nonce"
    nonce = refused.headers["DPoP-Nonce"]
    wrong = token_request(live_idp, auth, proof_for(live_idp, key, nonce="not-the-nonce"))
    assert wrong.json()["error"] == "use_dpop_nonce"
    accepted = token_request(live_idp, auth, proof_for(live_idp, key, nonce=nonce))
    assert accepted.status_code == 200 and accepted.json()["token_type"] == "DPoP"


def test_the_signer_retries_once_with_the_servers_nonce(live_idp: LiveIdp) -> None:
    auth = operator(live_idp)
    signer = DpopSigner(DpopKey.generate(), clock=live_idp.clock)
    url = f"{live_idp.base_url}/token"
    sent: list[dict[str, str]] = []

    def send(headers: dict[str, str]) -> requests.Response:
        sent.append(headers)
        data = {"grant_type": "client_credentials"}
        return requests.post(url, auth=auth, data=data, headers=headers, timeout=10)

    assert signer.send("POST", url, send).json()["token_type"] == "DPoP"
    assert len(sent) == 2  # refused for want of the nonce, then accepted
    assert signer.send("POST", url, send).status_code == 200
    assert len(sent) == 3  # the nonce the last answer named was used straight away


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return b64url(json.dumps(value).encode())

    return f"{part(header)}.{part(claims)}."


def _private_jwk_proof(idp: LiveIdp, key: DpopKey) -> str:
    assert isinstance(key.private_key, ec.EllipticCurvePrivateKey)
    d = key.private_key.private_numbers().private_value.to_bytes(32, "big")
    claims = {
        "jti": generate_token(16),
        "htm": "POST",
        "htu": f"{idp.base_url}/token",
        "iat": int(idp.clock()),
    }
    claims["nonce"] = nonce_of(idp)
    header = {"typ": "dpop+jwt", "jwk": {**key.public_jwk, "d": b64url(d)}}
    return jwt.encode(claims, key.private_key, algorithm="ES256", headers=header)


def _hs256_proof(idp: LiveIdp) -> str:
    secret = b"0123456789abcdef0123456789abcdef"
    claims = {
        "jti": generate_token(16),
        "htm": "POST",
        "htu": f"{idp.base_url}/token",
        "iat": int(idp.clock()),
    }
    claims["nonce"] = nonce_of(idp)
    jwk = {"kty": "oct", "k": base64.urlsafe_b64encode(secret).decode().rstrip("=")}
    return jwt.encode(claims, secret, algorithm="HS256", headers={"typ": "dpop+jwt", "jwk": jwk})


def _none_proof(idp: LiveIdp, key: DpopKey) -> str:
    claims = {
        "jti": generate_token(16),
        "htm": "POST",
        "htu": f"{idp.base_url}/token",
        "iat": int(idp.clock()),
    }
    claims["nonce"] = nonce_of(idp)
    return _unsigned({"typ": "dpop+jwt", "alg": "none", "jwk": key.public_jwk}, claims)


def _wrong_type_proof(idp: LiveIdp, key: DpopKey) -> str:
    claims = {
        "jti": generate_token(16),
        "htm": "POST",
        "htu": f"{idp.base_url}/token",
        "iat": int(idp.clock()),
    }
    claims["nonce"] = nonce_of(idp)
    headers = {"typ": "JWT", "jwk": key.public_jwk}
    return jwt.encode(claims, key.private_key, algorithm="ES256", headers=headers)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda idp, key: proof_for(idp, key, url=f"{idp.base_url}/userinfo"), id="another-url"),
        pytest.param(
            lambda idp, key: proof_for(idp, key, url="https://evil.example/token"), id="another-host"
        ),
        pytest.param(lambda idp, key: proof_for(idp, key, method="GET"), id="another-method"),
        pytest.param(lambda idp, key: proof_for(idp, key, now=idp.clock() - PROOF_MAX_AGE - 5), id="expired"),
        pytest.param(lambda idp, key: proof_for(idp, key, now=idp.clock() + CLOCK_SKEW + 30), id="future"),
        pytest.param(_private_jwk_proof, id="private-key-in-jwk"),
        pytest.param(lambda idp, key: _hs256_proof(idp), id="hs256"),
        pytest.param(_none_proof, id="alg-none"),
        pytest.param(_wrong_type_proof, id="typ-jwt"),
        pytest.param(lambda idp, key: "not a jwt", id="garbage"),
    ],
)
def test_a_bad_proof_is_refused_and_changes_nothing(live_idp: LiveIdp, make: Any) -> None:
    client = portal(live_idp)
    browser = Browser(live_idp)
    verifier = generate_token(48)
    url, _state = client.create_authorization_url(f"{live_idp.base_url}/authorize", code_verifier=verifier)
    code = query_of(browser.authorize(url, citizen="zhang"))["code"]
    auth = (client.client_id, client.client_secret)
    exchange = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    exchange["code_verifier"] = verifier
    refused = token_request(live_idp, auth, make(live_idp, DpopKey.generate()), exchange)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_dpop_proof", refused.text
    # The code was not consumed: the same exchange with a good proof still works.
    key = DpopKey.generate()
    accepted = token_request(live_idp, auth, proof_for(live_idp, key), exchange)
    assert accepted.status_code == 200 and accepted.json()["token_type"] == "DPoP", accepted.text


def test_two_dpop_headers_are_refused(live_idp: LiveIdp) -> None:
    """§4.3 item 1: one DPoP header (two arrive joined by a comma, as a proxy folds them)."""
    auth = operator(live_idp)
    key = DpopKey.generate()
    both = f"{proof_for(live_idp, key)}, {proof_for(live_idp, key)}"
    assert token_request(live_idp, auth, both).json()["error"] == "invalid_dpop_proof"


def test_a_replayed_proof_is_refused(live_idp: LiveIdp) -> None:
    auth = operator(live_idp)
    proof = proof_for(live_idp, DpopKey.generate())
    assert token_request(live_idp, auth, proof).status_code == 200
    replay = token_request(live_idp, auth, proof)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_dpop_proof"


def test_a_client_registered_for_dpop_gets_nothing_without_a_proof(live_idp: LiveIdp) -> None:
    auth = operator(live_idp, dpop_bound_access_tokens=True)
    refused = token_request(live_idp, auth, None)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_dpop_proof"
    accepted = token_request(live_idp, auth, proof_for(live_idp, DpopKey.generate()))
    assert accepted.status_code == 200 and accepted.json()["token_type"] == "DPoP"


def test_a_confidential_clients_refresh_may_bind_a_new_key(live_idp: LiveIdp) -> None:
    """RFC 9449 §5: a confidential client's refresh token is constrained by its authentication, not a key."""
    first, second = DpopKey.generate(), DpopKey.generate()
    auth, tokens = code_flow(live_idp, first, dpop_bound_access_tokens=True)
    assert claims_of(tokens["access_token"])["cnf"]["jkt"] == first.thumbprint
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    without = token_request(live_idp, auth, None, refresh)
    assert without.json()["error"] == "invalid_dpop_proof"  # registered for DPoP: every token is bound
    renewed = token_request(live_idp, auth, proof_for(live_idp, second), refresh)
    assert renewed.status_code == 200, renewed.text
    assert claims_of(renewed.json()["access_token"])["cnf"]["jkt"] == second.thumbprint


def test_a_grant_issued_with_dpop_refreshes_only_with_a_proof(live_idp: LiveIdp) -> None:
    """A client not registered for DPoP that started its grant with a proof keeps it DPoP-bound: a refresh
    without a proof is refused (it once came back as a Bearer token, review 15 finding 3) and changes
    nothing; with a proof of any key (RFC 9449 §5: a confidential client's refresh token is constrained by
    its authentication) the new access token is bound to that key."""
    first, second = DpopKey.generate(), DpopKey.generate()
    auth, tokens = code_flow(live_idp, first)
    assert tokens["token_type"] == "DPoP"
    with live_idp.services.database.session() as session:
        grant = session.get(Grant, claims_of(tokens["access_token"])["gid"])
        assert grant is not None and grant.dpop_jkt == first.thumbprint  # recorded by the code exchange
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    refused = token_request(live_idp, auth, None, refresh)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_dpop_proof", refused.text
    assert introspect(live_idp, auth, tokens["refresh_token"])["active"] is True  # not spent
    renewed = token_request(live_idp, auth, proof_for(live_idp, second), refresh)
    assert renewed.status_code == 200, renewed.text
    body = renewed.json()
    assert body["token_type"] == "DPoP" and claims_of(body["access_token"])["cnf"]["jkt"] == second.thumbprint
    again = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
    assert token_request(live_idp, auth, None, again).json()["error"] == "invalid_dpop_proof"  # still bound


def test_a_grant_issued_without_dpop_refreshes_as_bearer(live_idp: LiveIdp) -> None:
    auth, tokens = code_flow(live_idp, None)
    assert tokens["token_type"] == "Bearer"
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    renewed = token_request(live_idp, auth, None, refresh)
    assert renewed.status_code == 200 and renewed.json()["token_type"] == "Bearer", renewed.text


def test_revocation_ends_a_dpop_bound_token(live_idp: LiveIdp) -> None:
    auth = operator(live_idp)
    token = token_request(live_idp, auth, proof_for(live_idp, DpopKey.generate())).json()["access_token"]
    revoked = requests.post(f"{live_idp.base_url}/revoke", auth=auth, data={"token": token}, timeout=10)
    assert revoked.status_code == 200
    assert introspect(live_idp, auth, token) == {"active": False}


def test_discovery_advertises_the_algorithms_the_verifier_accepts(idp: LiveIdp) -> None:
    doc = requests.get(f"{idp.base_url}/.well-known/openid-configuration", timeout=10).json()
    assert doc["dpop_signing_alg_values_supported"] == ["ES256", "EdDSA", "PS256", "RS256"]
    auth = operator(idp)
    for alg in doc["dpop_signing_alg_values_supported"]:
        response = token_request(idp, auth, proof_for(idp, DpopKey.generate(alg)))
        assert response.status_code == 200 and response.json()["token_type"] == "DPoP", (alg, response.text)


def test_nonces_can_be_switched_off(tmp_path: Path) -> None:
    with running_idp(f"sqlite:///{tmp_path}/idp.sqlite3", dpop_require_nonce=False) as idp:
        auth = operator(idp)
        response = token_request(idp, auth, proof_for(idp, DpopKey.generate(), nonce=None))
        assert response.status_code == 200 and response.json()["token_type"] == "DPoP"
        assert "DPoP-Nonce" not in response.headers


# -- the verifier itself, on every store


def test_verifier_reasons(store: EphemeralStore) -> None:
    key = DpopKey.generate()
    url = "https://idp.example.gov.cn/token"

    def verify(proof: str, **kwargs: Any) -> Any:
        kwargs.setdefault("now", NOW)
        return verify_dpop_proof(proof, expected_method="POST", expected_url=url, store=store, **kwargs)

    def reason(proof: str, **kwargs: Any) -> DpopFailure:
        with pytest.raises(InvalidDpopProofError) as refused:
            verify(proof, **kwargs)
        return refused.value.reason

    proof = key.create_proof("POST", url + "?x=1#f", now=NOW)  # query and fragment are not compared
    assert verify(proof).jkt == key.thumbprint
    assert reason(proof) is DpopFailure.REPLAYED
    assert (
        verify(key.create_proof("POST", "https://IDP.example.gov.cn:443/token", now=NOW)).jkt
        == key.thumbprint
    )
    token = "an-access-token"
    assert (
        reason(key.create_proof("POST", url, now=NOW), expected_access_token=token)
        is DpopFailure.WRONG_ACCESS_TOKEN
    )
    other = key.create_proof("POST", url, now=NOW, access_token="another-token")
    assert reason(other, expected_access_token=token) is DpopFailure.WRONG_ACCESS_TOKEN
    good = key.create_proof("POST", url, now=NOW, access_token=token)
    assert verify(good, expected_access_token=token, expected_jkt=key.thumbprint).jkt == key.thumbprint
    by_other_key = DpopKey.generate().create_proof("POST", url, now=NOW, access_token=token)
    assert (
        reason(by_other_key, expected_access_token=token, expected_jkt=key.thumbprint)
        is DpopFailure.WRONG_KEY
    )
    assert reason(key.create_proof("POST", url, now=NOW - PROOF_MAX_AGE - 1)) is DpopFailure.STALE
    assert reason(key.create_proof("POST", url, now=NOW + CLOCK_SKEW + 1)) is DpopFailure.FUTURE
    assert reason(key.create_proof("PUT", url, now=NOW)) is DpopFailure.WRONG_METHOD
    assert reason(key.create_proof("POST", url + "/x", now=NOW)) is DpopFailure.WRONG_URL


def test_a_proof_is_one_time_until_its_iat_has_passed(store: EphemeralStore) -> None:
    key = DpopKey.generate()
    url = "https://idp.example.gov.cn/token"
    proof = key.create_proof("POST", url, now=NOW)
    verify_dpop_proof(proof, expected_method="POST", expected_url=url, store=store, now=NOW)
    for later in (NOW + 1, NOW + PROOF_MAX_AGE):
        with pytest.raises(InvalidDpopProofError) as refused:
            verify_dpop_proof(proof, expected_method="POST", expected_url=url, store=store, now=later)
        assert refused.value.reason is DpopFailure.REPLAYED
    with pytest.raises(InvalidDpopProofError) as refused:
        verify_dpop_proof(
            proof, expected_method="POST", expected_url=url, store=store, now=NOW + PROOF_MAX_AGE + 1
        )
    assert refused.value.reason is DpopFailure.STALE


def test_nonces_are_shared_and_live_two_windows(store: EphemeralStore) -> None:
    a, b = DpopNonces(store, lifetime=300), DpopNonces(store, lifetime=300)  # two nodes, one store
    start = 300 * (NOW // 300)
    nonce = a.current(now=start)
    assert b.current(now=start + 299) == nonce
    assert b.is_current(nonce, now=start + 599) and not b.is_current(nonce, now=start + 600)
    assert b.current(now=start + 300) != nonce
    assert not a.is_current(None, now=start) and not a.is_current("x" * 100, now=start)
    key = DpopKey.generate()
    url = "https://idp.example.gov.cn/token"
    with pytest.raises(UseDpopNonceError) as refused:
        verify_dpop_proof(
            key.create_proof("POST", url, now=start),
            expected_method="POST",
            expected_url=url,
            store=store,
            now=start,
            nonces=a,
        )
    assert refused.value.nonce == nonce
    assert ("DPoP-Nonce", nonce) in refused.value.get_headers()


def test_htu_normalisation() -> None:
    assert normalize_htu("HTTPS://Idp.Example:443?q#f") == "https://idp.example/"
    assert normalize_htu("http://idp.example:8080/token?x") == "http://idp.example:8080/token"
    for bad in ("ftp://idp.example/", "/token", "https://user@idp.example/", "https://idp.example:x/"):
        with pytest.raises(ValueError):
            normalize_htu(bad)
    assert access_token_hash("abc") == b64url(hashlib.sha256(b"abc").digest())


# -- two nodes, one store


@pytest.fixture
def nodes(postgres_url: str, redis_url: str, tmp_path: Path) -> Iterator[tuple[list[Any], tuple[str, str]]]:
    from idp.clients.service import ClientRegistration, create_client

    with migrated_deployment(postgres_url, redis_url, label="oc-dpop") as (svc, prefix):
        with svc.database.session() as session:
            client, secret = create_client(
                session,
                ClientRegistration(name="Operator", kind="operator", scope="realname:verify"),
                now=svc.now(),
            )
            auth = (client.client_id, str(secret))
        svc.database.dispose()
        with running_nodes(postgres_url, redis_url, prefix, log_dir=tmp_path) as running:
            yield running, auth


@pytest.mark.postgres
@pytest.mark.redis
def test_a_proof_used_at_one_node_is_a_replay_at_the_other(nodes: tuple[list[Any], tuple[str, str]]) -> None:
    running, auth = nodes
    issuer = running[0].url  # both nodes answer for the one issuer
    key = DpopKey.generate()
    data = {"grant_type": "client_credentials"}

    def post(node: Any, proof: str) -> requests.Response:
        return requests.post(f"{node.url}/token", auth=auth, data=data, headers={"DPoP": proof}, timeout=10)

    first = post(running[0], key.create_proof("POST", f"{issuer}/token", now=time.time()))
    assert first.json()["error"] == "use_dpop_nonce"
    nonce = first.headers["DPoP-Nonce"]  # node A's; node B knows the same nonce
    proof = key.create_proof("POST", f"{issuer}/token", now=time.time(), nonce=nonce)
    answers = [post(node, proof) for node in (running[1], running[0])]
    assert answers[0].status_code == 200 and answers[0].json()["token_type"] == "DPoP", answers[0].text
    assert answers[1].status_code == 400 and answers[1].json()["error"] == "invalid_dpop_proof"


def test_a_code_requested_with_dpop_jkt_is_redeemed_only_with_that_key(live_idp: LiveIdp) -> None:
    """RFC 9449 §10: the authorization code is bound to the key named at the authorization endpoint."""
    key, other = DpopKey.generate(), DpopKey.generate()
    client = portal(live_idp)
    verifier = generate_token(48)
    url, _state = client.create_authorization_url(
        f"{live_idp.base_url}/authorize", code_verifier=verifier, dpop_jkt=key.thumbprint
    )
    code = query_of(Browser(live_idp).authorize(url, citizen="zhang"))["code"]
    auth = (client.client_id, str(client.client_secret))
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    for proof in (None, proof_for(live_idp, other)):
        refused = token_request(live_idp, auth, proof, data)
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant", refused.text
    accepted = token_request(live_idp, auth, proof_for(live_idp, key), data)
    assert accepted.status_code == 200, accepted.text
    assert claims_of(accepted.json()["access_token"])["cnf"]["jkt"] == key.thumbprint


def test_a_malformed_dpop_jkt_is_refused_before_any_login(idp: LiveIdp) -> None:
    client = portal(idp)
    url, state = client.create_authorization_url(
        f"{idp.base_url}/authorize", code_verifier=generate_token(48), dpop_jkt="not-a-thumbprint"
    )
    answer = requests.get(url, allow_redirects=False, timeout=10)
    assert answer.status_code == 302
    params = query_of(answer.headers["Location"])
    assert params["error"] == "invalid_request" and params["state"] == state


def test_a_pushed_request_with_a_proof_binds_its_code_to_that_key(live_idp: LiveIdp) -> None:
    """RFC 9449 §10.1: the DPoP proof of a pushed authorization request stands for ``dpop_jkt``."""
    key, other = DpopKey.generate(), DpopKey.generate()
    client = portal(live_idp)
    auth = (client.client_id, str(client.client_secret))
    verifier = generate_token(48)
    url, _state = client.create_authorization_url(f"{live_idp.base_url}/authorize", code_verifier=verifier)
    params = query_of(url)
    par = f"{live_idp.base_url}/par"

    def push(form: dict[str, str]) -> requests.Response:
        proof = proof_for(live_idp, key, url=par)
        return requests.post(par, auth=auth, data=form, headers={"DPoP": proof}, timeout=10)

    refused = push({**params, "dpop_jkt": other.thumbprint})
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_dpop_proof", refused.text
    pushed = push(params)
    assert pushed.status_code == 201, pushed.text
    assert pushed.headers["DPoP-Nonce"]
    request_uri = pushed.json()["request_uri"]
    front = f"{live_idp.base_url}/authorize?client_id={client.client_id}&request_uri={request_uri}"
    code = query_of(Browser(live_idp).authorize(front, citizen="zhang"))["code"]
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    assert token_request(live_idp, auth, proof_for(live_idp, other), data).json()["error"] == "invalid_grant"
    accepted = token_request(live_idp, auth, proof_for(live_idp, key), data)
    assert (
        accepted.status_code == 200
        and claims_of(accepted.json()["access_token"])["cnf"]["jkt"] == key.thumbprint
    )


def _signed(key: DpopKey, claims: dict[str, Any], **header: Any) -> str:
    headers = {"typ": "dpop+jwt", "jwk": key.public_jwk, **header}
    return jwt.encode(claims, key.private_key, algorithm="ES256", headers=headers)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("claims", "header", "expected"),
    [
        ({"iat": float("nan")}, {}, DpopFailure.MISSING_CLAIM),
        ({"iat": float("inf")}, {}, DpopFailure.MISSING_CLAIM),
        ({"iat": 10**30}, {}, DpopFailure.FUTURE),
        ({"iat": True}, {}, DpopFailure.MISSING_CLAIM),
        ({"iat": "1800000000"}, {}, DpopFailure.MISSING_CLAIM),
        ({"jti": ""}, {}, DpopFailure.MISSING_CLAIM),
        ({"jti": ["x"]}, {}, DpopFailure.MISSING_CLAIM),
        ({"htm": None}, {}, DpopFailure.MISSING_CLAIM),
        ({"htu": "http://[::1"}, {}, DpopFailure.WRONG_URL),
        ({"htu": "https://idp.example.gov.cn:99999/token"}, {}, DpopFailure.WRONG_URL),
        ({}, {"jwk": "not-a-jwk"}, DpopFailure.BAD_KEY),
        ({}, {"jwk": {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}}, DpopFailure.BAD_KEY),
        ({}, {"jwk": {"kty": ["RSA"], "n": 1, "e": {}}}, DpopFailure.BAD_KEY),
        ({}, {"jwk": {"kty": "RSA", "n": "AQAB", "e": "AQAB"}}, DpopFailure.BAD_KEY),
        ({}, {"typ": "DPoP+JWT"}, DpopFailure.WRONG_TYPE),
        # Text no identifier can be (a lone surrogate cannot even be encoded), or too long to remember.
        ({"jti": "\ud800"}, {}, DpopFailure.MALFORMED),
        ({"jti": "j\x00"}, {}, DpopFailure.MALFORMED),
        ({"jti": "é"}, {}, DpopFailure.MALFORMED),
        ({"jti": "j" * 257}, {}, DpopFailure.MALFORMED),
    ],
)
def test_malformed_proofs_are_refused_with_a_reason(
    store: EphemeralStore, claims: dict[str, Any], header: dict[str, Any], expected: DpopFailure
) -> None:
    """Never an exception other than the refusal (a NaN iat would compare false with both bounds)."""
    key = DpopKey.generate()
    url = "https://idp.example.gov.cn/token"
    base = {"jti": "j-1", "htm": "POST", "htu": url, "iat": int(NOW)}
    proof = _signed(key, {**base, **claims}, **header)
    with pytest.raises(InvalidDpopProofError) as refused:
        verify_dpop_proof(proof, expected_method="POST", expected_url=url, store=store, now=NOW)
    assert refused.value.reason is expected


@pytest.mark.parametrize("value", ["\ud800", "a\x00", "é", "a" * 1000])
def test_an_ath_or_nonce_no_server_could_have_issued_is_malformed(store: EphemeralStore, value: str) -> None:
    """A lone surrogate once reached ``.encode()`` and gave a 500 (review 15, finding 1)."""
    key = DpopKey.generate()
    url = "https://idp.example.gov.cn/userinfo"
    nonces = DpopNonces(store, lifetime=300)
    nonces.current(now=NOW)  # a nonce is stored, so the proof's is compared with it
    base = {"jti": "j-1", "htm": "GET", "htu": url, "iat": int(NOW)}
    for claims, kwargs in (
        ({"ath": value}, {"expected_access_token": "an-access-token"}),
        ({"nonce": value}, {"nonces": nonces}),
    ):
        with pytest.raises(InvalidDpopProofError) as refused:
            verify_dpop_proof(
                _signed(key, {**base, **claims}),
                expected_method="GET",
                expected_url=url,
                store=store,
                now=NOW,
                **kwargs,
            )
        assert refused.value.reason is DpopFailure.MALFORMED
    assert nonces.is_current(value, now=NOW) is False


def test_a_surrogate_in_a_proof_is_invalid_dpop_proof_at_token_and_resources(live_idp: LiveIdp) -> None:
    auth = operator(live_idp)
    key = DpopKey.generate()
    url = f"{live_idp.base_url}/token"
    claims = {
        "jti": "\ud800",
        "htm": "POST",
        "htu": url,
        "iat": int(live_idp.clock()),
        "nonce": nonce_of(live_idp),
    }
    refused = token_request(live_idp, auth, _signed(key, claims))
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_dpop_proof", refused.text
    token = token_request(live_idp, auth, proof_for(live_idp, key)).json()["access_token"]
    verify_url = f"{live_idp.base_url}/api/v1/realname/verify"
    claims = {
        "jti": "j-2",
        "htm": "POST",
        "htu": verify_url,
        "iat": int(live_idp.clock()),
        "nonce": nonce_of(live_idp),
        "ath": "\ud800",
    }
    answer = requests.post(
        verify_url,
        headers={"Authorization": f"DPoP {token}", "DPoP": _signed(key, claims)},
        json={"name": "张三", "id_number": "110101199003070011"},
        timeout=10,
    )
    assert answer.status_code == 401 and "invalid_dpop_proof" in answer.headers["WWW-Authenticate"]


def test_a_refused_push_leaves_its_proof_unspent(live_idp: LiveIdp) -> None:
    """A pushed request refused for its parameters changes nothing: the proof's jti is spent only by a
    request that is accepted (review 15, finding 10)."""
    client = portal(live_idp)
    auth = (client.client_id, str(client.client_secret))
    url, _state = client.create_authorization_url(
        f"{live_idp.base_url}/authorize", code_verifier=generate_token(48)
    )
    params = query_of(url)
    par = f"{live_idp.base_url}/par"
    proof = proof_for(live_idp, DpopKey.generate(), url=par)
    refused = requests.post(
        par, auth=auth, data={**params, "scope": "openid no-such-scope"}, headers={"DPoP": proof}, timeout=10
    )
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_scope", refused.text
    pushed = requests.post(par, auth=auth, data=params, headers={"DPoP": proof}, timeout=10)
    assert pushed.status_code == 201, pushed.text
    replayed = requests.post(par, auth=auth, data=params, headers={"DPoP": proof}, timeout=10)
    assert replayed.status_code == 400 and replayed.json()["error"] == "invalid_dpop_proof"
