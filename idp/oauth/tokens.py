"""Signed tokens the provider issues: JWT access tokens (RFC 9068), id_tokens (OIDC Core §2) and logout
tokens (OIDC Back-Channel Logout §2.4). Pure functions: keys and ``now`` come in, strings go out.

PyJWT signs and checks signatures; lifetimes are checked here against the ``now`` we are given, so tests
control time and never sleep.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from sdk.keys import Algorithm, Key, KeySet, UnknownKeyError
from sdk.oidc import BACKCHANNEL_LOGOUT_EVENT, LOGOUT_TOKEN_TYPE

ACCESS_TOKEN_TYPE = "at+jwt"
# Access tokens are signed with ES256: ~10x cheaper to sign than RS256, and every resource server that
# reads our JWKS can verify it.
ACCESS_TOKEN_ALG: Algorithm = "ES256"


class InvalidTokenError(Exception):
    """A token failed verification; ``reason`` is for logs and tests, never for the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def sign_jwt(claims: Mapping[str, Any], key: Key, *, typ: str = "JWT") -> str:
    if key.private_key is None:
        raise UnknownKeyError(f"key {key.kid} cannot sign")
    return jwt.encode(dict(claims), key.private_key, algorithm=key.alg, headers={"kid": key.kid, "typ": typ})  # type: ignore[arg-type]


def verify_jwt(
    token: str,
    *,
    keys: KeySet,
    expected_issuer: str,
    now: float,
    expected_typ: str | None = None,
    expected_audience: str | None = None,
    leeway: float = 0,
) -> dict[str, Any]:
    """Signature by a key of ``keys``, issuer, audience, typ and lifetime; returns the claims."""
    if not isinstance(token, str) or len(token) > 16_384:
        raise InvalidTokenError("malformed")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise InvalidTokenError("malformed") from exc
    kid = header.get("kid")
    key = keys.find(kid) if isinstance(kid, str) else None
    if key is None:
        raise InvalidTokenError("unknown_key")
    if header.get("alg") != key.alg:
        raise InvalidTokenError("wrong_algorithm")
    if expected_typ is not None and str(header.get("typ", "")).lower() != expected_typ:
        raise InvalidTokenError("wrong_type")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.public_key,  # type: ignore[arg-type]
            algorithms=[key.alg],
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False, "verify_aud": False},
        )
    except jwt.PyJWTError as exc:
        raise InvalidTokenError("bad_signature") from exc
    if claims.get("iss") != expected_issuer:
        raise InvalidTokenError("wrong_issuer")
    if expected_audience is not None:
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if expected_audience not in audiences:
            raise InvalidTokenError("wrong_audience")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or now >= exp + leeway:
        raise InvalidTokenError("expired")
    return claims


def half_hash(value: str) -> str:
    """``at_hash``/``c_hash``: the left half of SHA-256 (all our algorithms use SHA-256), base64url."""
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


@dataclass(frozen=True)
class IssuedAccessToken:
    token: str
    jti: str
    expires_in: int


def issue_access_token(
    *,
    keys: KeySet,
    issuer: str,
    client_id: str,
    subject: str,
    scope: str,
    ttl: int,
    now: float,
    grant_id: str | None = None,
    acr: str | None = None,
    auth_time: float | None = None,
    confirmation_jkt: str | None = None,
) -> IssuedAccessToken:
    """``confirmation_jkt``: the DPoP key the token is bound to (``cnf.jkt``, RFC 9449 §6.1)."""
    jti = secrets.token_urlsafe(16)
    iat = int(now)
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": issuer,
        "client_id": client_id,
        "scope": scope,
        "iat": iat,
        "exp": iat + ttl,
        "jti": jti,
    }
    if grant_id:
        claims["gid"] = grant_id  # ties the token to its grant, so revoking the grant ends it too
    if acr:
        claims["acr"] = acr
    if auth_time is not None:
        claims["auth_time"] = int(auth_time)
    if confirmation_jkt:
        claims["cnf"] = {"jkt": confirmation_jkt}
    token = sign_jwt(claims, keys.signing_key(ACCESS_TOKEN_ALG), typ=ACCESS_TOKEN_TYPE)
    return IssuedAccessToken(token, jti, ttl)


def verify_access_token(token: str, *, keys: KeySet, issuer: str, now: float) -> dict[str, Any]:
    return verify_jwt(
        token,
        keys=keys,
        expected_issuer=issuer,
        expected_typ=ACCESS_TOKEN_TYPE,
        expected_audience=issuer,
        now=now,
    )


def issue_id_token(
    *,
    keys: KeySet,
    alg: Algorithm,
    issuer: str,
    client_id: str,
    subject: str,
    ttl: int,
    now: float,
    auth_time: float,
    acr: str,
    amr: tuple[str, ...],
    nonce: str | None = None,
    sid: str | None = None,
    access_token: str | None = None,
    extra_claims: Mapping[str, Any] | None = None,
) -> str:
    iat = int(now)
    claims: dict[str, Any] = dict(extra_claims or {})
    claims.update(
        {
            "iss": issuer,
            "sub": subject,
            "aud": client_id,
            "azp": client_id,
            "iat": iat,
            "exp": iat + ttl,
            "auth_time": int(auth_time),
            "acr": acr,
            "amr": list(amr),
        }
    )
    if nonce:
        claims["nonce"] = nonce
    if sid:
        claims["sid"] = sid
    if access_token:
        claims["at_hash"] = half_hash(access_token)
    return sign_jwt(claims, keys.signing_key(alg))


def issue_logout_token(
    *, keys: KeySet, alg: Algorithm, issuer: str, client_id: str, subject: str, sid: str, now: float
) -> str:
    iat = int(now)
    claims = {
        "iss": issuer,
        "sub": subject,
        "aud": client_id,
        "iat": iat,
        "exp": iat + 120,
        "jti": secrets.token_urlsafe(16),
        "sid": sid,
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
    }
    return sign_jwt(claims, keys.signing_key(alg), typ=LOGOUT_TOKEN_TYPE)
