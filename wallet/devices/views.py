"""Passkey pages and ceremonies: signing in to the wallet, the e-card login method on the IdP's login page,
and binding/removing devices (DESIGN.md §3, §5).

Ceremony options come from JSON POSTs (``X-CSRF-Token``); the browser's answer goes back in an ordinary form
POST (``credential`` as JSON), so the server's redirect — into the wallet, or on with the authorization
request through ``complete_login`` — is a plain navigation.
"""

from __future__ import annotations

from typing import Final

from flask import Blueprint, Response, make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from idp.citizens.service import decrypt_profile, find_citizen
from idp.login.authenticators import LoginMethod
from idp.login.service import (
    EXPIRED_MESSAGE,
    EXPIRED_TITLE,
    complete_login,
    current_transaction,
    end_sso_session,
)
from idp.observability.metrics import login_attempt
from idp.ratelimit import RateLimiter
from idp.scopes import ACR_SUBSTANTIAL
from idp.services import services
from idp.sessions.service import Authentication, create_session
from idp.web import browser_binding, check_csrf, client_ip, csrf_token, db_session, error_page, json_error
from sdk.errors import InvalidRequestError, OneCardError, RateLimitedError
from sdk.oidc import AMR_ECARD_LOGIN
from wallet.devices.errors import PasskeyError
from wallet.devices.service import (
    Ceremony,
    create_authentication_options,
    create_registration_options,
    list_devices,
    remove_device,
    verify_authentication,
    verify_registration,
)
from wallet.ecards.errors import EcardNotUsableError, StepUpRequiredError, WalletSignInRequiredError
from wallet.ecards.service import require_usable_ecard
from wallet.web import (
    CSRF_HEADER,
    csrf_ok,
    is_high,
    no_store,
    relying_party,
    set_session_cookie,
    signed_in,
    wallet_csrf,
)

bp = Blueprint("wallet_devices", __name__)

AMR: Final = AMR_ECARD_LOGIN
ECARD_METHOD: Final = LoginMethod(
    name="ecard",
    label="Electronic social security card",
    description="Use the passkey on the phone where you set up your electronic card.",
    acr=ACR_SUBSTANTIAL,
    amr=AMR,
    start_endpoint="wallet_devices.ecard_login",
)
FAILED_TITLE = "The passkey did not work"
FAILED_MESSAGE = "Please try again. If it keeps failing, log in with your social security card and PIN."
# Passkey attempts per client IP: generous for people, tight for scripts.
ATTEMPTS_PER_MINUTE: Final = 30


def _options_response(ceremony: Ceremony) -> Response:
    response = make_response(
        '{"ceremony":"%s","options":%s}' % (ceremony.id, ceremony.options_json)  # noqa: UP031 - ids are base64url
    )
    response.mimetype = "application/json"
    return no_store(response)


def _limiter() -> RateLimiter:
    return RateLimiter(services().store, "wallet_passkey_ip", ATTEMPTS_PER_MINUTE, 60)


def _failed(exc: PasskeyError) -> BaseResponse:
    return error_page(FAILED_TITLE, FAILED_MESSAGE, 400 if exc.status_code < 500 else exc.status_code)


# Signing in to the wallet --------------------------------------------------------------------------------


@bp.get("/wallet/signin")
def signin_page() -> BaseResponse:
    if signed_in() is not None:
        return redirect(url_for("wallet.home"), 303)
    return no_store(make_response(render_template("wallet/signin.html", csrf=wallet_csrf())))


@bp.post("/wallet/api/passkeys/authentication-options")
def authentication_options() -> Response:
    if not check_csrf("wallet", request.headers.get(CSRF_HEADER)) and not _tx_csrf_ok():
        return _refused(InvalidRequestError("csrf", description=STALE_PAGE))
    svc = services()
    try:
        _limiter().hit(client_ip(), svc.now())
    except RateLimitedError as error:
        return _refused(error)
    ceremony = create_authentication_options(
        svc.store, rp=relying_party(), browser=browser_binding(), now=svc.now()
    )
    return _options_response(ceremony)


def _tx_csrf_ok() -> bool:
    tx = request.args.get("tx", "")
    return bool(tx) and check_csrf(f"ecard:{tx}", request.headers.get(CSRF_HEADER))


def _refused(error: OneCardError) -> Response:
    return no_store(json_error(error))


STALE_PAGE = "The page was out of date. Reload it and try again."


@bp.post("/wallet/signin")
def signin() -> BaseResponse:
    if not csrf_ok():
        return error_page("Please try again", "The page was out of date. Reload it and try again.")
    svc = services()
    now = svc.now()
    session = db_session()
    try:
        verified = verify_authentication(
            session,
            svc.store,
            rp=relying_party(),
            ceremony_id=request.form.get("ceremony", ""),
            credential_json=request.form.get("credential", ""),
            browser=browser_binding(),
            now=now,
        )
    except PasskeyError as exc:
        return _failed(exc)
    previous = signed_in()
    if previous is not None:
        end_sso_session(previous, now=now)
    _record, cookie = create_session(
        session,
        Authentication(verified.citizen_id, ACR_SUBSTANTIAL, AMR),
        ttl=svc.settings.sso_session_ttl,
        now=now,
        user_agent=request.headers.get("User-Agent", ""),
        client_ip=client_ip(),
    )
    response = redirect(url_for("wallet.home"), 303)
    set_session_cookie(response, cookie)
    return response


