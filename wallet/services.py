"""What the wallet keeps per application beside idp's ``Services``: typed, set by ``wallet.plugin``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from flask import current_app

from wallet.qrlogin.service import Locator

WALLET_EXTENSION: Final = "onecard.wallet"  # its key in Flask's app.extensions


@dataclass
class WalletServices:
    # An optional lookup of a requester's approximate place from its IP (e.g. a GeoIP database), shown on
    # the phone when it approves a QR login; None shows the address only.
    qr_login_locator: Locator | None = None


def wallet_services() -> WalletServices:
    return current_app.extensions[WALLET_EXTENSION]  # type: ignore[no-any-return]
