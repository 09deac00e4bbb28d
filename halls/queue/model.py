"""Tickets (queue numbers) and the per-service, per-day number sequences.

``active_key`` is ``<service_id>:<citizen_id>`` while a ticket is waiting or called and NULL once it is
served, cancelled or a no-show: its unique constraint is "one number per citizen and service at a time",
enforced by the database on SQLite and PostgreSQL alike (NULLs never collide). ``(service_id, day, seq)`` is
unique too, so no number is given twice even if two nodes ever raced past the sequence row.
``NumberSequence`` is that row: taking a number increments it atomically (halls.queue.numbers).
"""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base


class TicketStatus(enum.StrEnum):
    WAITING = "waiting"
    CALLED = "called"
    SERVED = "served"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"


ACTIVE_STATUSES = (TicketStatus.WAITING.value, TicketStatus.CALLED.value)


class Ticket(Base):
    __tablename__ = "halls_tickets"
    __table_args__ = (
        UniqueConstraint("service_id", "day", "seq"),
        UniqueConstraint("active_key"),
        CheckConstraint("status IN ('waiting', 'called', 'served', 'cancelled', 'no_show')", name="status"),
        Index("ix_halls_tickets_hall_id_day", "hall_id", "day"),
        Index("ix_halls_tickets_citizen_id_taken_at", "citizen_id", "taken_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    hall_id: Mapped[str] = mapped_column(ForeignKey("halls_halls.id"))
    service_id: Mapped[str] = mapped_column(ForeignKey("halls_services.id"))
    day: Mapped[date] = mapped_column(Date)  # the date in China, where the halls are
    seq: Mapped[int] = mapped_column(Integer)
    number: Mapped[str] = mapped_column(String(8))  # prefix + seq, e.g. A012
    citizen_id: Mapped[str] = mapped_column(ForeignKey("citizens.id"))
    channel: Mapped[str] = mapped_column(String(8))  # kiosk | scanner
    terminal_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(12), default=TicketStatus.WAITING.value)
    active_key: Mapped[str | None] = mapped_column(String(80), nullable=True)
    counter_id: Mapped[str | None] = mapped_column(ForeignKey("halls_counters.id"), nullable=True)
    taken_at: Mapped[datetime]
    called_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES


class NumberSequence(Base):
    __tablename__ = "halls_number_sequences"

    service_id: Mapped[str] = mapped_column(ForeignKey("halls_services.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
