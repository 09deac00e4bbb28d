"""Register operations: find, list, describe and change the status of cards (DESIGN.md §4, §8).

Functions take a SQLAlchemy ``Session`` and ``now`` and never commit: the caller's unit of work does, so a
status change and its audit event are stored together or not at all. Every status change is an audit event
(``card.lost``, ``card.restored``, ``card.suspended``, ``card.cancelled``) naming who made it.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from idp.audit.service import record_event
from idp.cards.errors import (
    CardNotFoundError,
    CardStatusConflictError,
    InvalidCardIdError,
    InvalidCardStatusError,
)
from idp.cards.model import STATUS_CHANGES, Card, CardStatus
from idp.db import utc_from_timestamp

MAX_PAGE_SIZE = 1000
_CARD_ID = re.compile(r"^[0-9A-Fa-f]{32}$")

# The audit action of each target status.
STATUS_ACTIONS: dict[CardStatus, str] = {
    CardStatus.ACTIVE: "card.restored",
    CardStatus.LOST: "card.lost",
    CardStatus.SUSPENDED: "card.suspended",
    CardStatus.CANCELLED: "card.cancelled",
}


def normalise_card_id(text: str) -> str:
    """The register's spelling of a card id (upper-case hex), or ``InvalidCardIdError``."""
    if not isinstance(text, str) or not _CARD_ID.match(text):
        raise InvalidCardIdError("card id is not 32 hex digits")
    return text.upper()


def parse_status(text: str) -> CardStatus:
    try:
        return CardStatus(text)
    except ValueError as exc:
        raise InvalidCardStatusError(f"status {text!r}") from exc


def find_card(session: Session, card_id: str) -> Card | None:
    if not isinstance(card_id, str) or not _CARD_ID.match(card_id):
        return None
    return session.get(Card, card_id.upper())


def get_card(session: Session, card_id: str) -> Card:
    card = session.get(Card, normalise_card_id(card_id))
    if card is None:
        raise CardNotFoundError("no card with this id")
    return card


def find_card_by_number(session: Session, card_number: str) -> Card | None:
    return session.scalar(select(Card).where(Card.card_number == card_number))


def get_card_by_reference(session: Session, reference: str) -> Card:
    """A card by its id (32 hex digits) or its printed card number (9 characters), as staff type them."""
    if isinstance(reference, str) and _CARD_ID.match(reference):
        return get_card(session, reference)
    card = None
    if isinstance(reference, str) and len(reference) == 9:
        card = find_card_by_number(session, reference)
    if card is None:
        raise CardNotFoundError("no card with this id or number")
    return card


def list_cards(
    session: Session,
    *,
    citizen_id: str | None = None,
    status: CardStatus | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[int, list[Card]]:
    """(total matching, one page of them, oldest first)."""
    query = select(Card)
    counter = select(func.count()).select_from(Card)
    if citizen_id is not None:
        query = query.where(Card.citizen_id == citizen_id)
        counter = counter.where(Card.citizen_id == citizen_id)
    if status is not None:
        query = query.where(Card.status == status.value)
        counter = counter.where(Card.status == status.value)
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    rows = session.scalars(query.order_by(Card.created_at, Card.card_id).offset(max(0, offset)).limit(limit))
    return int(session.scalar(counter) or 0), list(rows)


def cards_of_citizen(session: Session, citizen_id: str, *, live_only: bool = False) -> list[Card]:
    query = select(Card).where(Card.citizen_id == citizen_id)
    if live_only:
        query = query.where(Card.status != CardStatus.CANCELLED.value)
    return list(session.scalars(query.order_by(Card.created_at)))


def change_status(
    session: Session,
    card: Card,
    to: CardStatus,
    *,
    actor: str,
    now: float,
    details: dict[str, Any] | None = None,
) -> Card:
    """Move ``card`` to ``to`` and record the audit event; ``CardStatusConflictError`` for a move the
    register does not allow (cancelled is final; setting the current status again is refused too, so a
    double click does not record two events)."""
    current = CardStatus(card.status)
    if to not in STATUS_CHANGES[current]:
        raise CardStatusConflictError(
            f"card cannot go from {current} to {to}",
            description=_conflict_description(current, to),
        )
    at = utc_from_timestamp(now)
    card.status = to.value
    card.status_changed_at = at
    card.updated_at = at
    session.flush()
    record_event(
        session,
        actor=actor,
        action=STATUS_ACTIONS[to],
        target_type="card",
        target_id=card.card_id,
        details={"from": current.value, "to": to.value, **(details or {})},
        now=now,
    )
    return card


def _conflict_description(current: CardStatus, to: CardStatus) -> str:
    if current == to:
        return f"The card is already {current.value}."
    if current is CardStatus.CANCELLED:
        return "The card is cancelled; a cancelled card cannot be changed. Issue a new card instead."
    return f"A card that is {current.value} cannot be set to {to.value}."


def describe_card(card: Card) -> dict[str, Any]:
    """What staff tools show: no name, no ID number (DESIGN.md §2)."""
    return {
        "card_id": card.card_id,
        "card_number": card.card_number,
        "citizen_id": card.citizen_id,
        "region": card.region,
        "status": card.status,
        "issuer_kid": card.issuer_kid,
        "certificate_serial": card.certificate_serial,
        "certificate_fingerprint": card.certificate_fingerprint,
        "issued_on": card.issued_on.isoformat(),
        "expires_on": card.expires_on.isoformat(),
        "created_at": card.created_at.isoformat(),
        "updated_at": card.updated_at.isoformat(),
        "status_changed_at": card.status_changed_at.isoformat() if card.status_changed_at else None,
    }
