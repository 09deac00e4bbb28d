"""The card login method's pages and JSON endpoints (DESIGN.md §4); ``create_app`` registers ``bp`` and
``CARD_METHOD``.

- ``GET  /login/<tx>/card``            the page that drives the bridge (static/card-login.js)
- ``POST /login/<tx>/card/challenge``  → ``{challenge, expires_in}`` (step 1)
- ``POST /login/<tx>/card/precheck``   ``{challenge, card_certificate}`` → ``{usable: true}``, or
  ``card_not_usable`` — asked after the bridge read the card and before it asks the PIN; for another
  region's card ``{usable: false, home_region: {name}, redirect_to}`` (the login goes on there)
- ``POST /login/<tx>/card/verify``     ``{challenge, token}`` → ``{redirect_to}`` (step 5), or a JSON error
- ``GET  /card/pin``                   how to change the card PIN (through the bridge)

The POSTs are JSON (a cross-site form cannot send that without a CORS preflight the IdP never grants) and
carry the page's CSRF token in ``X-CSRF-Token`` as well. Views parse, call ``challenge``, answer.
"""

from __future__ import annotations

from typing import Final

from flask import Blueprint, jsonify, make_response, render_template, request, url_for
from werkzeug.wrappers import Response

from idp.cardlogin.challenge import (
    CHALLENGE_TTL,
    authenticate_card,
    issue_challenge,
    origin_of,
    precheck_card,
    untrusted_card_region,
)
from idp.cardlogin.errors import CsrfError, LoginExpiredError, too_many_attempts
from idp.login.authenticators import LoginMethod
from idp.login.service import EXPIRED_MESSAGE, EXPIRED_TITLE, complete_login, current_transaction
from idp.login.transactions import LoginTransaction
from idp.observability.metrics import login_attempt
from idp.scopes import ACR_HIGH
from idp.services import services
from idp.sessions.service import Authentication
from idp.web import (
    browser_binding,
    check_csrf,
    client_ip,
    csrf_token,
    db_session,
    error_page,
    json_body,
)
from sdk.errors import InvalidRequestError
from sdk.oidc import AMR_CARD_LOGIN

bp = Blueprint("cardlogin", __name__)

AMR: Final = AMR_CARD_LOGIN
CSRF_HEADER: Final = "X-CSRF-Token"
CARD_METHOD: Final = LoginMethod(
    name="card",
    label="Social security card and PIN",
    description="Put your social security card in the card reader and type your PIN in the OneCard window.",
    acr=ACR_HIGH,
    amr=AMR,
    start_endpoint="cardlogin.start",
)


def _csrf_purpose(tx: LoginTransaction) -> str:
    return f"card-login:{tx.id}"


def _json_transaction(tx_id: str) -> LoginTransaction:
    """The transaction for a JSON call, with its CSRF token checked."""
    transaction = current_transaction(tx_id)
    if transaction is None:
        raise LoginExpiredError("no live login transaction for this browser")
    if not check_csrf(_csrf_purpose(transaction), request.headers.get(CSRF_HEADER)):
        raise CsrfError("missing or stale CSRF token")
    return transaction


