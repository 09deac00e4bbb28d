"""E-card activation, status and disclosures (DESIGN.md §5 "Activation").

The e-card shares the physical card's status by reading it, not by copying it: ``effective_status`` joins
the card register's row at every use (QR issuance, gate verification, the suspended-handles list). Copying
would need every status change in ``idp.cards`` to notify the wallet — a hook idp must not have (it never
imports the wallet) and a second source of truth that could disagree. The read is one primary-key lookup.

Functions take a ``Session`` and ``now`` and never commit (the caller's unit of work does).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Final

from sqlalchemy import and_, bindparam, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from idp.audit.service import record_event
from idp.cards.model import Card, CardStatus
from idp.cards.service import cards_of_citizen, find_card
from idp.citizens.facts import age_facts
from idp.citizens.model import Citizen, CitizenStatus
from idp.citizens.service import find_citizen
from idp.db import utc_from_timestamp
from sdk.qr_token import generate_qr_handle
from wallet.ecards.errors import (
    CardNotEligibleError,
    EcardExistsError,
    EcardNotFoundError,
    EcardNotUsableError,
    InvalidDisclosureError,
)
from wallet.ecards.model import ECard, EcardStatus

# A cancelled e-card stays on the suspended list this long after its card was cancelled: long enough for any
# code issued before the cancellation (60 s) to expire at every gate; after that no code for it can exist.
CANCELLED_LISTED_SECONDS: Final = 86_400

# The facts a citizen may choose to show in the code (docs/formats/essc1.md §2.3 "Names in use"), with the
# words the wallet shows. Values are computed here from the register, never taken from the citizen.
DISCLOSURE_LABELS: Final[dict[str, str]] = {
    "age_over_60": "I am 60 or older",
    "age_over_65": "I am 65 or older",
    "age_over_18": "I am 18 or older",
    "resident": "I hold a card of this region",
}

_CARD_TO_ECARD: Final = {
    CardStatus.ACTIVE: EcardStatus.ACTIVE,
    CardStatus.LOST: EcardStatus.SUSPENDED,
    CardStatus.SUSPENDED: EcardStatus.SUSPENDED,
    CardStatus.CANCELLED: EcardStatus.CANCELLED,
}


def effective_status(ecard: ECard, card: Card) -> EcardStatus:
    """The e-card's status now: the card's (lost/held → suspended, cancelled → cancelled), then the
    citizen's own suspension."""
    return status_from(own_status=ecard.own_status, card_status=card.status)


def status_from(*, own_status: str, card_status: str) -> EcardStatus:
    """``effective_status`` of the two stored values (the rows themselves, or ``status_by_handle``'s)."""
    from_card = _CARD_TO_ECARD[CardStatus(card_status)]
    if from_card is not EcardStatus.ACTIVE:
        return from_card
    return EcardStatus(own_status)


@dataclass(frozen=True)
class EcardView:
    """An e-card with its card, as the wallet and the APIs use it."""

    ecard: ECard
    card: Card

    @property
    def status(self) -> EcardStatus:
        return effective_status(self.ecard, self.card)

    @property
    def region(self) -> str:
        return self.card.region

    @property
    def suspended_by_citizen(self) -> bool:
        return self.ecard.own_status == EcardStatus.SUSPENDED.value

    @property
    def card_status(self) -> str:
        return self.card.status


