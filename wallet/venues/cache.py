"""The gate's per-process cache of venues: each venue's gate credentials (the secret's hash), its policy and
its rate limit, so a verification needs no database lookup for them (issue 16).

Invalidation across nodes: one *generation* in the shared store (``EphemeralStore``, the same Redis or SQL
store every node uses). Whenever a unit of work that changed a ``Venue`` or a ``Client`` row through the
ORM commits — a venue registered, removed, its limit or policy changed, a client's secret or method changed
or the client removed, from the admin API, the CLI or any other code — ``watch_venue_changes`` writes a new
random generation there, after the commit (written before it, another node could reload the old rows and
cache them under the new generation). Every cached entry carries the generation read *before* its rows
were loaded, and every verification checks it in the same store round trip that counts the rate limit and
uses the code's ``cti`` (``wallet.scans.admission``): a stale entry is dropped and the verification redone
with fresh rows, before anything is counted or used. A change made around the ORM (a hand-written UPDATE)
is seen within ``MAX_AGE`` seconds, the backstop on every entry.

The key ring needs nothing here: ``idp.keys.service.KeyRing`` already caches the QR key set per process,
for a time derived from the key sets' waiting periods.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain
from typing import Any, Final

from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from idp.bearer_secrets import matches_hash
from idp.clients.model import Client
from idp.scopes import GATE_VERIFY
from idp.stores.base import EphemeralStore
from wallet.venues.model import Venue

GENERATION_NAMESPACE: Final = "venue_generation"
GENERATION_KEY: Final = "venues"
# Long enough never to lapse between changes in practice; if it does, the missing entry reads as a new
# generation and every node reloads once.
GENERATION_TTL: Final = 30 * 24 * 3600.0
MAX_AGE: Final = 60.0  # seconds an entry is trusted without a generation change (the backstop)
MAX_ENTRIES: Final = 10_000
_CHANGED: Final = "onecard.venues_changed"  # the Session.info flag

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateVenue:
    """A live venue's policy and limit, copied out of its row (no ORM state)."""

    id: str
    category: str
    claims: tuple[str, ...]
    regions: tuple[str, ...]
    verify_per_minute: int


@dataclass(frozen=True)
class GateClient:
    """What client authentication at the gate needs of a client, and its live venue if it has one."""

    client_id: str
    secret_hash: str | None
    basic_auth: bool  # registered for client_secret_basic (Client.check_endpoint_auth_method)
    may_verify: bool  # a venue client with gate:verify
    venue: GateVenue | None

    def check_secret(self, secret: str) -> bool:
        """``Client.check_client_secret``: the presented secret's SHA-256, compared in constant time."""
        return (
            self.secret_hash is not None
            and isinstance(secret, str)
            and matches_hash(secret, self.secret_hash)
        )


@dataclass(frozen=True)
class _Entry:
    client: GateClient
    generation: bytes
    loaded_at: float


def read_generation(store: EphemeralStore, *, now: float) -> bytes:
    return store.get(GENERATION_NAMESPACE, GENERATION_KEY, now=now) or b""


def bump_generation(store: EphemeralStore, *, now: float) -> None:
    store.put(
        GENERATION_NAMESPACE, GENERATION_KEY, secrets.token_hex(8).encode(), ttl=GENERATION_TTL, now=now
    )


def load_gate_client(session: Session, client_id: str) -> GateClient | None:
    """The client and its live venue, in one query."""
    row = session.execute(
        select(Client, Venue)
        .outerjoin(Venue, Venue.client_id == Client.client_id)
        .where(Client.client_id == client_id)
    ).first()
    if row is None:
        return None
    client, venue = row
    live = None
    if venue is not None and venue.is_live:
        live = GateVenue(
            id=venue.id,
            category=venue.category,
            claims=tuple(venue.claims),
            regions=tuple(venue.regions),
            verify_per_minute=venue.verify_per_minute,
        )
    return GateClient(
        client_id=client.client_id,
        secret_hash=client.client_secret_hash,
        basic_auth=client.check_endpoint_auth_method("client_secret_basic", "gate"),
        may_verify=client.kind == "venue" and GATE_VERIFY in client.allowed_scopes,
        venue=live,
    )


class VenueCache:
    """Per process, shared by its threads; see the module docstring for when an entry is trusted."""

    def __init__(self, store: EphemeralStore, *, max_age: float = MAX_AGE) -> None:
        self.store = store
        self.max_age = max_age
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def get(self, session: Session, client_id: str, *, now: float) -> tuple[GateClient | None, bytes]:
        """(the client or None, the generation to check it under) — from the cache while fresh."""
        return self.peek(client_id, now=now) or self.reload(session, client_id, now=now)

    def peek(self, client_id: str, *, now: float) -> tuple[GateClient, bytes] | None:
        """The fresh cached entry of an existing client, without loading anything; else None."""
        entry = self._entries.get(client_id)
        if entry is not None and 0 <= now - entry.loaded_at < self.max_age:
            return entry.client, entry.generation
        return None

    def reload(self, session: Session, client_id: str, *, now: float) -> tuple[GateClient | None, bytes]:
        """From the database, whatever the cache holds. Only clients that exist are kept (one registered
        later must not meet a cached "no such client"); a caller refusing a cached client reloads it first,
        since a refusal never reaches the generation check."""
        generation = read_generation(self.store, now=now)  # before the rows: see the module docstring
        client = load_gate_client(session, client_id)
        with self._lock:
            if client is None:
                self._entries.pop(client_id, None)
            else:
                if len(self._entries) >= MAX_ENTRIES:
                    self._entries.clear()
                self._entries[client_id] = _Entry(client, generation, now)
        return client, generation

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def watch_venue_changes(
    sessions: sessionmaker[Session], store: EphemeralStore, clock: Callable[[], float]
) -> None:
    """After every commit of a unit of work from ``sessions`` that changed a venue or a client, write a new
    generation to the shared store (every node's cache then reloads)."""

    def note(session: Session, _context: Any) -> None:
        changed = chain(session.new, session.dirty, session.deleted)
        if any(isinstance(obj, (Venue, Client)) for obj in changed):
            session.info[_CHANGED] = True

    def bump(session: Session) -> None:
        if not session.info.pop(_CHANGED, False):
            return
        try:
            bump_generation(store, now=clock())
        except Exception:
            # The change is committed; failing its request now would only hide that. Other nodes then see
            # it when their entries reach MAX_AGE — said loudly, so an operator knows why.
            log.exception("venue change committed but the cache generation was not bumped")

    def forget(session: Session) -> None:
        session.info.pop(_CHANGED, None)

    event.listen(sessions, "after_flush", note)
    event.listen(sessions, "after_commit", bump)
    event.listen(sessions, "after_rollback", forget)
