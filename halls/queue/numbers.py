"""The next number of a service on a day, taken atomically in the database on every node.

One statement: ``INSERT … ON CONFLICT (service_id, day) DO UPDATE SET last_seq = last_seq + 1 RETURNING
last_seq``. PostgreSQL locks the sequence row for the rest of the transaction, so a second node's upsert waits
and then sees the first one's increment; SQLite has a single writer. No read-then-write, so no two
transactions ever get the same number (and ``uq_halls_tickets_service_id`` would refuse it if they did).
"""

from __future__ import annotations

from datetime import date

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from halls.queue.model import NumberSequence


def next_seq(session: Session, service_id: str, day: date) -> int:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(NumberSequence)
        .values(service_id=service_id, day=day, last_seq=1)
        .on_conflict_do_update(
            index_elements=[NumberSequence.service_id, NumberSequence.day],
            set_={"last_seq": NumberSequence.last_seq + 1},
        )
        .returning(NumberSequence.last_seq)
    )
    return int(session.execute(statement).scalar_one())


def format_number(prefix: str, seq: int) -> str:
    """A012: the service's letter and at least three digits, as the hall's display and the ticket show it."""
    return f"{prefix}{seq:03d}"
