"""Stored keys: one row per key version, of every key set, in one lifecycle (DESIGN.md §7).

pending (published, not yet used) → active (signs / encrypts) → retired (still published and accepted) →
removed; revoked ends a compromised key at once. Private parts and secrets are wrapped under the
key-encryption key (idp.crypto.kek); only public JWKs are stored in the clear.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base


class KeyState(enum.StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    RETIRED = "retired"
    REMOVED = "removed"
    REVOKED = "revoked"


# States in which a key is published (JWKS, QR key set) and accepted by verifiers.
PUBLISHED_STATES = (KeyState.PENDING, KeyState.ACTIVE, KeyState.RETIRED)


class KeyRecord(Base):
    __tablename__ = "crypto_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_set: Mapped[str] = mapped_column(String(64), index=True)
    alg: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), index=True)
    wrapped_secret: Mapped[bytes] = mapped_column(LargeBinary)
    public_jwk: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    certificate_pem: Mapped[str | None] = mapped_column(String(8192), nullable=True)
    created_at: Mapped[datetime]
    activated_at: Mapped[datetime | None] = mapped_column(nullable=True)
    retired_at: Mapped[datetime | None] = mapped_column(nullable=True)
    removed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)

    @property
    def is_published(self) -> bool:
        return self.state in PUBLISHED_STATES
