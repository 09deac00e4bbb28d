"""Resource protection for OneCard's own APIs on Authlib's ResourceProtector (RFC 6750): the access token
from the Authorization header (or, for userinfo, the form body, RFC 6750 §2.2), checked by
``authenticate_access_token`` — signature, lifetime, individual revocation, the grant behind it.

Two schemes (RFC 9449 §7): ``Bearer``, and ``DPoP`` for tokens bound to a key (``cnf.jkt``), presented with
a proof of that key for this very request (``ath`` = the token's hash). A bound token presented as Bearer is
an ``invalid_token``; DPoP refusals carry ``WWW-Authenticate: DPoP error=…, algs=…`` (§7.1).

Two audiences, one validator:
- ``citizen_tokens`` (userinfo): a citizen's token; errors in RFC 6750's Bearer shape.
- ``require_scope(scope)`` (admin, real-name, key and venue APIs): a client_credentials token carrying
  ``scope``; errors in OneCard's JSON shape (``unauthorized``/``forbidden``), with ``WWW-Authenticate``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, ClassVar, TypeVar, cast

from authlib.integrations.flask_oauth2 import ResourceProtector
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import MissingAuthorizationError, UnsupportedTokenTypeError
from authlib.oauth2.rfc6750 import BearerTokenValidator, InsufficientScopeError
from flask import g, request

from idp.clients.errors import ClientAuthenticationError
from idp.clients.model import Client
from idp.oauth.bearer import AccessContext, authenticate_access_token
from idp.oauth.dpop import DpopFailure, InvalidDpopProofError
from idp.oauth.dpop_request import uses_dpop_scheme, verify_request_proof
from idp.oauth.tokens import InvalidTokenError
from idp.observability.web import note_client
from idp.openapi.validation import validate_current_request
from idp.services import services
from idp.web import db_session
from sdk.dpop import DPOP_ALGORITHMS, NONCE_HEADER, SCHEME
from sdk.errors import ForbiddenError, UnauthorizedError

REALM = "onecard"
F = TypeVar("F", bound=Callable[..., Any])


class AccessTokenValidator(BearerTokenValidator):  # type: ignore[misc]
    """Authlib's Bearer checks over OneCard's own token verification."""

    def __init__(self, *, citizen: bool) -> None:
        super().__init__(realm=REALM)
        self.citizen = citizen

    def authenticate_token(self, token_string: str) -> AccessContext | None:
        context = self.verified_token(token_string)
        if context is not None and context.dpop_jkt is not None:
            return None  # bound to a DPoP key: useless without a proof of it (RFC 9449 §7.1)
        return context

    def verified_token(self, token_string: str) -> AccessContext | None:
        svc = services()
        try:
            return authenticate_access_token(
                token_string,
                keyring=svc.keyring,
                store=svc.store,
                session=db_session(),
                issuer=svc.settings.issuer,
                now=svc.now(),
            )
        except InvalidTokenError:
            return None

    def validate_token(self, token: AccessContext | None, scopes: Any, request: Any) -> None:
        super().validate_token(token, scopes, request)
        assert token is not None
        # A citizen's token names a grant; a client_credentials token does not. Neither does the other's job.
        if (token.grant is not None) != self.citizen:
            raise InsufficientScopeError()
        note_client(token.client_id)  # the request log names the client the token was issued to


class DpopTokenValidator(AccessTokenValidator):
    """``Authorization: DPoP <token>`` with a ``DPoP`` proof (RFC 9449 §7.1): the token must be bound, and the
    proof made by its key, for this method and URL, over this token (``ath``), with the server's nonce."""

    TOKEN_TYPE = "dpop"

    def authenticate_token(self, token_string: str) -> AccessContext | None:
        context = self.verified_token(token_string)
        if context is None or context.dpop_jkt is None:
            return None  # an unbound token gains nothing from a proof: it is a Bearer token
        if verify_request_proof(access_token=token_string, expected_jkt=context.dpop_jkt) is None:
            raise InvalidDpopProofError(DpopFailure.MISSING)
        return context


class DpopChallenge(OAuth2Error):  # type: ignore[misc]
    """A resource's refusal of a request made with the DPoP scheme (RFC 9449 §7.1): the refused error's own
    code and description, 401 (403 for ``insufficient_scope``), ``WWW-Authenticate: DPoP`` naming the code and
    the accepted algorithms, and for ``use_dpop_nonce`` the nonce to retry with (§9)."""

    def __init__(self, refused: OAuth2Error) -> None:
        status = 403 if isinstance(refused, InsufficientScopeError) else 401
        super().__init__(description=refused.description, status_code=status)
        self.error = refused.error
        self.nonce: str | None = getattr(refused, "nonce", None)

    def get_headers(self) -> list[tuple[str, str]]:
        challenge = f'{SCHEME} realm="{REALM}", error="{self.error}", algs="{" ".join(DPOP_ALGORITHMS)}"'
        headers = [*super().get_headers(), ("WWW-Authenticate", challenge)]
        if self.nonce:
            headers.append((NONCE_HEADER, self.nonce))
        return headers


