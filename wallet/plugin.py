"""The wallet's registration hook: ``init_app(app)`` is the ``onecard.plugins`` entry point idp's
``create_app`` calls. It adds the wallet's blueprints (pages, passkeys, codes, gate API, venue and
statistics admin APIs), its templates and static files, and the e-card passkey login method.
"""

from __future__ import annotations

from flask import Blueprint, Flask

from idp.services import Services
from wallet.ecards.service import citizen_of_usable_handle
from wallet.services import WALLET_EXTENSION, WalletServices


def init_app(app: Flask) -> None:
    from wallet.devices.views import ECARD_METHOD
    from wallet.devices.views import bp as devices_bp
    from wallet.ecards.views import bp as ecards_bp
    from wallet.qr.views import bp as qr_bp
    from wallet.qrlogin.views import QR_METHOD
    from wallet.qrlogin.views import bp as qrlogin_bp
    from wallet.scans.views import bp as gate_bp
    from wallet.stats.views import bp as stats_bp
    from wallet.venues.views import bp as venues_bp

    assets = Blueprint(
        "wallet_assets",
        __name__,
        template_folder="templates",
        static_folder="static",
        static_url_path="/wallet/static",
    )
    app.extensions[WALLET_EXTENSION] = WalletServices()
    for blueprint in (assets, ecards_bp, devices_bp, qr_bp, qrlogin_bp, gate_bp, venues_bp, stats_bp):
        app.register_blueprint(blueprint)
    svc: Services = app.extensions["onecard"]
    svc.authenticators.register(ECARD_METHOD)
    svc.authenticators.register(QR_METHOD)
    # Presented ESSC1 codes at the real-name API resolve through the wallet (idp cannot import it).
    svc.realname.handle_resolver = citizen_of_usable_handle
