"""The wallet's registration hook: ``init_app(app)`` is the ``onecard.plugins`` entry point idp's
``create_app`` calls. It adds the wallet's blueprints (pages, passkeys, codes, gate API, venue and
statistics admin APIs, the application catalogue's page and APIs), its templates and static files, the
e-card passkey login method, and its fragments of the JSON APIs' contract (``Services.api_contract``).
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask

from idp.i18n import add_translation_directory
from idp.services import Services
from wallet.ecards.service import citizen_of_usable_handle
from wallet.qrlogin.service import describe_browser
from wallet.services import WALLET_EXTENSION, WalletServices, wallet_services
from wallet.words import capability_word, category_word, fact_word, scan_reason_word


def init_app(app: Flask) -> None:
    from wallet.catalogue.views import admin_bp as catalogue_admin_bp
    from wallet.catalogue.views import bp as catalogue_bp
    from wallet.devices.views import ECARD_METHOD
    from wallet.devices.views import bp as devices_bp
    from wallet.ecards.views import bp as ecards_bp
    from wallet.qr.views import bp as qr_bp
    from wallet.qrlogin.views import QR_METHOD
    from wallet.qrlogin.views import bp as qrlogin_bp
    from wallet.regions.runtime import REGIONS_EXTENSION, RegionRuntime
    from wallet.regions.views import bp as regions_bp
    from wallet.scans.lean import VERIFY_PATH, LeanGateVerify
    from wallet.scans.runtime import create_gate_runtime
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
    svc: Services = app.extensions["onecard"]
    gate = create_gate_runtime(svc)
    app.extensions[WALLET_EXTENSION] = WalletServices(gate=gate)
    # Other regions' QR keys and suspended lists, synced for the gates (wallet.regions).
    regions = app.extensions[REGIONS_EXTENSION] = RegionRuntime()
    # The gate's verification before Flask, when the lean path is on (wallet.scans.lean, issue 16).
    svc.lean_routes.register("POST", VERIFY_PATH, LeanGateVerify(svc, gate, regions).route())
    add_translation_directory(app, Path(__file__).parent / "translations")
    # Plain words for what the pages show: a browser, not its User-Agent; a category, not its code.
    app.add_template_global(describe_browser, "describe_browser")
    app.add_template_global(category_word, "category_word")
    app.add_template_global(scan_reason_word, "scan_reason_word")
    app.add_template_global(lambda: wallet_services().menu_items, "wallet_menu_items")
    app.add_template_global(capability_word, "capability_word")
    app.add_template_global(fact_word, "fact_word")
    blueprints = (assets, ecards_bp, devices_bp, qr_bp, qrlogin_bp, gate_bp, regions_bp, venues_bp, stats_bp)
    for blueprint in (*blueprints, catalogue_bp, catalogue_admin_bp):
        app.register_blueprint(blueprint)
    svc.authenticators.register(ECARD_METHOD)
    svc.authenticators.register(QR_METHOD)
    _register_contract(svc)
    # Presented ESSC1 codes at the real-name API resolve through the wallet (idp cannot import it).
    svc.realname.handle_resolver = citizen_of_usable_handle


def _register_contract(svc: Services) -> None:
    """The wallet's part of ``/api/openapi.json``: one fragment per domain, each beside its views."""
    from wallet.catalogue.contract import CONTRACT as catalogue_contract
    from wallet.devices.contract import CONTRACT as devices_contract
    from wallet.qr.contract import CONTRACT as code_contract
    from wallet.qrlogin.contract import CONTRACT as qrlogin_contract
    from wallet.regions.contract import CONTRACT as regions_contract
    from wallet.scans.contract import CONTRACT as gate_contract
    from wallet.stats.contract import CONTRACT as stats_contract
    from wallet.venues.contract import CONTRACT as venues_contract

    svc.api_contract.register(
        gate_contract,
        regions_contract,
        venues_contract,
        stats_contract,
        code_contract,
        devices_contract,
        qrlogin_contract,
        catalogue_contract,
    )
