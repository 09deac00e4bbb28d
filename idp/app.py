"""The composition root: ``create_app`` builds the settings, database, store, key ring, the typed
``Services`` and every blueprint, registers the login methods and plug-ins (DESIGN.md §1), and starts
nothing; ``start_background_work`` is what a serving process adds. Nothing happens at import time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from typing import Any

from authlib.oauth2 import OAuth2Error
from flask import Flask
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from idp.cardlogin.context import create_card_login_context
from idp.config import Settings, load_settings
from idp.crypto.kek import KeyEncryptionKeys
from idp.db import Database
from idp.keys.pkcs11 import Pkcs11Backend
from idp.keys.schedule import SCHEDULER_ACTOR, KeyScheduler
from idp.keys.service import CORE_KEY_SETS, KeyRing, ensure_key_sets
from idp.login.authenticators import AuthenticatorRegistry
from idp.oauth.server import create_authorization_server
from idp.realname.service import create_realname_context
from idp.services import Services
from idp.stores.factory import create_store
from idp.web import MAX_FORM_BYTES, error_page, install_request_hooks, json_error, wants_page
from sdk.clock import Clock, system_clock
from sdk.errors import OneCardError

Plugin = Callable[[Flask], None]
log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock = system_clock,
    plugins: Sequence[Plugin] | None = None,
    **overrides: Any,
) -> Flask:
    """Build the OneCard WSGI application.

    ``plugins`` defaults to everything in the ``onecard.plugins`` entry point group (the wallet); tests pass
    their own list. The database schema must be migrated (``onecard db upgrade``) before serving.
    """
    settings = settings or load_settings(**overrides)
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=None,  # Flask's own session is unused; OneCard's cookies are opaque ids in its store.
        MAX_CONTENT_LENGTH=max(MAX_FORM_BYTES, 16 * 1024 * 1024),
        MAX_FORM_MEMORY_SIZE=MAX_FORM_BYTES,
        JSON_SORT_KEYS=False,
        DEBUG=settings.debug,
    )
    database = Database(settings.database_url)
    keks = KeyEncryptionKeys.from_strings(settings.key_encryption_keys())
    store = create_store(settings, database)
    keyring = KeyRing(database, keks)
    hsm = Pkcs11Backend.from_settings(settings)  # None unless ONECARD_PKCS11_* name one
    keyring.hsm = hsm
    svc = Services(
        settings=settings,
        database=database,
        store=store,
        keks=keks,
        keyring=keyring,
        clock=clock,
        authenticators=AuthenticatorRegistry(),
        authorization_server=create_authorization_server(),
        card_login=create_card_login_context(settings, database, store, keyring),
        realname=create_realname_context(store, per_minute=settings.rate_limit_per_minute),
        hsm=hsm,
    )
    app.extensions["onecard"] = svc
    svc.authorization_server.init_app(app)

    # Blueprints are imported here, not at module level: importing idp.app builds nothing.
    from idp.admin.views import bp as admin_bp
    from idp.cardlogin.views import CARD_METHOD
    from idp.cardlogin.views import bp as card_login_bp
    from idp.cards.views import bp as cards_admin_bp
    from idp.health import bp as health_bp
    from idp.keys.views import bp as keys_bp
    from idp.login.views import bp as login_bp
    from idp.oauth.views import bp as oidc_bp
    from idp.realname.views import bp as realname_bp

    # Everything the provider serves, in one list (DESIGN.md §3, §4, §6, §7).
    blueprints = (oidc_bp, login_bp, admin_bp, card_login_bp, cards_admin_bp, keys_bp, realname_bp, health_bp)
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    svc.authenticators.register(CARD_METHOD)
    install_request_hooks(app)
    _install_error_handlers(app)

    for plugin in plugins if plugins is not None else _entry_point_plugins():
        plugin(app)
    return app


def start_background_work(app: Flask) -> None:
    """What only a serving process runs: the key scheduler's thread (``ONECARD_KEY_TICK_INTERVAL``), one
    tick at a time across nodes. CLI commands and tests build the app without it."""
    svc: Services = app.extensions["onecard"]
    if svc.settings.key_tick_interval > 0 and svc.scheduler is None:
        from idp.keys.views import key_actor

        svc.scheduler = KeyScheduler(
            svc, key_actor(svc, SCHEDULER_ACTOR), interval=svc.settings.key_tick_interval
        )
        svc.scheduler.start()


def initialise_keys(app: Flask) -> list[str]:
    """Create the first key of every core key set that has none (run after migrations, at start-up)."""
    svc: Services = app.extensions["onecard"]
    with svc.database.session() as session:
        created = ensure_key_sets(session, svc.keks, CORE_KEY_SETS, now=svc.now())
    svc.keyring.invalidate()
    return created


def _entry_point_plugins() -> list[Plugin]:
    return [entry.load() for entry in entry_points(group="onecard.plugins")]


def _install_error_handlers(app: Flask) -> None:
    @app.errorhandler(OneCardError)
    def _onecard_error(error: OneCardError) -> Response:
        if error.status_code >= 500:
            log.error("%s: %s", type(error).__name__, error.detail)
        if wants_page():  # a person's browser navigated here: a page in words, not JSON
            return error_page(
                "This did not work",
                error.description,
                error.status_code,
                headers=getattr(error, "headers", {}),
            )
        return json_error(error)

    @app.errorhandler(OAuth2Error)
    def _oauth_error(error: OAuth2Error) -> Response:
        status, body, headers = error()
        return Response(
            body if isinstance(body, str) else json.dumps(dict(body)),
            status=status,
            headers=headers,
            mimetype="application/json",
        )

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        response = error.get_response()
        response.data = json.dumps(
            {
                "error": (error.name or "error").lower().replace(" ", "_"),
                "error_description": error.description,
            }
        )
        response.content_type = "application/json"
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        # Never a stack trace to the caller; the log line carries the type, not the data.
        log.exception("unhandled %s", type(error).__name__)
        return json_error(OneCardError("unhandled"))  # the base class: server_error, 500
