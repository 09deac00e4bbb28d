"""Usage statistics: scans per venue and per category per day (issue 4 item 8, DESIGN.md §5).

Days are dates in China (``ScanRecord.day``, written with the scan), so a scan at 07:30 Beijing time counts
for that day although it is the previous day in UTC. Counts come straight from ``GROUP BY`` over the scan
records; nothing is stored twice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from wallet.scans.model import ScanRecord
from wallet.stats.errors import InvalidPeriodError
from wallet.venues.model import Venue

MAX_DAYS: Final = 366


@dataclass(frozen=True)
class Count:
    passed: int = 0
    rejected: int = 0

    @property
    def total(self) -> int:
        return self.passed + self.rejected

    def add(self, result: str, n: int) -> Count:
        return (
            Count(self.passed + n, self.rejected)
            if result == "pass"
            else Count(self.passed, self.rejected + n)
        )

    def to_json(self) -> dict[str, int]:
        return {"passed": self.passed, "rejected": self.rejected, "total": self.total}


@dataclass(frozen=True)
class ScanStats:
    start: dt.date
    end: dt.date
    by_venue_day: dict[tuple[dt.date, str], Count]
    by_category_day: dict[tuple[dt.date, str], Count]
    venues: dict[str, tuple[str, str]]  # venue id → (name, category)

    def days(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    def per_category(self) -> dict[str, Count]:
        totals: dict[str, Count] = {}
        for (_day, category), count in self.by_category_day.items():
            before = totals.get(category, Count())
            totals[category] = Count(before.passed + count.passed, before.rejected + count.rejected)
        return dict(sorted(totals.items()))

    def per_day(self) -> dict[dt.date, Count]:
        totals = {day: Count() for day in self.days()}
        for (day, _category), count in self.by_category_day.items():
            before = totals[day]
            totals[day] = Count(before.passed + count.passed, before.rejected + count.rejected)
        return totals

    def to_json(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "timezone": "Asia/Shanghai",
            "by_venue": [
                {
                    "day": day.isoformat(),
                    "venue_id": venue_id,
                    "venue_name": self.venues.get(venue_id, ("", ""))[0],
                    "category": self.venues.get(venue_id, ("", ""))[1],
                    **count.to_json(),
                }
                for (day, venue_id), count in sorted(self.by_venue_day.items())
            ],
            "by_category": [
                {"day": day.isoformat(), "category": category, **count.to_json()}
                for (day, category), count in sorted(self.by_category_day.items())
            ],
            "totals_by_category": {
                category: count.to_json() for category, count in self.per_category().items()
            },
        }


def parse_period(start: str | None, end: str | None, *, today: dt.date) -> tuple[dt.date, dt.date]:
    """``from``/``to`` query values (inclusive); the last 7 days when absent."""
    try:
        last = dt.date.fromisoformat(end) if end else today
        first = dt.date.fromisoformat(start) if start else last - dt.timedelta(days=6)
    except (TypeError, ValueError) as exc:
        raise InvalidPeriodError("bad date") from exc
    if first > last or (last - first).days >= MAX_DAYS:
        raise InvalidPeriodError("bad period")
    return first, last


def scan_stats(session: Session, *, start: dt.date, end: dt.date, venue_id: str | None = None) -> ScanStats:
    if start > end or (end - start).days >= MAX_DAYS:
        raise InvalidPeriodError("bad period")
    where = [ScanRecord.day >= start, ScanRecord.day <= end]
    if venue_id is not None:
        where.append(ScanRecord.venue_id == venue_id)
    rows = session.execute(
        select(ScanRecord.day, ScanRecord.venue_id, ScanRecord.category, ScanRecord.result, func.count())
        .where(*where)
        .group_by(ScanRecord.day, ScanRecord.venue_id, ScanRecord.category, ScanRecord.result)
    ).all()
    by_venue: dict[tuple[dt.date, str], Count] = {}
    by_category: dict[tuple[dt.date, str], Count] = {}
    for day, venue, category, result, n in rows:
        by_venue[(day, venue)] = by_venue.get((day, venue), Count()).add(result, int(n))
        by_category[(day, category)] = by_category.get((day, category), Count()).add(result, int(n))
    names = {
        venue.id: (venue.name, venue.category)
        for venue in session.scalars(select(Venue).where(Venue.id.in_({v for _d, v in by_venue})))
    }
    return ScanStats(start, end, by_venue, by_category, names)
