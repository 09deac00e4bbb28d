"""The card register's table: one row per physical social security card (DESIGN.md §2 "physical cards", §4).

``card_id`` is the card identification code (CARD_PROFILE.md EF05 rec 01) in upper-case hex, as the card
certificate's subject serialNumber carries it; ``card_number`` is the printed card number (EF05 rec 07, the
certificate's CN). The row holds no name or ID number: the citizen is reached through ``citizen_id``. The
certificate is remembered by serial and SHA-256 fingerprint, so a login must present exactly the certificate
issued for this card.
"""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base


class CardStatus(enum.StrEnum):
    ACTIVE = "active"
    LOST = "lost"  # reported lost (挂失); restored by 解挂
    SUSPENDED = "suspended"  # held by the card service (e.g. under review); restorable
    CANCELLED = "cancelled"  # final: replaced, returned or withdrawn


# Which status changes card-service staff may make; cancelled is final.
STATUS_CHANGES: dict[CardStatus, frozenset[CardStatus]] = {
    CardStatus.ACTIVE: frozenset({CardStatus.LOST, CardStatus.SUSPENDED, CardStatus.CANCELLED}),
    CardStatus.LOST: frozenset({CardStatus.ACTIVE, CardStatus.CANCELLED}),
    CardStatus.SUSPENDED: frozenset({CardStatus.ACTIVE, CardStatus.CANCELLED}),
    CardStatus.CANCELLED: frozenset(),
}


class Card(Base):
    __tablename__ = "cards"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'lost', 'suspended', 'cancelled')", name="status"),
    )

    card_id: Mapped[str] = mapped_column(String(32), primary_key=True)  # 16 bytes, upper-case hex
    card_number: Mapped[str] = mapped_column(String(9), unique=True)
    citizen_id: Mapped[str] = mapped_column(ForeignKey("citizens.id"), index=True)
    region: Mapped[str] = mapped_column(String(6), index=True)  # GB/T 2260 division code of the issuer
    status: Mapped[str] = mapped_column(String(16), default=CardStatus.ACTIVE.value)
    issuer_kid: Mapped[str] = mapped_column(String(64))  # the card-issuer CA key that signed the certificate
    certificate_serial: Mapped[str] = mapped_column(String(40))  # hex
    certificate_fingerprint: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 of the DER, hex
    issued_on: Mapped[date] = mapped_column(Date)
    expires_on: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    status_changed_at: Mapped[datetime | None] = mapped_column(nullable=True)

    @property
    def is_active(self) -> bool:
        return self.status == CardStatus.ACTIVE

    def __repr__(self) -> str:
        return f"Card(card_id={self.card_id!r}, status={self.status!r})"
