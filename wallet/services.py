"""What the wallet keeps per application beside idp's ``Services``: typed, set by ``wallet.plugin``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from flask import current_app

from wallet.qrlogin.service import Locator

if TYPE_CHECKING:
    from wallet.scans.runtime import GateRuntime

WALLET_EXTENSION: Final = "onecard.wallet"  # its key in Flask's app.extensions


@dataclass
class WalletServices:
    # The gate API's venue cache, admission and scan batches (wallet.scans.runtime), set by the plug-in.
    gate: GateRuntime
    # An optional lookup of a requester's approximate place from its IP (e.g. a GeoIP database), shown on
    # the phone when it approves a QR login; None shows the address only.
    qr_login_locator: Locator | None = None
    # Pages another plug-in adds to the wallet's menu (the halls' queue numbers), as (endpoint, label): the
    # wallet cannot import its plug-ins, so they register here and the layout lists them after its own.
    menu_items: list[tuple[str, str]] = field(default_factory=list)


def wallet_services() -> WalletServices:
    return current_app.extensions[WALLET_EXTENSION]  # type: ignore[no-any-return]
