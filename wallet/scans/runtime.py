"""The gate API's per-process parts, built once per application by ``wallet.plugin``: the venue cache and
the listener that invalidates it on every node (``wallet.venues.cache``), the one-round-trip admission
(``wallet.scans.admission``) and the scans' group commit (``wallet.scans.batch``)."""

from __future__ import annotations

from dataclasses import dataclass

from idp.services import Services
from wallet.scans.admission import GateAdmission, create_admission
from wallet.scans.batch import ScanBatch
from wallet.venues.cache import VenueCache, watch_venue_changes


@dataclass(frozen=True)
class GateRuntime:
    venues: VenueCache
    admission: GateAdmission
    scans: ScanBatch


def create_gate_runtime(svc: Services) -> GateRuntime:
    watch_venue_changes(svc.database.sessions, svc.store, svc.now)
    return GateRuntime(VenueCache(svc.store), create_admission(svc.store), ScanBatch(svc.database.engine))
