"""The errors of ``sdk.portal``: one class per kind, each with a ``reason`` from a fixed enum where a check
failed (tests and logs read the reason; the description is safe for anyone), in the shape of Authlib's
``rfc6749/errors.py`` (``error`` code, safe ``description``, HTTP ``status_code``)."""

from __future__ import annotations

import enum

from sdk.errors import OneCardError


class TokenReason(enum.StrEnum):
    """Why an id_token or logout token was refused."""

    MALFORMED = "malformed"
    TAMPERED = "tampered"  # the signature does not verify
    UNKNOWN_KEY = "unknown_key"  # no key of the provider's JWKS has this kid, even after a refresh
    WRONG_ALGORITHM = "wrong_algorithm"
    WRONG_TYPE = "wrong_type"  # e.g. a logout token presented as an id_token, or the reverse
    WRONG_ISSUER = "wrong_issuer"
    WRONG_AUDIENCE = "wrong_audience"
    WRONG_AUTHORIZED_PARTY = "wrong_authorized_party"
    EXPIRED = "expired"
    ISSUED_IN_FUTURE = "issued_in_future"
    MISSING_CLAIM = "missing_claim"
    WRONG_NONCE = "wrong_nonce"
    INSUFFICIENT_ACR = "insufficient_acr"
    AUTH_TOO_OLD = "auth_too_old"  # auth_time older than the max_age asked for
    WRONG_AT_HASH = "wrong_at_hash"
    WRONG_SUBJECT = "wrong_subject"  # a refreshed id_token about someone else
    MISSING_EVENT = "missing_event"  # a logout token without the back-channel logout event
    NONCE_PRESENT = "nonce_present"  # logout tokens must not carry one (§2.4)
    STALE = "stale"  # a logout token issued too long ago
    REPLAYED = "replayed"


class CallbackReason(enum.StrEnum):
    """Why a redirect back from the provider was refused before any token was asked for."""

    WRONG_STATE = "wrong_state"  # not the answer to the request this browser started (CSRF, mix-up)
    WRONG_ISSUER = "wrong_issuer"  # RFC 9207: the response names another issuer
    MISSING_CODE = "missing_code"


class PortalError(OneCardError):
    """Base of ``sdk.portal`` errors."""

    error = "portal_error"
    description = "Signing in with OneCard did not work."
    status_code = 400


class TokenValidationError(PortalError):
    """A token failed verification; ``reason`` is precise, the description opaque."""

    error = "invalid_token"
    description = "The sign-in could not be verified."

    def __init__(self, reason: TokenReason, detail: str = "") -> None:
        super().__init__(detail or reason.value)
        self.reason = reason


class InvalidIdTokenError(TokenValidationError):
    error = "invalid_id_token"


class InvalidLogoutTokenError(TokenValidationError):
    error = "invalid_logout_token"
    description = "The logout token is not valid."


class CallbackError(PortalError):
    error = "invalid_callback"
    description = "This sign-in response does not belong to a sign-in started here. Please start again."

    def __init__(self, reason: CallbackReason, detail: str = "") -> None:
        super().__init__(detail or reason.value)
        self.reason = reason


class AuthorizationDeniedError(PortalError):
    """The provider answered the authorization request with an error (RFC 6749 §4.1.2.1)."""

    error = "authorization_failed"
    description = "Signing in was cancelled or refused."

    def __init__(self, oauth_error: str, oauth_description: str = "") -> None:
        super().__init__(f"{oauth_error}: {oauth_description}".strip(": "))
        self.oauth_error = oauth_error
        self.oauth_description = oauth_description


class ProviderError(PortalError):
    """The provider could not be reached or refused a back-channel request."""

    error = "provider_error"
    description = "The sign-in service is not available. Please try again later."
    status_code = 502

    def __init__(self, detail: str = "", *, http_status: int | None = None, oauth_error: str = "") -> None:
        super().__init__(detail)
        self.http_status = http_status
        self.oauth_error = oauth_error


class DiscoveryError(ProviderError):
    error = "discovery_failed"


class TokenRequestError(ProviderError):
    """The token endpoint refused (``oauth_error`` is its RFC 6749 §5.2 code, e.g. ``invalid_grant``)."""

    error = "token_request_failed"


class PushedRequestError(ProviderError):
    """The pushed authorization request endpoint refused (``oauth_error`` is its RFC 9126 §2.3 code)."""

    error = "pushed_request_failed"


class UserinfoError(ProviderError):
    error = "userinfo_failed"
