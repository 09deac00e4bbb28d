"""Key custody as gauges, computed from the key table when Prometheus scrapes (so they are right whichever
process answers, and need no shared files in multiprocess mode).

- ``onecard_key_age_seconds{key_set}``: how long the signing (active) key of each set has been active.
- ``onecard_key_rotation_due_seconds{key_set}``: seconds until the scheduler starts the set's next rotation
  (``KeySetPolicy.rotation_due``, what ``onecard keys list`` shows as the active key's next step); negative
  when it is overdue, e.g. no ``onecard keys tick`` has run. Only for sets that rotate on a schedule and have
  no successor already pending (the rotation has started then).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy.exc import SQLAlchemyError

from idp.keys.errors import KeyNotFoundError, KeyStateError
from idp.keys.model import KeyRecord, KeyState
from idp.keys.policy import policy_for
from idp.keys.service import list_keys

if TYPE_CHECKING:
    from idp.config import Settings
    from idp.db import Database
    from sdk.clock import Clock

log = logging.getLogger(__name__)


def _in_use_since(record: KeyRecord) -> float:
    return (record.activated_at or record.created_at).timestamp()


class KeyScheduleCollector:
    """A prometheus_client custom collector reading the key table of ``database`` at every scrape."""

    def __init__(self, database: Database, settings: Settings, clock: Clock) -> None:
        self.database = database
        self.settings = settings
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        age = GaugeMetricFamily(
            "onecard_key_age_seconds",
            "Seconds since the active key of the set was activated.",
            labels=["key_set"],
        )
        due = GaugeMetricFamily(
            "onecard_key_rotation_due_seconds",
            "Seconds until the scheduler starts the set's next rotation; negative when overdue.",
            labels=["key_set"],
        )
        now = self.clock()
        try:
            with self.database.session() as session:
                records = list_keys(session)
        except SQLAlchemyError as error:
            # A scrape must still answer (request metrics matter most when the database is in trouble).
            log.warning("key metrics skipped: %s", type(error).__name__)
            return
        by_set: dict[str, list[KeyRecord]] = {}
        for record in records:  # newest first within each set
            by_set.setdefault(record.key_set, []).append(record)
        for name, keys in by_set.items():
            active = [record for record in keys if record.state == KeyState.ACTIVE.value]
            if not active:
                continue
            since = _in_use_since(active[0])
            age.add_metric([name], now - since)
            try:
                policy = policy_for(self.settings, name)
            except (KeyStateError, KeyNotFoundError):
                continue  # a set this version has no policy for: it does not rotate here
            pending = any(record.state == KeyState.PENDING.value for record in keys)
            when = policy.rotation_due(since) if policy.rotatable and not pending else None
            if when is not None:
                due.add_metric([name], when - now)
        yield age
        yield due
