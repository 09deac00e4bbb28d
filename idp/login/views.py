"""The login method chooser and the consent page (login methods finish through ``idp.login.service``)."""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import urlencode

from flask import Blueprint, jsonify, make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from idp.cardlogin.errors import CsrfError, LoginExpiredError
from idp.clients.service import find_client
from idp.consents.service import grant_consent
from idp.login.service import EXPIRED_MESSAGE, EXPIRED_TITLE, current_sso_session, current_transaction
from idp.login.transactions import LoginTransaction, end_transaction, extend_transaction, update_transaction
from idp.oauth.views import error_redirect
from idp.scopes import SCOPE_DESCRIPTIONS
from idp.services import services
from idp.web import (
    check_csrf,
    csrf_token,
    db_session,
    error_page,
)

bp = Blueprint("login", __name__)
LONGEST_LOGIN: Final = 3600  # "More time" keeps a login transaction alive this long at most
TIME_WARNING: Final = 120  # seconds before the end: the pages warn and offer more time


@bp.app_template_global()
def login_time_limit(tx: LoginTransaction) -> dict[str, Any]:
    """What a login page's time-limit notice needs (templates/login_time_limit.html, static/login-time.js):
    the seconds left, where to ask for more, and where to start again without going back to the portal —
    the same authorization request, which opens a new transaction."""
    svc = services()
    return {
        "expires_in": max(0, int(tx.expires_at - svc.now())),
        "warn_before": TIME_WARNING,
        "extend_url": url_for("login.more_time", tx=tx.id),
        "csrf": csrf_token(f"login-time:{tx.id}"),
        "restart_url": f"{url_for('oidc.authorize')}?{urlencode(tx.params)}",
    }


@bp.post("/login/<tx>/more-time")
def more_time(tx: str) -> Response:
    """JSON, with the page's CSRF token (``X-CSRF-Token``): the transaction's full time again."""
    transaction = current_transaction(tx)
    if transaction is None:
        raise LoginExpiredError("no live login transaction for this browser")
    if not check_csrf(f"login-time:{transaction.id}", request.headers.get("X-CSRF-Token")):
        raise CsrfError("missing or stale CSRF token")
    svc = services()
    now = svc.now()
    extended = extend_transaction(
        svc.store, transaction, ttl=svc.settings.login_transaction_ttl, longest=LONGEST_LOGIN, now=now
    )
    if extended is None:  # ended (the login finished) or expired since it was read
        raise LoginExpiredError("the login transaction ended while asking for more time")
    response = jsonify({"expires_in": max(0, int(extended.expires_at - now))})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/login/<tx>")
def choose(tx: str) -> Response:
    transaction = current_transaction(tx)
    if transaction is None:
        return error_page(EXPIRED_TITLE, EXPIRED_MESSAGE)
    svc = services()
    client = find_client(db_session(), transaction.client_id)
    methods = svc.authenticators.methods_for(transaction.required_acr)
    hinted = next((m for m in methods if (transaction.login_hint or "").startswith(f"{m.name}:")), None)
    if hinted is not None:  # e.g. ``region:500000``: straight to that method (cross-region login)
        return redirect(url_for(hinted.start_endpoint, tx=transaction.id), 303)
    return make_response(
        render_template(
            "login.html",
            tx=transaction,
            client=client,
            methods=methods,
            links={m.name: url_for(m.start_endpoint, tx=transaction.id) for m in methods},
        )
    )


@bp.route("/consent/<tx>", methods=["GET", "POST"])
def consent(tx: str) -> Response:
    transaction = current_transaction(tx)
    if transaction is None:
        return error_page(EXPIRED_TITLE, EXPIRED_MESSAGE)
    svc = services()
    now = svc.now()
    sso = current_sso_session()
    client = find_client(db_session(), transaction.client_id)
    if sso is None or client is None:
        return error_page(EXPIRED_TITLE, EXPIRED_MESSAGE)
    scopes = [s for s in transaction.params.get("scope", "").split() if s in SCOPE_DESCRIPTIONS]
    if request.method == "GET":
        return make_response(
            render_template(
                "consent.html",
                tx=transaction,
                client=client,
                csrf=csrf_token(f"consent:{transaction.id}"),
                scopes=[(s, SCOPE_DESCRIPTIONS[s]) for s in scopes],
            )
        )
    if not check_csrf(f"consent:{transaction.id}", request.form.get("csrf")):
        return error_page("Please try again", "The form was out of date. Go back and press the button again.")
    if request.form.get("decision") != "allow":
        return decline_to_portal(transaction)
    grant_consent(db_session(), sso.citizen_id, client.client_id, set(scopes), now=now)
    update_transaction(svc.store, transaction, now=now, consented=True)
    return redirect(url_for("oidc.resume", tx=transaction.id), 303)


def decline_to_portal(tx: LoginTransaction) -> Response:
    """The citizen said no (here, or at their home region: idp.federation.login_views): tell the portal
    ``access_denied`` at its (already validated) redirect URI."""
    svc = services()
    redirect_uri = tx.params.get("redirect_uri", "")
    client = find_client(db_session(), tx.client_id)
    if client is None or redirect_uri not in client.redirect_uris:
        return error_page("Cancelled", "You did not share your information. You can close this page.")
    end_transaction(svc.store, tx, now=svc.now())
    return error_redirect(redirect_uri, "access_denied", "The citizen declined.", tx.params.get("state"), 303)
