"""Request helpers shared by the wallet's pages: who is signed in, the relying party, CSRF, cookies.

The wallet has no session of its own: signing in with a passkey starts an ordinary SSO session
(``idp.sessions``) at ``loa:substantial``, so the citizen sees it with their other sessions and logging out
anywhere ends it.
"""

from __future__ import annotations

from typing import TypeVar

from flask import request
from werkzeug.wrappers import Response as BaseResponse

from idp.login.service import current_sso_session
from idp.scopes import ACR_HIGH, acr_rank
from idp.services import services
from idp.sessions.model import SsoSession
from idp.web import SESSION_COOKIE, check_csrf, cookie_secure, csrf_token
from wallet.devices.service import RelyingParty

R = TypeVar("R", bound=BaseResponse)

CSRF_PURPOSE = "wallet"
CSRF_HEADER = "X-CSRF-Token"


def relying_party() -> RelyingParty:
    return RelyingParty.for_issuer(services().settings.issuer)


def signed_in() -> SsoSession | None:
    return current_sso_session()


def is_high(sso: SsoSession) -> bool:
    """Logged in with card + PIN (activation, binding a device and resuming need it)."""
    return acr_rank(sso.acr) >= acr_rank(ACR_HIGH)


def wallet_csrf() -> str:
    return csrf_token(CSRF_PURPOSE)


def csrf_ok(purpose: str = CSRF_PURPOSE) -> bool:
    """Forms post ``csrf``; JSON calls send the ``X-CSRF-Token`` header."""
    token = request.form.get("csrf") if request.form else None
    return check_csrf(purpose, token or request.headers.get(CSRF_HEADER))


def set_session_cookie(response: BaseResponse, cookie: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=services().settings.sso_session_ttl,
        secure=cookie_secure(),
        httponly=True,
        samesite="Lax",
        path="/",
    )


def no_store(response: R) -> R:
    response.headers["Cache-Control"] = "no-store"
    return response
