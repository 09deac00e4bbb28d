"""Cross-region login at the relying-party side (docs/federation.md "Cross-region login"): the citizens of
other regions as this deployment knows them, and what their home region said in each login.

- ``FederatedSubject``: one row per (home region, the home region's ``sub`` for this deployment). Its ``id``
  is the citizen id of this deployment's SSO sessions, consents and grants for that citizen. No name, no ID
  number: this deployment copies nothing of the home register.
- ``FederatedSession``: this deployment's SSO session (``sid``) → the home region's session (``home_sid``,
  which the home region's back-channel logout names) and the home claims, encrypted at rest with the PII
  cipher under their own purpose (``PiiField.FEDERATED_SESSION_CLAIMS``, bound to the sid). A row is
  deleted when its session ends (back-channel logout) and purged once the session ended or expired.

The storage functions take a SQLAlchemy ``Session`` and never commit: the request's unit of work does.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, LargeBinary, String, UniqueConstraint, delete, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from idp.crypto.pii import PiiCipher, PiiField
from idp.db import Base, utc_from_timestamp
from idp.federation.model import MAX_ENTITY_ID_LENGTH
from idp.sessions.model import SsoSession

MAX_HOME_SUBJECT_LENGTH = 255  # OIDC Core leaves sub at 255 ASCII characters at most
MAX_HOME_SID_LENGTH = 255


class FederatedSubject(Base):
    __tablename__ = "federated_subjects"
    __table_args__ = (UniqueConstraint("home_entity_id", "home_subject"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    home_entity_id: Mapped[str] = mapped_column(String(MAX_ENTITY_ID_LENGTH))
    home_subject: Mapped[str] = mapped_column(String(MAX_HOME_SUBJECT_LENGTH))
    created_at: Mapped[datetime]
    last_login_at: Mapped[datetime]


class FederatedSession(Base):
    __tablename__ = "federated_sessions"

    sid: Mapped[str] = mapped_column(ForeignKey("sso_sessions.sid", ondelete="CASCADE"), primary_key=True)
    subject_id: Mapped[str] = mapped_column(
        ForeignKey("federated_subjects.id", ondelete="CASCADE"), index=True
    )
    home_entity_id: Mapped[str] = mapped_column(String(MAX_ENTITY_ID_LENGTH))
    home_sid: Mapped[str | None] = mapped_column(String(MAX_HOME_SID_LENGTH), nullable=True, index=True)
    claims_ct: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]


@dataclass(frozen=True)
class HomeClaims:
    """What the home region said about the citizen in one login, as this deployment keeps it."""

    home_entity_id: str
    home_name: str
    home_sid: str | None
    claims: Mapping[str, Any]  # the home userinfo's releasable claims (never a full ID number)
    # The scopes the home region granted: a portal needing more sends the citizen home again.
    scope: str = ""
    # The home region's id_token, the id_token_hint of the logout this deployment sends home.
    id_token: str | None = None

    def covers(self, scopes: str) -> bool:
        return set(scopes.split()) <= set(self.scope.split())

    def to_json(self) -> str:
        data = {"home_name": self.home_name, "claims": dict(self.claims), "scope": self.scope}
        if self.id_token is not None:
            data["id_token"] = self.id_token
        return json.dumps(data, ensure_ascii=False, sort_keys=True)


def find_subject(session: Session, subject_id: str) -> FederatedSubject | None:
    return session.get(FederatedSubject, subject_id)


def record_subject(
    session: Session, *, home_entity_id: str, home_subject: str, now: float
) -> FederatedSubject:
    """The subject for (home region, home ``sub``), created at its first login; ``last_login_at`` is now."""
    at = utc_from_timestamp(now)
    subject = session.scalar(
        select(FederatedSubject).where(
            FederatedSubject.home_entity_id == home_entity_id, FederatedSubject.home_subject == home_subject
        )
    )
    if subject is None:
        subject = FederatedSubject(
            id=str(uuid.uuid4()),
            home_entity_id=home_entity_id,
            home_subject=home_subject,
            created_at=at,
            last_login_at=at,
        )
        session.add(subject)
    else:
        subject.last_login_at = at
    session.flush()
    return subject


def record_session(
    session: Session, cipher: PiiCipher, *, sid: str, subject_id: str, home: HomeClaims, now: float
) -> FederatedSession:
    """Link this deployment's session ``sid`` to the home login (a step-up login replaces the claims)."""
    record = session.get(FederatedSession, sid)
    ciphertext = cipher.encrypt(PiiField.FEDERATED_SESSION_CLAIMS, home.to_json(), record_id=sid)
    if record is None:
        record = FederatedSession(
            sid=sid,
            subject_id=subject_id,
            home_entity_id=home.home_entity_id,
            home_sid=home.home_sid,
            claims_ct=ciphertext,
            created_at=utc_from_timestamp(now),
        )
        session.add(record)
    else:
        record.home_entity_id = home.home_entity_id
        record.home_sid = home.home_sid
        record.claims_ct = ciphertext
    session.flush()
    return record


def find_home_claims(
    session: Session, cipher: PiiCipher, sid: str | None, *, now: float
) -> HomeClaims | None:
    """The home claims of a live session; None when the session is not federated, ended or expired."""
    if not sid:
        return None
    record = session.get(FederatedSession, sid)
    if record is None:
        return None
    sso = session.get(SsoSession, sid)
    if sso is None or sso.ended_at is not None or sso.expires_at <= utc_from_timestamp(now):
        return None
    data = json.loads(cipher.decrypt(PiiField.FEDERATED_SESSION_CLAIMS, record.claims_ct, record_id=sid))
    return HomeClaims(
        record.home_entity_id,
        str(data.get("home_name", "")),
        record.home_sid,
        data["claims"],
        scope=str(data.get("scope", "")),
        id_token=data.get("id_token"),
    )


def is_federated_subject(session: Session, citizen_id: str) -> bool:
    return session.get(FederatedSubject, citizen_id) is not None


def sessions_of_home_session(
    session: Session, *, home_entity_id: str, home_sid: str | None, home_subject: str | None
) -> list[SsoSession]:
    """This deployment's sessions that a home region's logout token names: by its ``sid`` if it has one,
    else every session of the subject its ``sub`` is (OIDC Back-Channel Logout §2.4)."""
    query = select(SsoSession).join(FederatedSession, FederatedSession.sid == SsoSession.sid)
    query = query.where(FederatedSession.home_entity_id == home_entity_id)
    if home_sid is not None:
        query = query.where(FederatedSession.home_sid == home_sid)
    else:
        query = query.join(FederatedSubject, FederatedSubject.id == FederatedSession.subject_id).where(
            FederatedSubject.home_subject == home_subject
        )
    return list(session.scalars(query))


def forget_sessions(session: Session, sids: list[str]) -> None:
    """The home claims of sessions that ended: gone with them."""
    if sids:
        session.execute(delete(FederatedSession).where(FederatedSession.sid.in_(sids)))


def purge_ended_sessions(session: Session, *, now: float) -> int:
    """Delete the home claims of every session that ended or expired; returns how many."""
    ended = select(SsoSession.sid).where(
        or_(SsoSession.ended_at.is_not(None), SsoSession.expires_at <= utc_from_timestamp(now))
    )
    result = session.execute(delete(FederatedSession).where(FederatedSession.sid.in_(ended)))
    return int(getattr(result, "rowcount", 0) or 0)
