"""The wallet's registration hook: ``init_app(app)`` is the ``onecard.plugins`` entry point idp's
``create_app`` calls. It adds the wallet's blueprints (pages, passkeys, codes, gate API, venue and
statistics admin APIs), its templates and static files, and the e-card passkey login method.
"""

from __future__ import annotations

from flask import Blueprint, Flask

from idp.realname.views import register_handle_resolver
from idp.services import Services
from wallet.ecards.service import citizen_of_usable_handle


def init_app(app: Flask) -> None:
    from wallet.devices.views import ECARD_METHOD
    from wallet.devices.views import bp as devices_bp
    from wallet.ecards.views import bp as ecards_bp
    from wallet.qr.views import bp as qr_bp
    from wallet.qrlogin.views import install_qr_login
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
    for blueprint in (assets, ecards_bp, devices_bp, qr_bp, gate_bp, venues_bp, stats_bp):
        app.register_blueprint(blueprint)
    svc: Services = app.extensions["onecard"]
    svc.authenticators.register(ECARD_METHOD)
    install_qr_login(app)
    # Presented ESSC1 codes at the real-name API resolve through the wallet (idp cannot import it).
    register_handle_resolver(app, citizen_of_usable_handle)
