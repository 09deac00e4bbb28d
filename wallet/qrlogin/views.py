"""QR scan-to-login pages and APIs (DESIGN.md §6), and the "qr" login method.

The computer (the IdP login page, inside a login transaction):

- ``GET  /login/<tx>/qr``                           opens a channel: the QR code (the channel's wallet URL)
  and the match code; the collection secret goes into an HttpOnly cookie scoped to this transaction's path
- ``GET  /login/<tx>/qr/<channel>/status?known=…``  long-poll: answers when the state differs from ``known``
- ``POST /login/<tx>/qr/<channel>/collect``         JSON (``X-CSRF-Token``): the approval, once
  → ``{redirect_to}``

The phone (the wallet; no wallet sign-in needed, the passkey says who approves):

- ``GET  /wallet/qr-login/<channel>``               the request (portal, claims, the asking browser) and the
  three numbers; once matched, the passkey button
- ``POST /wallet/qr-login/<channel>/match``         the picked number (a wrong one stops the login)
- ``POST /wallet/qr-login/<channel>/options``       passkey options for this channel (static/passkey.js)
- ``POST /wallet/qr-login/<channel>/approve``       the passkey answer
- ``POST /wallet/qr-login/<channel>/deny``

Views parse, call one function of ``service``, render. No inline script: static/qrlogin.js drives the
computer's page; the phone's passkey button is the wallet's static/passkey.js.
"""

from __future__ import annotations

import json
import time
from typing import Any, Final

from flask import Blueprint, make_response, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from idp.cardlogin.errors import CsrfError, LoginExpiredError
from idp.clients.service import find_client
from idp.login.authenticators import LoginMethod
from idp.login.service import EXPIRED_MESSAGE, EXPIRED_TITLE, complete_login, current_transaction
from idp.login.transactions import LoginTransaction
from idp.observability.metrics import login_attempt
from idp.ratelimit import RateLimiter
from idp.scopes import ACR_SUBSTANTIAL, SCOPE_DESCRIPTIONS, acr_rank
from idp.services import services
from idp.sessions.service import Authentication
from idp.web import (
    browser_binding,
    check_csrf,
    client_ip,
    cookie_secure,
    csrf_token,
    db_session,
    error_page,
    json_error,
)
from sdk.errors import OneCardError, RateLimitedError
from sdk.oidc import AMR_ECARD_LOGIN
from wallet.qr.service import qr_data_url
from wallet.qrlogin.channel import CHANNEL_TTL, COLLECT_GRACE, ChannelState, Requester
from wallet.qrlogin.errors import LevelTooLowError
from wallet.qrlogin.service import (
    approve_channel,
    collect_channel,
    create_channel,
    deny_channel,
    describe_browser,
    describe_network,
    match_code,
    scan_channel,
    start_approval,
    watch_channel,
)
from wallet.services import wallet_services
from wallet.web import CSRF_HEADER, no_store, relying_party

bp = Blueprint("wallet_qrlogin", __name__)

AMR: Final = AMR_ECARD_LOGIN  # the passkey on the phone, with user verification
QR_METHOD: Final = LoginMethod(
    name="qr",
    label="Scan with the e-card wallet",
    description="Scan a code on this screen with your phone and approve with your electronic card.",
    acr=ACR_SUBSTANTIAL,
    amr=AMR,
    start_endpoint="wallet_qrlogin.start",
)
COOKIE_PREFIX: Final = "ocqr-"
CHANNELS_PER_TRANSACTION: Final = 30
# Passkey ceremonies per channel: a few retries for a person; a channel lives 2 minutes and is bound to one
# phone, so this bounds the work one scanned code can cause (a per-IP limit would hit carrier-grade NAT).
CEREMONIES_PER_CHANNEL: Final = 10
_STATES: Final = frozenset(state.value for state in ChannelState)


def _cookie_name(channel_id: str) -> str:
    return COOKIE_PREFIX + channel_id[:16]


# --- the computer ------------------------------------------------------------------------------------------


