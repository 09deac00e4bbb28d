"""The public surface for login methods (the card login here, the wallet's e-card and QR logins): the
request's login transaction and SSO session, and ``complete_login`` — the one door every login method
goes through once it has proven the citizen. Views render what these return; nothing here is a view.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flask import g, request, url_for
from werkzeug.wrappers import Response

from idp.login.transactions import LoginTransaction, find_transaction, update_transaction
from idp.oauth.logout import end_sso_session
from idp.scopes import acr_rank
from idp.services import services
from idp.sessions.model import SsoSession
from idp.sessions.service import (
    Authentication,
    create_session,
    find_session_by_cookie,
    reauthenticate_session,
)
from idp.web import SESSION_COOKIE, UI_LOCALES_G, browser_binding, client_ip, cookie_secure, db_session
from sdk.errors import ForbiddenError

__all__ = [
    "EXPIRED_MESSAGE",
    "EXPIRED_TITLE",
    "Authentication",
    "CompletedLogin",
    "LoginTooWeakError",
    "complete_login",
    "current_sso_session",
    "current_transaction",
    "end_sso_session",
]

EXPIRED_TITLE = "This sign-in has expired"
EXPIRED_MESSAGE = (
    "It took too long, or it was started in another browser. Please go back to the service and start again."
)


class LoginTooWeakError(ForbiddenError):
    error = "login_too_weak"
    description = "This service needs you to log in with your social security card and PIN."


@dataclass(frozen=True)
class CompletedLogin:
    """Where the browser goes on (the authorization request, resumed) and its new SSO session cookie."""

    location: str
    session_cookie: str
    max_age: int

    def redirect(self) -> Response:
        """For a browser navigation: 303 to go on, with the session cookie."""
        response = Response(status=303, headers={"Location": self.location})
        self._set_cookie(response)
        return response

    def json(self) -> Response:
        """For a page that called with fetch: the same cookie, and ``{"redirect_to"}`` to go on."""
        body: dict[str, Any] = {"redirect_to": self.location}
        response = Response(
            json.dumps(body), mimetype="application/json", headers={"Cache-Control": "no-store"}
        )
        self._set_cookie(response)
        return response

    def _set_cookie(self, response: Response) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            self.session_cookie,
            max_age=self.max_age,
            secure=cookie_secure(),
            httponly=True,
            samesite="Lax",
            path="/",
        )


def current_transaction(tx_id: str) -> LoginTransaction | None:
    """This browser's live login transaction; its ``ui_locales`` is then the page's language hint."""
    svc = services()
    tx = find_transaction(svc.store, tx_id, browser=browser_binding(), now=svc.now())
    if tx is not None:
        setattr(g, UI_LOCALES_G, tx.params.get("ui_locales", ""))
    return tx


def current_sso_session() -> SsoSession | None:
    svc = services()
    return find_session_by_cookie(db_session(), request.cookies.get(SESSION_COOKIE), now=svc.now())


def complete_login(tx: LoginTransaction, auth: Authentication) -> CompletedLogin:
    """Start (or raise) the SSO session and go on with the authorization request; ``LoginTooWeakError`` if
    the login is below what the request needs. The method must have checked everything about its own
    credential."""
    svc = services()
    now = svc.now()
    if acr_rank(auth.acr) < acr_rank(tx.required_acr):
        raise LoginTooWeakError(f"{auth.acr} below {tx.required_acr}")
    session = db_session()
    previous = current_sso_session()
    if previous is not None and previous.citizen_id == auth.citizen_id:
        # The same citizen again (step-up, prompt=login, max_age): the session keeps its sid, so portals that
        # joined earlier still recognise it in logout tokens; the cookie secret is new (no fixation).
        record, cookie = reauthenticate_session(
            session, previous, auth, ttl=svc.settings.sso_session_ttl, now=now
        )
    else:
        if previous is not None:
            # Someone else logs in here: the old citizen's session ends, and its portals hear of it.
            end_sso_session(previous, now=now)
        record, cookie = create_session(
            session,
            auth,
            ttl=svc.settings.sso_session_ttl,
            now=now,
            user_agent=request.headers.get("User-Agent", ""),
            client_ip=client_ip(),
        )
    update_transaction(svc.store, tx, now=now, authenticated_sid=record.sid)
    location = tx.resume_to or url_for("oidc.resume", tx=tx.id)
    return CompletedLogin(location, cookie, svc.settings.sso_session_ttl)
