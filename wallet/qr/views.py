"""The code page and its refresh API (DESIGN.md §5 "Dynamic QR").

``GET /wallet/code`` renders the page with a first code; ``GET /wallet/api/code`` answers a new one as
JSON (the image as an SVG ``data:`` URL, its expiry and when to fetch the next), which static/code.js calls
every 30 s while it counts down on screen. Without script the page reloads itself every 30 s.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from idp.services import services
from idp.web import db_session, error_page, json_error
from sdk.errors import OneCardError
from wallet.ecards.errors import EcardNotFoundError, WalletSignInRequiredError
from wallet.ecards.service import DISCLOSURE_LABELS, find_current_ecard, set_disclosures
from wallet.qr.service import REFRESH_INTERVAL, issue_ecard_code, qr_data_url
from wallet.web import csrf_ok, no_store, signed_in, wallet_csrf

bp = Blueprint("wallet_qr", __name__, url_prefix="/wallet")


def _issue() -> tuple[str, dict[str, object]]:
    """A new code for the signed-in citizen's e-card: (text, JSON body); raises ``OneCardError``."""
    sso = signed_in()
    if sso is None:
        raise EcardNotFoundError("not signed in")
    svc = services()
    session = db_session()
    view = find_current_ecard(session, sso.citizen_id)
    if view is None:
        raise EcardNotFoundError("no e-card")
    code = issue_ecard_code(
        session,
        keyring=svc.keyring,
        cipher=svc.pii_cipher() if view.ecard.disclosures else None,
        view=view,
        now=svc.now(),
    )
    body: dict[str, object] = {
        # The text is what the image shows (the owner's own code): for screen readers' "copy" and for tests.
        "text": code.text,
        "image": qr_data_url(code.text),
        "refresh_in": REFRESH_INTERVAL,
        "disclosures": list(view.ecard.disclosures),
        **code.to_json(),
    }
    return code.text, body


@bp.get("/code")
def code_page() -> BaseResponse:
    sso = signed_in()
    if sso is None:
        return redirect(url_for("wallet_devices.signin_page"), 303)
    try:
        _text, body = _issue()
    except OneCardError as exc:
        return no_store(error_page("No code can be shown", exc.description, exc.status_code))
    view = find_current_ecard(db_session(), sso.citizen_id)
    return no_store(
        make_response(
            render_template(
                "wallet/code.html",
                code=body,
                csrf=wallet_csrf(),
                chosen=set(view.ecard.disclosures) if view else set(),
                disclosure_labels=DISCLOSURE_LABELS,
            )
        )
    )


@bp.get("/api/code")
def code_api() -> Response:
    if signed_in() is None:
        return no_store(json_error(WalletSignInRequiredError("not signed in")))
    try:
        _text, body = _issue()
    except OneCardError as exc:
        return no_store(json_error(exc))
    return no_store(jsonify(body))


@bp.post("/disclosures")
def disclosures() -> BaseResponse:
    sso = signed_in()
    if sso is None:
        return redirect(url_for("wallet_devices.signin_page"), 303)
    if not csrf_ok():
        return error_page("Please try again", "The page was out of date. Reload it and try again.")
    session = db_session()
    view = find_current_ecard(session, sso.citizen_id)
    if view is None:
        return error_page("No electronic card", "Activate your electronic card first.", 404)
    try:
        set_disclosures(session, view, request.form.getlist("show"), now=services().now())
    except OneCardError as exc:
        return error_page("This cannot be shown", exc.description, exc.status_code)
    return redirect(url_for("wallet_qr.code_page"), 303)
