"""Signed authorization requests (JAR, RFC 9101; FAPI 2.0 Message Signing §5.3): a request object is turned
back into the plain authorization parameters that Authlib and idp.oauth.authorize validate as usual.

Pure protocol code: the client's keys, the issuer and ``now`` come in; no Flask, no database. Every refusal
is ``invalid_request_object`` (RFC 9101 §6.3, OIDC Core §6.3). The rules, for every client:
- signed with a key of the client's registered ``jwks`` and an advertised algorithm (never ``none``, never
  a MAC: the client's public key is not a secret);
- ``iss`` and ``client_id`` are the client (RFC 9101 §6.3 and §10.8), ``aud`` names our issuer;
- ``exp`` is required and not past; ``nbf``, when present, not in the future, and no more than 60 minutes
  before ``exp`` (FAPI 2.0 Message Signing §5.3.2.1, which a FAPI client must also send);
- no ``request`` or ``request_uri`` inside (RFC 9101 §4), and a ``typ`` other than the JAR one or plain JWT
  is refused: a DPoP proof or an access token is not a request object (RFC 9101 §10.8).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from authlib.oidc.core.errors import InvalidRequestObjectError
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

# Advertised as request_object_signing_alg_values_supported; a FAPI 2.0 client is held to FAPI_ALGS.
REQUEST_OBJECT_SIGNING_ALGS = ["RS256", "PS256", "ES256"]
REQUEST_OBJECT_TYPES = ("oauth-authz-req+jwt", "jwt")
MAX_REQUEST_OBJECT = 16_384
MAX_LIFETIME = 3600  # seconds from nbf to exp
LEEWAY = 30  # seconds of clock skew allowed either way


def _refuse(description: str) -> InvalidRequestObjectError:
    return InvalidRequestObjectError(description=description)


def _as_parameter(name: str, value: Any) -> str:
    """A claim as the authorization parameter it stands for: ``max_age`` may be a number and ``claims`` an
    object (OIDC Core §6.1); anything else must already be a string."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, dict) and name == "claims":
        return json.dumps(value, separators=(",", ":"))
    raise _refuse("A request object claim has the wrong type for its parameter.")


def decode_request_object(
    raw: str,
    *,
    client_id: str,
    client_jwks: Mapping[str, Any] | None,
    issuer: str,
    now: float,
    algorithms: list[str],
    require_nbf: bool = False,
) -> dict[str, str]:
    """The authorization parameters carried by a signed request object of ``client_id``; ``require_nbf``
    for FAPI 2.0 clients (Message Signing §5.3.2.1)."""
    if not isinstance(raw, str) or not raw or len(raw) > MAX_REQUEST_OBJECT:
        raise _refuse("The request object is missing or too long.")
    try:
        keys = KeySet.import_key_set(dict(client_jwks or {"keys": []}))  # type: ignore[arg-type]
        token = jwt.decode(raw, keys, algorithms=algorithms)
    except (JoseError, ValueError, TypeError):
        raise _refuse("The request object is not signed with an accepted algorithm and key.") from None
    typ = token.header.get("typ")
    if typ is not None and str(typ).lower() not in REQUEST_OBJECT_TYPES:
        raise _refuse("The request object has the wrong typ.")
    claims: dict[str, Any] = dict(token.claims)
    if claims.get("iss") != client_id or claims.get("client_id") != client_id:
        raise _refuse("The request object must be issued by the client it names (iss and client_id).")
    aud = claims.get("aud")
    if not (aud == issuer or (isinstance(aud, list) and issuer in aud)):
        raise _refuse("The request object's aud must be this provider's issuer.")
    try:
        jwt.JWTClaimsRegistry(
            now=int(now), leeway=LEEWAY, exp={"essential": True}, nbf={"essential": require_nbf}
        ).validate(claims)
    except JoseError:
        raise _refuse("The request object has expired or is not yet valid.") from None
    nbf = claims.get("nbf")
    if nbf is not None and float(claims["exp"]) - float(nbf) > MAX_LIFETIME:
        raise _refuse("The request object may be valid for 60 minutes at most.")
    if "request" in claims or "request_uri" in claims:
        raise _refuse("A request object must not hold request or request_uri.")
    registered = ("iss", "aud", "exp", "nbf", "iat", "jti", "sub")
    return {name: _as_parameter(name, value) for name, value in claims.items() if name not in registered}