def activate_ecard(session: Session, *, citizen_id: str, card_id: str, now: float) -> ECard:
    """Activate the e-card of the citizen's active card ``card_id``; one e-card per card.

    The caller has checked that the citizen logged in at ``loa:high`` (card + PIN).
    """
    card = find_card(session, card_id)
    if card is None or card.citizen_id != citizen_id:
        raise CardNotEligibleError("not this citizen's card")
    if card.status != CardStatus.ACTIVE.value:
        raise CardNotEligibleError(f"card is {card.status}")
    citizen = find_citizen(session, citizen_id)
    if citizen is None or not citizen.is_active:
        raise CardNotEligibleError("citizen not active")
    if session.scalar(select(ECard.id).where(ECard.card_id == card.card_id)) is not None:
        raise EcardExistsError("card already has an e-card")
    at = utc_from_timestamp(now)
    ecard = ECard(
        id=str(uuid.uuid4()),
        card_id=card.card_id,
        citizen_id=citizen_id,
        handle=generate_qr_handle(),
        own_status=EcardStatus.ACTIVE.value,
        disclosures=[],
        created_at=at,
        updated_at=at,
    )
    session.add(ecard)
    session.flush()  # the unique card_id decides a race between two nodes
    record_event(
        session,
        actor=f"citizen:{citizen_id}",
        action="ecard.activate",
        target_type="ecard",
        target_id=ecard.id,
        details={"card_id": card.card_id},
        now=now,
    )
    return ecard


def activatable_cards(session: Session, citizen_id: str) -> list[Card]:
    """The citizen's active cards that have no e-card yet."""
    with_ecard = set(session.scalars(select(ECard.card_id).where(ECard.citizen_id == citizen_id)))
    return [
        card
        for card in cards_of_citizen(session, citizen_id, live_only=True)
        if card.status == CardStatus.ACTIVE.value and card.card_id not in with_ecard
    ]


def list_ecards(session: Session, citizen_id: str) -> list[EcardView]:
    rows = session.execute(
        select(ECard, Card)
        .join(Card, Card.card_id == ECard.card_id)
        .where(ECard.citizen_id == citizen_id)
        .order_by(ECard.created_at.desc())
    ).all()
    return [EcardView(ecard, card) for ecard, card in rows]


def find_current_ecard(session: Session, citizen_id: str) -> EcardView | None:
    """The citizen's e-card for their live card (the newest not cancelled), or None."""
    for view in list_ecards(session, citizen_id):
        if view.status is not EcardStatus.CANCELLED:
            return view
    return None


def get_current_ecard(session: Session, citizen_id: str) -> EcardView:
    view = find_current_ecard(session, citizen_id)
    if view is None:
        raise EcardNotFoundError("no live e-card")
    return view


@dataclass(frozen=True, slots=True)
class HandleStatus:
    """What a gate needs of the e-card behind a code's handle, read as plain values (no ORM objects)."""

    ecard_id: str
    citizen_id: str
    region: str
    usable: bool  # ``usable_citizen``'s rule: the e-card is active, and so is its citizen


_ECARDS, _CARDS, _CITIZENS = ECard.__table__.c, Card.__table__.c, Citizen.__table__.c
# Plain Core columns, not ORM entities: the gate's hottest read (issue 16) skips the ORM's row loading. The
# card and the citizen come in the same statement; built once, so SQLAlchemy reuses its compiled form.
_STATUS_BY_HANDLE: Final = (
    select(_ECARDS.id, _ECARDS.citizen_id, _ECARDS.own_status, _CARDS.status, _CARDS.region, _CITIZENS.status)
    .join_from(ECard.__table__, Card.__table__, _CARDS.card_id == _ECARDS.card_id)
    .outerjoin(Citizen.__table__, _CITIZENS.id == _ECARDS.citizen_id)
    .where(_ECARDS.handle == bindparam("handle"))
)


def status_by_handle(executor: Session | Connection, handle: str) -> HandleStatus | None:
    """The e-card of ``handle`` and whether it is usable now (``usable_citizen``), in one statement; the
    status is read at every call, never cached. None when no e-card has the handle."""
    row = executor.execute(_STATUS_BY_HANDLE, {"handle": handle}).first()
    if row is None:
        return None
    ecard_id, citizen_id, own_status, card_status, region, citizen_status = row
    usable = (
        status_from(own_status=own_status, card_status=card_status) is EcardStatus.ACTIVE
        and citizen_status == CitizenStatus.ACTIVE
    )
    return HandleStatus(ecard_id, citizen_id, region, usable)


