"""Checking DPoP proofs (RFC 9449 §4.3), for the token endpoint (§5) and for resources (§7).

Plain code: the proof, the request's method and URL (built from the issuer, never from a Host header), the
short-lived store and ``now`` come in; a ``VerifiedDpopProof`` comes out, or one of the two errors the RFC
defines (``invalid_dpop_proof``, ``use_dpop_nonce``), each with a ``DpopFailure`` reason for logs and tests.

One-time across nodes: a proof's ``jti`` is added to the shared store (atomic ``add``) for as long as its
``iat`` keeps it acceptable, so a proof replayed at any node within that window is refused, and after it
the ``iat`` check refuses it anyway.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import jwt
from authlib.oauth2 import OAuth2Error
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from idp.oauth.dpop_nonce import MAX_NONCE_LENGTH, DpopNonces
from idp.stores.base import EphemeralStore
from sdk.dpop import (
    DPOP_ALGORITHMS,
    INVALID_DPOP_PROOF,
    NONCE_HEADER,
    PROOF_TYPE,
    USE_DPOP_NONCE,
    access_token_hash,
    algorithms_for,
    jwk_thumbprint,
    normalize_htu,
)
from sdk.keys import InvalidKeyError, Key

JTI_NAMESPACE: Final = "dpop_jti"
# How old (by its iat) a proof may be, and how far ahead of our clock a client's may run (§4.3 item 11).
PROOF_MAX_AGE: Final = 60
CLOCK_SKEW: Final = 5
MAX_PROOF_LENGTH: Final = 8192
MAX_JTI_LENGTH: Final = 256
# An ath is a SHA-256 in base64url: 43 characters.
MAX_ATH_LENGTH: Final = 128
# Members only a private (or symmetric) JWK has (RFC 7518 §6.2.2, §6.3.2, §6.4.1).
PRIVATE_JWK_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


class DpopFailure(StrEnum):
    """Why a proof was refused: for logs and tests, never for the caller."""

    MISSING = "missing"
    MULTIPLE = "multiple"
    MALFORMED = "malformed"
    WRONG_TYPE = "wrong_type"
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
    BAD_KEY = "bad_key"
    PRIVATE_KEY = "private_key"
    BAD_SIGNATURE = "bad_signature"
    MISSING_CLAIM = "missing_claim"
    WRONG_METHOD = "wrong_method"
    WRONG_URL = "wrong_url"
    STALE = "stale"
    FUTURE = "future"
    WRONG_ACCESS_TOKEN = "wrong_access_token"
    WRONG_KEY = "wrong_key"
    REPLAYED = "replayed"


class InvalidDpopProofError(OAuth2Error):  # type: ignore[misc]
    """``invalid_dpop_proof`` (§5.1 at the token endpoint, §7.1 at resources)."""

    error = INVALID_DPOP_PROOF
    status_code = 400

    def __init__(self, reason: DpopFailure) -> None:
        super().__init__(description="The DPoP proof is not valid.")
        self.reason = reason


class UseDpopNonceError(OAuth2Error):  # type: ignore[misc]
    """``use_dpop_nonce`` (§8, §9): the proof lacks the server's current nonce, which comes along in the
    ``DPoP-Nonce`` header for the client to retry with."""

    error = USE_DPOP_NONCE
    status_code = 400

    def __init__(self, nonce: str) -> None:
        super().__init__(description="Retry with the DPoP nonce the server provided.")
        self.nonce = nonce

    def get_headers(self) -> list[tuple[str, str]]:
        return [*super().get_headers(), (NONCE_HEADER, self.nonce)]


@dataclass(frozen=True)
class VerifiedDpopProof:
    jkt: str  # the RFC 7638 thumbprint of the proof's key: cnf.jkt of what it binds
    jti: str
    iat: int


def _public_key_of(header: Mapping[str, Any]) -> tuple[PublicKeyTypes, str]:
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in DPOP_ALGORITHMS:
        raise InvalidDpopProofError(DpopFailure.UNSUPPORTED_ALGORITHM)  # none, HS256 and the like too
    jwk = header.get("jwk")
    if not isinstance(jwk, dict):
        raise InvalidDpopProofError(DpopFailure.BAD_KEY)
    if PRIVATE_JWK_MEMBERS & jwk.keys():
        raise InvalidDpopProofError(DpopFailure.PRIVATE_KEY)  # §4.3 item 7: a public key only
    try:
        public_key = Key.from_jwk({k: v for k, v in jwk.items() if k != "alg"}).public_key
    except InvalidKeyError as exc:
        raise InvalidDpopProofError(DpopFailure.BAD_KEY) from exc
    if alg not in algorithms_for(public_key):
        raise InvalidDpopProofError(DpopFailure.BAD_KEY)
    return public_key, alg


def _claims_of(proof: str) -> tuple[dict[str, Any], str]:
    """Signature, typ and alg checked (§4.3 items 2–8); the claims and the key's thumbprint."""
    if not isinstance(proof, str) or not proof or len(proof) > MAX_PROOF_LENGTH:
        raise InvalidDpopProofError(DpopFailure.MALFORMED)
    try:
        header = jwt.get_unverified_header(proof)
    except jwt.PyJWTError as exc:
        raise InvalidDpopProofError(DpopFailure.MALFORMED) from exc
    if header.get("typ") != PROOF_TYPE:
        raise InvalidDpopProofError(DpopFailure.WRONG_TYPE)
    public_key, alg = _public_key_of(header)
    try:
        claims: dict[str, Any] = jwt.decode(
            proof,
            public_key,  # type: ignore[arg-type]
            algorithms=[alg],
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False, "verify_aud": False},
        )
    except jwt.InvalidSignatureError as exc:
        raise InvalidDpopProofError(DpopFailure.BAD_SIGNATURE) from exc
    except jwt.DecodeError as exc:
        raise InvalidDpopProofError(DpopFailure.MALFORMED) from exc
    except jwt.PyJWTError as exc:  # PyJWT's own checks of claim types (a jti that is no string, …)
        raise InvalidDpopProofError(DpopFailure.MISSING_CLAIM) from exc
    return claims, jwk_thumbprint(public_key)


