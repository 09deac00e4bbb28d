"""Venues: scenario operators (parks, museums, libraries, …) whose gates scan e-card codes.

Each venue owns a client of kind ``venue`` with scope ``gate:verify`` (its gate credentials). ``claims`` is
its policy: the facts the online API may tell it about a citizen whose code passed; ``regions`` the issuing
regions it accepts (empty: every region); ``verify_per_minute`` how many online verifications all its gates
together may ask for in a minute, across every node. A removed venue keeps its row (scan records and
statistics name it) but loses its client, so its credentials stop working at once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base

# The limit every venue had before it was a setting: 200/s, far above a museum's gates.
DEFAULT_VERIFY_PER_MINUTE = 12_000


class Venue(Base):
    __tablename__ = "wallet_venues"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(32), index=True)
    client_id: Mapped[str | None] = mapped_column(
        ForeignKey("oauth_clients.client_id", ondelete="SET NULL"), unique=True, nullable=True
    )
    claims: Mapped[list[str]] = mapped_column(JSON, default=list)
    regions: Mapped[list[str]] = mapped_column(JSON, default=list)
    verify_per_minute: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_VERIFY_PER_MINUTE, server_default=str(DEFAULT_VERIFY_PER_MINUTE)
    )
    created_at: Mapped[datetime]
    removed_at: Mapped[datetime | None] = mapped_column(nullable=True)

    @property
    def is_live(self) -> bool:
        return self.removed_at is None
