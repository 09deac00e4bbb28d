"""The subordinates a trust anchor or intermediate has registered (OpenID Federation 1.0 §8.1): one row
per entity it issues subordinate statements about, registered by staff (``onecard federation``, the admin
API). Everything in a row is public: it becomes the subordinate statement ``fetch`` serves.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base

MAX_ENTITY_ID_LENGTH = 512


class Subordinate(Base):
    __tablename__ = "federation_subordinates"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    entity_id: Mapped[str] = mapped_column(String(MAX_ENTITY_ID_LENGTH), unique=True)
    # The subordinate's federation keys as this issuer vouches for them (the statement's ``jwks``).
    jwks: Mapped[dict[str, Any]] = mapped_column(JSON)
    metadata_policy: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Parameters this issuer sets for the subordinate, over the subordinate's own (the statement's metadata).
    entity_metadata: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON, nullable=True)
    constraints: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Trust mark types this issuer may issue to the subordinate (``onecard federation issue-trust-mark``).
    trust_mark_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
