"""SSO sessions and the clients that took part in each (for back-channel logout).

The browser holds ``ocss_<secret>`` in an HttpOnly cookie; the table keeps only its hash. ``sid`` is the
public session id that id_tokens and logout tokens carry (OIDC Back-Channel Logout §2.1).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from idp.db import Base


class SsoSession(Base):
    __tablename__ = "sso_sessions"

    sid: Mapped[str] = mapped_column(String(43), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    citizen_id: Mapped[str] = mapped_column(String(36), index=True)
    acr: Mapped[str] = mapped_column(String(64))
    amr: Mapped[list[str]] = mapped_column(JSON)
    auth_time: Mapped[datetime]
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # Shown to the citizen in the session list, never used for decisions.
    user_agent: Mapped[str] = mapped_column(String(200), default="")
    client_ip: Mapped[str] = mapped_column(String(64), default="")
    # The self-service terminal (its client id) the citizen logged in at, for a kiosk login (halls/kiosk).
    terminal_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The card of a card login: the kiosk's "report lost" marks this card, not every card of the citizen.
    card_id: Mapped[str | None] = mapped_column(String(32), nullable=True)

    participants: Mapped[list[SsoSessionClient]] = relationship(
        back_populates="session", cascade="all, delete-orphan", lazy="selectin"
    )


class SsoSessionClient(Base):
    __tablename__ = "sso_session_clients"

    sid: Mapped[str] = mapped_column(ForeignKey("sso_sessions.sid", ondelete="CASCADE"), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    first_at: Mapped[datetime]

    session: Mapped[SsoSession] = relationship(back_populates="participants")
