"""The OAuth 2.0 / OpenID Connect provider on Authlib: grants, client authentication, token generation.

Authlib validates what its RFC packages cover — client authentication (RFC 6749 §2.3, RFC 7523
private_key_jwt), the code and refresh grants, PKCE (RFC 7636, S256 only, required for every client),
introspection (RFC 7662) and revocation (RFC 7009). OneCard supplies storage and token formats:
authorization codes live in the short-lived store and are consumed atomically (one-time across nodes);
tokens are JWTs signed by the key ring; refresh tokens rotate with reuse detection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from authlib.common.urls import add_params_to_uri
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Error, OAuth2Request
from authlib.oauth2.rfc6749 import (
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    UnsupportedResponseTypeError,
    grants,
)
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oidc.core.errors import RequestNotSupportedError, RequestURINotSupportedError
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet as JoseKeySet

from idp.bearer_secrets import hash_bearer_secret
from idp.citizens.service import decrypt_profile, get_citizen
from idp.clients.model import Client
from idp.federation.login_model import find_home_claims, is_federated_subject
from idp.federation.registration import find_or_register_client, note_client_authenticated
from idp.grants.service import (
    GrantInfo,
    create_grant,
    find_refresh_token_grant,
    issue_refresh_token,
    redeem_refresh_token,
    refresh_token_client,
    revoke_grant,
    revoke_refresh_token,
)
from idp.keys.service import OIDC_ES256, OIDC_RS256
from idp.oauth.bearer import authenticate_access_token, revoke_access_token
from idp.oauth.claims import build_claims, build_federated_claims, id_token_claim_names, subject_for
from idp.oauth.dpop_grants import DpopBoundGrant
from idp.oauth.fapi import authorization_code_ttl, check_client_assertion
from idp.oauth.par import front_channel_parameters
from idp.oauth.tokens import InvalidTokenError, issue_access_token, issue_id_token
from idp.observability.web import note_client
from idp.scopes import OPENID, SERVICE_SCOPES
from idp.services import services
from idp.stores.base import dump_json, load_json
from idp.web import db_session

CODE_NAMESPACE = "authz_code"
_JTI_REUSED = "JWT ID is used before."
USED_CODE_NAMESPACE = "authz_code_used"
USED_CODE_TTL = 24 * 3600
ASSERTION_JTI_NAMESPACE = "client_assertion_jti"
MAX_ASSERTION_TEXT = 256  # the longest sub, iss or jti of a client assertion
TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
# What a private_key_jwt client assertion may be signed with (RFC 7523, advertised per RFC 8414 §2).
CLIENT_ASSERTION_SIGNING_ALGS = ["RS256", "PS256", "ES256"]
CODE_CHALLENGE_METHODS = ["S256"]


@dataclass(frozen=True)
class PendingCode:
    """An issued, not yet exchanged authorization code (Authlib's AuthorizationCodeMixin)."""

    key: str
    client_id: str
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str
    code_challenge_method: str
    citizen_id: str
    sid: str
    acr: str
    amr: tuple[str, ...]
    auth_time: float
    claims: dict[str, Any] | None
    dpop_jkt: str | None = None  # the DPoP key the code is bound to (RFC 9449 §10), if the request named one

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return int(self.auth_time)

    def get_acr(self) -> str:
        return self.acr

    def get_amr(self) -> list[str]:
        return list(self.amr)

    def get_code_challenge(self) -> str:
        return self.code_challenge

    def get_code_challenge_method(self) -> str:
        return self.code_challenge_method


@dataclass(frozen=True)
class AuthorizedCitizen:
    """The ``grant_user`` handed to Authlib when the authorization endpoint issues a code."""

    citizen_id: str
    sid: str
    acr: str
    amr: tuple[str, ...]
    auth_time: float
    claims: dict[str, Any] | None


class StoredAuthorizationRequest(OAuth2Request):  # type: ignore[misc]
    """An authorization request rebuilt from a login transaction, for Authlib to validate again."""

    def __init__(self, issuer: str, params: dict[str, str]) -> None:
        super().__init__("GET", f"{issuer}/authorize?{urlencode(params)}", headers={})
        self.payload = BasicOAuth2Payload(params)
        self._params = params

    @property
    def args(self) -> dict[str, str]:
        return self._params

    @property
    def form(self) -> dict[str, str]:
        return {}


def with_issuer(location: str) -> str:
    """RFC 9207 §2: every authorization response, success or error, names its issuer (mix-up defence)."""
    return str(add_params_to_uri(location, [("iss", services().settings.issuer)]))


class OneCardAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if isinstance(request, StoredAuthorizationRequest):
            return request
        return super().create_oauth2_request(request)

    def get_authorization_grant(self, request: OAuth2Request) -> grants.BaseGrant:
        if not isinstance(request, StoredAuthorizationRequest):
            self._resolve_front_channel(request)
        # Authlib's own refusal quotes the caller's response_type in error_description, which then fails
        # on characters RFC 6749 §4.1.2.1 forbids there; refuse it here in fixed words.
        if request.payload.response_type not in AuthorizationCodeGrant.RESPONSE_TYPES:
            raise UnsupportedResponseTypeError(
                None, "Only response_type=code is supported.", redirect_uri=self._error_redirect_uri(request)
            )
        return super().get_authorization_grant(request)

    def _resolve_front_channel(self, request: OAuth2Request) -> None:
        """A pushed ``request_uri`` or a signed ``request`` becomes the plain parameters it stands for, before
        anything else reads them (idp.oauth.par). Stored requests (login transactions, pushed requests being
        validated) hold resolved parameters already."""
        client = self.query_client(request.payload.client_id or "")
        if client is None:
            return  # Authlib refuses the unknown client next
        svc = services()
        try:
            params = front_channel_parameters(
                request.payload.data,
                client,
                store=svc.store,
                issuer=svc.settings.issuer,
                now=svc.now(),
                require_par=svc.settings.require_par,
            )
        except OAuth2Error as error:
            error.redirect_uri = self._error_redirect_uri(request)
            raise
        if params is not None:
            request.payload = BasicOAuth2Payload(params)

    def _error_redirect_uri(self, request: OAuth2Request) -> str | None:
        """Where an error may go: only a redirect URI registered for a known client (RFC 6749 §4.1.2.1)."""
        client = self.query_client(request.payload.client_id or "")
        if client is None:
            return None
        requested = request.payload.redirect_uri
        if requested:
            return requested if client.check_redirect_uri(requested) else None
        return client.get_default_redirect_uri()

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> Any:
        # Only authorization responses redirect: every Location the server makes goes back to a client.
        headers = [(name, with_issuer(value) if name == "Location" else value) for name, value in headers]
        return super().handle_response(status, body, headers)

    def query_client(self, client_id: str) -> Client | None:
        # Another region's OneCard is a client by its entity id, registered automatically when first seen
        # or expired (OpenID Federation 1.0 §12.1); a refusal raises invalid_client.
        return find_or_register_client(db_session(), client_id)

    def authenticate_client(
        self, request: OAuth2Request, methods: list[str], endpoint: str = "token"
    ) -> Client:
        """Authlib's client authentication (every grant, introspection, revocation and the gate API come
        through here), noting the client for the request log."""
        client: Client = super().authenticate_client(request, methods, endpoint)
        note_client(client.client_id)
        note_client_authenticated()
        return client

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """Nothing to do: refresh tokens are stored as they are generated, access tokens are stateless."""

    def generate_token(
        self,
        grant_type: str,
        client: Client,
        user: GrantInfo | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
        dpop_jkt: str | None = None,
    ) -> dict[str, Any]:
        """``dpop_jkt``: the key of the request's DPoP proof (idp.oauth.dpop_grants); the access token is
        then bound to it (``cnf.jkt``, RFC 9449 §6) and its type is ``DPoP`` (§5)."""
        svc = services()
        now = svc.now()
        settings = svc.settings
        keys = svc.keyring.key_set(OIDC_ES256.name, now=now)
        token_type = "DPoP" if dpop_jkt else "Bearer"
        if user is None:
            # client_credentials: scopes were checked against the registration; the client is the subject.
            granted = granted_service_scope(client.allowed_scopes, scope) or ""
            access = issue_access_token(
                keys=keys,
                issuer=settings.issuer,
                client_id=client.client_id,
                subject=client.client_id,
                scope=granted,
                ttl=settings.access_token_ttl,
                now=now,
                confirmation_jkt=dpop_jkt,
            )
            return {
                "access_token": access.token,
                "token_type": token_type,
                "expires_in": access.expires_in,
                "scope": granted,
            }
        granted = scope or user.scope
        subject = subject_for(client, user.citizen_id, salt=settings.pairwise_salt or settings.issuer)
        access = issue_access_token(
            keys=keys,
            issuer=settings.issuer,
            client_id=client.client_id,
            subject=subject,
            scope=granted,
            ttl=settings.access_token_ttl,
            now=now,
            grant_id=user.id,
            acr=user.acr,
            auth_time=user.auth_time,
            confirmation_jkt=dpop_jkt,
        )
        token: dict[str, Any] = {
            "access_token": access.token,
            "token_type": token_type,
            "expires_in": access.expires_in,
            "scope": granted,
        }
        if include_refresh_token:
            token["refresh_token"] = issue_refresh_token(
                db_session(), user.id, ttl=settings.refresh_token_ttl, now=now
            )
        return token


class AuthorizationCodeGrant(DpopBoundGrant, grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_ENDPOINT_AUTH_METHODS
    AUTHORIZATION_CODE_LENGTH = 43
    nonce: str | None = None  # of the code being exchanged, for the id_token (set in authenticate_user)

    @staticmethod
    def validate_authorization_redirect_uri(request: OAuth2Request, client: Client) -> str:
        # Authlib's message quotes the unregistered URI; it may hold characters an error may not carry.
        requested = request.payload.redirect_uri
        if requested and not client.check_redirect_uri(requested):
            raise InvalidRequestError("The redirect_uri is not registered for this client.")
        return grants.AuthorizationCodeGrant.validate_authorization_redirect_uri(request, client)  # type: ignore[no-any-return]

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        svc = services()
        user: AuthorizedCitizen = request.user
        data = request.payload.data
        record = {
            "client_id": request.client.client_id,
            "redirect_uri": request.payload.redirect_uri,
            "scope": request.payload.scope,
            "nonce": data.get("nonce"),
            "code_challenge": data["code_challenge"],
            "code_challenge_method": data["code_challenge_method"],
            "citizen_id": user.citizen_id,
            "sid": user.sid,
            "acr": user.acr,
            "amr": list(user.amr),
            "auth_time": user.auth_time,
            "claims": user.claims,
            "dpop_jkt": data.get("dpop_jkt") or None,
        }
        now = svc.now()
        svc.store.put(
            CODE_NAMESPACE,
            hash_bearer_secret(code),
            dump_json(record),
            ttl=authorization_code_ttl(request.client, svc.settings.authorization_code_ttl),
            now=now,
        )

    def query_authorization_code(self, code: str, client: Client) -> PendingCode | None:
        """Look the code up without consuming it, so a refused exchange (wrong PKCE verifier, wrong
        redirect_uri) changes nothing; the atomic ``take`` comes in ``authenticate_user``."""
        svc = services()
        now = svc.now()
        if not isinstance(code, str) or len(code) > 128:
            return None
        key = hash_bearer_secret(code)
        record = load_json(svc.store.get(CODE_NAMESPACE, key, now=now))
        if record is None:
            used = load_json(svc.store.get(USED_CODE_NAMESPACE, key, now=now))
            if used is not None and used["client_id"] == client.client_id:
                # A code presented twice was stolen or replayed:
                # end what the first exchange got (RFC 6749 §4.1.2).
                revoke_grant(db_session(), used["grant_id"], reason="authorization_code_reuse", now=now)
            return None
        if record["client_id"] != client.client_id:
            return None
        return PendingCode(key=key, amr=tuple(record.pop("amr")), **record)

    def bound_jkt(self) -> str | None:
        code: PendingCode = self.request.authorization_code
        return code.dpop_jkt

    def delete_authorization_code(self, authorization_code: PendingCode) -> None:
        """Already consumed in ``authenticate_user``."""

    def authenticate_user(self, authorization_code: PendingCode) -> GrantInfo | None:
        svc = services()
        now = svc.now()
        if svc.store.take(CODE_NAMESPACE, authorization_code.key, now=now) is None:
            return None  # another node redeemed it first
        code = authorization_code
        grant = create_grant(
            db_session(),
            client_id=code.client_id,
            citizen_id=code.citizen_id,
            sid=code.sid,
            scope=code.scope,
            claims=code.claims,
            acr=code.acr,
            amr=code.amr,
            auth_time=code.auth_time,
            now=now,
            dpop_jkt=self.dpop_jkt,  # issued DPoP-bound: its refreshes need a proof
        )
        svc.store.put(
            USED_CODE_NAMESPACE,
            code.key,
            dump_json({"client_id": code.client_id, "grant_id": grant.id}),
            ttl=USED_CODE_TTL,
            now=now,
        )
        self.nonce = code.nonce
        return grant


@dataclass(frozen=True)
class PresentedRefreshToken:
    token: str
    grant: GrantInfo

    def check_client(self, client: Client) -> bool:
        return self.grant.client_id == client.client_id

    def get_scope(self) -> str:
        return self.grant.scope


class RefreshTokenGrant(DpopBoundGrant, grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_ENDPOINT_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def issued_dpop_bound(self) -> bool:
        credential: PresentedRefreshToken = self.request.refresh_token
        return credential.grant.dpop_jkt is not None

    def authenticate_refresh_token(self, refresh_token: str) -> PresentedRefreshToken | None:
        svc = services()
        now = svc.now()
        session = db_session()
        grant = find_refresh_token_grant(session, refresh_token, now=now)
        if grant is not None:
            return PresentedRefreshToken(refresh_token, grant)
        # Unknown, expired, revoked or already used. Used means it leaked: revoke the family, but only when
        # its own client presents it (another client's guess must not end a citizen's grant).
        if refresh_token_client(session, refresh_token) == self.request.client.client_id:
            redeem_refresh_token(session, refresh_token, now=now)
        return None

    def authenticate_user(self, credential: PresentedRefreshToken) -> GrantInfo:
        svc = services()
        outcome = redeem_refresh_token(db_session(), credential.token, now=svc.now())
        if outcome.grant is None:
            raise InvalidGrantError("The refresh token was used already.")
        return outcome.grant

    def revoke_old_credential(self, credential: PresentedRefreshToken) -> None:
        """Rotation already marked it used in ``authenticate_user``."""


def granted_service_scope(registered: set[str], requested: str | None) -> str | None:
    """What a client_credentials request is granted (RFC 6749 §3.3): the service scopes asked for, all the
    client's service scopes when none was asked; None when it asked one it is not registered for. Also the
    lean path's rule (idp.fastpath)."""
    allowed = registered & set(SERVICE_SCOPES)
    asked = set((requested or "").split())
    if not asked <= allowed:
        return None
    return " ".join(sorted(asked or allowed))


class ClientCredentialsGrant(DpopBoundGrant, grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_ENDPOINT_AUTH_METHODS

    def validate_token_request(self) -> None:
        """Only service scopes the client is registered for (RFC 6749 §3.3); none asked means all of them."""
        super().validate_token_request()
        client: Client = self.request.client
        if granted_service_scope(client.allowed_scopes, self.request.payload.scope) is None:
            raise InvalidScopeError("The client is not registered for the requested scope.")


class S256CodeChallenge(CodeChallenge):  # type: ignore[misc]
    """PKCE with S256 for every client, confidential ones included (RFC 9700 §2.1.1).

    Authlib lets a request without any challenge through and defaults a missing method to ``plain``; here a
    request needs both, and the method must be S256, before any login. Since every code then carries a
    challenge, Authlib's token-side check requires the verifier of every client.
    """

    SUPPORTED_CODE_CHALLENGE_METHOD = CODE_CHALLENGE_METHODS
    DEFAULT_CODE_CHALLENGE_METHOD = None

    def validate_code_challenge(self, grant: grants.BaseGrant, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: code_challenge is missing.")
        if not data.get("code_challenge_method"):
            raise InvalidRequestError("PKCE is required: code_challenge_method must be S256.")
        super().validate_code_challenge(grant, redirect_uri)


def refuse_unresolved_request_objects(grant: grants.BaseGrant, redirect_uri: str) -> None:
    """``request`` and ``request_uri`` are resolved before Authlib sees a request
    (``OneCardAuthorizationServer._resolve_front_channel``, idp.oauth.par): one still here was pushed inside
    a pushed request or a request object, which RFC 9126 §2.1 and RFC 9101 §4 forbid. Refused, not ignored."""
    data = grant.request.payload.data
    if data.get("request"):
        raise RequestNotSupportedError("A request object cannot hold another one.")
    if data.get("request_uri"):
        raise RequestURINotSupportedError("request_uri cannot be pushed.")


class UnresolvedRequestObjectsRefused:
    def __call__(self, grant: grants.BaseGrant) -> None:
        grant.register_hook("after_validate_authorization_request_payload", refuse_unresolved_request_objects)


def released_claims(
    *,
    citizen_id: str,
    sid: str | None,
    scopes: set[str],
    acr: str,
    auth_time: float,
    id_number_allowed: bool,
    only: set[str] | None = None,
) -> dict[str, Any]:
    """The claims for the id_token and userinfo: from the register for this deployment's citizens, from the
    home region's claims of the session for a citizen of another region (idp.federation.login_model) —
    none once that session ended."""
    svc = services()
    session = db_session()
    if is_federated_subject(session, citizen_id):
        home = find_home_claims(session, svc.pii_cipher(), sid, now=svc.now())
        if home is None:
            return {}
        return build_federated_claims(
            home.claims,
            home_name=home.home_name,
            home_entity_id=home.home_entity_id,
            home_sid=home.home_sid,
            scopes=scopes,
            acr=acr,
            only=only,
        )
    profile = decrypt_profile(svc.pii_cipher(), get_citizen(session, citizen_id))
    return build_claims(
        profile, scopes=scopes, acr=acr, auth_time=auth_time, id_number_allowed=id_number_allowed, only=only
    )


class OpenIDConnect:
    """Adds the id_token to token responses whose scope includes ``openid`` (OIDC Core §3.1.3.3, §12.2)."""

    def __call__(self, grant: grants.BaseGrant) -> None:
        grant.register_hook("after_create_token_response", self.add_id_token)

    def add_id_token(self, grant: grants.BaseGrant, response: tuple[int, dict[str, Any], Any]) -> None:
        _status, token, _headers = response
        scopes = set(str(token.get("scope", "")).split())
        user: GrantInfo | None = grant.request.user
        if OPENID not in scopes or user is None:
            return
        svc = services()
        now = svc.now()
        client: Client = grant.request.client
        settings = svc.settings
        extra: dict[str, Any] = {}
        wanted = id_token_claim_names(user.claims, scopes)
        if wanted:
            extra = released_claims(
                citizen_id=user.citizen_id,
                sid=user.sid,
                scopes=scopes,
                acr=user.acr,
                auth_time=user.auth_time,
                id_number_allowed=client.id_number_allowed,
                only=wanted,
            )
        alg = client.id_token_signed_response_alg
        key_set = OIDC_ES256 if alg == "ES256" else OIDC_RS256
        token["id_token"] = issue_id_token(
            keys=svc.keyring.key_set(key_set.name, now=now),
            alg=key_set.alg,  # type: ignore[arg-type]
            issuer=settings.issuer,
            client_id=client.client_id,
            subject=subject_for(client, user.citizen_id, salt=settings.pairwise_salt or settings.issuer),
            ttl=settings.id_token_ttl,
            now=now,
            auth_time=user.auth_time,
            acr=user.acr,
            amr=user.amr,
            # A refreshed id_token carries no nonce (OIDC Core §12.2); only the code's exchange does.
            nonce=grant.nonce if isinstance(grant, AuthorizationCodeGrant) else None,
            sid=user.sid,
            access_token=token.get("access_token"),
            extra_claims=extra,
        )


def _check_assertion_text(value: object) -> None:
    """An assertion's ``sub``, ``iss`` and ``jti`` are short printable ASCII (client ids are; a jti is ours
    to remember): its JSON may hold a lone surrogate (no UTF-8 form, so the database lookup would fail) or a
    NUL."""
    if isinstance(value, str) and not (
        len(value) <= MAX_ASSERTION_TEXT and value.isascii() and value.isprintable()
    ):
        raise InvalidClientError(description="The client assertion is not valid.")


class PrivateKeyJwt(JWTBearerClientAssertion):  # type: ignore[misc]
    """private_key_jwt (OIDC Core §9, RFC 7523 §2.2): assertion jti is one-time across nodes."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def get_audiences(self) -> list[str]:
        # The issuer, or the endpoint the assertion is presented to (RFC 7523 §3).
        issuer = services().settings.issuer
        return [issuer, f"{issuer}/token", f"{issuer}/par", f"{issuer}/introspect", f"{issuer}/revoke"]

    def __call__(self, query_client: Any, request: OAuth2Request) -> Client | None:
        """Authlib's authentication, after the FAPI 2.0 rules for a FAPI client's assertion (idp.oauth.fapi),
        which are checked before the assertion's jti is spent."""
        assertion = request.form.get("client_assertion")
        if request.form.get("client_assertion_type") == self.CLIENT_ASSERTION_TYPE and assertion:
            header, claims = self.extract_assertion(assertion)
            for name in ("sub", "iss", "jti"):
                _check_assertion_text(claims.get(name))  # before the client lookup and the jti store
            subject = claims.get("sub")
            client = query_client(subject) if isinstance(subject, str) else None
            if client is not None:
                check_client_assertion(client, header, claims, services().settings.issuer)
        return super().__call__(query_client, request)  # type: ignore[no-any-return]

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> dict[str, Any]:
        """Authlib's check, but only the algorithms discovery advertises (not joserfc's whole registry)."""
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=CLIENT_ASSERTION_SIGNING_ALGS)
        except JoseError as error:
            raise InvalidClientError(description="The client assertion is not valid.") from error
        self.verify_claims(token.claims)
        return token.claims

    def verify_claims(self, claims: dict[str, Any]) -> None:
        """Authlib's claim checks, at this server's clock (Authlib's own reads the system clock): a
        deployment whose clock is a parameter (tests, the federation harness) judges exp/iat by it."""
        registry = jwt.JWTClaimsRegistry(
            now=int(services().now()),
            leeway=self.leeway,
            iss={"essential": True},
            sub={"essential": True},
            aud={"essential": True, "values": self.get_audiences()},
            exp={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as error:
            raise InvalidClientError(description=error.description) from error
        # Authlib's own wording (for a program, not a page: kept out of the catalogue).
        for broken, wording in (
            (claims["sub"] != claims["iss"], "Issuer and Subject MUST match."),
            ("jti" not in claims, "Missing JWT ID."),
        ):
            if broken:
                raise InvalidClientError(description=wording)
        if not self.validate_jti(claims, claims["jti"]):
            raise InvalidClientError(description=_JTI_REUSED)

    def validate_jti(self, claims: dict[str, Any], jti: str) -> bool:
        svc = services()
        now = svc.now()
        ttl = max(60.0, float(claims.get("exp", now)) - now + self.leeway)
        return svc.store.add(ASSERTION_JTI_NAMESPACE, f"{claims['iss']}:{jti}", b"1", ttl=ttl, now=now)

    def resolve_client_public_key(self, client: Client) -> JoseKeySet:
        return JoseKeySet.import_key_set(client.jwks or {"keys": []})  # type: ignore[arg-type]


@dataclass(frozen=True)
class IntrospectedToken:
    """What introspection and revocation know about a presented token (Authlib's TokenMixin)."""

    kind: str  # access_token | refresh_token
    client_id: str
    payload: dict[str, Any]
    raw: str

    def check_client(self, client: Client) -> bool:
        return self.client_id == client.client_id

    def is_expired(self) -> bool:
        return False  # only live tokens are ever built

    def is_revoked(self) -> bool:
        return False

    def get_scope(self) -> str:
        return str(self.payload.get("scope", ""))


def _find_token(token_string: str, token_type_hint: str | None) -> IntrospectedToken | None:
    svc = services()
    now = svc.now()
    session = db_session()
    if not isinstance(token_string, str) or len(token_string) > 16_384:
        return None
    if token_string.startswith("ocrt_"):
        grant = find_refresh_token_grant(session, token_string, now=now)
        if grant is None:
            return None
        payload: dict[str, Any] = {
            "scope": grant.scope,
            "client_id": grant.client_id,
            "token_type": "refresh_token",
            "acr": grant.acr,
        }
        return IntrospectedToken("refresh_token", grant.client_id, payload, token_string)
    try:
        context = authenticate_access_token(
            token_string,
            keyring=svc.keyring,
            store=svc.store,
            session=session,
            issuer=svc.settings.issuer,
            now=now,
        )
    except InvalidTokenError:
        return None
    claims = context.claims
    payload = {
        k: claims[k]
        for k in ("scope", "client_id", "sub", "exp", "iat", "iss", "aud", "jti", "acr", "auth_time", "cnf")
        if k in claims
    }
    # RFC 9449 §6.2: a DPoP-bound token introspects with its cnf.jkt and type DPoP.
    payload["token_type"] = "DPoP" if context.dpop_jkt else "Bearer"
    return IntrospectedToken("access_token", context.client_id, payload, token_string)


class OneCardIntrospectionEndpoint(IntrospectionEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = TOKEN_ENDPOINT_AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> IntrospectedToken | None:
        return _find_token(token_string, token_type_hint)

    def check_permission(self, token: IntrospectedToken, client: Client, request: OAuth2Request) -> bool:
        # A client may introspect its own tokens only; resource servers are registered as such clients.
        return token.check_client(client)

    def introspect_token(self, token: IntrospectedToken) -> dict[str, Any]:
        return {"active": True, **token.payload}


class OneCardRevocationEndpoint(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = TOKEN_ENDPOINT_AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> IntrospectedToken | None:
        return _find_token(token_string, token_type_hint)

    def authenticate_token(self, request: OAuth2Request, client: Client) -> IntrospectedToken | None:
        # RFC 7009 §2.2: a token of another client is not revoked, and the answer is still 200.
        self.check_params(request, client)
        token = self.query_token(request.form["token"], request.form.get("token_type_hint"))
        return token if token is not None and token.check_client(client) else None

    def revoke_token(self, token: IntrospectedToken, request: OAuth2Request) -> None:
        svc = services()
        now = svc.now()
        if token.kind == "refresh_token":
            revoke_refresh_token(db_session(), token.raw, now=now)
        else:
            revoke_access_token(svc.store, token.payload, now=now)


def create_authorization_server() -> OneCardAuthorizationServer:
    """Every grant, extension, endpoint and client authentication method, registered in one place."""
    server = OneCardAuthorizationServer()
    server.register_grant(
        AuthorizationCodeGrant,
        [UnresolvedRequestObjectsRefused(), S256CodeChallenge(required=True), OpenIDConnect()],
    )
    server.register_grant(RefreshTokenGrant, [OpenIDConnect()])
    server.register_grant(ClientCredentialsGrant)
    server.register_endpoint(OneCardIntrospectionEndpoint)
    server.register_endpoint(OneCardRevocationEndpoint)
    server.register_client_auth_method(PrivateKeyJwt.CLIENT_AUTH_METHOD, PrivateKeyJwt(leeway=30))
    return server
