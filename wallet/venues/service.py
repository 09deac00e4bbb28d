"""The venue register: add, list, show, remove; each venue with its gate client (DESIGN.md §5).

A venue's client is an ordinary ``idp.clients`` client of kind ``venue`` with the single scope
``gate:verify`` and ``client_secret_basic`` — the credentials ``POST /api/v1/gate/verify`` takes
(docs/formats/essc1.md §7). Its id is the venue's id. Functions take a ``Session`` and ``now`` and never
commit.

A registered venue is listed in the application catalogue at once, and a removed one withdrawn from it
(``wallet.catalogue.service.publish_venue`` / ``withdraw_venue``): the register tells the catalogue, the
catalogue knows nothing of venues.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.audit.service import record_event
from idp.clients.service import ClientRegistration, create_client, find_client, remove_client
from idp.db import utc_from_timestamp
from idp.scopes import GATE_VERIFY
from wallet.catalogue.service import publish_venue, withdraw_venue
from wallet.venues.errors import InvalidVenueError, VenueExistsError, VenueNotFoundError
from wallet.venues.model import DEFAULT_VERIFY_PER_MINUTE, Venue

VENUE_CATEGORIES: Final = (
    "park",
    "museum",
    "library",
    "sports",
    "transit",
    "hospital",
    "tourism",
    "culture",
    "government",
    "other",
)
# What a venue's policy may let it learn about a citizen whose code passed (docs/formats/essc1.md §7).
VENUE_CLAIMS: Final[dict[str, str]] = {
    "valid_resident": "the e-card is valid (true)",
    "region": "the card's issuing region code",
    "age_over_18": "18 or older",
    "age_over_60": "60 or older",
    "age_over_65": "65 or older",
    "gender": "male or female",
    "name": "the citizen's name",
    "id_number_masked": "the ID number, masked (4201**********123X)",
}
VENUE_ID_PREFIX: Final = "vn_"
VENUE_ID_PATTERN: Final = "[a-z0-9][a-z0-9_-]{2,39}"
REGION_PATTERN: Final = "[1-9][0-9]{5}"  # a GB/T 2260 division code
_VENUE_ID = re.compile(VENUE_ID_PATTERN)
_REGION = re.compile(REGION_PATTERN)
MAX_NAME: Final = 200
MAX_POLICY_ITEMS: Final = 50  # claims or regions in a registration
# A venue's online verifications per minute, all its gates on all nodes together: at least one, at most
# 10 M/min (166,000/s — a whole province's metro at rush hour is well below it).
MIN_VERIFY_PER_MINUTE: Final = 1
MAX_VERIFY_PER_MINUTE: Final = 10_000_000


@dataclass(frozen=True)
class VenueRegistration:
    name: str
    category: str
    claims: Sequence[str] = ()
    regions: Sequence[str] = ()
    venue_id: str | None = None
    verify_per_minute: int = DEFAULT_VERIFY_PER_MINUTE


@dataclass(frozen=True)
class CreatedVenue:
    venue: Venue
    client_secret: str = field(repr=False)


def validate_registration(reg: VenueRegistration) -> VenueRegistration:
    name = reg.name.strip() if isinstance(reg.name, str) else ""
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise InvalidVenueError(
            "name", description=f"name is required: printable, at most {MAX_NAME} characters"
        )
    if reg.category not in VENUE_CATEGORIES:
        raise InvalidVenueError(
            "category", description=f"category must be one of {', '.join(VENUE_CATEGORIES)}"
        )
    claims = list(dict.fromkeys(reg.claims))
    unknown = [c for c in claims if c not in VENUE_CLAIMS]
    if unknown:
        raise InvalidVenueError(
            "claims",
            description=f"unknown claims {', '.join(map(str, unknown))[:200]}; "
            f"known: {', '.join(VENUE_CLAIMS)}",
        )
    regions = list(dict.fromkeys(reg.regions))
    if not all(isinstance(r, str) and _REGION.fullmatch(r) for r in regions):
        raise InvalidVenueError("regions", description="regions are 6-digit division codes, e.g. 420100")
    if reg.venue_id is not None and not (isinstance(reg.venue_id, str) and _VENUE_ID.fullmatch(reg.venue_id)):
        raise InvalidVenueError("id", description="a venue id is 3-40 of a-z, 0-9, '-' and '_'")
    validate_verify_per_minute(reg.verify_per_minute)
    return VenueRegistration(
        name, reg.category, tuple(claims), tuple(regions), reg.venue_id, reg.verify_per_minute
    )


def validate_verify_per_minute(value: object) -> None:
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or not MIN_VERIFY_PER_MINUTE <= value <= MAX_VERIFY_PER_MINUTE
    ):
        raise InvalidVenueError(
            "verify_per_minute",
            description="verify_per_minute is a whole number "
            f"{MIN_VERIFY_PER_MINUTE}..{MAX_VERIFY_PER_MINUTE}",
        )


def create_venue(session: Session, reg: VenueRegistration, *, actor: str, now: float) -> CreatedVenue:
    """Register a venue and its gate client; the secret is returned once (only its hash is stored)."""
    reg = validate_registration(reg)
    venue_id = reg.venue_id or VENUE_ID_PREFIX + secrets.token_hex(8)
    if session.get(Venue, venue_id) is not None or find_client(session, venue_id) is not None:
        raise VenueExistsError(venue_id)
    client, secret = create_client(
        session,
        ClientRegistration(name=reg.name, kind="venue", scope=GATE_VERIFY, client_id=venue_id),
        now=now,
    )
    assert secret is not None  # client_secret_basic clients always get one
    venue = Venue(
        id=venue_id,
        name=reg.name,
        category=reg.category,
        client_id=client.client_id,
        claims=list(reg.claims),
        regions=list(reg.regions),
        verify_per_minute=reg.verify_per_minute,
        created_at=utc_from_timestamp(now),
    )
    session.add(venue)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="venue.create",
        target_type="venue",
        target_id=venue_id,
        details={
            "category": reg.category,
            "claims": list(reg.claims),
            "regions": list(reg.regions),
            "verify_per_minute": reg.verify_per_minute,
        },
        now=now,
    )
    publish_venue(
        session,
        venue_id=venue.id,
        name=venue.name,
        category=venue.category,
        claims=venue.claims,
        actor=actor,
        now=now,
    )
    return CreatedVenue(venue, secret)


def find_venue(session: Session, venue_id: str) -> Venue | None:
    if not isinstance(venue_id, str) or not 0 < len(venue_id) <= 40:
        return None
    return session.get(Venue, venue_id)


def get_venue(session: Session, venue_id: str) -> Venue:
    venue = find_venue(session, venue_id)
    if venue is None:
        raise VenueNotFoundError(str(venue_id)[:40])
    return venue


def find_venue_by_client(session: Session, client_id: str) -> Venue | None:
    venue = session.scalar(select(Venue).where(Venue.client_id == client_id))
    return venue if venue is not None and venue.is_live else None


def list_venues(session: Session, *, include_removed: bool = False) -> list[Venue]:
    query = select(Venue).order_by(Venue.created_at, Venue.id)
    if not include_removed:
        query = query.where(Venue.removed_at.is_(None))
    return list(session.scalars(query))


def remove_venue(session: Session, venue_id: str, *, actor: str, now: float) -> Venue:
    """Remove the venue's client (its credentials stop working) and mark it removed; its scans stay."""
    venue = get_venue(session, venue_id)
    if not venue.is_live:
        raise VenueNotFoundError(venue_id)
    if venue.client_id and find_client(session, venue.client_id) is not None:
        remove_client(session, venue.client_id)
    venue.client_id = None
    venue.removed_at = utc_from_timestamp(now)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="venue.remove",
        target_type="venue",
        target_id=venue.id,
        details={},
        now=now,
    )
    withdraw_venue(session, venue.id, actor=actor, now=now)
    return venue


