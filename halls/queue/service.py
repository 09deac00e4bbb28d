"""Queue numbers: take one, follow it, call the next one at a counter, finish it (served / no-show).

``take_number`` is the one way a number is given, whatever the channel: the kiosk pages (card + PIN) call it
directly, the hall's scanner through ``POST /api/v1/halls/scan`` after the gate's verification of the e-card
code. Numbers come from ``halls.queue.numbers.next_seq`` (atomic across nodes); "one number per citizen and
service at a time" is the unique ``active_key`` (a second take, even a concurrent one on another node, gets
``AlreadyQueuedError``). Calling the next number is a compare-and-set on the ticket's status, so two counters
never call the same ticket. Functions take a ``Session`` and ``now`` and never commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from halls.queue.errors import (
    AlreadyQueuedError,
    CounterBusyError,
    InvalidTicketRequestError,
    TicketNotFoundError,
    TicketStateError,
)
from halls.queue.model import ACTIVE_STATUSES, Ticket, TicketStatus
from halls.queue.numbers import format_number, next_seq
from halls.register.model import Counter, Hall, HallService
from idp.audit.service import record_event
from idp.citizens.service import find_citizen, local_date
from idp.db import utc_from_timestamp

CHANNELS: Final = ("kiosk", "scanner")
MAX_TERMINAL_ID: Final = 64
# The estimate before a service has served anyone today: a typical counter transaction.
DEFAULT_HANDLING_SECONDS: Final = 300
ESTIMATE_SAMPLE: Final = 20  # the last served tickets of the day an estimate averages


@dataclass(frozen=True)
class TicketView:
    """A ticket as the citizen, the kiosk and the counter see it (no personal data)."""

    ticket_id: str
    hall_id: str
    hall_name: str
    service_code: str
    service_name: str
    service_name_en: str
    number: str
    status: str
    ahead: int  # waiting tickets of the same service before this one (0 once called)
    estimated_wait: int  # seconds, 0 once called or finished
    counter_name: str | None
    taken_at: datetime
    called_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "ticket_id": self.ticket_id,
            "hall_id": self.hall_id,
            "hall_name": self.hall_name,
            "service": self.service_code,
            "service_name": self.service_name,
            "service_name_en": self.service_name_en,
            "number": self.number,
            "status": self.status,
            "ahead": self.ahead,
            "estimated_wait": self.estimated_wait,
            "counter": self.counter_name,
            "taken_at": int(self.taken_at.timestamp()),
            "called_at": int(self.called_at.timestamp()) if self.called_at else None,
        }


def _active_key(service_id: str, citizen_id: str) -> str:
    return f"{service_id}:{citizen_id}"


def take_number(
    session: Session,
    *,
    citizen_id: str,
    service: HallService,
    channel: str = "kiosk",
    terminal_id: str | None = None,
    now: float,
) -> TicketView:
    """Give ``citizen_id`` the next number of ``service`` (a live service of a live hall).

    ``channel`` is ``kiosk`` (card + PIN at a self-service terminal, ``terminal_id`` its client id) or
    ``scanner`` (the e-card code at the hall's scanner). Raises ``AlreadyQueuedError`` (with the ticket they
    hold) when the citizen has a waiting or called number for this service already.
    """
    if channel not in CHANNELS:
        raise InvalidTicketRequestError("channel", description="channel is kiosk or scanner")
    if terminal_id is not None and (
        not isinstance(terminal_id, str)
        or not 0 < len(terminal_id) <= MAX_TERMINAL_ID
        or not terminal_id.isprintable()
    ):
        raise InvalidTicketRequestError(
            "terminal_id", description=f"terminal_id is 1-{MAX_TERMINAL_ID} printable characters"
        )
    hall = session.get(Hall, service.hall_id)
    if not service.is_live or hall is None or not hall.is_live:
        raise InvalidTicketRequestError("service", description="this service takes no numbers")
    citizen = find_citizen(session, citizen_id)
    if citizen is None or not citizen.is_active:
        raise InvalidTicketRequestError("citizen", description="no active citizen")
    key = _active_key(service.id, citizen_id)
    day = local_date(now)
    held = session.scalar(select(Ticket).where(Ticket.active_key == key))
    if held is not None and held.day < day:
        # A number of an earlier day that was never finished lapses with its day (the queue starts afresh
        # every morning): closed as cancelled, so it no longer holds the citizen's place.
        _finish(session, held, TicketStatus.CANCELLED, expected=ACTIVE_STATUSES, now=now)
        held = None
    if held is not None:
        raise AlreadyQueuedError("holds a number", ticket=ticket_view(session, held))
    try:
        # The number and the ticket in one savepoint: a concurrent take of the same citizen (the unique
        # active_key) undoes both, and the outer transaction stays usable on PostgreSQL.
        with session.begin_nested():
            seq = next_seq(session, service.id, day)
            ticket = Ticket(
                id=uuid.uuid4().hex,
                hall_id=service.hall_id,
                service_id=service.id,
                day=day,
                seq=seq,
                number=format_number(service.prefix, seq),
                citizen_id=citizen_id,
                channel=channel,
                terminal_id=terminal_id,
                status=TicketStatus.WAITING.value,
                active_key=key,
                taken_at=utc_from_timestamp(now),
            )
            session.add(ticket)
            session.flush()
    except IntegrityError as exc:
        held = session.scalar(select(Ticket).where(Ticket.active_key == key))
        if held is None:
            raise
        raise AlreadyQueuedError("holds a number", ticket=ticket_view(session, held)) from exc
    record_event(
        session,
        actor=f"citizen:{citizen_id}",
        action="hall.ticket.take",
        target_type="hall",
        target_id=service.hall_id,
        details={"number": ticket.number, "channel": channel, "terminal_id": terminal_id},
        now=now,
    )
    return ticket_view(session, ticket)


def _find_ticket(session: Session, ticket_id: Any) -> Ticket | None:
    if not isinstance(ticket_id, str) or len(ticket_id) != 32:
        return None
    return session.get(Ticket, ticket_id)


def get_ticket(session: Session, ticket_id: Any, *, citizen_id: str | None = None) -> Ticket:
    """The ticket; with ``citizen_id``, only if it is that citizen's (else not found, never "not yours")."""
    ticket = _find_ticket(session, ticket_id)
    if ticket is None or (citizen_id is not None and ticket.citizen_id != citizen_id):
        raise TicketNotFoundError(str(ticket_id)[:40])
    return ticket


