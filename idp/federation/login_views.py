"""Cross-region login's pages and endpoints at the relying-party side (docs/federation.md "Cross-region
login"); the protocol is ``idp.federation.rp``, the stored state ``idp.federation.login_model``.

- ``GET  /login/<tx>/region``            choose the home region (the regions holding the loa:high trust
  mark), or straight to it for a ``login_hint`` of ``region:<6-digit code>``
- ``GET  /login/<tx>/region/<target>``   send the browser to the home region (a region code or entity id)
- ``GET  /federation/login/callback``    back from the home region: code → tokens → login here
- ``POST /federation/backchannel-logout`` the home region's logout token (OIDC Back-Channel Logout §2.5)
- ``GET  /federation/logout/done``       where a home region's logout may send the browser back

Every refusal is a page in the citizen's language (or, for the back channel, a 400 JSON answer); nothing is
written before every check has passed.
"""

from __future__ import annotations

import logging
from typing import Final

from authlib.common.urls import add_params_to_uri
from flask import Blueprint, current_app, jsonify, make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from idp.federation.context import FederationContext
from idp.federation.home_session import scope_to_ask_home, take_after_logout
from idp.federation.login_model import (
    HomeClaims,
    forget_sessions,
    purge_ended_sessions,
    record_session,
    record_subject,
    sessions_of_home_session,
)
from idp.federation.metadata import (
    FEDERATED_BACKCHANNEL_LOGOUT_PATH,
    FEDERATED_LOGIN_CALLBACK_PATH,
    FEDERATED_LOGIN_SCOPE,
    FEDERATED_LOGOUT_DONE_PATH,
)
from idp.federation.regions import PeerRegion
from idp.federation.rp import (
    REQUEST_LIFETIME,
    FederatedLoginError,
    HomeLoginDeniedError,
    InvalidLogoutTokenError,
    InvalidStateError,
    OutgoingRequest,
    ProviderKeyCache,
    RegionNotTrustedError,
    UnknownRegionError,
    accepted_acr,
    can_log_in_at,
    create_authorization_request,
    exchange_code,
    fetch_userinfo,
    find_logout_issuer,
    home_scope,
    provider_issuer,
    releasable_home_claims,
    verify_id_token,
    verify_logout_token,
)
from idp.keys.service import FEDERATION_RP_KEYS
from idp.login.authenticators import LoginMethod
from idp.login.service import (
    EXPIRED_MESSAGE,
    EXPIRED_TITLE,
    Authentication,
    LoginTooWeakError,
    complete_login,
    current_sso_session,
    current_transaction,
    end_sso_session,
)
from idp.login.transactions import LoginTransaction
from idp.login.views import decline_to_portal
from idp.scopes import ACR_HIGH, acr_rank
from idp.services import services
from idp.sessions.service import find_session_by_cookie
from idp.web import browser_binding, db_session, error_page
from sdk.oidc import AMR_CARD_LOGIN
from sdk.qr_token import is_region_code

bp = Blueprint("federated_login", __name__)
log = logging.getLogger(__name__)

OUTGOING_NAMESPACE: Final = "federated_login"  # state → OutgoingRequest, taken once at the callback
LOGOUT_JTI_NAMESPACE: Final = "federated_logout_jti"
REGION_HINT_PREFIX: Final = "region:"
KEY_CACHE: Final = "onecard.federated_login_keys"
MAX_PARAMETER: Final = 2048
FAILED_TITLE = "Signing in at your home region did not work"
LOGOUT_DONE_TITLE = "You are signed out"
LOGOUT_DONE_MESSAGE = "You have been signed out at your home region. You can close this page."

REGION_METHOD: Final = LoginMethod(
    name="region",
    label="A card from another region",
    description="Your social security card was issued in another region: sign in at your home region's "
    "OneCard, then come back here.",
    acr=ACR_HIGH,  # at most: a region without the loa:high trust mark yields less (idp.federation.rp)
    amr=AMR_CARD_LOGIN,
    start_endpoint="federated_login.choose_region",
)


def _context() -> FederationContext | None:
    return services().federation


def _failed(error: FederatedLoginError) -> Response:
    log.info("cross-region login refused: %s (%s)", error.error, error.detail)
    return error_page(FAILED_TITLE, error.description, error.status_code)


def _region_for(context: FederationContext, target: str, *, now: float) -> PeerRegion:
    directory = context.directory
    region = (
        directory.for_region_code(target, now=now)
        if is_region_code(target)
        else directory.get(target, now=now)
    )
    if region is None or region.entity_id == context.config.entity_id:
        raise UnknownRegionError(f"no peer region for {target[:80]!r}")
    return region


def _hinted_code(tx: LoginTransaction) -> str | None:
    hint = tx.login_hint or ""
    return hint.removeprefix(REGION_HINT_PREFIX) if hint.startswith(REGION_HINT_PREFIX) else None


