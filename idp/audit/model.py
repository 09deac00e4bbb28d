"""The audit trail's table (DESIGN.md §8 "Audit events are append-only and hash-chained").

``seq`` numbers events 1, 2, 3… without gaps; each row's ``hash`` is SHA-256 over a canonical encoding of
its fields including ``prev_hash``, the hash of event ``seq - 1`` (all zeros for event 1). Hashes are
lower-case hex. ``details`` is a small JSON object that never holds PII or secrets.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base


class AuditEvent(Base):
    __tablename__ = "audit_events"

    # Assigned by the service (last seq + 1), never by the database: the number is part of the hash.
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(128))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    # Unique: verification looks events up by hash, and two equal hashes would mean a broken chain.
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    def __repr__(self) -> str:
        return (
            f"AuditEvent(seq={self.seq}, action={self.action!r}, target={self.target_type}:{self.target_id})"
        )
