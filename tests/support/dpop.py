"""DPoP helpers for tests: a registered operator or portal with a token request carrying a proof, and the
nonce the provider hands out now."""

from __future__ import annotations

from typing import Any

import jwt
import requests
from authlib.common.security import generate_token

from idp.oauth.dpop_nonce import DpopNonces
from sdk.dpop import DpopKey
from tests.support.live import REDIRECT, Browser, LiveIdp, portal, query_of


def operator(idp: LiveIdp, **kwargs: Any) -> tuple[str, str]:
    client_id, secret = idp.register_client(
        name="Operator", kind="operator", scope="realname:verify", **kwargs
    )
    assert secret is not None
    return client_id, secret


def nonce_of(idp: LiveIdp) -> str:
    """The nonce the server hands out now (what a refused request's DPoP-Nonce header would say)."""
    nonces = DpopNonces(idp.services.store, lifetime=idp.services.settings.dpop_nonce_lifetime)
    return nonces.current(now=idp.clock())


def token_request(
    idp: LiveIdp, auth: tuple[str, str], proof: str | None, data: dict[str, str] | None = None
) -> requests.Response:
    headers = {"DPoP": proof} if proof is not None else {}
    return requests.post(
        f"{idp.base_url}/token",
        auth=auth,
        data=data or {"grant_type": "client_credentials"},
        headers=headers,
        timeout=10,
    )


def proof_for(idp: LiveIdp, key: DpopKey, **kwargs: Any) -> str:
    kwargs.setdefault("nonce", nonce_of(idp))
    kwargs.setdefault("now", idp.clock())
    return key.create_proof(
        kwargs.pop("method", "POST"), kwargs.pop("url", f"{idp.base_url}/token"), **kwargs
    )


def claims_of(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def code_flow(
    idp: LiveIdp, key: DpopKey | None, **registration: Any
) -> tuple[tuple[str, str], dict[str, Any]]:
    """A portal's code flow; its code exchanged with a proof of ``key`` (None: without a proof)."""
    client = portal(idp, **registration)
    verifier = generate_token(48)
    url, _state = client.create_authorization_url(f"{idp.base_url}/authorize", code_verifier=verifier)
    code = query_of(Browser(idp).authorize(url, citizen="zhang"))["code"]
    auth = (client.client_id, str(client.client_secret))
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    response = token_request(idp, auth, proof_for(idp, key) if key is not None else None, data)
    assert response.status_code == 200, response.text
    return auth, dict(response.json())
