"""Verifying the provider's signed tokens: id_tokens (OIDC Core §3.1.3.7) and logout tokens (Back-Channel
Logout 1.0 §2.6).

Pure: the functions take the provider's keys (a ``KeySet``) and ``now`` and return a frozen ``Verified…``
result or raise ``InvalidIdTokenError`` / ``InvalidLogoutTokenError`` with a ``TokenReason``. Fetching the
keys (and the one refresh for an unknown ``kid``) and remembering used logout tokens is
``sdk.portal.client``'s part.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

import jwt

from sdk.keys import Algorithm, KeySet
from sdk.oidc import ACR_LEVELS, BACKCHANNEL_LOGOUT_EVENT, LOGOUT_TOKEN_TYPE, acr_rank
from sdk.portal._util import equal, frozen
from sdk.portal.errors import InvalidIdTokenError, InvalidLogoutTokenError, TokenReason, TokenValidationError

DEFAULT_CLOCK_SKEW: Final = 60  # seconds either way, for exp, iat and auth_time
LOGOUT_TOKEN_MAX_AGE: Final = 300  # a logout token older than this (by iat) is refused
ALLOWED_ALGS: Final[frozenset[Algorithm]] = frozenset({"RS256", "ES256"})
MAX_TOKEN_LENGTH: Final = 16_384
_ID_TOKEN_TYPES: Final = ("jwt", "application/jwt")
_LOGOUT_TOKEN_TYPES: Final = (LOGOUT_TOKEN_TYPE, "application/" + LOGOUT_TOKEN_TYPE)


@dataclass(frozen=True, slots=True)
class VerifiedIdToken:
    """An id_token that passed every check."""

    subject: str
    issuer: str
    audience: tuple[str, ...]
    issued_at: int
    expires_at: int
    auth_time: int | None
    acr: str | None
    amr: tuple[str, ...]
    sid: str | None
    nonce: str | None
    claims: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class VerifiedLogoutToken:
    """A logout token that passed every check: end the session ``sid`` (or all of ``subject``'s)."""

    issuer: str
    subject: str | None
    sid: str | None
    jti: str
    issued_at: int
    claims: Mapping[str, Any]


def acr_satisfies(actual: str | None, requested: Collection[str]) -> bool:
    """Whether an achieved ``acr`` meets a request: one of the values, or above the lowest known one."""
    if not requested:
        return True
    if actual is None:
        return False
    if actual in requested:
        return True
    if actual not in ACR_LEVELS:
        return False
    known = [acr_rank(value) for value in requested if value in ACR_LEVELS]
    return bool(known) and acr_rank(actual) >= min(known)


def at_hash(access_token: str) -> str:
    """``at_hash`` for RS256/ES256: the left half of SHA-256, base64url (OIDC Core §3.1.3.6)."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")


def parse_jose_header(token: str, *, error: type[TokenValidationError]) -> dict[str, Any]:
    """The JOSE header of a JWT whose size, ``alg`` and ``kid`` are acceptable: the checks made before any
    key is looked up (so a malformed token costs no JWKS fetch)."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        raise error(TokenReason.MALFORMED, "empty or too long")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise error(TokenReason.MALFORMED, type(exc).__name__) from exc
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in ALLOWED_ALGS:
        raise error(TokenReason.WRONG_ALGORITHM, f"alg {alg!r}")
    if not isinstance(kid, str) or not kid:
        raise error(TokenReason.UNKNOWN_KEY, "no kid")
    return header


def verify_id_token(
    token: str,
    *,
    keys: KeySet,
    expected_issuer: str,
    expected_client_id: str,
    expected_nonce: str | None,
    acr_values: Collection[str] = (),
    max_age: int | None = None,
    access_token: str | None = None,
    now: float,
    clock_skew: int = DEFAULT_CLOCK_SKEW,
) -> VerifiedIdToken:
    """OIDC Core §3.1.3.7 in full; ``InvalidIdTokenError`` with the reason otherwise.

    ``expected_nonce`` None means the token must carry none (a refreshed id_token, §12.2). ``acr_values``
    and ``max_age`` are what the authorization request asked for; with ``access_token`` (the one issued
    with the id_token), a present ``at_hash`` must match it.
    """
    header, claims = _verify_signed(token, keys, InvalidIdTokenError)
    typ = str(header.get("typ", "JWT")).lower()
    if typ not in _ID_TOKEN_TYPES:
        raise InvalidIdTokenError(TokenReason.WRONG_TYPE, f"typ {typ!r}")
    _check_common(claims, InvalidIdTokenError, expected_issuer, expected_client_id, now, clock_skew)
    if "events" in claims:
        raise InvalidIdTokenError(TokenReason.WRONG_TYPE, "a security event token, not an id_token")
    exp = claims.get("exp")
    if type(exp) is not int:
        raise InvalidIdTokenError(TokenReason.MISSING_CLAIM, "exp")
    if now >= exp + clock_skew:
        raise InvalidIdTokenError(TokenReason.EXPIRED)
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise InvalidIdTokenError(TokenReason.MISSING_CLAIM, "sub")
    nonce = claims.get("nonce")
    if expected_nonce is not None:
        if not isinstance(nonce, str) or not equal(nonce, expected_nonce):
            raise InvalidIdTokenError(TokenReason.WRONG_NONCE)
    elif nonce is not None:
        raise InvalidIdTokenError(TokenReason.WRONG_NONCE, "unexpected nonce")
    acr = claims.get("acr")
    if acr is not None and not isinstance(acr, str):
        raise InvalidIdTokenError(TokenReason.MALFORMED, "acr")
    if not acr_satisfies(acr, acr_values):
        raise InvalidIdTokenError(TokenReason.INSUFFICIENT_ACR, f"acr {acr!r}")
    auth_time = claims.get("auth_time")
    if auth_time is not None and type(auth_time) is not int:
        raise InvalidIdTokenError(TokenReason.MALFORMED, "auth_time")
    if max_age is not None:
        if auth_time is None:
            raise InvalidIdTokenError(TokenReason.MISSING_CLAIM, "auth_time")
        if now - auth_time > max_age + clock_skew:
            raise InvalidIdTokenError(TokenReason.AUTH_TOO_OLD)
    token_hash = claims.get("at_hash")
    if (access_token is not None and token_hash is not None) and (
        not isinstance(token_hash, str) or not equal(token_hash, at_hash(access_token))
    ):
        raise InvalidIdTokenError(TokenReason.WRONG_AT_HASH)
    amr = claims.get("amr", [])
    sid = claims.get("sid")
    audience = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    return VerifiedIdToken(
        subject=subject,
        issuer=expected_issuer,
        audience=tuple(str(value) for value in audience),
        issued_at=int(claims["iat"]),
        expires_at=exp,
        auth_time=auth_time,
        acr=acr,
        amr=tuple(str(value) for value in amr) if isinstance(amr, list) else (),
        sid=sid if isinstance(sid, str) else None,
        nonce=nonce if isinstance(nonce, str) else None,
        claims=frozen(claims),
    )


def verify_logout_token(
    token: str,
    *,
    keys: KeySet,
    expected_issuer: str,
    expected_client_id: str,
    now: float,
    clock_skew: int = DEFAULT_CLOCK_SKEW,
    max_age: int = LOGOUT_TOKEN_MAX_AGE,
) -> VerifiedLogoutToken:
    """Back-Channel Logout 1.0 §2.6 but the replay check; ``InvalidLogoutTokenError`` with the reason.

    A verifier accepts each token once: it remembers ``jti`` until ``logout_token_keep_until``.
    """
    header, claims = _verify_signed(token, keys, InvalidLogoutTokenError)
    typ = str(header.get("typ", "")).lower()
    if typ not in _LOGOUT_TOKEN_TYPES:
        raise InvalidLogoutTokenError(TokenReason.WRONG_TYPE, f"typ {typ!r}")
    _check_common(claims, InvalidLogoutTokenError, expected_issuer, expected_client_id, now, clock_skew)
    iat = int(claims["iat"])
    exp = claims.get("exp")
    if exp is not None and (type(exp) is not int or now >= exp + clock_skew):
        raise InvalidLogoutTokenError(TokenReason.EXPIRED)
    if now - iat > max_age + clock_skew:
        raise InvalidLogoutTokenError(TokenReason.STALE)
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_LOGOUT_EVENT), dict):
        raise InvalidLogoutTokenError(TokenReason.MISSING_EVENT)
    if "nonce" in claims:
        raise InvalidLogoutTokenError(TokenReason.NONCE_PRESENT)
    sub, sid = claims.get("sub"), claims.get("sid")
    if sub is not None and not (isinstance(sub, str) and sub):
        raise InvalidLogoutTokenError(TokenReason.MALFORMED, "sub")
    if sid is not None and not (isinstance(sid, str) and sid):
        raise InvalidLogoutTokenError(TokenReason.MALFORMED, "sid")
    if sub is None and sid is None:
        raise InvalidLogoutTokenError(TokenReason.MISSING_CLAIM, "sub or sid")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 256:
        raise InvalidLogoutTokenError(TokenReason.MISSING_CLAIM, "jti")
    return VerifiedLogoutToken(
        issuer=expected_issuer, subject=sub, sid=sid, jti=jti, issued_at=iat, claims=frozen(claims)
    )


