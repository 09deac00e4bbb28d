"""A hall's day in numbers: per service the numbers taken, served, no-shows and the average wait (taken →
called), and the numbers served per hour (China time). Computed from the day's tickets of one hall, which a
hall counts in hundreds, not millions."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from halls.queue.errors import InvalidTicketRequestError
from halls.queue.model import Ticket, TicketStatus
from halls.register.model import Hall, HallService
from idp.citizens.service import CHINA_TIME


@dataclass
class ServiceStats:
    code: str
    name: str
    taken: int = 0
    served: int = 0
    no_show: int = 0
    waits: list[float] = field(default_factory=list)

    @property
    def average_wait(self) -> int | None:
        """Seconds from taking the number to being called, over the numbers called; None if none was."""
        return round(sum(self.waits) / len(self.waits)) if self.waits else None


@dataclass(frozen=True)
class HallStats:
    hall_id: str
    day: dt.date
    services: list[ServiceStats]
    served_per_hour: dict[int, int]  # hour of the day in China → numbers served

    def to_json(self) -> dict[str, Any]:
        return {
            "hall_id": self.hall_id,
            "day": self.day.isoformat(),
            "services": [
                {
                    "code": s.code,
                    "name": s.name,
                    "taken": s.taken,
                    "served": s.served,
                    "no_show": s.no_show,
                    "average_wait": s.average_wait,
                }
                for s in self.services
            ],
            "served_per_hour": {f"{hour:02d}": n for hour, n in sorted(self.served_per_hour.items())},
        }


def parse_day(value: str | None, *, today: dt.date) -> dt.date:
    if not value:
        return today
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidTicketRequestError("day", description="day is a date, YYYY-MM-DD") from exc


def hall_stats(session: Session, hall: Hall, *, day: dt.date) -> HallStats:
    services = {
        s.id: ServiceStats(s.code, s.name)
        for s in session.scalars(
            select(HallService).where(HallService.hall_id == hall.id).order_by(HallService.prefix)
        )
    }
    per_hour: dict[int, int] = {}
    for ticket in session.scalars(select(Ticket).where(Ticket.hall_id == hall.id, Ticket.day == day)):
        stats = services[ticket.service_id]
        stats.taken += 1
        if ticket.called_at is not None:
            stats.waits.append((ticket.called_at - ticket.taken_at).total_seconds())
        if ticket.status == TicketStatus.NO_SHOW.value:
            stats.no_show += 1
        if ticket.status == TicketStatus.SERVED.value and ticket.finished_at is not None:
            stats.served += 1
            hour = ticket.finished_at.astimezone(CHINA_TIME).hour
            per_hour[hour] = per_hour.get(hour, 0) + 1
    return HallStats(hall.id, day, list(services.values()), per_hour)
