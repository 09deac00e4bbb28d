"""The wallet's pages about the e-card itself (DESIGN.md §5): home, activation, suspend/resume, scan
history, the citizen's SSO sessions, logging in with the card for activation, signing out.

Views parse the request, call one service, render. Forms carry a CSRF token bound to this browser.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import urlencode

from flask import Blueprint, Response, make_response, redirect, render_template, request, url_for
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response as BaseResponse

from idp.cards.service import cards_of_citizen
from idp.clients.service import ClientRegistration, create_client, find_client
from idp.login.service import end_sso_session
from idp.scopes import ACR_HIGH, OPENID
from idp.services import services
from idp.sessions.service import list_citizen_sessions
from idp.web import SESSION_COOKIE, browser_binding, db_session, error_page
from sdk.errors import OneCardError
from wallet.devices.service import list_devices
from wallet.ecards.model import EcardStatus
from wallet.ecards.service import (
    DISCLOSURE_LABELS,
    activatable_cards,
    activate_ecard,
    find_current_ecard,
    list_ecards,
    set_own_status,
)
from wallet.scans.service import list_scans_of_ecards
from wallet.web import csrf_ok, is_high, no_store, signed_in, wallet_csrf

bp = Blueprint("wallet", __name__, url_prefix="/wallet")

WALLET_CLIENT_ID = "onecard-wallet"
LOGIN_STATE_NAMESPACE = "wallet_login_state"
LOGIN_STATE_TTL = 600
FORM_EXPIRED = (
    "Please try again",
    "The page was out of date. Go back, reload it and press the button again.",
)


def _page(template: str, **context: object) -> Response:
    return no_store(make_response(render_template(template, csrf=wallet_csrf(), **context)))


def _to_signin() -> BaseResponse:
    return redirect(url_for("wallet_devices.signin_page"), 303)


@bp.get("/")
def home() -> BaseResponse:
    sso = signed_in()
    if sso is None:
        return _to_signin()
    session = db_session()
    current = find_current_ecard(session, sso.citizen_id)
    return _page(
        "wallet/home.html",
        sso=sso,
        high=is_high(sso),
        ecard=current,
        statuses=EcardStatus,
        cards=activatable_cards(session, sso.citizen_id) if current is None else [],
        has_card=bool(cards_of_citizen(session, sso.citizen_id, live_only=True)),
        devices=list_devices(session, sso.citizen_id),
        disclosure_labels=DISCLOSURE_LABELS,
    )


@bp.post("/activate")
def activate() -> BaseResponse:
    sso = signed_in()
    if sso is None:
        return _to_signin()
    if not csrf_ok():
        return error_page(*FORM_EXPIRED)
    if not is_high(sso):
        return error_page(
            "Log in with your card first",
            "To activate your electronic card, log in with your social security card and PIN.",
            403,
        )
    try:
        activate_ecard(
            db_session(),
            citizen_id=sso.citizen_id,
            card_id=request.form.get("card_id", ""),
            now=services().now(),
        )
    except OneCardError as exc:
        return error_page("The electronic card could not be activated", exc.description, exc.status_code)
    return redirect(url_for("wallet.home"), 303)


@bp.post("/suspend")
def suspend() -> BaseResponse:
    return _set_status(suspended=True)


@bp.post("/resume")
def resume() -> BaseResponse:
    return _set_status(suspended=False)


def _set_status(*, suspended: bool) -> BaseResponse:
    sso = signed_in()
    if sso is None:
        return _to_signin()
    if not csrf_ok():
        return error_page(*FORM_EXPIRED)
    if not suspended and not is_high(sso):
        # A lost phone's passkey must not be able to undo the suspension made because of it.
        return error_page(
            "Log in with your card first",
            "To use your electronic card again, log in with your social security card and PIN.",
            403,
        )
    session = db_session()
    current = find_current_ecard(session, sso.citizen_id)
    if current is None:
        return error_page("No electronic card", "You have no electronic card to change.", 404)
    try:
        set_own_status(
            session, current, suspended=suspended, actor=f"citizen:{sso.citizen_id}", now=services().now()
        )
    except OneCardError as exc:
        return error_page("The electronic card could not be changed", exc.description, exc.status_code)
    return redirect(url_for("wallet.home"), 303)


@bp.get("/history")
def history() -> BaseResponse:
    sso = signed_in()
    if sso is None:
        return _to_signin()
    session = db_session()
    ids = [view.ecard.id for view in list_ecards(session, sso.citizen_id)]
    return _page("wallet/history.html", scans=list_scans_of_ecards(session, ids, limit=100))


@bp.get("/sessions")
def sessions() -> BaseResponse:
    sso = signed_in()
    if sso is None:
        return _to_signin()
    records = list_citizen_sessions(db_session(), sso.citizen_id, now=services().now())
    return _page("wallet/sessions.html", sessions=records, current_sid=sso.sid)


@bp.post("/sessions/end")
def end_session_view() -> BaseResponse:
    sso = signed_in()
    if sso is None:
        return _to_signin()
    if not csrf_ok():
        return error_page(*FORM_EXPIRED)
    sid = request.form.get("sid", "")
    for record in list_citizen_sessions(db_session(), sso.citizen_id, now=services().now()):
        if record.sid == sid:
            end_sso_session(record, now=services().now())
            break
    else:
        return error_page("No such session", "This session has ended already.", 404)
    if sid == sso.sid:
        response = redirect(url_for("wallet_devices.signin_page"), 303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response
    return redirect(url_for("wallet.sessions"), 303)


@bp.post("/signout")
def signout() -> BaseResponse:
    sso = signed_in()
    if sso is not None:
        if not csrf_ok():
            return error_page(*FORM_EXPIRED)
        end_sso_session(sso, now=services().now())
    response = redirect(url_for("wallet_devices.signin_page"), 303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# Logging in with the card (loa:high) for activation: the wallet is a first-party relying party of the IdP.


def _wallet_client_redirect_uri() -> str:
    return services().settings.issuer + url_for("wallet.callback")


def ensure_wallet_client() -> None:
    """The wallet's own first-party client (no consent page), created at first use on any node."""
    svc = services()
    redirect_uri = _wallet_client_redirect_uri()
    with svc.database.session() as session:
        client = find_client(session, WALLET_CLIENT_ID)
        if client is not None:
            if client.redirect_uris != [redirect_uri]:
                client.redirect_uris = [redirect_uri]
            return
    try:
        with svc.database.session() as session:
            create_client(
                session,
                ClientRegistration(
                    name="OneCard wallet",
                    kind="portal",
                    redirect_uris=(redirect_uri,),
                    scope=OPENID,
                    first_party=True,
                    client_id=WALLET_CLIENT_ID,
                ),
                now=svc.now(),
            )
    except IntegrityError:
        pass  # another node created it at the same moment


