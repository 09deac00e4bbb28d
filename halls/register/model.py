"""Halls, their services and counters.

A hall owns a wallet venue (``venue_id``): its scanner's credentials are that venue's gate client, so a code
scanned in the hall is verified by the gate's own path and the hall appears in the application catalogue.
A service's ``prefix`` is the letter its numbers start with (A012). A counter's ``device_client_id`` is its
registered device (DESIGN.md §14): an ``idp.clients`` client of kind ``device`` (private_key_jwt, scope
``hall:counter``), the only caller that may call and finish the counter's numbers. Removed rows are kept
(tickets and statistics name them) with ``removed_at`` set.

A ``Kiosk`` is a self-service terminal registered to one hall: its row is keyed by its ``idp.clients``
client (kind ``kiosk``, private_key_jwt) and goes with it — tickets, sessions and audit events name a kiosk
by its client id as a string, so nothing needs the row once the terminal is gone. ``bridge_url`` is where the
terminal's own reader bridge listens, when not on the deployment's ``card_bridge_url``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base


class Hall(Base):
    __tablename__ = "halls_halls"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(300), default="")
    venue_id: Mapped[str | None] = mapped_column(ForeignKey("wallet_venues.id"), unique=True, nullable=True)
    created_at: Mapped[datetime]
    removed_at: Mapped[datetime | None] = mapped_column(nullable=True)

    @property
    def is_live(self) -> bool:
        return self.removed_at is None


class HallService(Base):
    __tablename__ = "halls_services"
    __table_args__ = (
        UniqueConstraint("hall_id", "code"),
        UniqueConstraint("hall_id", "prefix", name="uq_halls_services_hall_id_prefix"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    hall_id: Mapped[str] = mapped_column(ForeignKey("halls_halls.id"))
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))  # Chinese, as the hall's signs say it
    name_en: Mapped[str] = mapped_column(String(200), default="")
    prefix: Mapped[str] = mapped_column(String(2))
    created_at: Mapped[datetime]
    removed_at: Mapped[datetime | None] = mapped_column(nullable=True)

    @property
    def is_live(self) -> bool:
        return self.removed_at is None


class Counter(Base):
    __tablename__ = "halls_counters"
    __table_args__ = (UniqueConstraint("hall_id", "code"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    hall_id: Mapped[str] = mapped_column(ForeignKey("halls_halls.id"))
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(100))  # e.g. 3号窗口
    service_ids: Mapped[list[str]] = mapped_column(JSON, default=list)  # the services it calls, in order
    device_client_id: Mapped[str | None] = mapped_column(
        ForeignKey("oauth_clients.client_id", ondelete="SET NULL"), unique=True, nullable=True
    )
    created_at: Mapped[datetime]
    removed_at: Mapped[datetime | None] = mapped_column(nullable=True)

    @property
    def is_live(self) -> bool:
        return self.removed_at is None


class Kiosk(Base):
    __tablename__ = "kiosk_terminals"
    __table_args__ = (UniqueConstraint("hall_id", "name"),)  # staff tell a hall's kiosks apart by name

    client_id: Mapped[str] = mapped_column(
        ForeignKey("oauth_clients.client_id", ondelete="CASCADE"), primary_key=True
    )
    hall_id: Mapped[str] = mapped_column(ForeignKey("halls_halls.id"))
    name: Mapped[str] = mapped_column(String(200))
    bridge_url: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_at: Mapped[datetime]