def logout_token_keep_until(
    verified: VerifiedLogoutToken,
    *,
    clock_skew: int = DEFAULT_CLOCK_SKEW,
    max_age: int = LOGOUT_TOKEN_MAX_AGE,
) -> int:
    """Until when a replay cache must remember ``verified.jti``: as long as the token could still verify."""
    exp = verified.claims.get("exp")
    last_valid = max(verified.issued_at + max_age, exp if isinstance(exp, int) else 0)
    return last_valid + clock_skew


def _verify_signed(
    token: str, keys: KeySet, error: type[TokenValidationError]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a JWT signed by a key of ``keys`` with an allowed algorithm."""
    header = parse_jose_header(token, error=error)
    alg, kid = header["alg"], header["kid"]
    key = keys.find(kid)
    if key is None:
        raise error(TokenReason.UNKNOWN_KEY, f"kid {kid!r}")
    if key.alg != alg:
        raise error(TokenReason.WRONG_ALGORITHM, f"alg {alg!r} for a {key.alg} key")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.public_key,  # type: ignore[arg-type]
            algorithms=[key.alg],
            options={
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "verify_aud": False,
                "verify_iss": False,
            },
        )
    except jwt.InvalidSignatureError as exc:
        raise error(TokenReason.TAMPERED) from exc
    except jwt.PyJWTError as exc:
        raise error(TokenReason.MALFORMED, type(exc).__name__) from exc
    return header, claims


def _check_common(
    claims: Mapping[str, Any],
    error: type[TokenValidationError],
    expected_issuer: str,
    expected_client_id: str,
    now: float,
    clock_skew: int,
) -> None:
    """iss, aud, azp and iat: what id_tokens and logout tokens share."""
    if claims.get("iss") != expected_issuer:
        raise error(TokenReason.WRONG_ISSUER)
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if expected_client_id not in audiences:
        raise error(TokenReason.WRONG_AUDIENCE)
    azp = claims.get("azp")
    if (azp is not None and azp != expected_client_id) or (len(audiences) > 1 and azp is None):
        raise error(TokenReason.WRONG_AUTHORIZED_PARTY)
    iat = claims.get("iat")
    if type(iat) is not int:
        raise error(TokenReason.MISSING_CLAIM, "iat")
    if iat > now + clock_skew:
        raise error(TokenReason.ISSUED_IN_FUTURE)
