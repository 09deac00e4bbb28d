"""The halls' registration hook: ``init_app(app)`` is the ``onecard.plugins`` entry point idp's
``create_app`` calls (after the wallet's: the halls stand on it). It adds the halls' blueprints (the admin
API, the scanner and counter APIs, the ticket, display and counter pages, the statistics page), their
templates, static files and translations, and their fragments of the JSON APIs' contract.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask
from flask_babel import lazy_gettext

from idp.i18n import add_translation_directory
from idp.services import Services
from wallet.services import WALLET_EXTENSION


def init_app(app: Flask) -> None:
    from halls.pages.views import bp as pages_bp
    from halls.queue.views import bp as queue_bp
    from halls.register.views import bp as register_bp
    from halls.stats.views import bp as stats_bp

    assets = Blueprint(
        "halls_assets",
        __name__,
        template_folder="templates",
        static_folder="static",
        static_url_path="/halls/static",
    )
    add_translation_directory(app, Path(__file__).parent / "translations")
    for blueprint in (assets, register_bp, queue_bp, pages_bp, stats_bp):
        app.register_blueprint(blueprint)
    from halls.kiosk.views import bp as kiosk_bp

    # The kiosk pages (halls/kiosk, issue 13 item 1): a self-service terminal's card login and menu.
    app.register_blueprint(kiosk_bp)
    # The citizen's queue numbers are a page of the wallet: listed in its menu (translated when shown) where
    # the wallet is installed too.
    wallet = app.extensions.get(WALLET_EXTENSION)
    if wallet is not None:
        wallet.menu_items.append(("halls_pages.tickets_page", lazy_gettext("My queue numbers")))
    _register_contract(app.extensions["onecard"])


def _register_contract(svc: Services) -> None:
    """The halls' part of ``/api/openapi.json``: one fragment per domain, each beside its views."""
    from halls.queue.contract import CONTRACT as queue_contract
    from halls.register.contract import CONTRACT as register_contract

    svc.api_contract.register(queue_contract, register_contract)
