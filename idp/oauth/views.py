"""The OpenID Connect endpoints. Views parse the request, call the protocol code, and render."""

from __future__ import annotations

from typing import Any

from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6750 import InvalidTokenError as BearerInvalidTokenError
from flask import Blueprint, jsonify, make_response, redirect, render_template, request, url_for
from flask_babel import gettext
from werkzeug.wrappers import Response

from idp.clients.model import Client
from idp.clients.service import find_client
from idp.consents.service import has_consent
from idp.federation.home_session import AfterLogout, home_logout_url, home_region_for_wider_scope
from idp.federation.registration import write_pending_registrations
from idp.login.service import current_sso_session, current_transaction
from idp.login.transactions import (
    LoginTransaction,
    create_transaction,
    end_transaction,
    update_transaction,
)
from idp.oauth.authorize import CurrentLogin, Step, check_authorization_request, decide
from idp.oauth.bearer import AccessContext, oidc_keys
from idp.oauth.discovery import provider_metadata
from idp.oauth.dpop_request import announce_dpop_nonce, bind_to_proof_key
from idp.oauth.logout import end_sso_session
from idp.oauth.par import push_request, pushed_parameters, single_valued
from idp.oauth.resource import REALM, citizen_tokens
from idp.oauth.server import (
    TOKEN_ENDPOINT_AUTH_METHODS,
    AuthorizedCitizen,
    OneCardAuthorizationServer,
    StoredAuthorizationRequest,
    released_claims,
    with_issuer,
)
from idp.oauth.tokens import InvalidTokenError, verify_jwt
from idp.observability.metrics import count_token_grant
from idp.observability.web import oauth_result
from idp.scopes import OPENID
from idp.services import services
from idp.sessions.service import add_participant
from idp.web import (
    SESSION_COOKIE,
    browser_binding,
    cacheable_json,
    check_csrf,
    csrf_token,
    db_session,
    error_page,
)

bp = Blueprint("oidc", __name__)
ID_TOKEN_HINT_MAX_AGE = 30 * 86400  # an expired id_token still identifies the session to end


def _server() -> OneCardAuthorizationServer:
    return services().authorization_server


@bp.get("/.well-known/openid-configuration")
@bp.get("/.well-known/oauth-authorization-server")
def discovery() -> Response:
    svc = services()
    metadata = provider_metadata(svc.settings.issuer, require_par=svc.settings.require_par)
    return cacheable_json(metadata, svc.settings.jwks_max_age)


@bp.get("/jwks.json")
def jwks() -> Response:
    svc = services()
    return cacheable_json(oidc_keys(svc.keyring, now=svc.now()).to_jwks(), svc.settings.jwks_max_age)


def error_redirect(
    redirect_uri: str, error: str, description: str, state: str | None, status: int = 302
) -> Response:
    """An OAuth error response to a redirect URI already validated for the client (RFC 6749 §4.1.2.1,
    with the RFC 9207 ``iss``)."""
    params = [("error", error), ("error_description", description)]
    if state:
        params.append(("state", state))
    return redirect(with_issuer(add_params_to_uri(redirect_uri, params)), status)


def _redirect_error(grant: Any, error: str, description: str) -> Response:
    return error_redirect(grant.redirect_uri, error, description, grant.request.payload.state)


