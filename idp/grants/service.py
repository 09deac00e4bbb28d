"""Grant and refresh-token operations. Rotation is one conditional UPDATE, so two nodes racing to redeem
the same refresh token cannot both win.

Lock order: whatever changes a grant's refresh tokens first locks the grant's row, then the tokens'. Without
one order, a redeemer (token row, then the grant's row for the new token's foreign key) and a reuse revoker
(grant row, then every token row of the grant) deadlocked under parallel reuse on PostgreSQL.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from idp.bearer_secrets import generate_bearer_secret, hash_bearer_secret, looks_like
from idp.db import utc_from_timestamp
from idp.grants.model import Grant, RefreshToken

REFRESH_TOKEN_PREFIX = "ocrt_"


@dataclass(frozen=True)
class GrantInfo:
    """The parts of an authorization the token endpoint needs, detached from the database session."""

    id: str
    client_id: str
    citizen_id: str
    sid: str | None
    scope: str
    claims: dict[str, Any] | None
    acr: str
    amr: tuple[str, ...]
    auth_time: float
    dpop_jkt: str | None = None  # the DPoP key it was first issued with: a DPoP-bound grant (RFC 9449 §5)


def _info(grant: Grant) -> GrantInfo:
    return GrantInfo(
        grant.id,
        grant.client_id,
        grant.citizen_id,
        grant.sid,
        grant.scope,
        grant.claims,
        grant.acr,
        tuple(grant.amr),
        grant.auth_time.timestamp(),
        grant.dpop_jkt,
    )


def create_grant(
    session: Session,
    *,
    client_id: str,
    citizen_id: str,
    sid: str | None,
    scope: str,
    claims: dict[str, Any] | None,
    acr: str,
    amr: tuple[str, ...],
    auth_time: float,
    now: float,
    grant_id: str | None = None,
    dpop_jkt: str | None = None,
) -> GrantInfo:
    grant = Grant(
        id=grant_id or secrets.token_hex(16),
        client_id=client_id,
        citizen_id=citizen_id,
        sid=sid,
        scope=scope,
        claims=claims,
        acr=acr,
        amr=list(amr),
        auth_time=utc_from_timestamp(auth_time),
        created_at=utc_from_timestamp(now),
        dpop_jkt=dpop_jkt,
    )
    session.add(grant)
    session.flush()
    return _info(grant)


def find_active_grant(session: Session, grant_id: str) -> GrantInfo | None:
    grant = session.get(Grant, grant_id)
    if grant is None or grant.revoked_at is not None:
        return None
    return _info(grant)


def _lock_grant(session: Session, grant_id: str) -> None:
    """Take the grant's row lock before touching its tokens (the lock order above; no-op on SQLite)."""
    session.execute(select(Grant.id).where(Grant.id == grant_id).with_for_update())


def revoke_grant(session: Session, grant_id: str, *, reason: str, now: float) -> bool:
    _lock_grant(session, grant_id)
    result = session.execute(
        update(Grant)
        .where(Grant.id == grant_id, Grant.revoked_at.is_(None))
        .values(revoked_at=utc_from_timestamp(now), revoked_reason=reason)
    )
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.grant_id == grant_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utc_from_timestamp(now))
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def issue_refresh_token(session: Session, grant_id: str, *, ttl: int, now: float) -> str:
    token = generate_bearer_secret(REFRESH_TOKEN_PREFIX)
    session.add(
        RefreshToken(
            token_hash=hash_bearer_secret(token),
            grant_id=grant_id,
            issued_at=utc_from_timestamp(now),
            expires_at=utc_from_timestamp(now + ttl),
        )
    )
    session.flush()
    return token


@dataclass(frozen=True)
class RefreshOutcome:
    grant: GrantInfo | None
    reused: bool = False


def _find_record(session: Session, token: str) -> RefreshToken | None:
    """The stored row for a presented refresh token, whatever its state."""
    if not looks_like(token, REFRESH_TOKEN_PREFIX):
        return None
    return session.get(RefreshToken, hash_bearer_secret(token))


def refresh_token_client(session: Session, token: str) -> str | None:
    """The client a refresh token was issued to (used, revoked or expired included), or None."""
    record = _find_record(session, token)
    grant = session.get(Grant, record.grant_id) if record is not None else None
    return grant.client_id if grant is not None else None


def find_refresh_token_grant(session: Session, token: str, *, now: float) -> GrantInfo | None:
    """The grant of a live, unused refresh token (no state change)."""
    record = _find_record(session, token)
    if record is None or record.used_at or record.revoked_at or record.expires_at <= utc_from_timestamp(now):
        return None
    return find_active_grant(session, record.grant_id)


def redeem_refresh_token(session: Session, token: str, *, now: float) -> RefreshOutcome:
    """Mark the token used (one conditional UPDATE). A token used before revokes its whole grant."""
    if not looks_like(token, REFRESH_TOKEN_PREFIX):
        return RefreshOutcome(None)
    token_hash = hash_bearer_secret(token)
    grant_id = session.scalar(select(RefreshToken.grant_id).where(RefreshToken.token_hash == token_hash))
    if grant_id is None:
        return RefreshOutcome(None)
    _lock_grant(session, grant_id)
    at = utc_from_timestamp(now)
    result = session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.token_hash == token_hash,
            RefreshToken.used_at.is_(None),
            RefreshToken.revoked_at.is_(None),
            RefreshToken.expires_at > at,
        )
        .values(used_at=at)
    )
    record = session.get(RefreshToken, token_hash, populate_existing=True)  # not a copy read before the lock
    if record is None:
        return RefreshOutcome(None)
    if result.rowcount == 1:  # type: ignore[attr-defined]
        return RefreshOutcome(find_active_grant(session, record.grant_id))
    if record.used_at is not None:
        revoke_grant(session, record.grant_id, reason="refresh_token_reuse", now=now)
        return RefreshOutcome(None, reused=True)
    return RefreshOutcome(None)


def revoke_refresh_token(session: Session, token: str, *, now: float) -> str | None:
    """RFC 7009: revoking a refresh token ends its grant; returns the grant id if there was one."""
    record = _find_record(session, token)
    if record is None:
        return None
    revoke_grant(session, record.grant_id, reason="revoked_by_client", now=now)
    return record.grant_id


def grants_of_session(session: Session, sid: str) -> list[str]:
    return list(session.scalars(select(Grant.id).where(Grant.sid == sid, Grant.revoked_at.is_(None))))