@bp.get("/login/<tx>/qr")
def start(tx: str) -> BaseResponse:
    transaction = current_transaction(tx)
    if transaction is None:
        return error_page(EXPIRED_TITLE, EXPIRED_MESSAGE)
    if acr_rank(transaction.required_acr) > acr_rank(ACR_SUBSTANTIAL):
        # The login page never offers this method then; someone typed the URL.
        return error_page("A stronger login is needed", LevelTooLowError.description, 403)
    svc = services()
    now = svc.now()
    limiter = RateLimiter(
        svc.store, "qrlogin_channels", CHANNELS_PER_TRANSACTION, svc.settings.login_transaction_ttl
    )
    if not limiter.check(transaction.id, now).allowed:
        return error_page("Too many codes", RateLimitedError.description, 429)
    client = find_client(db_session(), transaction.client_id)
    requester = Requester(
        client_id=transaction.client_id,
        client_name=client.name if client is not None else transaction.client_id,
        scopes=tuple(s for s in transaction.params.get("scope", "").split() if s in SCOPE_DESCRIPTIONS),
        ip=client_ip(),
        user_agent=request.headers.get("User-Agent", "")[:300],
    )
    channel, secret = create_channel(
        svc.store, transaction_id=transaction.id, browser=transaction.browser, requester=requester, now=now
    )
    channel_url = svc.settings.issuer.rstrip("/") + url_for("wallet_qrlogin.scan_page", channel_id=channel.id)
    response = make_response(
        render_template(
            "wallet/qrlogin_computer.html",
            tx=transaction,
            client_name=requester.client_name,
            channel=channel,
            channel_url=channel_url,
            qr_image=qr_data_url(channel_url),
            lifetime=int(CHANNEL_TTL),
            csrf=csrf_token(_csrf_purpose(transaction)),
            status_url=url_for("wallet_qrlogin.status", tx=transaction.id, channel_id=channel.id),
            collect_url=url_for("wallet_qrlogin.collect", tx=transaction.id, channel_id=channel.id),
            restart_url=url_for("wallet_qrlogin.start", tx=transaction.id),
            choose_url=url_for("login.choose", tx=transaction.id),
        )
    )
    response.set_cookie(
        _cookie_name(channel.id),
        secret,
        max_age=int(CHANNEL_TTL + COLLECT_GRACE),
        secure=cookie_secure(),
        httponly=True,
        samesite="Strict",
        path=url_for("wallet_qrlogin.start", tx=transaction.id),
    )
    return no_store(response)


def _csrf_purpose(tx: LoginTransaction) -> str:
    return f"qr-login:{tx.id}"


def _owned_transaction(tx_id: str) -> LoginTransaction:
    transaction = current_transaction(tx_id)
    if transaction is None:
        raise LoginExpiredError("no live login transaction for this browser")
    return transaction


@bp.get("/login/<tx>/qr/<channel_id>/status")
def status(tx: str, channel_id: str) -> BaseResponse:
    transaction = _owned_transaction(tx)
    known = request.args.get("known", "")
    if known not in _STATES:
        known = ""  # answer at once
    svc = services()
    view = watch_channel(
        svc.store,
        channel_id,
        secret=request.cookies.get(_cookie_name(channel_id)),
        expected_browser=browser_binding(),
        expected_transaction_id=transaction.id,
        known=known,
        clock=svc.now,
        monotonic=time.monotonic,
        sleep=time.sleep,
        timeout=svc.settings.qr_login_poll_seconds,
    )
    body = {"state": view.state.value, "expires_in": max(0, int(view.channel.expires_at - svc.now()))}
    return _json(body)


@bp.post("/login/<tx>/qr/<channel_id>/collect")
def collect(tx: str, channel_id: str) -> BaseResponse:
    transaction = _owned_transaction(tx)
    if not check_csrf(_csrf_purpose(transaction), request.headers.get(CSRF_HEADER)):
        raise CsrfError("missing or stale CSRF token")
    svc = services()
    # The login is decided here: the phone approved (or not) and this browser collects the answer.
    with login_attempt(QR_METHOD.name):
        approval = collect_channel(
            svc.store,
            channel_id,
            secret=request.cookies.get(_cookie_name(channel_id)),
            expected_browser=browser_binding(),
            expected_transaction_id=transaction.id,
            now=svc.now(),
        )
        assert approval.citizen_id is not None
        completed = complete_login(transaction, Authentication(approval.citizen_id, ACR_SUBSTANTIAL, AMR))
    finished = completed.json()
    finished.delete_cookie(_cookie_name(channel_id), path=url_for("wallet_qrlogin.start", tx=transaction.id))
    return finished


def _json(body: dict[str, Any], status: int = 200) -> BaseResponse:
    response = make_response(json.dumps(body, separators=(",", ":")), status)
    response.mimetype = "application/json"
    return no_store(response)


# --- the phone ---------------------------------------------------------------------------------------------