@bp.get("/login/<tx>/region")
def choose_region(tx: str) -> Response:
    transaction = current_transaction(tx)
    context = _context()
    if transaction is None or context is None:
        return error_page(EXPIRED_TITLE, EXPIRED_MESSAGE)
    hinted = _hinted_code(transaction)
    if hinted is not None:
        return redirect(url_for("federated_login.start", tx=transaction.id, target=hinted), 303)
    now = services().now()
    mark = context.config.loa_high_trust_mark
    regions = sorted(
        (
            r
            for r in context.directory.regions(now=now)
            if mark in r.trust_mark_types and r.entity_id != context.config.entity_id
        ),
        key=lambda r: r.name,
    )
    return make_response(
        render_template(
            "federated_regions.html",
            tx=transaction,
            regions=[
                (r, url_for("federated_login.start", tx=transaction.id, target=r.region_codes[0]))
                for r in regions
            ],
        )
    )


@bp.get("/login/<tx>/region/<path:target>")
def start(tx: str, target: str) -> Response:
    transaction = current_transaction(tx)
    context = _context()
    if transaction is None or context is None:
        return error_page(EXPIRED_TITLE, EXPIRED_MESSAGE)
    svc = services()
    now = svc.now()
    try:
        if len(target) > MAX_PARAMETER:
            raise UnknownRegionError("target too long")
        region = _region_for(context, target, now=now)
        mark = context.config.loa_high_trust_mark
        if not can_log_in_at(region, transaction.required_acr, loa_high_trust_mark=mark):
            raise RegionNotTrustedError(f"{region.entity_id} lacks {mark}")
        sso = current_sso_session()
        current_sid = sso.sid if sso is not None else None
        location, outgoing = create_authorization_request(
            region=region,
            client_id=context.config.entity_id,
            redirect_uri=context.config.entity_id + FEDERATED_LOGIN_CALLBACK_PATH,
            keys=svc.keyring.key_set(FEDERATION_RP_KEYS.name, now=now),
            scope=scope_to_ask_home(transaction.params.get("scope") or "", region.entity_id, current_sid),
            tx_id=transaction.id,
            browser=browser_binding(),
            acr_values=transaction.required_acr,
            login_hint=None,  # the region hint is this deployment's; the home region gets no hint
            ui_locales=transaction.params.get("ui_locales") or None,
            now=now,
            prompt_login=_prompts_login(transaction),
            max_age=_max_age(transaction),
        )
    except FederatedLoginError as error:
        return _failed(error)
    svc.store.put(OUTGOING_NAMESPACE, outgoing.state, outgoing.to_json(), ttl=REQUEST_LIFETIME, now=now)
    return redirect(location, 303)


def _prompts_login(transaction: LoginTransaction) -> bool:
    """The portal's ``prompt`` forces a login (idp.oauth.authorize: ``select_account`` does too)."""
    return bool({"login", "select_account"} & set((transaction.params.get("prompt") or "").split()))


def _max_age(transaction: LoginTransaction) -> int | None:
    """The portal's ``max_age`` (idp.oauth.authorize checked it: ASCII digits)."""
    raw = transaction.params.get("max_age") or ""
    return int(raw) if raw.isascii() and raw.isdigit() else None


def _arg(name: str) -> str | None:
    value = request.args.get(name)
    return value if value and len(value) <= MAX_PARAMETER else None


def _take_outgoing(state: str | None, *, now: float) -> OutgoingRequest:
    """The request the callback answers: this browser's, once."""
    store = services().store
    raw = store.get(OUTGOING_NAMESPACE, state, now=now) if state else None
    if raw is None:
        raise InvalidStateError("unknown, used or expired state")
    outgoing = OutgoingRequest.from_json(raw)
    if outgoing.browser != browser_binding():
        raise InvalidStateError("state of another browser")
    if store.take(OUTGOING_NAMESPACE, outgoing.state, now=now) is None:
        raise InvalidStateError("state used concurrently")
    return outgoing


