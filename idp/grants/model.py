"""Grants and refresh tokens (RFC 6749 §6, RFC 9700 §4.14 refresh token rotation).

A grant is created when an authorization code is exchanged. Every refresh token belongs to one grant (its
family); rotation marks the old token used and issues a new one. Presenting a used token again means it
leaked, so the whole grant is revoked, and with it every access token that names it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base


class Grant(Base):
    __tablename__ = "oauth_grants"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    citizen_id: Mapped[str] = mapped_column(String(36), index=True)
    sid: Mapped[str | None] = mapped_column(String(43), nullable=True, index=True)
    scope: Mapped[str] = mapped_column(String(1000))
    claims: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    acr: Mapped[str] = mapped_column(String(64))
    amr: Mapped[list[str]] = mapped_column(JSON)
    auth_time: Mapped[datetime]
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The RFC 7638 thumbprint of the DPoP key the grant's first tokens were bound to: a DPoP-bound grant,
    # whose refreshes need a proof (RFC 9449 §5; of any key, its clients being confidential). None: Bearer.
    dpop_jkt: Mapped[str | None] = mapped_column(String(43), nullable=True)


class RefreshToken(Base):
    __tablename__ = "oauth_refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    grant_id: Mapped[str] = mapped_column(ForeignKey("oauth_grants.id", ondelete="CASCADE"), index=True)
    issued_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)