def set_own_status(session: Session, view: EcardView, *, suspended: bool, actor: str, now: float) -> None:
    """The citizen suspends or resumes the e-card. Resuming needs a card + PIN login (the caller checks);
    it cannot lift a suspension that comes from the card."""
    if view.status is EcardStatus.CANCELLED:
        raise EcardNotUsableError("cancelled", description="This electronic card is cancelled.")
    target = EcardStatus.SUSPENDED if suspended else EcardStatus.ACTIVE
    if view.ecard.own_status == target.value:
        return
    at = utc_from_timestamp(now)
    view.ecard.own_status = target.value
    view.ecard.own_status_changed_at = at
    view.ecard.updated_at = at
    session.flush()
    record_event(
        session,
        actor=actor,
        action="ecard.suspend" if suspended else "ecard.resume",
        target_type="ecard",
        target_id=view.ecard.id,
        details={},
        now=now,
    )


def validate_disclosure_names(names: Iterable[str]) -> list[str]:
    chosen = list(dict.fromkeys(names))
    for name in chosen:
        if name not in DISCLOSURE_LABELS:
            raise InvalidDisclosureError(f"unknown disclosure {name[:40]!r}")
    return chosen


def set_disclosures(session: Session, view: EcardView, names: Iterable[str], *, now: float) -> None:
    view.ecard.disclosures = validate_disclosure_names(names)
    view.ecard.updated_at = utc_from_timestamp(now)
    session.flush()


def disclosure_values(
    names: Iterable[str], *, birthdate: date, region: str, now: float
) -> Mapping[str, bool | str]:
    """The chosen facts, computed from the register at ``now`` (``idp.citizens.facts``)."""
    facts: dict[str, bool | str] = {"resident": bool(region), **age_facts(birthdate, now=now)}
    return {name: facts[name] for name in names if name in facts}


def suspended_handles(session: Session, *, now: float) -> list[str]:
    """Handles of every e-card whose codes gates must refuse (docs/formats/essc1.md §6): suspended ones, and
    cancelled ones for ``CANCELLED_LISTED_SECONDS`` after the cancellation."""
    cancelled_since = utc_from_timestamp(now - CANCELLED_LISTED_SECONDS)
    rows = session.scalars(
        select(ECard.handle)
        .join(Card, Card.card_id == ECard.card_id)
        .where(
            or_(
                Card.status.in_((CardStatus.LOST.value, CardStatus.SUSPENDED.value)),
                and_(Card.status == CardStatus.ACTIVE.value, ECard.own_status == EcardStatus.SUSPENDED.value),
                and_(
                    Card.status == CardStatus.CANCELLED.value,
                    or_(Card.status_changed_at.is_(None), Card.status_changed_at >= cancelled_since),
                ),
            )
        )
        .order_by(ECard.handle)
    )
    return list(rows)


def citizen_of(session: Session, view: EcardView) -> Citizen | None:
    return find_citizen(session, view.ecard.citizen_id)


def usable_citizen(session: Session, view: EcardView | None) -> Citizen | None:
    """The one rule for using an e-card — to log in, to show a code, at a gate, for real-name checks: the
    e-card is active (it shares its physical card's status) and so is its citizen. The citizen, or None."""
    if view is None or view.status is not EcardStatus.ACTIVE:
        return None
    citizen = find_citizen(session, view.ecard.citizen_id)
    return citizen if citizen is not None and citizen.is_active else None


def citizen_of_usable_handle(session: Session, handle: str) -> str | None:
    """The citizen behind a code's handle while its e-card is usable (``usable_citizen``), else None.
    Registered with the real-name API, which may not import the wallet itself."""
    status = status_by_handle(session, handle)
    return status.citizen_id if status is not None and status.usable else None


def require_usable_ecard(session: Session, citizen_id: str) -> EcardView:
    """The citizen's e-card if it can be used (``usable_citizen``), else ``EcardNotUsableError``."""
    view = find_current_ecard(session, citizen_id)
    if usable_citizen(session, view) is None:
        raise EcardNotUsableError("no usable e-card")
    assert view is not None
    return view