# The e-card login method on the IdP's login page ------------------------------------------------------


@bp.get("/login/<tx>/ecard")
def ecard_login(tx: str) -> BaseResponse:
    transaction = current_transaction(tx)
    if transaction is None:
        return error_page(EXPIRED_TITLE, EXPIRED_MESSAGE)
    return no_store(
        make_response(
            render_template("wallet/ecard_login.html", tx=transaction, csrf=csrf_token(f"ecard:{tx}"))
        )
    )


@bp.post("/login/<tx>/ecard")
def ecard_login_finish(tx: str) -> BaseResponse:
    transaction = current_transaction(tx)
    if transaction is None:
        return error_page(EXPIRED_TITLE, EXPIRED_MESSAGE)
    if not check_csrf(f"ecard:{tx}", request.form.get("csrf")):
        return error_page("Please try again", "The page was out of date. Reload it and try again.")
    svc = services()
    with login_attempt(ECARD_METHOD.name) as attempt:
        try:
            verified = verify_authentication(
                db_session(),
                svc.store,
                rp=relying_party(),
                ceremony_id=request.form.get("ceremony", ""),
                credential_json=request.form.get("credential", ""),
                browser=browser_binding(),
                now=svc.now(),
            )
        except PasskeyError as exc:
            attempt.refused(exc)
            return _failed(exc)
        try:
            require_usable_ecard(db_session(), verified.citizen_id)
        except EcardNotUsableError as exc:
            attempt.refused(exc)
            return error_page("Your electronic card cannot be used", exc.description, 403)
        completed = complete_login(transaction, Authentication(verified.citizen_id, ACR_SUBSTANTIAL, AMR))
    return completed.redirect()


# Devices ----------------------------------------------------------------------------------------------


@bp.get("/wallet/devices")
def devices_page() -> BaseResponse:
    sso = signed_in()
    if sso is None:
        return redirect(url_for("wallet_devices.signin_page"), 303)
    return no_store(
        make_response(
            render_template(
                "wallet/devices.html",
                csrf=wallet_csrf(),
                devices=list_devices(db_session(), sso.citizen_id),
                high=is_high(sso),
            )
        )
    )


@bp.post("/wallet/api/passkeys/registration-options")
def registration_options() -> Response:
    sso = signed_in()
    if sso is None:
        return _refused(WalletSignInRequiredError("not signed in", description="Please sign in first."))
    if not check_csrf("wallet", request.headers.get(CSRF_HEADER)):
        return _refused(InvalidRequestError("csrf", description=STALE_PAGE))
    if not is_high(sso):
        return _refused(
            StepUpRequiredError(
                "passkey binding needs loa:high",
                description="Log in with your social security card and PIN first.",
            )
        )
    svc = services()
    session = db_session()
    citizen = find_citizen(session, sso.citizen_id)
    if citizen is None:
        return _refused(WalletSignInRequiredError("citizen of the session is gone"))
    # The authenticator shows this name in its account picker: the masked ID number, never the full one.
    user_name = "OneCard " + decrypt_profile(svc.pii_cipher(), citizen).masked_id_number
    try:
        ceremony = create_registration_options(
            session,
            svc.store,
            rp=relying_party(),
            citizen_id=sso.citizen_id,
            user_name=user_name,
            browser=browser_binding(),
            now=svc.now(),
        )
    except OneCardError as exc:
        return _refused(exc)
    return _options_response(ceremony)


@bp.post("/wallet/devices")
def add_device() -> BaseResponse:
    sso = signed_in()
    if sso is None:
        return redirect(url_for("wallet_devices.signin_page"), 303)
    if not csrf_ok():
        return error_page("Please try again", "The page was out of date. Reload it and try again.")
    if not is_high(sso):
        return error_page("Log in with your card first", "Binding a phone needs your card and PIN.", 403)
    svc = services()
    try:
        verify_registration(
            db_session(),
            svc.store,
            rp=relying_party(),
            ceremony_id=request.form.get("ceremony", ""),
            credential_json=request.form.get("credential", ""),
            citizen_id=sso.citizen_id,
            browser=browser_binding(),
            name=request.form.get("name", ""),
            now=svc.now(),
        )
    except PasskeyError as exc:
        return _failed(exc)
    except OneCardError as exc:
        return error_page("The phone could not be added", exc.description, exc.status_code)
    return redirect(url_for("wallet_devices.devices_page"), 303)


@bp.post("/wallet/devices/<device_id>/remove")
def remove_device_view(device_id: str) -> BaseResponse:
    sso = signed_in()
    if sso is None:
        return redirect(url_for("wallet_devices.signin_page"), 303)
    if not csrf_ok():
        return error_page("Please try again", "The page was out of date. Reload it and try again.")
    try:
        remove_device(db_session(), citizen_id=sso.citizen_id, device_id=device_id, now=services().now())
    except OneCardError as exc:
        return error_page("The device could not be removed", exc.description, exc.status_code)
    return redirect(url_for("wallet_devices.devices_page"), 303)