@bp.get("/login-card")
def login_card() -> BaseResponse:
    """Send the browser through the IdP's login at ``loa:high`` (card + PIN) and back to the wallet."""
    svc = services()
    ensure_wallet_client()
    state = secrets.token_urlsafe(24)
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    svc.store.put(
        LOGIN_STATE_NAMESPACE, state, browser_binding().encode(), ttl=LOGIN_STATE_TTL, now=svc.now()
    )
    params = {
        "response_type": "code",
        "client_id": WALLET_CLIENT_ID,
        "redirect_uri": _wallet_client_redirect_uri(),
        "scope": OPENID,
        "state": state,
        "nonce": secrets.token_urlsafe(16),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "acr_values": ACR_HIGH,
    }
    return redirect(url_for("oidc.authorize") + "?" + urlencode(params), 303)


@bp.get("/callback")
def callback() -> BaseResponse:
    """Back from the login. The SSO session cookie is what the wallet needs; the code is left to expire."""
    svc = services()
    state = request.args.get("state", "")
    bound = svc.store.take(LOGIN_STATE_NAMESPACE, state, now=svc.now()) if 16 <= len(state) <= 64 else None
    if bound is None or not secrets.compare_digest(bound, browser_binding().encode()):
        return error_page("This login has expired", "Please go back to your wallet and start again.")
    if "error" in request.args:
        return error_page(
            "You were not logged in", "The login was cancelled. You can try again from the wallet."
        )
    return redirect(url_for("wallet.home"), 303)
