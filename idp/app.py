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
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response

from idp.cardlogin.context import create_card_login_context
from idp.config import Settings, load_settings
from idp.crypto.kek import KeyEncryptionKeys
from idp.db import Database
from idp.fastpath.wsgi import LeanPath
from idp.federation.context import create_federation_context
from idp.federation.registration import install_registration_writes
from idp.i18n import install_i18n
from idp.keys.pkcs11 import Pkcs11Backend
from idp.keys.schedule import SCHEDULER_ACTOR, KeyScheduler
from idp.keys.service import CORE_KEY_SETS, KeyRing, ensure_key_sets
from idp.login.authenticators import AuthenticatorRegistry
from idp.oauth.server import create_authorization_server
from idp.observability.database import instrument_engine
from idp.observability.web import install_request_observation
from idp.openapi.contract import ApiContract
from idp.openapi.validation import install_contract_validation
from idp.realname.service import create_realname_context
from idp.services import Services
from idp.stores.factory import create_store
from idp.stores.timed import TimedStore
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
    instrument_engine(database.engine)  # statement latency (idp.observability)
    keks = KeyEncryptionKeys.from_strings(settings.key_encryption_keys())
    store = TimedStore(create_store(settings, database))  # operation latency (idp.observability)
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
        api_contract=ApiContract(),
        hsm=hsm,
        federation=create_federation_context(settings, keyring, store),
    )
    app.extensions["onecard"] = svc
    svc.authorization_server.init_app(app)
    install_i18n(app)  # Chinese first, English on request (DESIGN.md §11); plug-ins add their catalogues

    # Blueprints are imported here, not at module level: importing idp.app builds nothing.
    from idp.admin.views import bp as admin_bp
    from idp.cardlogin.views import CARD_METHOD
    from idp.cardlogin.views import bp as card_login_bp
    from idp.cards.views import bp as cards_admin_bp
    from idp.federation.login_views import REGION_METHOD
    from idp.federation.login_views import bp as federated_login_bp
    from idp.federation.views import bp as federation_bp
    from idp.health import bp as health_bp
    from idp.keys.views import bp as keys_bp
    from idp.login.views import bp as login_bp
    from idp.oauth.views import bp as oidc_bp
    from idp.observability.views import bp as metrics_bp
    from idp.openapi.views import bp as openapi_bp
    from idp.realname.views import bp as realname_bp

    # Everything the provider serves, in one list (DESIGN.md §3, §4, §6, §7).
    blueprints = (
        oidc_bp,
        login_bp,
        admin_bp,
        card_login_bp,
        cards_admin_bp,
        keys_bp,
        federation_bp,
        federated_login_bp,
        realname_bp,
        health_bp,
        metrics_bp,
        openapi_bp,
    )
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    svc.authenticators.register(CARD_METHOD)
    if svc.federation is not None and (svc.federation.config.anchors or svc.federation.config.peers):
        # Cross-region login: offered only where this deployment trusts a federation with other regions.
        svc.authenticators.register(REGION_METHOD)
    _register_contract(svc)
    # Registered before the request hooks, so it runs after their commit (Flask runs after_request hooks
    # last-registered first): a refused request registers nothing.
    install_registration_writes(app)
    install_request_hooks(app)
    install_request_observation(app)  # request id, JSON request log, request metrics: first and last hooks
    _install_error_handlers(app)

    for plugin in plugins if plugins is not None else _entry_point_plugins():
        plugin(app)
    install_contract_validation(app)  # seals /api/openapi.json: every plug-in has added its fragment
    if settings.lean_path:
        # Plain client_credentials tokens, discovery and the JWKS before Flask (idp.fastpath, issue #16).
        app.wsgi_app = LeanPath(app.wsgi_app, svc)  # type: ignore[method-assign]
    _trust_proxies(app, settings.trusted_proxy_count)
    return app


def _trust_proxies(app: Flask, hops: int) -> None:
    """Behind ``hops`` reverse proxies (``ONECARD_TRUSTED_PROXY_COUNT``), take the client's address and
    scheme from what those proxies appended to X-Forwarded-For / X-Forwarded-Proto.

    ProxyFix reads the ``hops``-th value from the right: the one our nearest trusted proxy wrote. Anything a
    client put in front of it (a forged X-Forwarded-For) is ignored, so ``request.remote_addr`` — what the
    rate limiters key on — cannot be chosen by the client. X-Forwarded-Host, -Port and -Prefix stay untrusted:
    every URL OneCard emits (discovery, redirects, the card signature's origin) is built from the issuer
    setting, never from the request's host, so honouring them would only add headers to spoof. Outermost
    wrapper, applied last, so every other middleware already sees the client's address.
    """
    if hops > 0:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=0, x_port=0, x_prefix=0
        )


def _register_contract(svc: Services) -> None:
    """The JSON APIs' contract (``/api/openapi.json``): one fragment per domain, each beside its views."""
    from idp.admin.contract import CONTRACT as admin_contract
    from idp.cardlogin.contract import CONTRACT as card_login_contract
    from idp.cards.contract import CONTRACT as cards_contract
    from idp.federation.contract import CONTRACT as federation_contract
    from idp.keys.contract import CONTRACT as keys_contract
    from idp.login.contract import CONTRACT as login_contract
    from idp.realname.contract import CONTRACT as realname_contract

    svc.api_contract.register(
        admin_contract, cards_contract, keys_contract, realname_contract, login_contract, card_login_contract
    )
    svc.api_contract.register(federation_contract)


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
