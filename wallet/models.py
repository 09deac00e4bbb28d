"""Every wallet table, imported in one place (the ``onecard.models`` entry point) so Alembic and the tests
see them on ``idp.db.Base.metadata``."""

from __future__ import annotations

from wallet.catalogue.model import CatalogueEntry, CatalogueRevision
from wallet.devices.model import WalletDevice
from wallet.ecards.model import ECard
from wallet.regions.model import SyncedRegion
from wallet.scans.model import ScanRecord
from wallet.venues.model import Venue

__all__ = [
    "CatalogueEntry",
    "CatalogueRevision",
    "ECard",
    "ScanRecord",
    "SyncedRegion",
    "Venue",
    "WalletDevice",
]