def _check_token_text(value: object, max_length: int) -> None:
    """A string claim compared or hashed below must be printable ASCII of a sane length: the JSON of a proof
    may hold a lone surrogate, which no ``.encode()`` survives, or text no server ever issued."""
    if isinstance(value, str) and not (len(value) <= max_length and value.isascii() and value.isprintable()):
        raise InvalidDpopProofError(DpopFailure.MALFORMED)


def verify_dpop_proof(
    proof: str,
    *,
    expected_method: str,
    expected_url: str,
    now: float,
    store: EphemeralStore,
    nonces: DpopNonces | None = None,
    expected_access_token: str | None = None,
    expected_jkt: str | None = None,
) -> VerifiedDpopProof:
    """§4.3 in full: typ, alg, public jwk, signature, ``htm``, ``htu``, ``iat`` within
    [now - PROOF_MAX_AGE, now + CLOCK_SKEW], ``ath`` of ``expected_access_token`` (resources), the key of
    ``expected_jkt`` (a bound token), the server nonce when ``nonces`` is given, ``jti`` never seen."""
    claims, jkt = _claims_of(proof)
    jti, htm, htu, iat = (claims.get(name) for name in ("jti", "htm", "htu", "iat"))
    for name, max_length in (("jti", MAX_JTI_LENGTH), ("ath", MAX_ATH_LENGTH), ("nonce", MAX_NONCE_LENGTH)):
        _check_token_text(claims.get(name), max_length)  # before any of them meets .encode()
    if not (isinstance(jti, str) and jti):
        raise InvalidDpopProofError(DpopFailure.MISSING_CLAIM)
    if not isinstance(htm, str) or not isinstance(htu, str):
        raise InvalidDpopProofError(DpopFailure.MISSING_CLAIM)
    if isinstance(iat, bool) or not isinstance(iat, int | float) or not math.isfinite(iat):
        raise InvalidDpopProofError(DpopFailure.MISSING_CLAIM)  # NaN compares false with everything
    if htm != expected_method:
        raise InvalidDpopProofError(DpopFailure.WRONG_METHOD)
    try:
        same_url = normalize_htu(htu) == normalize_htu(expected_url)
    except ValueError:
        same_url = False
    if not same_url:
        raise InvalidDpopProofError(DpopFailure.WRONG_URL)
    if iat < now - PROOF_MAX_AGE:
        raise InvalidDpopProofError(DpopFailure.STALE)
    if iat > now + CLOCK_SKEW:
        raise InvalidDpopProofError(DpopFailure.FUTURE)
    if expected_access_token is not None:
        ath = claims.get("ath")
        if not isinstance(ath, str) or not hmac.compare_digest(
            ath.encode(), access_token_hash(expected_access_token).encode()
        ):
            raise InvalidDpopProofError(DpopFailure.WRONG_ACCESS_TOKEN)
    if expected_jkt is not None and not hmac.compare_digest(jkt.encode(), expected_jkt.encode()):
        raise InvalidDpopProofError(DpopFailure.WRONG_KEY)
    if nonces is not None and not nonces.is_current(claims.get("nonce"), now=now):
        raise UseDpopNonceError(nonces.current(now=now))
    # Last, so a proof refused for anything else is not remembered. Kept while its iat is acceptable.
    ttl = max(1.0, float(iat) + PROOF_MAX_AGE + CLOCK_SKEW - now)
    marker = hashlib.sha256(f"{jkt} {jti}".encode()).hexdigest()
    if not store.add(JTI_NAMESPACE, marker, b"1", ttl=ttl, now=now):
        raise InvalidDpopProofError(DpopFailure.REPLAYED)
    return VerifiedDpopProof(jkt=jkt, jti=jti, iat=int(iat))
