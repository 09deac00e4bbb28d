"""The card login method's pages and JSON endpoints, and ``install_card_login`` (DESIGN.md §4).

- ``GET  /login/<tx>/card``            the page that drives the bridge (static/card-login.js)
- ``POST /login/<tx>/card/challenge``  → ``{challenge, expires_in}`` (step 1)
- ``POST /login/<tx>/card/precheck``   ``{challenge, card_certificate}`` → ``{usable: true}``, or
  ``card_not_usable`` — asked after the bridge read the card and before it asks the PIN
- ``POST /login/<tx>/card/verify``     ``{challenge, token}`` → ``{redirect_to}`` (step 5), or a JSON error
- ``GET  /card/pin``                   how to change the card PIN (through the bridge)

The POSTs are JSON (a cross-site form cannot send that without a CORS preflight the IdP never grants) and
carry the page's CSRF token in ``X-CSRF-Token`` as well. Views parse, call ``challenge``, answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

from flask import Blueprint, Flask, current_app, jsonify, make_response, render_template, request, url_for
from werkzeug.wrappers import Response

from idp.cardlogin.challenge import (
    CHALLENGE_TTL,
    CardLoginPolicy,
    FailureLimits,
    authenticate_card,
    issue_challenge,
    origin_of,
    precheck_card,
)
from idp.cardlogin.errors import CsrfError, LoginExpiredError, TooManyAttemptsError
from idp.cards.issuance import IssuerTrustList
from idp.login.authenticators import LoginMethod
from idp.login.transactions import LoginTransaction
from idp.login.views import EXPIRED_MESSAGE, EXPIRED_TITLE, complete_login, current_transaction
from idp.ratelimit import RateLimiter
from idp.scopes import ACR_HIGH
from idp.services import Services, services
from idp.sessions.service import Authentication
from idp.web import (
    browser_binding,
    check_csrf,
    client_ip,
    csrf_token,
    db_session,
    error_page,
    json_body,
    json_error,
)
from sdk.errors import InvalidRequestError

bp = Blueprint("cardlogin", __name__)

AMR: Final = ("sc", "pin", "mfa")
DEFAULT_BRIDGE_URL: Final = "http://127.0.0.1:47400"  # reader_bridge.server.DEFAULT_PORT
BRIDGE_URL_CONFIG: Final = "ONECARD_CARD_BRIDGE_URL"  # app.config key; a developer's bridge on another port
CSRF_HEADER: Final = "X-CSRF-Token"
CARD_METHOD: Final = LoginMethod(
    name="card",
    label="Social security card and PIN",
    description="Put your social security card in the card reader and type your PIN in the OneCard window.",
    acr=ACR_HIGH,
    amr=AMR,
    start_endpoint="cardlogin.start",
)


@dataclass
class CardLoginContext:
    """What card login keeps per process (in ``Services.extras["card_login"]``)."""

    trust_list: IssuerTrustList
    limits: FailureLimits
    challenge_limiter: RateLimiter
    precheck_limiter: RateLimiter
    policy: CardLoginPolicy = field(default_factory=CardLoginPolicy)


def install_card_login(app: Flask, *, policy: CardLoginPolicy | None = None) -> None:
    """Register the card login method, its blueprint and the card register's admin API."""
    from idp.cards.views import bp as cards_admin_bp

    svc: Services = app.extensions["onecard"]
    set_policy(svc, policy or CardLoginPolicy())
    app.register_blueprint(bp)
    app.register_blueprint(cards_admin_bp)
    svc.authenticators.register(CARD_METHOD)


def set_policy(svc: Services, policy: CardLoginPolicy) -> None:
    """(Re)build the card login context with ``policy`` (tests tighten the limits)."""
    svc.extras["card_login"] = CardLoginContext(
        trust_list=IssuerTrustList(svc.database, svc.keyring),
        limits=FailureLimits(svc.store, policy),
        challenge_limiter=RateLimiter(
            svc.store,
            "card_challenge_issue",
            policy.challenges_per_transaction,
            svc.settings.login_transaction_ttl,
        ),
        precheck_limiter=RateLimiter(svc.store, "card_precheck_ip", policy.prechecks_per_ip, policy.window),
        policy=policy,
    )


def card_login_context(svc: Services) -> CardLoginContext:
    context = svc.extras["card_login"]
    assert isinstance(context, CardLoginContext)
    return context


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
    bridge_url = str(current_app.config.get(BRIDGE_URL_CONFIG, DEFAULT_BRIDGE_URL))
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
    decision = card_login_context(svc).challenge_limiter.check(transaction.id, now)
    if not decision.allowed:
        raise TooManyAttemptsError(
            "too many challenges for one transaction", retry_after=decision.retry_after
        )
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
    context = card_login_context(svc)
    try:
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
            trusted_issuers=context.trust_list.certificates(now=now),
            now=now,
        )
    except TooManyAttemptsError as exc:
        return _rate_limited(exc)
    response = jsonify({"usable": True})
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
    context = card_login_context(svc)
    try:
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
            trusted_issuers=context.trust_list.certificates(now=now),
            now=now,
        )
    except TooManyAttemptsError as exc:
        return _rate_limited(exc)
    redirect = complete_login(transaction, Authentication(login.citizen_id, ACR_HIGH, AMR))
    return _as_json(redirect)


def _rate_limited(error: TooManyAttemptsError) -> Response:
    response = json_error(error)
    response.headers["Retry-After"] = str(error.retry_after)
    return response


def _as_json(response: Response) -> Response:
    """``complete_login`` answers a browser navigation (303 + the session cookie); the page called us with
    fetch, so hand it the same cookie and the place to go as JSON."""
    if response.status_code not in (302, 303):
        return response
    location = response.headers.pop("Location")
    body: dict[str, Any] = {"redirect_to": location}
    response.status_code = 200
    response.set_data(json.dumps(body))
    response.mimetype = "application/json"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/card/pin")
def pin_help() -> Response:
    bridge_url = str(current_app.config.get(BRIDGE_URL_CONFIG, DEFAULT_BRIDGE_URL))
    return make_response(render_template("card_pin.html", bridge_url=bridge_url))
