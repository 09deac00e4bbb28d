"""Wallet devices: one row per passkey a citizen bound (WebAuthn Level 3 §4 "credential record").

The credential id is stored base64url (unique: the sign-in ceremony finds the device by it); the public key
is the COSE key from the attestation; ``sign_count`` is the last counter seen, raised only by a conditional
update so two nodes cannot both accept the same counter value.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base


class WalletDevice(Base):
    __tablename__ = "wallet_devices"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    citizen_id: Mapped[str] = mapped_column(ForeignKey("citizens.id"), index=True)
    credential_id: Mapped[str] = mapped_column(String(344), unique=True)  # base64url, at most 255 bytes
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # COSE_Key
    sign_count: Mapped[int] = mapped_column(Integer, default=0)
    name: Mapped[str] = mapped_column(String(64))  # the citizen's label, e.g. "My phone"
    aaguid: Mapped[str] = mapped_column(String(36), default="")
    transports: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None] = mapped_column(nullable=True)

    def __repr__(self) -> str:
        return f"WalletDevice(id={self.id!r})"