def _handling_seconds(session: Session, service_id: str, day: Any) -> float:
    """The average time a counter spent on this service's last served tickets today."""
    rows = session.execute(
        select(Ticket.called_at, Ticket.finished_at)
        .where(
            Ticket.service_id == service_id,
            Ticket.day == day,
            Ticket.status == TicketStatus.SERVED.value,
            Ticket.called_at.is_not(None),
            Ticket.finished_at.is_not(None),
        )
        .order_by(Ticket.finished_at.desc())
        .limit(ESTIMATE_SAMPLE)
    ).all()
    spans = [(finished - called).total_seconds() for called, finished in rows if called and finished]
    return sum(spans) / len(spans) if spans else DEFAULT_HANDLING_SECONDS


def _counters_serving(session: Session, service: HallService) -> int:
    counters = session.scalars(
        select(Counter.service_ids).where(Counter.hall_id == service.hall_id, Counter.removed_at.is_(None))
    )
    return sum(1 for ids in counters if service.id in ids)


def ticket_view(session: Session, ticket: Ticket) -> TicketView:
    service = session.get(HallService, ticket.service_id)
    hall = session.get(Hall, ticket.hall_id)
    assert service is not None and hall is not None
    ahead = 0
    wait = 0
    if ticket.status == TicketStatus.WAITING.value:
        ahead = int(
            session.scalar(
                select(func.count())
                .select_from(Ticket)
                .where(
                    Ticket.service_id == ticket.service_id,
                    Ticket.day == ticket.day,
                    Ticket.status == TicketStatus.WAITING.value,
                    Ticket.seq < ticket.seq,
                )
            )
            or 0
        )
        counters = max(1, _counters_serving(session, service))
        wait = round((ahead + 1) * _handling_seconds(session, service.id, ticket.day) / counters)
    counter = session.get(Counter, ticket.counter_id) if ticket.counter_id else None
    return TicketView(
        ticket_id=ticket.id,
        hall_id=hall.id,
        hall_name=hall.name,
        service_code=service.code,
        service_name=service.name,
        service_name_en=service.name_en,
        number=ticket.number,
        status=ticket.status,
        ahead=ahead,
        estimated_wait=wait,
        counter_name=counter.name if counter else None,
        taken_at=ticket.taken_at,
        called_at=ticket.called_at,
    )


def tickets_of_citizen(session: Session, citizen_id: str, *, now: float) -> list[TicketView]:
    """The citizen's tickets of today, the active ones first."""
    rows = session.scalars(
        select(Ticket)
        .where(Ticket.citizen_id == citizen_id, Ticket.day == local_date(now))
        .order_by(Ticket.taken_at.desc())
    )
    views = [ticket_view(session, t) for t in rows]
    return sorted(views, key=lambda v: v.status not in ACTIVE_STATUSES)


def cancel_ticket(session: Session, ticket_id: Any, *, citizen_id: str, now: float) -> None:
    """The citizen gives up their waiting number."""
    ticket = get_ticket(session, ticket_id, citizen_id=citizen_id)
    if not _finish(session, ticket, TicketStatus.CANCELLED, expected=(TicketStatus.WAITING.value,), now=now):
        raise TicketStateError("not waiting")
    record_event(
        session,
        actor=f"citizen:{citizen_id}",
        action="hall.ticket.cancel",
        target_type="hall",
        target_id=ticket.hall_id,
        details={"number": ticket.number},
        now=now,
    )


