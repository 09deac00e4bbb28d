"""The catalogue's tables: the entries as they are now, and every version each entry has had.

An entry is a place or service where the card works: its name, category, region (GB/T 2260) and address,
optional coordinates, what the card does there (``capabilities``) and what the place learns about the
citizen (``claims``). An entry linked to a gate venue (``venue_id``) takes its name, category and claims
from the venue register, which keeps it up to date; staff add the rest. Withdrawn entries stay (their
history names them) but the public catalogue no longer lists them.

Each change writes a revision: the entry's whole content after the change (``snapshot``), who made it and
when — so every earlier version can be read back (``history``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base


class CatalogueEntry(Base):
    __tablename__ = "wallet_catalogue_entries"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(32), index=True)
    region: Mapped[str | None] = mapped_column(String(6), index=True, nullable=True)
    address: Mapped[str] = mapped_column(String(300), default="")
    latitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    longitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    capabilities: Mapped[list[str]] = mapped_column(JSON, default=list)
    claims: Mapped[list[str]] = mapped_column(JSON, default=list)
    venue_id: Mapped[str | None] = mapped_column(ForeignKey("wallet_venues.id"), unique=True, nullable=True)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    withdrawn_at: Mapped[datetime | None] = mapped_column(nullable=True)

    @property
    def is_listed(self) -> bool:
        return self.withdrawn_at is None


class CatalogueRevision(Base):
    __tablename__ = "wallet_catalogue_revisions"
    __table_args__ = (UniqueConstraint("entry_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entry_id: Mapped[str] = mapped_column(ForeignKey("wallet_catalogue_entries.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(16))  # create | update | withdraw | restore
    actor: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime]
    changed: Mapped[list[str]] = mapped_column(JSON, default=list)  # the fields this version changed
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON)
