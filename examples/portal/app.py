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

Run: ``python -m examples.portal`` or ``flask --app examples.portal.app run -p 8001``.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Flask, Response, render_template

from sdk.portal import ACR_HIGH, ACR_SUBSTANTIAL, PortalClient
from sdk.portal.flask import create_portal_blueprint, current_citizen, logout_csrf_token

SCOPE = "openid profile realname idcard"
ACR_NAMES = {ACR_HIGH: "social security card + PIN", ACR_SUBSTANTIAL: "electronic social security card"}


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


def create_app() -> Flask:
    """The factory ``flask --app examples.portal.app run`` calls."""
    return create_portal_app(settings_from_env())
