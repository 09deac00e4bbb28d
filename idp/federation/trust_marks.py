"""Trust marks (OpenID Federation 1.0 §7): a signed statement by a trust mark issuer that an entity meets
a profile — here, that a OneCard deployment authenticates citizens at ``loa:high`` (card + PIN, the
passkey-bound e-card), under the type ``Settings.federation_loa_high_trust_mark``.

A mark counts only if (§7.3) the trust anchor lists its issuer for its type in ``trust_mark_issuers``, it
is signed by a key of that issuer, it is about the entity presenting it (``sub``), and it has not expired.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from idp.federation.errors import (
    InvalidTrustChainError,
    MalformedStatementError,
    MalformedTrustMarkError,
    StatementExpiredError,
    StatementSignatureError,
    TrustMarkExpiredError,
    TrustMarkSignatureError,
    TrustMarkSubjectError,
    UntrustedTrustMarkIssuerError,
)
from idp.federation.statements import check_lifetime, read_typed_jwt, sign_typed_jwt, verify_signature
from sdk.keys import Key, KeySet

TRUST_MARK_TYPE_HEADER: Final = "trust-mark+jwt"


@dataclass(frozen=True)
class TrustMark:
    trust_mark_type: str
    issuer: str
    subject: str
    issued_at: int
    expires_at: int | None
    token: str

    def entry(self) -> dict[str, str]:
        """The entry of an entity configuration's ``trust_marks`` array (§3.1.2)."""
        return {"trust_mark_type": self.trust_mark_type, "trust_mark": self.token}


def issue_trust_mark(
    *, key: Key, issuer: str, subject: str, trust_mark_type: str, now: float, lifetime: int
) -> str:
    iat = int(now)
    claims = {
        "iss": issuer,
        "sub": subject,
        "trust_mark_type": trust_mark_type,
        "iat": iat,
        "exp": iat + lifetime,
    }
    return sign_typed_jwt(claims, key, typ=TRUST_MARK_TYPE_HEADER)


def parse_trust_mark(token: Any) -> TrustMark:
    """The mark's claims, signature not yet checked; ``MalformedTrustMarkError`` for anything else."""
    if not isinstance(token, str):
        raise MalformedTrustMarkError("a trust mark is a JWT string")
    try:
        _header, claims = read_typed_jwt(token, expected_typ=TRUST_MARK_TYPE_HEADER)
    except MalformedStatementError as exc:
        raise MalformedTrustMarkError(str(exc)) from exc
    for name in ("iss", "sub", "trust_mark_type"):
        if not isinstance(claims.get(name), str) or not claims[name]:
            raise MalformedTrustMarkError(f"{name} must be a non-empty string")
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, int) or (exp is not None and not isinstance(exp, int)):
        raise MalformedTrustMarkError("iat (and exp, when present) must be integers")
    return TrustMark(claims["trust_mark_type"], claims["iss"], claims["sub"], iat, exp, token)


def verify_trust_mark(
    token: Any,
    *,
    expected_subject: str,
    trust_mark_issuers: Mapping[str, tuple[str, ...]],
    issuer_keys: Callable[[str], KeySet],
    now: float,
    expected_type: str | None = None,
) -> TrustMark:
    """Check a mark against the trust anchor's ``trust_mark_issuers`` (§7.3); ``issuer_keys`` gives the
    issuer's federation keys (the anchor's configured keys, or those of the issuer's own trust chain)."""
    mark = parse_trust_mark(token)
    if expected_type is not None and mark.trust_mark_type != expected_type:
        raise TrustMarkSubjectError(f"mark of type {mark.trust_mark_type}, expected {expected_type}")
    if mark.subject != expected_subject:
        raise TrustMarkSubjectError(f"mark for {mark.subject}, presented by {expected_subject}")
    if mark.issuer not in trust_mark_issuers.get(mark.trust_mark_type, ()):
        raise UntrustedTrustMarkIssuerError(f"{mark.issuer} may not issue {mark.trust_mark_type}")
    try:
        keys = issuer_keys(mark.issuer)
        kid = str(read_typed_jwt(mark.token, expected_typ=TRUST_MARK_TYPE_HEADER)[0]["kid"])
        verify_signature(mark.token, kid=kid, keys=keys)
    except StatementSignatureError as exc:
        raise TrustMarkSignatureError(str(exc)) from exc
    except InvalidTrustChainError as exc:  # the issuer's own chain does not hold
        raise UntrustedTrustMarkIssuerError(f"issuer {mark.issuer}: {exc}") from exc
    try:
        check_lifetime(mark.issued_at, mark.expires_at or 2**62, now=now, what="trust mark")
    except StatementExpiredError as exc:
        raise TrustMarkExpiredError(str(exc)) from exc
    return mark