def set_verify_per_minute(
    session: Session, venue_id: str, verify_per_minute: object, *, actor: str, now: float
) -> Venue:
    """Set how many online verifications a minute the venue's gates may ask for (audited). Every node's
    gate sees the new limit at its next verification (``wallet.venues.cache``)."""
    validate_verify_per_minute(verify_per_minute)
    assert isinstance(verify_per_minute, int)
    venue = get_venue(session, venue_id)
    if not venue.is_live:
        raise VenueNotFoundError(venue_id)
    before = venue.verify_per_minute
    venue.verify_per_minute = verify_per_minute
    session.flush()
    record_event(
        session,
        actor=actor,
        action="venue.rate",
        target_type="venue",
        target_id=venue.id,
        details={"verify_per_minute": verify_per_minute, "before": before},
        now=now,
    )
    return venue


def describe_venue(venue: Venue) -> dict[str, Any]:
    return {
        "venue_id": venue.id,
        "name": venue.name,
        "category": venue.category,
        "client_id": venue.client_id,
        "claims": list(venue.claims),
        "regions": list(venue.regions),
        "verify_per_minute": venue.verify_per_minute,
        "created_at": venue.created_at.isoformat(),
        "removed_at": venue.removed_at.isoformat() if venue.removed_at else None,
    }


def registration_from_json(data: dict[str, Any]) -> VenueRegistration:
    """A registration from the admin API's JSON, with strict types."""
    allowed = {"name", "category", "claims", "regions", "venue_id", "verify_per_minute"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise InvalidVenueError("fields", description=f"unknown field {unknown[0][:40]!r}")
    for key in ("name", "category"):
        if not isinstance(data.get(key), str):
            raise InvalidVenueError(key, description=f"{key} is required (a string)")
    for key in ("claims", "regions"):
        value = data.get(key, [])
        items_ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        if not items_ok or len(value) > MAX_POLICY_ITEMS:
            raise InvalidVenueError(key, description=f"{key} must be a list of strings")
    venue_id = data.get("venue_id")
    if venue_id is not None and not isinstance(venue_id, str):
        raise InvalidVenueError("venue_id", description="venue_id must be a string")
    return VenueRegistration(
        name=data["name"],
        category=data["category"],
        claims=tuple(data.get("claims", [])),
        regions=tuple(data.get("regions", [])),
        venue_id=venue_id,
        verify_per_minute=data.get("verify_per_minute", DEFAULT_VERIFY_PER_MINUTE),
    )
