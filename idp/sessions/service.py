"""SSO session lifecycle: create on login, look up by cookie, step-up, record participants, end."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.bearer_secrets import generate_bearer_secret, hash_bearer_secret, looks_like
from idp.db import utc_from_timestamp
from idp.sessions.model import SsoSession, SsoSessionClient

SESSION_COOKIE_PREFIX = "ocss_"


@dataclass(frozen=True)
class Authentication:
    """What a login method achieved: who, at which assurance, by which means."""

    citizen_id: str
    acr: str
    amr: tuple[str, ...]
    terminal_id: str | None = None  # the kiosk terminal's client id, when the login happened at one
    card_id: str | None = None  # the card that logged in, for a card login (a kiosk reports that one lost)


def create_session(
    session: Session,
    auth: Authentication,
    *,
    ttl: int,
    now: float,
    user_agent: str = "",
    client_ip: str = "",
) -> tuple[SsoSession, str]:
    """Start an SSO session; returns it and the cookie value (shown to the browser only)."""
    token = generate_bearer_secret(SESSION_COOKIE_PREFIX)
    at = utc_from_timestamp(now)
    record = SsoSession(
        sid=secrets.token_urlsafe(24),
        token_hash=hash_bearer_secret(token),
        citizen_id=auth.citizen_id,
        acr=auth.acr,
        amr=list(auth.amr),
        auth_time=at,
        created_at=at,
        expires_at=utc_from_timestamp(now + ttl),
        user_agent=user_agent[:200],
        client_ip=client_ip[:64],
        terminal_id=auth.terminal_id,
        card_id=auth.card_id,
    )
    session.add(record)
    session.flush()
    return record, token


def reauthenticate_session(
    session: Session, record: SsoSession, auth: Authentication, *, ttl: int, now: float
) -> tuple[SsoSession, str]:
    """The same citizen proved themselves again: same sid and participants, the new assurance and
    auth_time (the acr issued is the one just achieved), a fresh cookie secret and lifetime."""
    if auth.citizen_id != record.citizen_id:
        raise ValueError("a session cannot change hands")
    token = generate_bearer_secret(SESSION_COOKIE_PREFIX)
    at = utc_from_timestamp(now)
    record.token_hash = hash_bearer_secret(token)
    record.acr = auth.acr
    record.amr = list(auth.amr)
    record.terminal_id = auth.terminal_id
    record.card_id = auth.card_id
    record.auth_time = at
    record.expires_at = utc_from_timestamp(now + ttl)
    session.flush()
    return record, token


def find_session_by_cookie(session: Session, cookie: str | None, *, now: float) -> SsoSession | None:
    """The live session the cookie names, or None (unknown, ended or expired)."""
    if not looks_like(cookie, SESSION_COOKIE_PREFIX):
        return None
    assert cookie is not None
    record = session.scalar(select(SsoSession).where(SsoSession.token_hash == hash_bearer_secret(cookie)))
    if record is None or record.ended_at is not None or record.expires_at <= utc_from_timestamp(now):
        return None
    return record


def find_session(session: Session, sid: str) -> SsoSession | None:
    return session.get(SsoSession, sid)


def add_participant(session: Session, record: SsoSession, client_id: str, *, now: float) -> None:
    if all(p.client_id != client_id for p in record.participants):
        record.participants.append(SsoSessionClient(client_id=client_id, first_at=utc_from_timestamp(now)))
        session.flush()


def end_session(session: Session, record: SsoSession, *, now: float) -> list[str]:
    """End the session; returns the client ids that took part (to notify by back-channel)."""
    if record.ended_at is None:
        record.ended_at = utc_from_timestamp(now)
    return [p.client_id for p in record.participants]


def list_citizen_sessions(session: Session, citizen_id: str, *, now: float) -> list[SsoSession]:
    return list(
        session.scalars(
            select(SsoSession)
            .where(
                SsoSession.citizen_id == citizen_id,
                SsoSession.ended_at.is_(None),
                SsoSession.expires_at > utc_from_timestamp(now),
            )
            .order_by(SsoSession.created_at.desc())
        )
    )
