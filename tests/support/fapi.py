"""A private_key_jwt client that pushes authorization requests (RFC 9126) and signs request objects
(RFC 9101), for tests/test_par.py, test_jar.py and test_fapi_profile.py. Built on PyJWT and requests, not
on OneCard code: what the tests send is what a portal would send."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

import jwt
import requests
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from cryptography.hazmat.primitives.asymmetric import rsa

from sdk.keys import generate_key
from tests.support.live import REDIRECT, Browser, LiveIdp, query_of

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"


class KeyedClient:
    """A registered ``private_key_jwt`` client with its private key (ES256 unless told)."""

    def __init__(self, idp: LiveIdp, *, alg: str = "ES256", **registration: Any) -> None:
        self.idp = idp
        self.alg = alg
        if alg[0] in "RP":
            self.private_key: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            family: Any = jwt.algorithms.RSAAlgorithm
        else:
            self.private_key = generate_key("ES256").private_key
            family = jwt.algorithms.ECAlgorithm
        self.jwk = {**family.to_jwk(self.private_key.public_key(), as_dict=True), "kid": "k1"}
        registration.setdefault("redirect_uris", (REDIRECT,))
        registration.setdefault("scope", "openid profile")
        self.client_id, _ = idp.register_client(
            token_endpoint_auth_method="private_key_jwt", jwks={"keys": [self.jwk]}, **registration
        )
        self.verifier = generate_token(48)

    def sign(self, claims: dict[str, Any], *, alg: str | None = None, typ: str | None = None) -> str:
        headers: dict[str, Any] = {"kid": "k1"}
        if typ is not None:
            headers["typ"] = typ
        return jwt.encode(claims, self.private_key, algorithm=alg or self.alg, headers=headers)

    def assertion_claims(self, *, aud: Any = None, wall_clock: bool = False) -> dict[str, Any]:
        # Authlib checks an assertion's times against the wall clock, not the provider's clock.
        now = int(time.time() if wall_clock else self.idp.clock())
        return {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.idp.base_url if aud is None else aud,
            "jti": generate_token(16),
            "iat": now,
            "exp": now + 60,
        }

    def assertion(
        self, *, aud: Any = None, alg: str | None = None, wall_clock: bool = False
    ) -> dict[str, str]:
        """The client authentication form fields (RFC 7523 §2.2); ``aud`` defaults to the issuer."""
        claims = self.assertion_claims(aud=aud, wall_clock=wall_clock)
        return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": self.sign(claims, alg=alg)}

    def authorization_params(self, **change: str | None) -> dict[str, str]:
        params: dict[str, str | None] = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": REDIRECT,
            "scope": "openid",
            "state": "st-" + generate_token(8),
            "nonce": "n-" + generate_token(8),
            "code_challenge": create_s256_code_challenge(self.verifier),
            "code_challenge_method": "S256",
            **change,
        }
        return {key: value for key, value in params.items() if value is not None}

    def request_object(
        self,
        params: dict[str, Any],
        *,
        alg: str | None = None,
        typ: str | None = "oauth-authz-req+jwt",
        **claims: Any,
    ) -> str:
        """A signed request object holding ``params``; ``claims`` override or (as None) drop iss, aud, exp,
        nbf."""
        now = int(self.idp.clock())
        body: dict[str, Any] = {
            "iss": self.client_id,
            "aud": self.idp.base_url,
            "exp": now + 300,
            "nbf": now - 5,
            **params,
            **claims,
        }
        return self.sign({k: v for k, v in body.items() if v is not None}, alg=alg, typ=typ)

    def push(self, params: dict[str, str], *, auth: dict[str, str] | None = None) -> requests.Response:
        form = {**params, **(auth if auth is not None else self.assertion())}
        return requests.post(f"{self.idp.base_url}/par", data=form, timeout=10)

    def pushed_request_uri(self, **change: str | None) -> tuple[str, dict[str, str]]:
        params = self.authorization_params(**change)
        response = self.push(params)
        assert response.status_code == 201, response.text
        return response.json()["request_uri"], params

    def authorize_url(self, request_uri: str, **extra: str) -> str:
        query = {"client_id": self.client_id, "request_uri": request_uri, **extra}
        return f"{self.idp.base_url}/authorize?{urlencode(query)}"

    def code(self, url: str, *, browser: Browser | None = None) -> dict[str, str]:
        """The answer at the redirect URI after the citizen logs in and consents."""
        return query_of((browser or Browser(self.idp)).authorize(url, citizen="zhang"))


def authorize(idp: LiveIdp, query: dict[str, str]) -> requests.Response:
    return requests.get(f"{idp.base_url}/authorize", params=query, allow_redirects=False, timeout=10)


def error_at_redirect(response: requests.Response) -> dict[str, str]:
    """The error sent back to the registered redirect URI (RFC 6749 §4.1.2.1), with RFC 9207's iss."""
    assert response.status_code in (302, 303), response.text[:300]
    location = response.headers["Location"]
    assert location.startswith(REDIRECT + "?"), location
    return query_of(location)


def discovery(idp: LiveIdp) -> dict[str, Any]:
    return requests.get(f"{idp.base_url}/.well-known/openid-configuration", timeout=10).json()  # type: ignore[no-any-return]
