"""Login and consent pages, and ``complete_login``: the one door every login method goes through."""

from __future__ import annotations

from flask import Blueprint, make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from idp.clients.service import find_client
from idp.consents.service import grant_consent
from idp.login.transactions import LoginTransaction, end_transaction, find_transaction, update_transaction
from idp.oauth.views import current_sso_session, end_sso_session, error_redirect
from idp.scopes import SCOPE_DESCRIPTIONS, acr_rank
from idp.services import services
from idp.sessions.service import Authentication, create_session, reauthenticate_session
from idp.web import (
    SESSION_COOKIE,
    browser_binding,
    check_csrf,
    client_ip,
    cookie_secure,
    csrf_token,
    db_session,
    error_page,
)

bp = Blueprint("login", __name__)

EXPIRED_TITLE = "This sign-in has expired"
EXPIRED_MESSAGE = (
    "It took too long, or it was started in another browser. Please go back to the service and start again."
)


def current_transaction(tx_id: str) -> LoginTransaction | None:
    svc = services()
    return find_transaction(svc.store, tx_id, browser=browser_binding(), now=svc.now())


@bp.get("/login/<tx>")
def choose(tx: str) -> Response:
    transaction = current_transaction(tx)
    if transaction is None:
        return error_page(EXPIRED_TITLE, EXPIRED_MESSAGE)
    svc = services()
    client = find_client(db_session(), transaction.client_id)
    methods = svc.authenticators.methods_for(transaction.required_acr)
    return make_response(
        render_template(
            "login.html",
            tx=transaction,
            client=client,
            methods=methods,
            links={m.name: url_for(m.start_endpoint, tx=transaction.id) for m in methods},
        )
    )


def complete_login(tx: LoginTransaction, auth: Authentication) -> Response:
    """Called by a login method once the citizen is proven: start (or raise) the SSO session, go on with
    the authorization request. The method must have checked everything about its own credential."""
    svc = services()
    now = svc.now()
    if acr_rank(auth.acr) < acr_rank(tx.required_acr):
        return error_page(
            "A stronger login is needed",
            "This service needs you to log in with your social security card and PIN.",
            403,
        )
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
    response = redirect(url_for("oidc.resume", tx=tx.id), 303)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=svc.settings.sso_session_ttl,
        secure=cookie_secure(),
        httponly=True,
        samesite="Lax",
        path="/",
    )
    return response


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
        return _deny(transaction)
    grant_consent(db_session(), sso.citizen_id, client.client_id, set(scopes), now=now)
    update_transaction(svc.store, transaction, now=now, consented=True)
    return redirect(url_for("oidc.resume", tx=transaction.id), 303)


def _deny(tx: LoginTransaction) -> Response:
    """The citizen said no: tell the portal ``access_denied`` at its (already validated) redirect URI."""
    svc = services()
    redirect_uri = tx.params.get("redirect_uri", "")
    client = find_client(db_session(), tx.client_id)
    if client is None or redirect_uri not in client.redirect_uris:
        return error_page("Cancelled", "You did not share your information. You can close this page.")
    end_transaction(svc.store, tx, now=svc.now())
    return error_redirect(redirect_uri, "access_denied", "The citizen declined.", tx.params.get("state"), 303)
