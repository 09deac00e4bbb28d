"""The catalogue register: create, change and withdraw entries, each change a new version in the history.

Staff keep entries through the admin API and ``onecard catalogue``; the venue register keeps the entries of
gate venues (``publish_venue``, ``withdraw_venue``, called by ``wallet.venues.service``), so a venue
registered for gates is listed at once and its name, category and claims are always the venue's. This
module knows nothing of venues beyond those values: the dependency points from the venue register down to
the catalogue. Functions take a ``Session`` and ``now`` and never commit; every change is audited.
"""

from __future__ import annotations

import dataclasses
import math
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.audit.service import record_event
from idp.db import utc_from_timestamp
from wallet.catalogue.errors import (
    CatalogueEntryChangedError,
    CatalogueEntryExistsError,
    CatalogueEntryNotFoundError,
    InvalidCatalogueEntryError,
)
from wallet.catalogue.gazetteer import find_division, region_path
from wallet.catalogue.model import CatalogueEntry, CatalogueRevision
from wallet.words import CAPABILITY_WORDS, CATEGORY_WORDS, FACT_WORDS

CATEGORIES: Final = tuple(CATEGORY_WORDS)  # the venues' categories (wallet.venues.service.VENUE_CATEGORIES)
CAPABILITIES: Final = tuple(CAPABILITY_WORDS)
FACTS: Final = tuple(FACT_WORDS)  # what a place may learn: the gate claims and what a card reader reads
ENTRY_ID_PREFIX: Final = "ce_"
ENTRY_ID_PATTERN: Final = "[a-z0-9][a-z0-9_-]{2,39}"
REGION_PATTERN: Final = "[1-9][0-9]{5}"  # a GB/T 2260 division code
MAX_NAME: Final = 200
MAX_ADDRESS: Final = 300
MAX_ITEMS: Final = 20  # capabilities or claims of one entry
# The fields staff write; on an entry linked to a venue the venue register writes VENUE_FIELDS.
FIELDS: Final = ("name", "category", "region", "address", "latitude", "longitude", "capabilities", "claims")
VENUE_FIELDS: Final = ("name", "category", "claims")
GATE_CAPABILITIES: Final = ("gate_entry",)  # what a newly registered gate venue's entry says the card does
# The actor of the venue register's changes (for whom it acted follows): a withdrawal by it means the venue
# was removed, and only registering the venue again can list it.
VENUE_ACTOR_PREFIX: Final = "venue-register:"
_ENTRY_ID = re.compile(ENTRY_ID_PATTERN)
_REGION = re.compile(REGION_PATTERN)


@dataclass(frozen=True)
class EntryFields:
    """An entry's content: what staff write and the history keeps, one version at a time."""

    name: str
    category: str
    region: str | None = None
    address: str = ""
    latitude: float | None = None
    longitude: float | None = None
    capabilities: tuple[str, ...] = ()
    claims: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            **dataclasses.asdict(self),
            "capabilities": list(self.capabilities),
            "claims": list(self.claims),
        }


def _text(value: object, field: str, limit: int, *, required: bool) -> str:
    if not isinstance(value, str):
        raise InvalidCatalogueEntryError(field, description=f"{field} must be a string")
    text = " ".join(value.split())  # one line: trimmed, inner runs of white space as one space
    if (required and not text) or len(text) > limit or not text.isprintable():
        need = "required: " if required else ""
        raise InvalidCatalogueEntryError(
            field, description=f"{field} is {need}printable, at most {limit} characters"
        )
    return text


