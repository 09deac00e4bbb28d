"""Scan records: one row per online verification, passed or rejected (docs/formats/essc1.md §7).

The citizen's scan history reads them by ``ecard_id`` (set whenever the code's signature held, so the
handle is the issuer's own); the usage statistics group them by ``day`` (the date in China, where the
venues are) and by ``venue_id`` and ``category`` (the venue's category when the scan happened). No PII: the
code itself is not stored, only the outcome.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base


class ScanRecord(Base):
    __tablename__ = "wallet_scans"
    __table_args__ = (
        Index("ix_wallet_scans_day_venue_id", "day", "venue_id"),
        Index("ix_wallet_scans_ecard_id_at", "ecard_id", "at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    venue_id: Mapped[str] = mapped_column(ForeignKey("wallet_venues.id"))
    category: Mapped[str] = mapped_column(String(32))
    ecard_id: Mapped[str | None] = mapped_column(ForeignKey("wallet_ecards.id"), nullable=True)
    at: Mapped[datetime]
    day: Mapped[date] = mapped_column(Date)
    result: Mapped[str] = mapped_column(String(8))  # pass | reject
    reason: Mapped[str | None] = mapped_column(String(16), nullable=True)  # a QrTokenReason on reject
    gate_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