@bp.get("/login/<tx>/card")
def start(tx: str) -> Response:
    transaction = current_transaction(tx)
    if transaction is None:
        return error_page(EXPIRED_TITLE, EXPIRED_MESSAGE)
    # A login started at a kiosk talks to that terminal's own bridge, which may listen on another port.
    bridge_url = transaction.bridge_url or services().settings.card_bridge_url
    response = make_response(
        render_template(
            "card_login.html",
            tx=transaction,
            csrf=csrf_token(_csrf_purpose(transaction)),
            bridge_url=bridge_url,
            challenge_url=url_for("cardlogin.challenge", tx=transaction.id),
            precheck_url=url_for("cardlogin.precheck", tx=transaction.id),
            verify_url=url_for("cardlogin.verify", tx=transaction.id),
            choose_url=url_for("login.choose", tx=transaction.id),
            pin_help_url=url_for("cardlogin.pin_help"),
        )
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/login/<tx>/card/challenge")
def challenge(tx: str) -> Response:
    svc = services()
    now = svc.now()
    transaction = _json_transaction(tx)
    decision = svc.card_login.challenge_limiter.check(transaction.id, now)
    if not decision.allowed:
        raise too_many_attempts("too many challenges for one transaction", retry_after=decision.retry_after)
    issued = issue_challenge(svc.store, transaction_id=transaction.id, browser=transaction.browser, now=now)
    response = jsonify({"challenge": issued.value, "expires_in": int(CHALLENGE_TTL)})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/login/<tx>/card/precheck")
def precheck(tx: str) -> Response:
    svc = services()
    now = svc.now()
    body = json_body()
    transaction = _json_transaction(tx)
    challenge_value, card_certificate = body.get("challenge"), body.get("card_certificate")
    if not isinstance(challenge_value, str):
        raise InvalidRequestError("challenge", description="challenge must be the string the IdP issued")
    if not isinstance(card_certificate, str):
        raise InvalidRequestError(
            "card_certificate", description="card_certificate must be the certificate the bridge read"
        )
    context = svc.card_login
    handed_over = _home_region_of(card_certificate, transaction, now=now)
    if handed_over is not None:
        return handed_over
    precheck_card(
        db_session(),
        svc.store,
        context.limits,
        context.precheck_limiter,
        card_certificate=card_certificate,
        challenge_value=challenge_value,
        transaction_id=transaction.id,
        browser=browser_binding(),
        client_ip=client_ip(),
        certificates=context.certificates,
        now=now,
    )
    response = jsonify({"usable": True})
    response.headers["Cache-Control"] = "no-store"
    return response


def _home_region_of(card_certificate: str, tx: LoginTransaction, *, now: float) -> Response | None:
    """A card of another region (its issuer not trusted here, its region code a peer region's): the page
    takes the citizen to the home region's OneCard before the PIN is asked — the PIN is typed for the
    home region's login, not this one's. None for every other card (the pre-check judges it)."""
    svc = services()
    federation = svc.federation
    if federation is None or tx.terminal_id is not None:  # a kiosk serves its own hall's cards only
        return None
    code = untrusted_card_region(card_certificate, svc.card_login.certificates, now=now)
    region = federation.directory.for_region_code(code, now=now) if code else None
    if region is None:
        return None
    response = jsonify(
        {
            "usable": False,
            "home_region": {"name": region.name},
            "redirect_to": url_for("federated_login.start", tx=tx.id, target=code),
        }
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/login/<tx>/card/verify")
def verify(tx: str) -> Response:
    svc = services()
    now = svc.now()
    body = json_body()
    transaction = _json_transaction(tx)
    challenge_value, token = body.get("challenge"), body.get("token")
    if not isinstance(challenge_value, str):
        raise InvalidRequestError("challenge", description="challenge must be the string the IdP issued")
    if not isinstance(token, dict):
        raise InvalidRequestError("token", description="token must be the card-auth object from the bridge")
    context = svc.card_login
    with login_attempt(CARD_METHOD.name):
        login = authenticate_card(
            db_session(),
            svc.store,
            context.limits,
            token=token,
            challenge_value=challenge_value,
            transaction_id=transaction.id,
            browser=browser_binding(),
            client_ip=client_ip(),
            expected_origin=origin_of(svc.settings.issuer),
            certificates=context.certificates,
            now=now,
            terminal_id=transaction.terminal_id,
        )
        authentication = Authentication(
            login.citizen_id, ACR_HIGH, AMR, terminal_id=transaction.terminal_id, card_id=login.card.card_id
        )
        return complete_login(transaction, authentication).json()


@bp.get("/card/pin")
def pin_help() -> Response:
    bridge_url = services().settings.card_bridge_url
    return make_response(render_template("card_pin.html", bridge_url=bridge_url))
