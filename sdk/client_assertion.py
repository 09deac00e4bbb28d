"""Client authentication with a signed JWT: ``private_key_jwt`` (OpenID Connect Core 1.0 §9, RFC 7523 §2.2).

One assertion per request: ``iss`` = ``sub`` = the client id, ``aud`` the authorization server (OneCard
accepts its issuer at every endpoint that authenticates clients, and a FAPI 2.0 client may name nothing
else), a fresh ``jti`` (the server refuses one seen before), a short ``exp``. Used by ``sdk.portal`` at the
token and PAR endpoints and by the reader bridge's kiosk launch page at ``/kiosk/start``.
"""

from __future__ import annotations

import secrets
from typing import Final

import jwt

from sdk.keys import Key, NoSigningKeyError

CLIENT_ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME: Final = 60  # seconds: long enough to reach the server, too short to keep for later


def create_client_assertion(*, client_id: str, audience: str, key: Key, now: float) -> str:
    """A signed, one-time client assertion of ``client_id`` for ``audience``."""
    if key.private_key is None:
        raise NoSigningKeyError(f"key {key.kid} has no private part")
    issued = int(now)
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": secrets.token_urlsafe(16),
        "iat": issued,
        "exp": issued + ASSERTION_LIFETIME,
    }
    return jwt.encode(claims, key.private_key, algorithm=key.alg, headers={"kid": key.kid})  # type: ignore[arg-type]


def client_assertion_fields(*, client_id: str, audience: str, key: Key, now: float) -> dict[str, str]:
    """The form fields that authenticate the client (RFC 7523 §2.2), with a fresh assertion."""
    return {
        "client_id": client_id,
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": create_client_assertion(client_id=client_id, audience=audience, key=key, now=now),
    }
