"""The composition root: ``create_app`` builds the settings, database, store, key ring and every blueprint,
and registers the login methods and plug-ins (DESIGN.md §1). Nothing happens at import time.
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

from idp.config import Settings, load_settings
from idp.crypto.kek import KeyEncryptionKeys
from idp.db import Database
from idp.keys.service import CORE_KEY_SETS, KeyRing, ensure_key_sets
from idp.login.authenticators import AuthenticatorRegistry
from idp.services import Services
from idp.stores.factory import create_store
from idp.web import MAX_FORM_BYTES, install_request_hooks, json_error
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
    svc = Services(
        settings=settings,
        database=database,
        store=create_store(settings, database),
        keks=keks,
        keyring=KeyRing(database, keks),
        clock=clock,
        authenticators=AuthenticatorRegistry(),
    )
    app.extensions["onecard"] = svc

    from idp.oauth.server import create_authorization_server

    server = create_authorization_server()
    server.init_app(app)
    svc.extras["authorization_server"] = server

    from idp.admin.views import bp as admin_bp
    from idp.login.views import bp as login_bp
    from idp.oauth.views import bp as oidc_bp

    app.register_blueprint(oidc_bp)
    app.register_blueprint(login_bp)
    app.register_blueprint(admin_bp)
    from idp.cardlogin.views import install_card_login  # card + PIN login and the card register (DESIGN §4)

    install_card_login(app)
    from idp.keys.views import install_key_management  # key admin API, QR key set, scheduler (DESIGN §7)

    install_key_management(app)
    from idp.realname.views import install_realname  # real-name verification API (DESIGN §6)

    install_realname(app)
    install_request_hooks(app)
    _install_error_handlers(app)

    for plugin in plugins if plugins is not None else _entry_point_plugins():
        plugin(app)
    return app


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
        return Response(
            '{"error":"server_error","error_description":"Something went wrong."}',
            status=500,
            mimetype="application/json",
        )
