"""The automatic sync of other regions, per application (``wallet.plugin`` builds one).

``sync_if_due`` is called where gates come anyway — the regions document they poll, and a foreign code at
the verify API: at most once per ``CHECK_SECONDS`` per node it reads when the stored copy was last
confirmed, and when that is older than ``sync_seconds`` (or there is none) it syncs — one node at a time
across the deployment, through a lock entry in the shared store (``add`` is atomic on every backend). The
caller's request waits for that sync; every other request goes on with the stored copy.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Final

from flask import current_app
from sqlalchemy.orm import Session

from idp.federation.metadata import home_region_codes
from idp.services import Services
from sdk.gate import DEFAULT_MAX_LIST_AGE, TrustedRegions, is_own_code
from wallet.regions.service import SyncReport, load_trusted_regions, oldest_sync, sync_regions

REGIONS_EXTENSION: Final = "onecard.wallet.regions"  # its key in Flask's app.extensions
DEFAULT_SYNC_SECONDS: Final = 300.0
CHECK_SECONDS: Final = 10.0
LOCK_NAMESPACE: Final = "region_sync"
LOCK_KEY: Final = "sync"
# Long enough for a sync of many regions at FederationHttp's 5 s per call; a node that dies mid-sync holds
# the others off no longer than this.
LOCK_TTL: Final = 120.0

log = logging.getLogger(__name__)


@dataclass
class RegionRuntime:
    # Sync when the stored copy is older than this (seconds).
    sync_seconds: float = DEFAULT_SYNC_SECONDS
    # The online verify API gives no verdict on a foreign code whose region's list is older than this: the
    # same limit an offline gate applies (sdk.gate.DEFAULT_MAX_LIST_AGE).
    max_list_age: float = DEFAULT_MAX_LIST_AGE
    _next_check: float = field(default=float("-inf"), repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def sync_if_due(self, svc: Services, *, now: float) -> SyncReport | None:
        """Sync when the stored copy is too old and no other node is syncing; the report, else None."""
        if svc.federation is None or now < self._next_check or not self._lock.acquire(blocking=False):
            return None
        try:
            self._next_check = now + CHECK_SECONDS
            with svc.database.session() as session:
                oldest = oldest_sync(session)
            if oldest is not None and now - oldest < self.sync_seconds:
                return None
            if not svc.store.add(LOCK_NAMESPACE, LOCK_KEY, b"1", ttl=LOCK_TTL, now=now):
                return None  # another node is at it
            try:
                with svc.database.session() as session:
                    return sync_regions(session, svc.federation, now=now)
            except Exception as exc:  # the gate's request goes on with the stored copy, which ages
                log.warning("automatic region sync failed: %s", type(exc).__name__)
                return None
            finally:
                svc.store.delete(LOCK_NAMESPACE, LOCK_KEY)
        finally:
            self._lock.release()


def region_runtime() -> RegionRuntime:
    return current_app.extensions[REGIONS_EXTENSION]  # type: ignore[no-any-return]


@dataclass(frozen=True)
class OnlineRegions:
    """The verify API's view of the other regions (``wallet.scans.service.ForeignRegions``)."""

    runtime: RegionRuntime
    svc: Services

    @property
    def max_list_age(self) -> float:
        return self.runtime.max_list_age

    def is_own(self, session: Session, code: str, regions: TrustedRegions) -> bool:
        federation = self.svc.federation
        if federation is None:
            return True
        return is_own_code(code, home_region_codes(session, federation.config), regions.regions)

    def trusted_regions(self, session: Session, *, now: float) -> TrustedRegions:
        self.runtime.sync_if_due(self.svc, now=now)
        return load_trusted_regions(session, now=now)


def online_regions(svc: Services, runtime: RegionRuntime) -> OnlineRegions | None:
    """Other regions' codes for the verify API; None when this deployment is in no federation (no trust
    anchor, no configured peer): its gates then answer exactly as before, ``unknown_key`` for a key it
    lacks whatever the code's region."""
    federation = svc.federation
    if federation is None:
        return None
    config = federation.config
    if not (config.anchors or config.peers or config.is_anchor):
        return None
    return OnlineRegions(runtime, svc)
