"""DPoP at OneCard's resources (RFC 9449 §7, §9): userinfo and the client_credentials APIs (real-name, admin)
take ``Authorization: DPoP`` with a proof of the token's key and refuse a bound token presented as Bearer,
without its proof, with another key's proof, with a proof over another token, or without the nonce; and
sdk.portal and sdk.realname use DPoP end to end. On SQLite and on PostgreSQL + Redis."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from sdk.dpop import DpopKey
from sdk.portal import PortalClient
from sdk.realname import RealnameClient
from tests.support.dpop import code_flow, operator, proof_for, token_request
from tests.support.live import REDIRECT, Browser, LiveIdp

ALGS = 'algs="ES256 EdDSA PS256 RS256"'


def userinfo(
    idp: LiveIdp, token: str, *, scheme: str = "DPoP", proof: str | None = None
) -> requests.Response:
    headers = {"Authorization": f"{scheme} {token}"}
    if proof is not None:
        headers["DPoP"] = proof
    return requests.get(f"{idp.base_url}/userinfo", headers=headers, timeout=10)


def userinfo_proof(idp: LiveIdp, key: DpopKey, token: str, **kwargs: Any) -> str:
    kwargs.setdefault("method", "GET")
    kwargs.setdefault("url", f"{idp.base_url}/userinfo")
    return proof_for(idp, key, access_token=token, **kwargs)


def assert_dpop_refusal(response: requests.Response, error: str) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"] == error
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("DPoP ") and f'error="{error}"' in challenge and ALGS in challenge


def test_userinfo_takes_a_dpop_token_with_its_proof(live_idp: LiveIdp) -> None:
    key = DpopKey.generate()
    _auth, tokens = code_flow(live_idp, key)
    token = tokens["access_token"]
    answer = userinfo(live_idp, token, proof=userinfo_proof(live_idp, key, token))
    assert answer.status_code == 200 and answer.json()["name"] == "张三", answer.text


def test_a_bound_token_is_refused_as_bearer(live_idp: LiveIdp) -> None:
    key = DpopKey.generate()
    _auth, tokens = code_flow(live_idp, key)
    token = tokens["access_token"]
    for proof in (None, userinfo_proof(live_idp, key, token)):
        answer = userinfo(live_idp, token, scheme="Bearer", proof=proof)
        assert answer.status_code == 401 and answer.json()["error"] == "invalid_token"
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    in_form = requests.post(f"{live_idp.base_url}/userinfo", data={"access_token": token}, timeout=10)
    assert in_form.status_code == 401 and in_form.json()["error"] == "invalid_token"


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda idp, key, token: None, id="no-proof"),
        pytest.param(
            lambda idp, key, token: userinfo_proof(idp, DpopKey.generate(), token), id="another-key"
        ),
        pytest.param(lambda idp, key, token: userinfo_proof(idp, key, "another-token"), id="wrong-ath"),
        pytest.param(
            lambda idp, key, token: proof_for(idp, key, method="GET", url=f"{idp.base_url}/userinfo"),
            id="no-ath",
        ),
        pytest.param(
            lambda idp, key, token: userinfo_proof(idp, key, token, method="POST"), id="another-method"
        ),
        pytest.param(
            lambda idp, key, token: userinfo_proof(idp, key, token, url=f"{idp.base_url}/token"),
            id="another-url",
        ),
    ],
)
def test_a_bound_token_without_a_good_proof_is_refused(live_idp: LiveIdp, make: Any) -> None:
    key = DpopKey.generate()
    _auth, tokens = code_flow(live_idp, key)
    token = tokens["access_token"]
    assert_dpop_refusal(userinfo(live_idp, token, proof=make(live_idp, key, token)), "invalid_dpop_proof")


def test_a_replayed_resource_proof_is_refused(live_idp: LiveIdp) -> None:
    key = DpopKey.generate()
    _auth, tokens = code_flow(live_idp, key)
    token = tokens["access_token"]
    proof = userinfo_proof(live_idp, key, token)
    assert userinfo(live_idp, token, proof=proof).status_code == 200
    assert_dpop_refusal(userinfo(live_idp, token, proof=proof), "invalid_dpop_proof")


def test_a_resource_proof_without_the_nonce_gets_one(live_idp: LiveIdp) -> None:
    key = DpopKey.generate()
    _auth, tokens = code_flow(live_idp, key)
    token = tokens["access_token"]
    refused = userinfo(live_idp, token, proof=userinfo_proof(live_idp, key, token, nonce=None))
    assert_dpop_refusal(refused, "use_dpop_nonce")
    nonce = refused.headers["DPoP-Nonce"]
    assert (
        userinfo(live_idp, token, proof=userinfo_proof(live_idp, key, token, nonce=nonce)).status_code == 200
    )


def test_an_unbound_token_is_not_a_dpop_token(live_idp: LiveIdp) -> None:
    key = DpopKey.generate()
    _auth, bearer = code_flow(live_idp, None)  # a grant issued without a proof: Bearer tokens
    assert bearer["token_type"] == "Bearer"
    token = bearer["access_token"]
    assert_dpop_refusal(
        userinfo(live_idp, token, proof=userinfo_proof(live_idp, key, token)), "invalid_token"
    )
    assert userinfo(live_idp, token, scheme="Bearer").status_code == 200


def _realname(idp: LiveIdp, token: str, *, scheme: str, proof: str | None) -> requests.Response:
    headers = {"Authorization": f"{scheme} {token}"}
    if proof is not None:
        headers["DPoP"] = proof
    body = {"purpose": "test", "name": "张三", "id_number": "11010519491231002X"}
    return requests.post(f"{idp.base_url}/api/v1/realname/verify", json=body, headers=headers, timeout=10)


def test_the_realname_api_takes_dpop_and_refuses_a_bound_token_as_bearer(live_idp: LiveIdp) -> None:
    auth = operator(live_idp)
    key = DpopKey.generate()
    token = token_request(live_idp, auth, proof_for(live_idp, key)).json()["access_token"]
    url = f"{live_idp.base_url}/api/v1/realname/verify"
    as_bearer = _realname(live_idp, token, scheme="Bearer", proof=None)
    assert as_bearer.status_code == 401 and as_bearer.headers["WWW-Authenticate"] == 'Bearer realm="onecard"'
    no_proof = _realname(live_idp, token, scheme="DPoP", proof=None)
    assert_dpop_refusal(no_proof, "invalid_dpop_proof")
    other_key = proof_for(live_idp, DpopKey.generate(), url=url, access_token=token)
    assert_dpop_refusal(_realname(live_idp, token, scheme="DPoP", proof=other_key), "invalid_dpop_proof")
    no_nonce = proof_for(live_idp, key, url=url, access_token=token, nonce=None)
    refused = _realname(live_idp, token, scheme="DPoP", proof=no_nonce)
    assert_dpop_refusal(refused, "use_dpop_nonce")
    nonce = refused.headers["DPoP-Nonce"]
    good_proof = proof_for(live_idp, key, url=url, access_token=token, nonce=nonce)
    good = _realname(live_idp, token, scheme="DPoP", proof=good_proof)
    assert good.status_code == 200 and good.json()["result"] == "match", good.text


def test_an_admin_api_takes_a_dpop_token(live_idp: LiveIdp) -> None:
    client_id, secret = live_idp.register_client(name="Admin", kind="operator", scope="admin")
    key = DpopKey.generate()
    token = token_request(live_idp, (client_id, str(secret)), proof_for(live_idp, key)).json()["access_token"]
    url = f"{live_idp.base_url}/api/v1/admin/clients"
    proof = proof_for(live_idp, key, method="GET", url=url, access_token=token)
    answer = requests.get(url, headers={"Authorization": f"DPoP {token}", "DPoP": proof}, timeout=10)
    assert answer.status_code == 200, answer.text
    insufficient = requests.get(
        f"{live_idp.base_url}/userinfo",
        headers={"Authorization": f"DPoP {token}", "DPoP": userinfo_proof(live_idp, key, token)},
        timeout=10,
    )
    assert insufficient.status_code == 403 and insufficient.json()["error"] == "insufficient_scope"
    assert insufficient.headers["WWW-Authenticate"].startswith("DPoP ")


# -- the SDK


def test_sdk_portal_logs_in_reads_userinfo_and_refreshes_with_dpop(live_idp: LiveIdp) -> None:
    client_id, secret = live_idp.register_client(
        name="Portal",
        redirect_uris=(REDIRECT,),
        scope="openid profile realname offline_access",
        dpop_bound_access_tokens=True,
    )
    key = DpopKey.generate()
    client = PortalClient(
        live_idp.base_url, client_id, str(secret), REDIRECT, clock=live_idp.clock, dpop_key=key
    )
    start = client.authorization_url("openid profile realname offline_access")
    final = Browser(live_idp).authorize(start.url, citizen="zhang")
    tokens = client.exchange_code(final, start)
    assert tokens.token_type == "DPoP" and tokens.id_token_claims is not None
    info = client.userinfo(tokens.access_token, expected_subject=tokens.id_token_claims.subject)
    assert info["name"] == "张三"
    assert tokens.refresh_token is not None
    refreshed = client.refresh(tokens.refresh_token, previous=tokens.id_token_claims)
    assert refreshed.token_type == "DPoP"
    assert client.userinfo(refreshed.access_token, token_type=refreshed.token_type)["name"] == "张三"
    # The same token in a client without the key is useless.
    thief = PortalClient(live_idp.base_url, client_id, str(secret), REDIRECT, clock=live_idp.clock)
    with pytest.raises(Exception) as stolen:
        thief.userinfo(refreshed.access_token)
    assert getattr(stolen.value, "oauth_error", "") == "invalid_token"


def test_sdk_realname_verifies_with_a_dpop_bound_token(live_idp: LiveIdp) -> None:
    client_id, secret = operator(live_idp, dpop_bound_access_tokens=True)
    without_key = RealnameClient(live_idp.base_url, client_id, secret, clock=live_idp.clock)
    with pytest.raises(Exception) as refused:
        without_key.verify_name("test", "张三", "11010519491231002X")
    assert type(refused.value).__name__ == "RealnameUnauthorizedError"
    client = RealnameClient(
        live_idp.base_url, client_id, secret, clock=live_idp.clock, dpop_key=DpopKey.generate()
    )
    assert client.verify_name("test", "张三", "11010519491231002X").result == "match"
    assert client.verify_name("test", "李四", "11010519491231002X").result == "no_match"


@pytest.mark.parametrize("proof", ["", "a.b.c", "é.é.é", "x" * 9000, "eyJ9.eyJ9.", "a, b"])
@pytest.mark.parametrize("authorization", ["DPoP", "dpop not-a-token"])
def test_garbage_is_a_clear_refusal(idp: LiveIdp, proof: str, authorization: str) -> None:
    for url in (f"{idp.base_url}/userinfo", f"{idp.base_url}/api/v1/realname/verify"):
        answer = requests.post(
            url, headers={"Authorization": authorization, "DPoP": proof}, json={}, timeout=10
        )
        assert answer.status_code == 401, (url, answer.text)
        assert answer.json()["error"] and answer.headers["WWW-Authenticate"].startswith("DPoP ")
    token = requests.post(
        f"{idp.base_url}/token",
        auth=operator(idp),
        data={"grant_type": "client_credentials"},
        headers={"DPoP": proof},
        timeout=10,
    )
    assert token.status_code in (200, 400), token.text
    assert token.status_code == 200 or token.json()["error"] == "invalid_dpop_proof"
