"""One row per (citizen, client): the scopes granted so far, until the citizen revokes them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base


class Consent(Base):
    __tablename__ = "consents"
    __table_args__ = (UniqueConstraint("citizen_id", "client_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    citizen_id: Mapped[str] = mapped_column(String(36), index=True)
    client_id: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(1000))
    granted_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)