def _finish(
    session: Session, ticket: Ticket, status: TicketStatus, *, expected: Sequence[str], now: float
) -> bool:
    """Compare-and-set the ticket's status from one of ``expected``; False if another node got there first."""
    result = session.execute(
        update(Ticket)
        .where(Ticket.id == ticket.id, Ticket.status.in_(expected))
        .values(status=status.value, active_key=None, finished_at=utc_from_timestamp(now)),
        execution_options={"synchronize_session": False},
    )
    session.refresh(ticket)
    return bool(result.rowcount)  # type: ignore[attr-defined]


def current_ticket(session: Session, counter: Counter) -> Ticket | None:
    return session.scalar(
        select(Ticket).where(Ticket.counter_id == counter.id, Ticket.status == TicketStatus.CALLED.value)
    )


def call_next(
    session: Session, counter: Counter, *, actor: str, device_client_id: str | None, now: float
) -> TicketView | None:
    """Call the longest-waiting number of the counter's services today; None when nobody waits.
    ``device_client_id``: the counter's device that called (recorded); None for the staff override (the CLI).

    Each candidate is claimed with a compare-and-set (``status = 'waiting'``): if another counter, on any
    node, claimed it first, the next candidate is tried.
    """
    if current_ticket(session, counter) is not None:
        raise CounterBusyError(counter.id)
    day = local_date(now)
    while True:
        query = (
            select(Ticket.id)
            .where(
                Ticket.service_id.in_(counter.service_ids),
                Ticket.day == day,
                Ticket.status == TicketStatus.WAITING.value,
            )
            .order_by(Ticket.taken_at, Ticket.seq)
            .limit(1)
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        ticket_id = session.scalar(query)
        if ticket_id is None:
            return None
        claimed = session.execute(
            update(Ticket)
            .where(Ticket.id == ticket_id, Ticket.status == TicketStatus.WAITING.value)
            .values(
                status=TicketStatus.CALLED.value, counter_id=counter.id, called_at=utc_from_timestamp(now)
            ),
            execution_options={"synchronize_session": False},
        )
        if claimed.rowcount:  # type: ignore[attr-defined]
            break
    ticket = session.get(Ticket, ticket_id)
    assert ticket is not None
    session.refresh(ticket)
    record_event(
        session,
        actor=actor,
        action="hall.ticket.call",
        target_type="hall",
        target_id=counter.hall_id,
        details=_call_details(ticket, counter, device_client_id),
        now=now,
    )
    return ticket_view(session, ticket)


def _call_details(ticket: Ticket, counter: Counter, device_client_id: str | None) -> dict[str, Any]:
    """What a counter's call records: the number, the counter, and the device that made it (or that staff
    overrode the device, at the console)."""
    via: dict[str, Any] = (
        {"device_client_id": device_client_id} if device_client_id is not None else {"staff_override": True}
    )
    return {"number": ticket.number, "counter": counter.code, **via}


def finish_current(
    session: Session, counter: Counter, status: Any, *, actor: str, device_client_id: str | None, now: float
) -> TicketView:
    """Mark the number the counter called as ``served`` or ``no_show``."""
    outcomes = {
        TicketStatus.SERVED.value: TicketStatus.SERVED,
        TicketStatus.NO_SHOW.value: TicketStatus.NO_SHOW,
    }
    if status not in outcomes:
        raise InvalidTicketRequestError("status", description="status is served or no_show")
    ticket = current_ticket(session, counter)
    if ticket is None or not _finish(
        session, ticket, outcomes[status], expected=(TicketStatus.CALLED.value,), now=now
    ):
        raise TicketStateError("the counter has no called number")
    record_event(
        session,
        actor=actor,
        action=f"hall.ticket.{status}",
        target_type="hall",
        target_id=counter.hall_id,
        details=_call_details(ticket, counter, device_client_id),
        now=now,
    )
    return ticket_view(session, ticket)


@dataclass(frozen=True)
class BoardEntry:
    number: str
    counter_name: str


@dataclass(frozen=True)
class Board:
    """What the hall's display shows: the numbers called now, and how many wait per service."""

    called: list[BoardEntry]
    waiting: dict[str, int]  # service code → waiting tickets

    def to_json(self) -> dict[str, Any]:
        return {
            "called": [{"number": e.number, "counter": e.counter_name} for e in self.called],
            "waiting": self.waiting,
        }


def hall_board(session: Session, hall: Hall, *, now: float, limit: int = 8) -> Board:
    day = local_date(now)
    called = session.execute(
        select(Ticket.number, Counter.name)
        .join(Counter, Counter.id == Ticket.counter_id)
        .where(Ticket.hall_id == hall.id, Ticket.day == day, Ticket.status == TicketStatus.CALLED.value)
        .order_by(Ticket.called_at.desc())
        .limit(limit)
    ).all()
    waiting = dict(
        session.execute(
            select(HallService.code, func.count(Ticket.id))
            .join(Ticket, Ticket.service_id == HallService.id)
            .where(Ticket.hall_id == hall.id, Ticket.day == day, Ticket.status == TicketStatus.WAITING.value)
            .group_by(HallService.code)
        ).all()
    )
    return Board([BoardEntry(n, c) for n, c in called], {str(k): int(v) for k, v in waiting.items()})
