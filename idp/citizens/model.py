"""The register's table: one row per citizen, PII encrypted (DESIGN.md §2 "PII at rest").

``name_ct`` and ``id_number_ct`` are ``idp.crypto.pii`` ciphertexts bound to the row's id;
``id_number_index`` is the blind index (HMAC) every lookup by ID number goes through, unique so one person
is registered once. ``data_key_id`` names the data key the row is encrypted under, so rotating the data key
can find the rows still to re-encrypt without decrypting anything.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base


class CitizenStatus(enum.StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"  # cannot log in or be verified; the record stays (deceased, duplicate, fraud…)


class Citizen(Base):
    __tablename__ = "citizens"
    __table_args__ = (CheckConstraint("status IN ('active', 'disabled')", name="status"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # a UUID chosen before encrypting
    name_ct: Mapped[bytes] = mapped_column(LargeBinary)
    id_number_ct: Mapped[bytes] = mapped_column(LargeBinary)
    id_number_index: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    data_key_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default=CitizenStatus.ACTIVE.value)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    @property
    def is_active(self) -> bool:
        return self.status == CitizenStatus.ACTIVE

    def __repr__(self) -> str:
        # Never the ciphertexts or the index: a repr ends up in logs.
        return f"Citizen(id={self.id!r}, status={self.status!r})"
