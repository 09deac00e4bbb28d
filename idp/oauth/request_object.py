"""Signed authorization requests (JAR, RFC 9101; FAPI 2.0 Message Signing §5.3): a request object is turned
back into the plain authorization parameters that Authlib and idp.oauth.authorize validate as usual.

Pure protocol code: the client's keys, the issuer and ``now`` come in; no Flask, no database. Every refusal
is ``invalid_request_object`` (RFC 9101 §6.3, OIDC Core §6.3). The rules, for every client:
- signed with a key of the client's registered ``jwks`` and an advertised algorithm (never ``none``, never
  a MAC: the client's public key is not a secret);
- ``iss`` and ``client_id`` are the client (RFC 9101 §6.3 and §10.8), ``aud`` names our issuer;
- ``exp`` is required, not past and no more than 60 minutes ahead; ``nbf``, when present, not in the
  future, and no more than 60 minutes before ``exp`` (FAPI 2.0 Message Signing §5.3.2.1, which a FAPI
  client must also send);
- at the authorization endpoint, a ``jti`` once per client while the request object lives (RFC 9101 §10.8);
- no ``request`` or ``request_uri`` inside (RFC 9101 §4), and a ``typ`` other than the JAR one or plain JWT
  is refused: a DPoP proof or an access token is not a request object (RFC 9101 §10.8).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from authlib.oidc.core.errors import InvalidRequestObjectError
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from idp.stores.base import EphemeralStore
from idp.text import is_storable_text

# Advertised as request_object_signing_alg_values_supported; a FAPI 2.0 client is held to FAPI_ALGS.
REQUEST_OBJECT_SIGNING_ALGS = ["RS256", "PS256", "ES256"]
REQUEST_OBJECT_TYPES = ("oauth-authz-req+jwt", "jwt")
MAX_REQUEST_OBJECT = 16_384
MAX_LIFETIME = 3600  # seconds from nbf (or now) to exp
LEEWAY = 30  # seconds of clock skew allowed either way
MAX_CLAIMS_DEPTH = 8
JTI_NAMESPACE = "request_object_jti"


def _refuse(description: str) -> InvalidRequestObjectError:
    return InvalidRequestObjectError(description=description)


def _check_text(document: Any, depth: int = 0) -> None:
    """Every string of a claim (names and values, nested ones of ``claims`` too) is text a parameter can
    hold: the rule idp.web's request hook applies to plain parameters, which a signed request bypasses. Its
    JSON may hold a lone surrogate, which has no UTF-8 form, or a NUL, which PostgreSQL refuses."""
    if depth > MAX_CLAIMS_DEPTH:
        raise _refuse("The request object is nested too deeply.")
    if isinstance(document, str):
        if not is_storable_text(document):
            raise _refuse("The request object holds characters that are not allowed.")
    elif isinstance(document, dict):
        for key, value in document.items():
            _check_text(key, depth + 1)
            _check_text(value, depth + 1)
    elif isinstance(document, list):
        for value in document:
            _check_text(value, depth + 1)


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
    jti_store: EphemeralStore | None = None,
) -> dict[str, str]:
    """The authorization parameters carried by a signed request object of ``client_id``; ``require_nbf``
    for FAPI 2.0 clients (Message Signing §5.3.2.1). With ``jti_store`` (the front channel, where a request
    object may leak through the browser) one with a ``jti`` is accepted once, across nodes, while it lives."""
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
    # exp bounds the replay window of every request object (RFC 9101 §10.1), with or without nbf.
    nbf = claims.get("nbf")
    if float(claims["exp"]) > now + MAX_LIFETIME + LEEWAY or (
        nbf is not None and float(claims["exp"]) - float(nbf) > MAX_LIFETIME
    ):
        raise _refuse("The request object may be valid for 60 minutes at most.")
    if "request" in claims or "request_uri" in claims:
        raise _refuse("A request object must not hold request or request_uri.")
    _check_text(claims)
    jti = claims.get("jti")
    if jti_store is not None and isinstance(jti, str):
        # Last, so a request object refused for anything else is not remembered.
        marker = hashlib.sha256(f"{client_id} {jti}".encode()).hexdigest()
        ttl = max(1.0, float(claims["exp"]) + LEEWAY - now)
        if not jti_store.add(JTI_NAMESPACE, marker, b"1", ttl=ttl, now=now):
            raise _refuse("The request object was used already.")
    registered = ("iss", "aud", "exp", "nbf", "iat", "jti", "sub")
    return {name: _as_parameter(name, value) for name, value in claims.items() if name not in registered}