@bp.get(FEDERATED_LOGIN_CALLBACK_PATH)
def callback() -> Response:
    context = _context()
    svc = services()
    now = svc.now()
    if context is None:
        return error_page(EXPIRED_TITLE, EXPIRED_MESSAGE)
    try:
        outgoing = _take_outgoing(_arg("state"), now=now)
        transaction = current_transaction(outgoing.tx_id)
        if transaction is None:
            return error_page(EXPIRED_TITLE, EXPIRED_MESSAGE)
        region = context.directory.get(outgoing.home_entity_id, now=now)
        if region is None:
            raise UnknownRegionError(f"{outgoing.home_entity_id} left the directory")
        if request.args.get("error") == "access_denied":
            return decline_to_portal(transaction)  # the citizen declined at home: the portal hears it
        if request.args.get("error"):
            raise HomeLoginDeniedError(f"home answered {request.args.get('error', '')[:40]!r}")
        issuer = _arg("iss")
        if issuer is not None and issuer != provider_issuer(region):
            raise UnknownRegionError("the callback's iss is not the home region's")  # RFC 9207 §2.4
        code = _arg("code")
        if code is None:
            raise HomeLoginDeniedError("no code")
        client_id = context.config.entity_id
        keys = svc.keyring.key_set(FEDERATION_RP_KEYS.name, now=now)
        tokens = exchange_code(
            context.http, region=region, client_id=client_id, keys=keys, code=code, outgoing=outgoing, now=now
        )
        cache: ProviderKeyCache = current_app.extensions.setdefault(KEY_CACHE, ProviderKeyCache())
        login = verify_id_token(
            tokens.id_token,
            keys_for=lambda refresh: cache.keys(context.http, region, now=now, refresh=refresh),
            region=region,
            expected_audience=client_id,
            expected_nonce=outgoing.nonce,
            algorithm=FEDERATION_RP_KEYS.alg,  # the id_token_signed_response_alg of relying_party_metadata
            now=now,
            max_age=outgoing.max_age,
        )
        acr = accepted_acr(login, region, loa_high_trust_mark=context.config.loa_high_trust_mark)
        if acr_rank(acr) < acr_rank(transaction.required_acr):
            raise RegionNotTrustedError(f"home acr {login.acr} counts as {acr} here")
        userinfo = fetch_userinfo(
            context.http, region=region, access_token=tokens.access_token, expected_subject=login.subject
        )
    except FederatedLoginError as error:
        return _failed(error)
    # Every check passed: from here on, rows are written.
    session = db_session()
    previous = current_sso_session()
    subject = record_subject(session, home_entity_id=region.entity_id, home_subject=login.subject, now=now)
    granted = set(tokens.scope.split()) & set(outgoing.scope.split())
    if previous is None or previous.citizen_id != subject.id:
        # The scopes asked for included the browser's session's (scope_to_ask_home); another citizen came
        # back: this deployment keeps only what this portal's request covers.
        granted &= set(home_scope(transaction.params.get("scope") or "", FEDERATED_LOGIN_SCOPE).split())
    try:
        completed = complete_login(transaction, Authentication(subject.id, acr, login.amr))
    except LoginTooWeakError as error:
        session.rollback()
        return error_page("A stronger login is needed", error.description, 403)
    sso = find_session_by_cookie(session, completed.session_cookie, now=now)
    assert sso is not None  # complete_login just made it
    home = HomeClaims(
        region.entity_id,
        region.name,
        login.sid,
        releasable_home_claims(userinfo, scopes=granted),
        scope=" ".join(sorted(granted)),
        id_token=tokens.id_token,
    )
    record_session(session, svc.pii_cipher(), sid=sso.sid, subject_id=subject.id, home=home, now=now)
    purge_ended_sessions(session, now=now)
    return completed.redirect()


def _logout_refused(error: InvalidLogoutTokenError) -> Response:
    log.info("federated back-channel logout refused: %s", error.reason)
    response = jsonify(error.to_dict())
    response.status_code = 400
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post(FEDERATED_BACKCHANNEL_LOGOUT_PATH)
def backchannel_logout() -> Response:
    """OIDC Back-Channel Logout §2.8: 200 when the token is valid (also when no session is left to end),
    400 otherwise; the sessions linked to the home session end here, and this deployment's portals hear of
    it through its own back-channel logout."""
    context = _context()
    svc = services()
    now = svc.now()
    token = request.form.get("logout_token", "")
    try:
        if context is None or not token or len(token) > 16_384:
            raise InvalidLogoutTokenError("missing")
        issuer = find_logout_issuer(token)
        region = next((r for r in context.directory.regions(now=now) if provider_issuer(r) == issuer), None)
        if region is None:
            raise InvalidLogoutTokenError("issuer_not_in_directory")
        cache: ProviderKeyCache = current_app.extensions.setdefault(KEY_CACHE, ProviderKeyCache())
        verified = verify_logout_token(
            token,
            keys_for=lambda refresh: cache.keys(context.http, region, now=now, refresh=refresh),
            region=region,
            expected_audience=context.config.entity_id,
            now=now,
        )
        ttl = max(60.0, verified.expires_at - now + 60)
        if not svc.store.add(LOGOUT_JTI_NAMESPACE, f"{issuer} {verified.jti}", b"1", ttl=ttl, now=now):
            raise InvalidLogoutTokenError("replayed")
    except (InvalidLogoutTokenError, FederatedLoginError) as error:
        return _logout_refused(InvalidLogoutTokenError(getattr(error, "reason", error.error)))
    session = db_session()
    ended = sessions_of_home_session(
        session, home_entity_id=region.entity_id, home_sid=verified.sid, home_subject=verified.subject
    )
    sids = [sso.sid for sso in ended]
    forget_sessions(session, sids)
    purge_ended_sessions(session, now=now)  # and those of sessions that ended here or expired meanwhile
    for sso in ended:
        if sso.ended_at is None:
            end_sso_session(sso, now=now)  # commits, then tells this deployment's portals
    session.commit()
    response = make_response("", 200)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get(FEDERATED_LOGOUT_DONE_PATH)
def logout_done() -> Response:
    """Back from the home region's logout: on to the portal that asked for the logout here (its registered
    address, kept under the one-time state), else the signed-out page."""
    after = take_after_logout(_arg("state"))
    if after is None or after.redirect_uri is None:
        return error_page(LOGOUT_DONE_TITLE, LOGOUT_DONE_MESSAGE, 200)
    state = [("state", after.state)] if after.state else []
    return redirect(add_params_to_uri(after.redirect_uri, state), 303)