class CitizenTokens(ResourceProtector):  # type: ignore[misc]
    """userinfo: also takes the token from a form body (OIDC Core §5.3.1, RFC 6750 §2.2)."""

    def parse_request_authorization(self, oauth_request: Any) -> tuple[Any, str]:
        in_form = request.method == "POST" and request.mimetype == "application/x-www-form-urlencoded"
        if "Authorization" not in request.headers and in_form and request.form.get("access_token"):
            return self.get_token_validator("bearer"), request.form["access_token"]
        return super().parse_request_authorization(oauth_request)  # type: ignore[no-any-return]

    def raise_error_response(self, error: OAuth2Error) -> None:
        """RFC 6750 §3.1 answers (RFC 9449 §7.1 ones for the DPoP scheme), rendered by the app's OAuth error
        handler (status, body and headers)."""
        if uses_dpop_scheme() and not isinstance(error, DpopChallenge):
            raise DpopChallenge(error)
        if isinstance(error, MissingAuthorizationError | UnsupportedTokenTypeError):
            # No Bearer credentials: no error code, just how to authenticate.
            raise BearerChallenge()
        if isinstance(error, InsufficientScopeError) and not isinstance(error, BearerScopeError):
            raise BearerScopeError() from error
        raise error


class BearerScopeError(InsufficientScopeError):  # type: ignore[misc]
    """403 ``insufficient_scope`` with the ``WWW-Authenticate`` header RFC 6750 §3.1 asks for."""

    def get_headers(self) -> list[tuple[str, str]]:
        challenge = f'Bearer realm="{REALM}", error="{self.error}"'
        return [*super().get_headers(), ("WWW-Authenticate", challenge)]


class BearerChallenge(UnauthorizedError):
    """A 401 that names the scheme and realm (RFC 6750 §3); OneCard's JSON error shape otherwise."""

    headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": f'Bearer realm="{REALM}"'}


class ServiceTokens(ResourceProtector):  # type: ignore[misc]
    def raise_error_response(self, error: OAuth2Error) -> None:
        if isinstance(error, InsufficientScopeError):
            raise ForbiddenError(error.error)
        if uses_dpop_scheme():
            # The DPoP scheme's refusals say what was wrong (RFC 9449 §7.1), in the OAuth shape.
            raise DpopChallenge(error)
        raise BearerChallenge(error.error)


P = TypeVar("P", bound=ResourceProtector)


def _protector(protector: P, *, citizen: bool) -> P:
    protector.register_token_validator(AccessTokenValidator(citizen=citizen))  # the first: the default
    protector.register_token_validator(DpopTokenValidator(citizen=citizen))
    return protector


citizen_tokens = _protector(CitizenTokens(), citizen=True)
service_tokens = _protector(ServiceTokens(), citizen=False)


def authenticate_basic_client(*, endpoint: str) -> Client:
    """The client whose ``client_secret_basic`` credentials the request carries (Authlib's RFC 6749 §2.3.1
    client authentication, registered method checked for ``endpoint``); else ``ClientAuthenticationError``."""
    server = services().authorization_server
    try:
        client: Client = server.authenticate_client(
            server.create_oauth2_request(request), ["client_secret_basic"], endpoint
        )
    except OAuth2Error as error:
        raise ClientAuthenticationError(error.error) from error
    return client


def require_scope(scope: str, *, validate_request: bool = True) -> Callable[[F], F]:
    """Only callers presenting a client_credentials token with ``scope`` get in; the view finds the token's
    context in ``g.access``. Then the request is checked against the contract (validate_current_request),
    unless ``validate_request=False``: the view calls it itself, after what must come first (a rate limit)."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            try:
                g.access = service_tokens.acquire_token([scope])
            except OAuth2Error as error:
                service_tokens.raise_error_response(error)
            if validate_request:
                validate_current_request()
            return view(*args, **kwargs)

        return cast(F, wrapped)

    return decorator


def current_access() -> AccessContext:
    """The access token context ``require_scope`` authenticated for this request."""
    return cast(AccessContext, g.access)
