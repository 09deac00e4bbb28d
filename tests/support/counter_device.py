"""A service hall counter's registered device (DESIGN.md §14), as a counter terminal would be: its own ES256
key, registered for one counter through the halls' admin API (or ``register_counter_device``), and access
tokens from ``/token`` with client_credentials, authenticating with private_key_jwt (RFC 7523 §2.2). Built on
PyJWT and requests: what the tests send is what a counter terminal would send."""

from __future__ import annotations

import time
from typing import Any

import jwt
import requests
from authlib.common.security import generate_token

from sdk.keys import Key, generate_key

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class CounterDevice:
    """One device's key pair; ``client_id`` once it is registered."""

    def __init__(self, client_id: str = "") -> None:
        self.key: Key = generate_key("ES256")
        self.client_id = client_id

    @property
    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.key.public_jwk()]}

    def rotate(self) -> dict[str, Any]:
        """A new key (the old one is forgotten); returns the JWK Set to register for it."""
        self.key = generate_key("ES256")
        return self.jwks

    def register(self, admin_url: str, headers: dict[str, str], hall_id: str, counter: str) -> str:
        """Register through the admin API (``POST …/counters/<code>/device``); returns the client id."""
        answer = requests.post(
            f"{admin_url}/api/v1/admin/halls/{hall_id}/counters/{counter}/device",
            json={"jwks": self.jwks},
            headers=headers,
            timeout=10,
        )
        assert answer.status_code == 201, answer.text
        self.client_id = str(answer.json()["device_client_id"])
        return self.client_id

    def assertion(self, issuer: str) -> dict[str, str]:
        # Authlib checks an assertion's times against the wall clock.
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": issuer + "/token",
            "jti": generate_token(16),
            "iat": now,
            "exp": now + 60,
        }
        assert self.key.private_key is not None
        signed = jwt.encode(claims, self.key.private_key, algorithm="ES256", headers={"kid": self.key.kid})  # type: ignore[arg-type]
        return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": signed}

    def token_response(
        self, token_url: str, issuer: str, *, scope: str = "hall:counter"
    ) -> requests.Response:
        return requests.post(
            token_url + "/token",
            data={"grant_type": "client_credentials", "scope": scope, **self.assertion(issuer)},
            timeout=30,
        )

    def headers(self, token_url: str, issuer: str | None = None) -> dict[str, str]:
        """A Bearer ``hall:counter`` token from ``token_url``'s ``/token`` (the issuer defaults to it)."""
        answer = self.token_response(token_url, issuer or token_url)
        assert answer.status_code == 200, answer.text
        return {"Authorization": "Bearer " + answer.json()["access_token"]}
