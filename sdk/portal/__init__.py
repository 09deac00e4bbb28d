"""``sdk.portal``: an OpenID Connect relying party for Python portals (DESIGN.md §3; issue #5 item 2).

What a portal needs from OneCard, with nothing left to get wrong:

- discovery (OIDC Discovery 1.0 §4; the ``issuer`` must be the configured one, §4.3), cached as its
  ``Cache-Control`` allows;
- ``authorization_url``: the code flow with PKCE S256 (RFC 7636), a random ``state`` and ``nonce``; the
  returned ``AuthorizationStart`` is what the portal keeps in its session until the callback;
- ``exchange_code``: checks ``state`` and the RFC 9207 ``iss`` of the callback, redeems the code (client
  authentication ``client_secret_basic`` or ``private_key_jwt``) and verifies the id_token in full (OIDC
  Core §3.1.3.7): signature by a key of the provider's JWKS (``sdk.jwks_cache.JwksCache``: cache headers,
  ETag, one rate-limited refresh on an unknown ``kid``), ``alg`` RS256/ES256 only, ``iss``, ``aud``, ``azp``,
  ``exp``/``iat`` with a stated clock skew, ``nonce``, ``acr`` at least what was asked for, ``auth_time``
  against ``max_age``, and ``at_hash``;
- ``userinfo``, ``refresh`` (a new id_token is verified again and must name the same ``sub``),
  ``logout_url`` (RP-Initiated Logout 1.0 §2);
- ``verify_logout_token`` (Back-Channel Logout 1.0 §2.6): ``typ`` ``logout+jwt``, the back-channel event,
  ``sid`` and/or ``sub``, no ``nonce``, a recent ``iat``, and a ``jti`` used once (local replay cache).

Failures raise one error class per kind with a ``reason`` from a fixed enum (tests and logs read the reason;
the description is safe for anyone). Time is a parameter: every check reads the ``clock`` given to the
client. No Flask here; ``sdk.portal.flask`` is the Flask integration.

The package re-exports the names a portal uses; the parts, each one concern:

- ``sdk.portal.errors``: the error classes and their reason enums;
- ``sdk.portal.metadata``: the discovery document, parsed (pure);
- ``sdk.portal.authorization``: the saved ``AuthorizationStart``, PKCE and the callback checks (pure);
- ``sdk.portal.verification``: id_token and logout token verification over a key set and ``now`` (pure);
- ``sdk.portal.client``: ``PortalClient``, everything that talks HTTP;
- ``sdk.oidc``: the scope, claim, acr and amr names shared with the provider.
"""

from __future__ import annotations

from sdk.client_assertion import CLIENT_ASSERTION_TYPE
from sdk.oidc import ACR_HIGH, ACR_LEVELS, ACR_SUBSTANTIAL, BACKCHANNEL_LOGOUT_EVENT
from sdk.portal.authorization import AuthorizationStart
from sdk.portal.client import DEFAULT_SCOPE, PortalClient, PortalTokens
from sdk.portal.errors import (
    AuthorizationDeniedError,
    CallbackError,
    CallbackReason,
    DiscoveryError,
    InvalidIdTokenError,
    InvalidLogoutTokenError,
    PortalError,
    ProviderError,
    PushedRequestError,
    TokenReason,
    TokenRequestError,
    TokenValidationError,
    UserinfoError,
)
from sdk.portal.metadata import ProviderMetadata
from sdk.portal.verification import (
    ALLOWED_ALGS,
    DEFAULT_CLOCK_SKEW,
    LOGOUT_TOKEN_MAX_AGE,
    MAX_TOKEN_LENGTH,
    VerifiedIdToken,
    VerifiedLogoutToken,
    acr_satisfies,
)

__all__ = [
    "ACR_HIGH",
    "ACR_LEVELS",
    "ACR_SUBSTANTIAL",
    "ALLOWED_ALGS",
    "BACKCHANNEL_LOGOUT_EVENT",
    "CLIENT_ASSERTION_TYPE",
    "DEFAULT_CLOCK_SKEW",
    "DEFAULT_SCOPE",
    "LOGOUT_TOKEN_MAX_AGE",
    "MAX_TOKEN_LENGTH",
    "AuthorizationDeniedError",
    "AuthorizationStart",
    "CallbackError",
    "CallbackReason",
    "DiscoveryError",
    "InvalidIdTokenError",
    "InvalidLogoutTokenError",
    "PortalClient",
    "PortalError",
    "PortalTokens",
    "ProviderError",
    "ProviderMetadata",
    "PushedRequestError",
    "TokenReason",
    "TokenRequestError",
    "TokenValidationError",
    "UserinfoError",
    "VerifiedIdToken",
    "VerifiedLogoutToken",
    "acr_satisfies",
]