def _phone_csrf(channel_id: str) -> str:
    return f"qr-approve:{channel_id}"


def _phone_csrf_ok(channel_id: str) -> bool:
    token = request.form.get("csrf") if request.form else None
    return check_csrf(_phone_csrf(channel_id), token or request.headers.get(CSRF_HEADER))


def _outcome(kind: str, title: str, message: str, status: int = 200) -> BaseResponse:
    """The phone's last page: approved, denied, or why nothing more can be done."""
    page = render_template("wallet/qrlogin_result.html", outcome=kind, title=title, message=message)
    return no_store(make_response(page, status))


def _refused(exc: OneCardError) -> BaseResponse:
    return _outcome(exc.error, "This login request cannot be used", exc.description, exc.status_code)


@bp.get("/wallet/qr-login/<channel_id>")
def scan_page(channel_id: str) -> BaseResponse:
    svc = services()
    now = svc.now()
    try:
        view = scan_channel(svc.store, channel_id, phone=browser_binding(), now=now)
    except OneCardError as exc:
        return _refused(exc)
    requester = view.channel.requester
    locator = wallet_services().qr_login_locator
    return no_store(
        make_response(
            render_template(
                "wallet/qrlogin_phone.html",
                channel=view.channel,
                requester=requester,
                claims=[SCOPE_DESCRIPTIONS[s] for s in requester.scopes],
                place=describe_network(requester.ip, locator),
                browser=describe_browser(requester.user_agent),
                seconds_left=max(0, int(view.channel.expires_at - now)),
                csrf=csrf_token(_phone_csrf(channel_id)),
            )
        )
    )


@bp.post("/wallet/qr-login/<channel_id>/match")
def match(channel_id: str) -> BaseResponse:
    if not _phone_csrf_ok(channel_id):
        return _refused(CsrfError("stale form"))
    svc = services()
    try:
        match_code(
            svc.store, channel_id, phone=browser_binding(), code=request.form.get("code", ""), now=svc.now()
        )
    except OneCardError as exc:
        return _refused(exc)
    return no_store(_redirect(url_for("wallet_qrlogin.scan_page", channel_id=channel_id)))


def _redirect(location: str) -> BaseResponse:
    response = make_response("", 303)
    response.headers["Location"] = location
    return response


@bp.post("/wallet/qr-login/<channel_id>/options")
def options(channel_id: str) -> BaseResponse:
    svc = services()
    try:
        if not _phone_csrf_ok(channel_id):
            raise CsrfError("stale page")
        RateLimiter(svc.store, "qrlogin_ceremonies", CEREMONIES_PER_CHANNEL, CHANNEL_TTL + COLLECT_GRACE).hit(
            channel_id[:64], svc.now()
        )
        ceremony = start_approval(
            svc.store, channel_id, rp=relying_party(), phone=browser_binding(), now=svc.now()
        )
    except OneCardError as exc:
        return no_store(json_error(exc))
    # The options are JSON already (py_webauthn's ``options_to_json``); the same shape as wallet sign-in.
    body = '{"ceremony":%s,"options":%s}' % (json.dumps(ceremony.id), ceremony.options_json)  # noqa: UP031
    response = make_response(body)
    response.mimetype = "application/json"
    return no_store(response)


@bp.post("/wallet/qr-login/<channel_id>/approve")
def approve(channel_id: str) -> BaseResponse:
    if not _phone_csrf_ok(channel_id):
        return _refused(CsrfError("stale form"))
    svc = services()
    try:
        approve_channel(
            db_session(),
            svc.store,
            channel_id,
            rp=relying_party(),
            phone=browser_binding(),
            ceremony_id=request.form.get("ceremony", ""),
            credential_json=request.form.get("credential", ""),
            now=svc.now(),
        )
    except OneCardError as exc:
        return _refused(exc)
    return _outcome(
        "approved",
        "You are logged in on the computer",
        "You approved the login. Look at the computer screen: it carries on by itself.",
    )


@bp.post("/wallet/qr-login/<channel_id>/deny")
def deny(channel_id: str) -> BaseResponse:
    if not _phone_csrf_ok(channel_id):
        return _refused(CsrfError("stale form"))
    svc = services()
    try:
        deny_channel(svc.store, channel_id, phone=browser_binding(), now=svc.now())
    except OneCardError as exc:
        return _refused(exc)
    return _outcome(
        "denied",
        "You refused the login",
        "Nobody was logged in. If you did not start this, someone may have shown you their code: "
        "you were right to refuse.",
    )