def _coordinate(value: object, field: str, bound: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidCatalogueEntryError(field, description=f"{field} must be a number or null")
    if not -bound <= value <= bound:
        raise InvalidCatalogueEntryError(field, description=f"{field} must be between -{bound} and {bound}")
    return round(float(value), 6)


def _choices(value: object, field: str, known: Sequence[str]) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise InvalidCatalogueEntryError(field, description=f"{field} must be a list of strings")
    items = tuple(dict.fromkeys(value))
    if len(items) > MAX_ITEMS:
        raise InvalidCatalogueEntryError(field, description=f"at most {MAX_ITEMS} {field}")
    unknown = [item for item in items if item not in known]
    if unknown:
        raise InvalidCatalogueEntryError(
            field, description=f"unknown {field} {', '.join(unknown)[:200]}; known: {', '.join(known)}"
        )
    return items


def validate_fields(fields: EntryFields) -> EntryFields:
    """The fields checked and normalised, whatever types they arrived with (JSON, the CLI, an import)."""
    name = _text(fields.name, "name", MAX_NAME, required=True)
    if fields.category not in CATEGORIES:
        raise InvalidCatalogueEntryError(
            "category", description=f"category must be one of {', '.join(CATEGORIES)}"
        )
    region = fields.region or None
    if region is not None and not (isinstance(region, str) and _REGION.fullmatch(region)):
        raise InvalidCatalogueEntryError(
            "region", description="region is a 6-digit division code, e.g. 420106"
        )
    latitude = _coordinate(fields.latitude, "latitude", 90.0)
    longitude = _coordinate(fields.longitude, "longitude", 180.0)
    if (latitude is None) != (longitude is None):
        raise InvalidCatalogueEntryError(
            "coordinates", description="give both latitude and longitude, or neither"
        )
    return EntryFields(
        name=name,
        category=fields.category,
        region=region,
        address=_text(fields.address, "address", MAX_ADDRESS, required=False),
        latitude=latitude,
        longitude=longitude,
        capabilities=_choices(fields.capabilities, "capabilities", CAPABILITIES),
        claims=_choices(fields.claims, "claims", FACTS),
    )


def fields_of(entry: CatalogueEntry) -> EntryFields:
    return EntryFields(
        name=entry.name,
        category=entry.category,
        region=entry.region,
        address=entry.address,
        latitude=entry.latitude,
        longitude=entry.longitude,
        capabilities=tuple(entry.capabilities),
        claims=tuple(entry.claims),
    )


RESERVED_IDS: Final = frozenset({"regions"})  # a path of the public API (/api/v1/catalogue/regions)


def _validate_entry_id(entry_id: object) -> str:
    if not (isinstance(entry_id, str) and _ENTRY_ID.fullmatch(entry_id)) or entry_id in RESERVED_IDS:
        raise InvalidCatalogueEntryError("id", description="an entry id is 3-40 of a-z, 0-9, '-' and '_'")
    return entry_id


def _write(entry: CatalogueEntry, fields: EntryFields) -> None:
    # New lists, not edited ones: JSON columns are saved only when assigned.
    entry.name, entry.category, entry.region = fields.name, fields.category, fields.region
    entry.address, entry.latitude, entry.longitude = fields.address, fields.latitude, fields.longitude
    entry.capabilities, entry.claims = list(fields.capabilities), list(fields.claims)


def _record(
    session: Session, entry: CatalogueEntry, action: str, changed: Iterable[str], *, actor: str, now: float
) -> None:
    """The new version: a revision with the entry's whole content, and an audit event."""
    changed = list(changed)
    snapshot = {**fields_of(entry).as_json(), "venue_id": entry.venue_id, "listed": entry.is_listed}
    session.add(
        CatalogueRevision(
            entry_id=entry.id,
            version=entry.version,
            action=action,
            actor=actor[:128],
            at=utc_from_timestamp(now),
            changed=changed,
            snapshot=snapshot,
        )
    )
    session.flush()
    record_event(
        session,
        actor=actor,
        action=f"catalogue.{action}",
        target_type="catalogue_entry",
        target_id=entry.id,
        details={"version": entry.version, "changed": changed},
        now=now,
    )


def create_entry(
    session: Session,
    fields: EntryFields,
    *,
    actor: str,
    now: float,
    entry_id: str | None = None,
    venue_id: str | None = None,
) -> CatalogueEntry:
    fields = validate_fields(fields)
    entry_id = (
        _validate_entry_id(entry_id) if entry_id is not None else ENTRY_ID_PREFIX + secrets.token_hex(8)
    )
    if session.get(CatalogueEntry, entry_id) is not None:
        raise CatalogueEntryExistsError(entry_id)
    at = utc_from_timestamp(now)
    entry = CatalogueEntry(id=entry_id, venue_id=venue_id, version=1, created_at=at, updated_at=at)
    _write(entry, fields)
    session.add(entry)
    session.flush()
    _record(session, entry, "create", FIELDS, actor=actor, now=now)
    return entry


def find_entry(session: Session, entry_id: str) -> CatalogueEntry | None:
    if not isinstance(entry_id, str) or not 0 < len(entry_id) <= 40:
        return None
    return session.get(CatalogueEntry, entry_id)


def get_entry(session: Session, entry_id: str) -> CatalogueEntry:
    entry = find_entry(session, entry_id)
    if entry is None:
        raise CatalogueEntryNotFoundError(str(entry_id)[:40])
    return entry


def list_entries(session: Session, *, include_withdrawn: bool = False) -> list[CatalogueEntry]:
    query = select(CatalogueEntry).order_by(CatalogueEntry.created_at, CatalogueEntry.id)
    if not include_withdrawn:
        query = query.where(CatalogueEntry.withdrawn_at.is_(None))
    return list(session.scalars(query))


def _apply(
    session: Session,
    entry: CatalogueEntry,
    fields: EntryFields,
    *,
    action: str = "update",
    listed: bool | None = None,
    actor: str,
    now: float,
) -> CatalogueEntry:
    """Write the new content and record it as the next version; nothing at all when nothing changes."""
    fields = validate_fields(fields)
    before = fields_of(entry)
    changed = [name for name in FIELDS if getattr(before, name) != getattr(fields, name)]
    relist = listed is not None and listed != entry.is_listed
    if not changed and not relist:
        return entry
    _write(entry, fields)
    if relist:
        entry.withdrawn_at = None if listed else utc_from_timestamp(now)
        changed.append("listed")
    entry.version += 1
    entry.updated_at = utc_from_timestamp(now)
    session.flush()
    _record(session, entry, action, changed, actor=actor, now=now)
    return entry


def update_entry(
    session: Session,
    entry_id: str,
    changes: Mapping[str, Any],
    *,
    actor: str,
    now: float,
    expected_version: int | None = None,
) -> CatalogueEntry:
    """Change some fields (``changes``: field → new value). ``expected_version``, when given, must be the
    entry's current version (someone else's change in between is refused, not overwritten). On an entry
    linked to a venue, the venue's name, category and claims cannot be changed here."""
    entry = get_entry(session, entry_id)
    if expected_version is not None and expected_version != entry.version:
        raise CatalogueEntryChangedError(entry.id)
    unknown = sorted(set(changes) - set(FIELDS))
    if unknown:
        raise InvalidCatalogueEntryError("fields", description=f"unknown field {unknown[0][:40]!r}")
    changes = {name: tuple(v) if isinstance(v, list) else v for name, v in changes.items()}
    current = fields_of(entry)
    if entry.venue_id is not None:
        kept = [name for name in VENUE_FIELDS if name in changes and changes[name] != getattr(current, name)]
        if kept:
            raise InvalidCatalogueEntryError(
                kept[0],
                description=f"{kept[0]} of this entry is the venue {entry.venue_id}'s: change the venue",
            )
    return _apply(session, entry, dataclasses.replace(current, **changes), actor=actor, now=now)


def withdraw_entry(session: Session, entry_id: str, *, actor: str, now: float) -> CatalogueEntry:
    """Take the entry out of the public catalogue; it and its history stay."""
    entry = get_entry(session, entry_id)
    if not entry.is_listed:
        raise CatalogueEntryNotFoundError(entry.id)
    return _apply(session, entry, fields_of(entry), action="withdraw", listed=False, actor=actor, now=now)


def restore_entry(session: Session, entry_id: str, *, actor: str, now: float) -> CatalogueEntry:
    """List a withdrawn entry again (not one whose venue was removed: the venue register withdrew it)."""
    entry = get_entry(session, entry_id)
    if entry.is_listed:
        return entry
    if entry.venue_id is not None and _venue_removed(session, entry):
        raise InvalidCatalogueEntryError(
            "listed", description=f"the venue {entry.venue_id} was removed; register it again"
        )
    return _apply(session, entry, fields_of(entry), action="restore", listed=True, actor=actor, now=now)


def _venue_removed(session: Session, entry: CatalogueEntry) -> bool:
    last = session.scalar(
        select(CatalogueRevision)
        .where(CatalogueRevision.entry_id == entry.id, CatalogueRevision.action == "withdraw")
        .order_by(CatalogueRevision.version.desc())
        .limit(1)
    )
    return last is not None and last.actor.startswith(VENUE_ACTOR_PREFIX)


def entry_history(session: Session, entry_id: str) -> list[CatalogueRevision]:
    """Every version of the entry, oldest first."""
    entry = get_entry(session, entry_id)
    query = select(CatalogueRevision).where(CatalogueRevision.entry_id == entry.id)
    return list(session.scalars(query.order_by(CatalogueRevision.version)))


# The venue register's side --------------------------------------------------------------------------------


def find_entry_of_venue(session: Session, venue_id: str) -> CatalogueEntry | None:
    return session.scalar(select(CatalogueEntry).where(CatalogueEntry.venue_id == venue_id))


def publish_venue(
    session: Session,
    *,
    venue_id: str,
    name: str,
    category: str,
    claims: Sequence[str],
    actor: str,
    now: float,
) -> CatalogueEntry:
    """List a gate venue, or bring its entry up to the venue's name, category and claims.

    The entry's id is the venue's (a fresh one if staff took that id already); the staff's address, region
    and coordinates are kept. The actor is recorded as the venue register acting for ``actor``.
    """
    by = VENUE_ACTOR_PREFIX + actor
    entry = find_entry_of_venue(session, venue_id)
    if entry is None:
        free = (
            session.get(CatalogueEntry, venue_id) is None
            and _ENTRY_ID.fullmatch(venue_id) is not None
            and venue_id not in RESERVED_IDS
        )
        return create_entry(
            session,
            EntryFields(name, category, capabilities=GATE_CAPABILITIES, claims=tuple(claims)),
            actor=by,
            now=now,
            entry_id=venue_id if free else None,
            venue_id=venue_id,
        )
    fields = dataclasses.replace(fields_of(entry), name=name, category=category, claims=tuple(claims))
    return _apply(session, entry, fields, actor=by, now=now)


def withdraw_venue(session: Session, venue_id: str, *, actor: str, now: float) -> None:
    """The venue was removed: its entry leaves the public catalogue (kept, with its history)."""
    entry = find_entry_of_venue(session, venue_id)
    if entry is None:
        return
    by = VENUE_ACTOR_PREFIX + actor
    if entry.is_listed:
        _apply(session, entry, fields_of(entry), action="withdraw", listed=False, actor=by, now=now)
        return
    # Staff had withdrawn it already: the venue's removal still goes on record, so it cannot be restored.
    entry.version += 1
    entry.updated_at = utc_from_timestamp(now)
    session.flush()
    _record(session, entry, "withdraw", [], actor=by, now=now)


# JSON --------------------------------------------------------------------------------------------------


def describe_region(code: str | None) -> dict[str, Any] | None:
    """A region code with the names of the divisions it lies in (from the gazetteer, where known)."""
    if code is None:
        return None
    path = region_path(code)
    known = find_division(code) is not None
    return {
        "code": code,
        "name": "".join(d.name for d in path[1:] or path) if known else None,
        "divisions": [{"code": d.code, "name": d.name, "name_en": d.name_en} for d in path],
    }


def describe_entry(entry: CatalogueEntry) -> dict[str, Any]:
    fields = fields_of(entry)
    coordinates = (
        None if fields.latitude is None else {"latitude": fields.latitude, "longitude": fields.longitude}
    )
    return {
        "entry_id": entry.id,
        "name": fields.name,
        "category": fields.category,
        "region": describe_region(fields.region),
        "address": fields.address,
        "coordinates": coordinates,
        "capabilities": list(fields.capabilities),
        "claims": list(fields.claims),
        "claims_source": "venue" if entry.venue_id is not None else "staff",
        "venue_id": entry.venue_id,
        "listed": entry.is_listed,
        "version": entry.version,
        "updated_at": entry.updated_at.isoformat(),
    }


def describe_revision(revision: CatalogueRevision) -> dict[str, Any]:
    return {
        "version": revision.version,
        "action": revision.action,
        "actor": revision.actor,
        "at": revision.at.isoformat(),
        "changed": list(revision.changed),
        "entry": dict(revision.snapshot),
    }


_JSON_TYPES: Final[dict[str, tuple[type, ...]]] = {
    "name": (str,),
    "category": (str,),
    "region": (str, type(None)),
    "address": (str,),
    "latitude": (int, float, type(None)),
    "longitude": (int, float, type(None)),
    "capabilities": (list,),
    "claims": (list,),
}


def changes_from_json(data: Mapping[str, Any], *, extra: Iterable[str] = ()) -> dict[str, Any]:
    """The entry fields of an admin request's JSON, with strict types; ``extra`` names other allowed keys."""
    unknown = sorted(set(data) - set(FIELDS) - set(extra))
    if unknown:
        raise InvalidCatalogueEntryError("fields", description=f"unknown field {unknown[0][:40]!r}")
    changes = {}
    for name in FIELDS:
        if name not in data:
            continue
        value = data[name]
        if isinstance(value, bool) or not isinstance(value, _JSON_TYPES[name]):
            raise InvalidCatalogueEntryError(name, description=f"{name} has the wrong type")
        changes[name] = tuple(value) if isinstance(value, list) else value
    return changes


def new_fields_from_json(data: Mapping[str, Any], *, extra: Iterable[str] = ()) -> EntryFields:
    changes = changes_from_json(data, extra=extra)
    for name in ("name", "category"):
        if name not in changes:
            raise InvalidCatalogueEntryError(name, description=f"{name} is required")
    return EntryFields(**changes)


def import_entries(
    session: Session, items: Sequence[Mapping[str, Any]], *, actor: str, now: float
) -> list[tuple[str, str]]:
    """Create or bring up to date the entries of a list (each with its ``entry_id``): what an operator or
    the demo ships as a file. Idempotent — an entry already as described is left alone, no new version.
    Returns (entry id, "created" | "updated" | "unchanged") per item."""
    results = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping) or not isinstance(item.get("entry_id"), str):
            raise InvalidCatalogueEntryError("entry_id", description=f"item {index}: entry_id is required")
        entry_id = _validate_entry_id(item["entry_id"])
        entry = find_entry(session, entry_id)
        if entry is None:
            fields = new_fields_from_json(item, extra=("entry_id",))
            create_entry(session, fields, actor=actor, now=now, entry_id=entry_id)
            results.append((entry_id, "created"))
            continue
        before = entry.version
        update_entry(session, entry_id, changes_from_json(item, extra=("entry_id",)), actor=actor, now=now)
        results.append((entry_id, "updated" if entry.version != before else "unchanged"))
    return results
