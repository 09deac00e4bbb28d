"""Synced regions: a copy, per peer region the federation vouches for, of its QR key set and its suspended
e-card handles (docs/federation.md "Gates across regions").

One row per peer's entity id. ``qr_jwks`` and ``suspended_handles`` are the documents as the peer last
served them, each with the ``ETag`` it gave (for the next conditional request) and when this deployment
last had it confirmed (a 200 or a 304): that time, not the peer's ``generated_at``, is how old the copy is.
A region the directory no longer lists loses its row at the next sync. No PII: handles are opaque.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base


class SyncedRegion(Base):
    __tablename__ = "wallet_synced_regions"

    entity_id: Mapped[str] = mapped_column(String(512), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    region_codes: Mapped[list[str]] = mapped_column(JSON)
    qr_jwks: Mapped[dict[str, object]] = mapped_column(JSON)
    qr_jwks_etag: Mapped[str | None] = mapped_column(String(200), nullable=True)
    qr_jwks_synced_at: Mapped[datetime]
    suspended_handles: Mapped[list[str]] = mapped_column(JSON)
    suspended_etag: Mapped[str | None] = mapped_column(String(200), nullable=True)
    suspended_generated_at: Mapped[int] = mapped_column(BigInteger)
    suspended_synced_at: Mapped[datetime]
    updated_at: Mapped[datetime]