def authorize_request(oauth_request: Any, tx: LoginTransaction | None) -> Response:
    """One pass of the authorization endpoint, for a new request or one resumed from a transaction."""
    svc = services()
    now = svc.now()
    server = _server()
    try:
        grant = server.get_consent_grant(request=oauth_request, end_user=None)
    except OAuth2Error as error:
        if getattr(error, "redirect_uri", None):
            return server.handle_error_response(oauth_request, error)  # type: ignore[no-any-return]
        # Unknown client or redirect_uri: never redirect anywhere (RFC 6749 §4.1.2.1).
        return error_page(
            "This sign-in link is not valid",
            gettext(
                "The service that sent you here made a mistake (%(code)s). "
                "Please go back to the service and try again.",
                code=error.error,
            ),
        )
    client: Client = grant.client
    params = dict(grant.request.payload.data)
    try:
        options = check_authorization_request(params, client.allowed_scopes)
        scopes = set((grant.request.payload.scope or "").split())
        session_record = current_sso_session()
        login, home_region = None, None
        if session_record is not None:
            home_region = home_region_for_wider_scope(session_record.sid, " ".join(sorted(scopes)))
            login = CurrentLogin(
                citizen_id=session_record.citizen_id,
                acr=session_record.acr,
                auth_time=session_record.auth_time.timestamp(),
                fresh=tx is not None and tx.authenticated_sid == session_record.sid,
                home_scopes_short=home_region is not None,
            )
        consented = login is not None and has_consent(
            db_session(), login.citizen_id, client.client_id, scopes
        )
        step = decide(
            options,
            login,
            has_consent=consented,
            first_party=client.first_party,
            now=now,
            fresh_consent=tx is not None and tx.consented,
        )
    except OAuth2Error as problem:
        return _redirect_error(grant, problem.error, problem.description)
    write_pending_registrations()  # the request is valid: another region's automatic registration stands
    if step is not Step.ISSUE:
        if tx is None:
            tx = create_transaction(
                svc.store,
                params=params,
                client_id=client.client_id,
                required_acr=options.required_acr,
                browser=browser_binding(),
                login_hint=options.login_hint,
                ttl=svc.settings.login_transaction_ttl,
                now=now,
            )
        elif tx.required_acr != options.required_acr:
            tx = update_transaction(svc.store, tx, now=now, required_acr=options.required_acr)
        if step is Step.LOGIN and home_region is not None and login is not None and not login.fresh:
            return redirect(url_for("federated_login.start", tx=tx.id, target=home_region), 303)
        endpoint = "login.choose" if step is Step.LOGIN else "login.consent"
        return redirect(url_for(endpoint, tx=tx.id), 303)
    assert session_record is not None and login is not None
    if tx is not None and not end_transaction(svc.store, tx, now=now):
        return error_page(
            "Already done", "This sign-in was already completed. Please go back to the service."
        )
    add_participant(db_session(), session_record, client.client_id, now=now)
    user = AuthorizedCitizen(
        citizen_id=session_record.citizen_id,
        sid=session_record.sid,
        acr=session_record.acr,
        amr=tuple(session_record.amr),
        auth_time=login.auth_time,
        claims=options.claims,
    )
    # grant.request: the parameters as resolved (a pushed request's, a request object's), not the URL's.
    return server.create_authorization_response(  # type: ignore[no-any-return]
        request=grant.request, grant=grant, grant_user=user
    )


@bp.route("/authorize", methods=["GET", "POST"])
def authorize() -> Response:
    return authorize_request(request, None)


@bp.get("/authorize/resume/<tx>")
def resume(tx: str) -> Response:
    svc = services()
    transaction = current_transaction(tx)
    if transaction is None:
        return error_page(
            "This sign-in has expired",
            "It took too long, or it was started in another browser. "
            "Please go back to the service and start again.",
        )
    return authorize_request(StoredAuthorizationRequest(svc.settings.issuer, transaction.params), transaction)


@bp.post("/par")
def pushed_authorization_request() -> Response:
    """RFC 9126 §2: the client authenticates as at /token, its request is validated now as the authorization
    endpoint would, and a one-time, short-lived request_uri comes back for the browser to carry."""
    svc = services()
    server = _server()
    oauth_request = server.create_oauth2_request(request)
    try:
        client = server.authenticate_client(oauth_request, TOKEN_ENDPOINT_AUTH_METHODS, "par")
        body = single_valued(request.form.lists())
        params = pushed_parameters(body, client, issuer=svc.settings.issuer, now=svc.now())
        pushed = StoredAuthorizationRequest(svc.settings.issuer, params)
        grant = server.get_consent_grant(request=pushed, end_user=None)
        check_authorization_request(grant.request.payload.data, client.allowed_scopes)
        # The proof last: its jti is spent only by a request that is accepted. RFC 9449 §10.1.
        params = bind_to_proof_key(params)
    except OAuth2Error as error:
        error.redirect_uri = None  # the answer goes to the client that pushed, never to a redirect URI
        response: Response = server.handle_error_response(oauth_request, error)
    else:
        ttl = svc.settings.par_request_ttl
        created = push_request(svc.store, client.client_id, params, ttl=ttl, now=svc.now())
        response = jsonify({"request_uri": created.request_uri, "expires_in": created.expires_in})
        response.status_code = 201
    response.headers["Cache-Control"] = "no-store"
    announce_dpop_nonce(response)
    return response


