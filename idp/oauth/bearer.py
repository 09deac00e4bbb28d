"""Checking the access tokens we issued: signature, lifetime, individual revocation (RFC 7009) and the
state of the grant behind it (a revoked refresh-token family ends its access tokens too)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from idp.grants.service import GrantInfo, find_active_grant
from idp.keys.service import OIDC_ES256, OIDC_RS256, KeyRing
from idp.oauth.tokens import InvalidTokenError, verify_access_token
from idp.stores.base import EphemeralStore
from sdk.keys import KeySet

REVOKED_JTI_NAMESPACE = "revoked_jti"


def oidc_keys(keyring: KeyRing, *, now: float) -> KeySet:
    """Every published OIDC signing key, both algorithms: what the JWKS shows and verifiers accept."""
    rs = keyring.key_set(OIDC_RS256.name, now=now)
    es = keyring.key_set(OIDC_ES256.name, now=now)
    return KeySet(rs.keys + es.keys)


@dataclass(frozen=True)
class AccessContext:
    claims: dict[str, Any]
    grant: GrantInfo | None  # None for client_credentials tokens

    @property
    def scopes(self) -> set[str]:
        return set(str(self.claims.get("scope", "")).split())

    @property
    def client_id(self) -> str:
        return str(self.claims.get("client_id", ""))

    @property
    def dpop_jkt(self) -> str | None:
        """The DPoP key the token is bound to (``cnf.jkt``, RFC 9449 §6.1), or None for a Bearer token."""
        cnf = self.claims.get("cnf")
        jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
        return jkt if isinstance(jkt, str) else None

    # Authlib's TokenMixin: only live tokens are ever built (authenticate_access_token checks both).
    def is_expired(self) -> bool:
        return False

    def is_revoked(self) -> bool:
        return False

    def get_scope(self) -> str:
        return str(self.claims.get("scope", ""))


def authenticate_access_token(
    token: str, *, keyring: KeyRing, store: EphemeralStore, session: Session, issuer: str, now: float
) -> AccessContext:
    claims = verify_access_token(token, keys=oidc_keys(keyring, now=now), issuer=issuer, now=now)
    jti = claims.get("jti")
    if not isinstance(jti, str) or store.get(REVOKED_JTI_NAMESPACE, jti, now=now) is not None:
        raise InvalidTokenError("revoked")
    grant = None
    if "gid" in claims:
        grant = find_active_grant(session, str(claims["gid"]))
        if grant is None:
            raise InvalidTokenError("grant_revoked")
    return AccessContext(claims, grant)


def revoke_access_token(store: EphemeralStore, claims: dict[str, Any], *, now: float) -> None:
    """Deny-list the token's jti until it would have expired anyway."""
    ttl = max(1.0, float(claims["exp"]) - now)
    store.put(REVOKED_JTI_NAMESPACE, str(claims["jti"]), b"1", ttl=ttl, now=now)
