"""The e-card table: one row per activated e-card, one e-card per physical card (DESIGN.md §5).

The e-card keeps no copy of the physical card's status: its effective status is computed from the card's
current row at every use (``ecards.service.effective_status``), so reporting the card lost suspends the
e-card in the same transaction, on every node, with no event to deliver or miss. ``status`` here is only the
citizen's own choice (suspended from the wallet, e.g. a lost phone). ``handle`` is the opaque random id the
QR codes carry (``sdk.qr_token.generate_qr_handle``); it says nothing about the citizen.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base


class EcardStatus(enum.StrEnum):
    """The effective status a citizen, a gate and the API see."""

    ACTIVE = "active"
    SUSPENDED = "suspended"  # the card is lost or held, or the citizen suspended the e-card
    CANCELLED = "cancelled"  # the card is cancelled: final


class ECard(Base):
    __tablename__ = "wallet_ecards"
    __table_args__ = (CheckConstraint("own_status IN ('active', 'suspended')", name="own_status"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    card_id: Mapped[str] = mapped_column(ForeignKey("cards.card_id"), unique=True)
    citizen_id: Mapped[str] = mapped_column(ForeignKey("citizens.id"), index=True)
    handle: Mapped[str] = mapped_column(String(16), unique=True)
    # The citizen's own switch; the card's status is read from the card register at every use.
    own_status: Mapped[str] = mapped_column(String(16), default=EcardStatus.ACTIVE.value)
    # Names of the optional facts the citizen chose to show in the code (e.g. ["age_over_60"]).
    disclosures: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    own_status_changed_at: Mapped[datetime | None] = mapped_column(nullable=True)

    def __repr__(self) -> str:
        return f"ECard(id={self.id!r}, own_status={self.own_status!r})"
