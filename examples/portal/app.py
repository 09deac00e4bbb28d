"""The example portal: a small Flask app that logs citizens in with OneCard through ``sdk.portal``.

It shows the logged-in citizen's verified claims, offers "log in with card" (``urn:onecard:loa:high``),
"log in with e-card" (``urn:onecard:loa:substantial``), step-up from e-card to card, and "log out
everywhere" (RP-initiated logout; the back-channel endpoint logs this portal out when the citizen logs out
anywhere else).

Configuration from the environment (defaults match the client ``onecard demo seed`` registers):

    ONECARD_ISSUER          http://127.0.0.1:8000
    PORTAL_CLIENT_ID        demo-portal
    PORTAL_CLIENT_SECRET    occs_demo-portal-secret
    PORTAL_BASE_URL         http://127.0.0.1:8001   (redirect URI = <base>/callback, back-channel
                                                      <base>/backchannel-logout, post-logout <base>/)
    PORTAL_SECRET_KEY       random per start (sessions then end with the process)
    PORTAL_NAME             OneCard demo portal

Its pages speak Simplified Chinese by default and English on request (Flask-Babel, catalogues in
``examples/portal/translations``; a switch on every page, remembered in a cookie), and it asks OneCard for
the same language (``ui_locales``).

Run: ``python -m examples.portal`` or ``flask --app examples.portal.app run -p 8001``.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from babel.dates import format_date
from flask import Flask, Response, redirect, render_template, request, url_for
from flask_babel import Babel, get_locale, gettext, lazy_gettext
from werkzeug.wrappers import Response as BaseResponse

from sdk.portal import ACR_HIGH, ACR_SUBSTANTIAL, PortalClient
from sdk.portal.flask import create_portal_blueprint, current_citizen, logout_csrf_token

SCOPE = "openid profile realname idcard"
ACR_NAMES = {
    ACR_HIGH: lazy_gettext("social security card and PIN"),
    ACR_SUBSTANTIAL: lazy_gettext("electronic social security card"),
}
TRANSLATIONS = Path(__file__).parent / "translations"
LANGUAGE_COOKIE = "portal_lang"
# The portal's locales and the BCP 47 tags its pages (and its ui_locales to OneCard) carry.
LANGUAGE_TAGS = {"zh_Hans_CN": "zh-CN", "en": "en"}


@dataclass(frozen=True)
class PortalSettings:
    issuer: str = "http://127.0.0.1:8000"
    client_id: str = "demo-portal"
    client_secret: str = "occs_demo-portal-secret"  # the demo's published development secret
    base_url: str = "http://127.0.0.1:8001"
    secret_key: str = ""
    name: str = "OneCard demo portal"


def settings_from_env() -> PortalSettings:
    defaults = PortalSettings()
    env = os.environ.get
    return PortalSettings(
        issuer=env("ONECARD_ISSUER", defaults.issuer),
        client_id=env("PORTAL_CLIENT_ID", defaults.client_id),
        client_secret=env("PORTAL_CLIENT_SECRET", defaults.client_secret),
        base_url=env("PORTAL_BASE_URL", defaults.base_url).rstrip("/"),
        secret_key=env("PORTAL_SECRET_KEY", ""),
        name=env("PORTAL_NAME", defaults.name),
    )


def create_portal_app(settings: PortalSettings | None = None, *, client: PortalClient | None = None) -> Flask:
    settings = settings or settings_from_env()
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key or secrets.token_hex(32),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",  # the callback is a top-level GET from the IdP: Lax lets it through
        SESSION_COOKIE_SECURE=settings.base_url.startswith("https://"),
        # Browsers do not separate cookies by port: two portals on 127.0.0.1 need two cookie names.
        SESSION_COOKIE_NAME=f"portal_{urlsplit(settings.base_url).port or 'session'}",
    )
    client = client or PortalClient(
        settings.issuer,
        settings.client_id,
        settings.client_secret,
        f"{settings.base_url}/callback",
    )
    app.extensions["portal_client"] = client
    _install_languages(app)
    app.register_blueprint(
        create_portal_blueprint(client, scope=SCOPE, post_logout_redirect_uri=f"{settings.base_url}/")
    )

    @app.get("/")
    def index() -> str:
        citizen = current_citizen()
        verified = citizen.get("verified_claims") if citizen else None
        return render_template(
            "index.html",
            portal_name=settings.name,
            citizen=citizen,
            verified=verified if isinstance(verified, dict) else None,
            acr_name=ACR_NAMES.get(citizen.acr or "", citizen.acr) if citizen else None,
            ui_locales=LANGUAGE_TAGS[_locale()],
            can_step_up=citizen is not None and citizen.acr != ACR_HIGH,
            csrf=logout_csrf_token(),
            ACR_HIGH=ACR_HIGH,
            ACR_SUBSTANTIAL=ACR_SUBSTANTIAL,
        )

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    return app


def _compiled(locale: str) -> bool:
    return any((TRANSLATIONS / locale / "LC_MESSAGES").glob("*.mo"))


def _locale() -> str:
    return str(get_locale()) if str(get_locale()) in LANGUAGE_TAGS else "en"


def _select_locale() -> str:
    """The visitor's choice (cookie), else the browser's preference, else Chinese — as long as the Chinese
    catalogue is compiled (``scripts/setup.sh``); a copy nobody compiled speaks English."""
    if not _compiled("zh_Hans_CN"):
        return "en"
    chosen = request.cookies.get(LANGUAGE_COOKIE, "")
    for tag in [chosen, *(tag for tag, _quality in request.accept_languages)]:
        language = tag.split("-")[0].split("_")[0].lower()
        if language in ("zh", "en"):
            return "zh_Hans_CN" if language == "zh" else "en"
    return "zh_Hans_CN"


def _portal_date(value: object) -> str:
    """A claim's ISO date (``birthdate``) in the reader's form: 1949年12月31日, or 31 Dec 1949."""
    try:
        day = dt.date.fromisoformat(str(value))
    except ValueError:
        return str(value)
    pattern = "y年M月d日" if _locale() == "zh_Hans_CN" else "d MMM y"
    return format_date(day, pattern, locale=_locale())


def _install_languages(app: Flask) -> None:
    app.config.update(BABEL_DEFAULT_LOCALE="zh_Hans_CN", BABEL_TRANSLATION_DIRECTORIES=str(TRANSLATIONS))
    Babel(app, locale_selector=_select_locale)
    app.jinja_env.policies["ext.i18n.trimmed"] = True  # as pybabel extracts {% trans %} (babel.cfg)
    app.add_template_filter(_portal_date, "portal_date")
    # The default name in the reader's language; a name set in PORTAL_NAME is shown as it is.
    app.add_template_filter(
        lambda name: gettext("OneCard demo portal") if name == PortalSettings.name else name, "portal_name"
    )

    @app.context_processor
    def _language_context() -> dict[str, object]:
        other = "en" if _locale() == "zh_Hans_CN" else "zh_Hans_CN"
        return {
            "html_lang": LANGUAGE_TAGS[_locale()],
            "switch_lang": LANGUAGE_TAGS[other],
            "switch_label": {"en": "English", "zh_Hans_CN": "中文"}[other],
            "switch_url": url_for("language") + "?" + urlencode({"lang": LANGUAGE_TAGS[other]}),
        }

    @app.get("/language")
    def language() -> BaseResponse:
        tag = request.args.get("lang", "")
        response = redirect(url_for("index"), 303)
        if tag in LANGUAGE_TAGS.values():
            response.set_cookie(LANGUAGE_COOKIE, tag, max_age=400 * 86400, httponly=True, samesite="Lax")
        return response


def create_app() -> Flask:
    """The factory ``flask --app examples.portal.app run`` calls."""
    return create_portal_app(settings_from_env())
