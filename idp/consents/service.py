"""Consent is asked once per client and scope set and remembered (DESIGN.md §3)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.consents.model import Consent
from idp.db import utc_from_timestamp


def find_consent(session: Session, citizen_id: str, client_id: str) -> Consent | None:
    return session.scalar(
        select(Consent).where(Consent.citizen_id == citizen_id, Consent.client_id == client_id)
    )


def has_consent(session: Session, citizen_id: str, client_id: str, scopes: set[str]) -> bool:
    consent = find_consent(session, citizen_id, client_id)
    return consent is not None and consent.revoked_at is None and scopes <= set(consent.scope.split())


def grant_consent(
    session: Session, citizen_id: str, client_id: str, scopes: set[str], *, now: float
) -> Consent:
    """Remember ``scopes`` for the client, adding to what was granted before (unless it was revoked)."""
    consent = find_consent(session, citizen_id, client_id)
    at = utc_from_timestamp(now)
    if consent is None:
        consent = Consent(citizen_id=citizen_id, client_id=client_id, scope="", granted_at=at)
        session.add(consent)
    previous = set() if consent.revoked_at is not None else set(consent.scope.split())
    consent.scope = " ".join(sorted(previous | scopes))
    consent.granted_at = at
    consent.revoked_at = None
    session.flush()
    return consent


def revoke_consent(session: Session, citizen_id: str, client_id: str, *, now: float) -> bool:
    consent = find_consent(session, citizen_id, client_id)
    if consent is None or consent.revoked_at is not None:
        return False
    consent.revoked_at = utc_from_timestamp(now)
    return True


def list_consents(session: Session, citizen_id: str) -> list[Consent]:
    return list(
        session.scalars(select(Consent).where(Consent.citizen_id == citizen_id, Consent.revoked_at.is_(None)))
    )