@bp.post("/token")
def token() -> Response:
    response: Response = _server().create_token_response()
    response.headers["Cache-Control"] = "no-store"
    announce_dpop_nonce(response)
    count_token_grant(request.form.get("grant_type"), oauth_result(response))
    return response


@bp.post("/introspect")
def introspect() -> Response:
    return _server().create_endpoint_response("introspection")  # type: ignore[no-any-return]


@bp.post("/revoke")
def revoke() -> Response:
    return _server().create_endpoint_response("revocation")  # type: ignore[no-any-return]


@bp.route("/userinfo", methods=["GET", "POST"])
def userinfo() -> Response:
    """OIDC Core §5.3: claims for the token's scopes, with the token's pairwise ``sub``."""
    try:
        context: AccessContext = citizen_tokens.acquire_token([OPENID])
    except OAuth2Error as error:
        citizen_tokens.raise_error_response(error)
    session = db_session()
    client = find_client(session, context.client_id)
    if client is None:
        citizen_tokens.raise_error_response(BearerInvalidTokenError(realm=REALM))
    assert context.grant is not None and client is not None
    grant = context.grant
    claims = released_claims(
        citizen_id=grant.citizen_id,
        sid=grant.sid,
        scopes=context.scopes,
        acr=grant.acr,
        auth_time=grant.auth_time,
        id_number_allowed=client.id_number_allowed,
    )
    claims["sub"] = context.claims["sub"]
    response = jsonify(claims)
    response.headers["Cache-Control"] = "no-store"
    return response


def _logout_params() -> dict[str, str]:
    source = request.form if request.method == "POST" else request.args
    return {
        key: source.get(key, "")
        for key in ("id_token_hint", "post_logout_redirect_uri", "state", "client_id", "csrf")
    }


@bp.route("/logout", methods=["GET", "POST"])
def logout() -> Response:
    """RP-Initiated Logout 1.0: end the SSO session and tell every portal in it by back-channel."""
    svc = services()
    now = svc.now()
    params = _logout_params()
    session = db_session()
    hint_claims: dict[str, Any] | None = None
    if params["id_token_hint"]:
        try:
            hint_claims = verify_jwt(
                params["id_token_hint"],
                keys=oidc_keys(svc.keyring, now=now),
                expected_issuer=svc.settings.issuer,
                now=now,
                leeway=ID_TOKEN_HINT_MAX_AGE,
            )
        except InvalidTokenError:
            return error_page("Logout link not valid", "The service sent an invalid logout request.")
    client_id = params["client_id"] or (str(hint_claims["aud"]) if hint_claims else "")
    if hint_claims and params["client_id"] and hint_claims.get("aud") != params["client_id"]:
        return error_page("Logout link not valid", "The service sent an invalid logout request.")
    client = find_client(session, client_id) if client_id else None
    redirect_uri = params["post_logout_redirect_uri"]
    if redirect_uri and (client is None or redirect_uri not in client.post_logout_redirect_uris):
        return error_page(
            "Logout link not valid", "The service asked to return to an address it did not register."
        )
    sso = current_sso_session()
    confirmed = request.method == "POST" and check_csrf("logout", params["csrf"])
    hinted_here = sso is not None and hint_claims is not None and hint_claims.get("sid") == sso.sid
    if sso is not None and not (confirmed or hinted_here):
        # Without proof that the request comes from the session's own portal, ask (logout CSRF).
        return make_response(
            render_template(
                "logout_confirm.html",
                params=params,
                csrf=csrf_token("logout"),
                client_name=client.name if client else None,
            )
        )
    # A citizen of another region: the logout goes home too, then on to ``redirect_uri``.
    home_logout = (
        home_logout_url(sso, AfterLogout(redirect_uri or None, params["state"] or None)) if sso else None
    )
    if sso is not None:
        end_sso_session(sso, now=now)
    if home_logout is not None:
        response = redirect(home_logout, 303)
    elif redirect_uri:
        state = [("state", params["state"])] if params["state"] else []
        response = redirect(add_params_to_uri(redirect_uri, state), 303)
    else:
        response = make_response(render_template("logged_out.html"))
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
