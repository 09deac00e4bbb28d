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
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import json
import secrets
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import parse_qsl, quote_plus, urlencode, urlsplit

import jwt
import requests

from sdk.clock import Clock, system_clock
from sdk.errors import OneCardError
from sdk.gate import ReplayCache
from sdk.jwks_cache import DEFAULT_HTTP_TIMEOUT, DEFAULT_UNKNOWN_KID_INTERVAL, DocumentSync, JwksCache
from sdk.keys import Algorithm, Key

__all__ = [
    "ACR_HIGH",
    "ACR_LEVELS",
    "ACR_SUBSTANTIAL",
    "DEFAULT_CLOCK_SKEW",
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
    "TokenReason",
    "TokenRequestError",
    "TokenValidationError",
    "UserinfoError",
    "VerifiedIdToken",
    "VerifiedLogoutToken",
    "acr_satisfies",
]

# OneCard's assurance levels, lowest first (DESIGN.md §3). A portal asking for one accepts any higher one:
# the provider issues the acr actually achieved, never less than asked without saying so.
ACR_SUBSTANTIAL: Final = "urn:onecard:loa:substantial"
ACR_HIGH: Final = "urn:onecard:loa:high"
ACR_LEVELS: Final = (ACR_SUBSTANTIAL, ACR_HIGH)

DEFAULT_CLOCK_SKEW: Final = 60  # seconds either way, for exp, iat and auth_time
DEFAULT_SCOPE: Final = "openid profile"
LOGOUT_TOKEN_MAX_AGE: Final = 300  # a logout token older than this (by iat) is refused
BACKCHANNEL_LOGOUT_EVENT: Final = "http://schemas.openid.net/event/backchannel-logout"
ALLOWED_ALGS: Final[frozenset[Algorithm]] = frozenset({"RS256", "ES256"})
MAX_TOKEN_LENGTH: Final = 16_384
CLIENT_ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


# --- errors ---------------------------------------------------------------------------------------------


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


class UserinfoError(ProviderError):
    error = "userinfo_failed"


# --- results --------------------------------------------------------------------------------------------


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    """The parts of the discovery document this client uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    end_session_endpoint: str | None
    raw: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class AuthorizationStart:
    """What the portal keeps (in its session) between sending the browser away and the callback.

    ``to_dict``/``from_dict`` give a JSON-safe form. The ``code_verifier`` is a secret: keep it server-side
    or in a session cookie only the portal can read.
    """

    url: str
    state: str
    nonce: str
    code_verifier: str
    redirect_uri: str
    acr_values: tuple[str, ...] = ()
    max_age: int | None = None
    created_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "state": self.state,
            "nonce": self.nonce,
            "code_verifier": self.code_verifier,
            "redirect_uri": self.redirect_uri,
            "acr_values": list(self.acr_values),
            "max_age": self.max_age,
            "created_at": self.created_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuthorizationStart:
        try:
            acr_values = data.get("acr_values") or []
            max_age = data.get("max_age")
            start = cls(
                url=str(data["url"]),
                state=str(data["state"]),
                nonce=str(data["nonce"]),
                code_verifier=str(data["code_verifier"]),
                redirect_uri=str(data["redirect_uri"]),
                acr_values=tuple(str(value) for value in acr_values),
                max_age=int(max_age) if max_age is not None else None,
                created_at=float(data.get("created_at", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CallbackError(CallbackReason.WRONG_STATE, f"unusable saved start: {exc}") from exc
        return start


@dataclass(frozen=True, slots=True)
class VerifiedIdToken:
    """An id_token that passed every check."""

    subject: str
    issuer: str
    audience: tuple[str, ...]
    issued_at: int
    expires_at: int
    auth_time: int | None
    acr: str | None
    amr: tuple[str, ...]
    sid: str | None
    nonce: str | None
    claims: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class PortalTokens:
    """A token response whose id_token was verified."""

    access_token: str
    token_type: str
    expires_at: float | None
    refresh_token: str | None
    scope: tuple[str, ...]
    id_token: str | None
    id_token_claims: VerifiedIdToken | None


@dataclass(frozen=True, slots=True)
class VerifiedLogoutToken:
    """A logout token that passed every check: end the session ``sid`` (or all of ``subject``'s)."""

    issuer: str
    subject: str | None
    sid: str | None
    jti: str
    issued_at: int
    claims: Mapping[str, Any]


def acr_satisfies(actual: str | None, requested: Collection[str]) -> bool:
    """Whether an achieved ``acr`` meets a request: one of the values, or above the lowest known one."""
    if not requested:
        return True
    if actual is None:
        return False
    if actual in requested:
        return True
    if actual not in ACR_LEVELS:
        return False
    known = [ACR_LEVELS.index(value) for value in requested if value in ACR_LEVELS]
    return bool(known) and ACR_LEVELS.index(actual) >= min(known)


def _half_hash(value: str) -> str:
    """``at_hash`` for RS256/ES256: the left half of SHA-256, base64url (OIDC Core §3.1.3.6)."""
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")


def _pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


# --- discovery ------------------------------------------------------------------------------------------


class _DiscoverySync(DocumentSync[ProviderMetadata]):
    kind = "discovery document"

    def __init__(self, issuer: str, **kwargs: Any) -> None:
        self.expected_issuer = issuer
        super().__init__(issuer + "/.well-known/openid-configuration", **kwargs)

    def _parse(self, document: Any) -> ProviderMetadata:
        if not isinstance(document, dict):
            raise ValueError("not a JSON object")
        if document.get("issuer") != self.expected_issuer:
            # OIDC Discovery §4.3: a document naming another issuer must not be used.
            raise ValueError("the document names another issuer")

        def url(name: str, required: bool = True) -> str | None:
            value = document.get(name)
            if value is None and not required:
                return None
            if not isinstance(value, str) or not value.startswith(("https://", "http://")):
                raise ValueError(f"{name} is missing or not a URL")
            return value

        return ProviderMetadata(
            issuer=self.expected_issuer,
            authorization_endpoint=str(url("authorization_endpoint")),
            token_endpoint=str(url("token_endpoint")),
            jwks_uri=str(url("jwks_uri")),
            userinfo_endpoint=url("userinfo_endpoint", False),
            end_session_endpoint=url("end_session_endpoint", False),
            raw=_frozen(document),
        )


# --- the client -----------------------------------------------------------------------------------------


class PortalClient:
    """One portal registered at one OneCard provider.

    ``credential`` is the client secret (``client_secret_basic``) or a ``sdk.keys.Key`` with a private part
    (``private_key_jwt``, the key registered in the client's JWKS). ``clock`` is read for every time check.
    """

    def __init__(
        self,
        issuer: str,
        client_id: str,
        credential: str | Key,
        redirect_uri: str,
        *,
        session: requests.Session | None = None,
        clock: Clock = system_clock,
        clock_skew: int = DEFAULT_CLOCK_SKEW,
        timeout: float = DEFAULT_HTTP_TIMEOUT,
        unknown_kid_interval: float = DEFAULT_UNKNOWN_KID_INTERVAL,
        logout_token_max_age: int = LOGOUT_TOKEN_MAX_AGE,
        replay_cache: ReplayCache | None = None,
    ) -> None:
        if isinstance(credential, Key) and not credential.can_sign:
            raise ValueError("a private_key_jwt credential needs the private key")
        if clock_skew < 0:
            raise ValueError("clock_skew must not be negative")
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self._credential = credential
        self.redirect_uri = redirect_uri
        self._owns_session = session is None
        self.session = session or requests.Session()
        self.clock = clock
        self.clock_skew = clock_skew
        self.timeout = timeout
        self.unknown_kid_interval = unknown_kid_interval
        self.logout_token_max_age = logout_token_max_age
        self.replay_cache = replay_cache if replay_cache is not None else ReplayCache()
        self._discovery = _DiscoverySync(self.issuer, session=self.session, timeout=timeout)
        self._jwks: JwksCache | None = None

    def __repr__(self) -> str:
        return f"PortalClient({self.issuer!r}, {self.client_id!r})"  # never the credential

    def close(self) -> None:
        if self._owns_session:
            self.session.close()

    # -- discovery and keys

    def metadata(self) -> ProviderMetadata:
        """The provider's discovery document (fetched once, refreshed when its max-age runs out)."""
        self._discovery.refresh_if_stale(self.clock())
        value = self._discovery.value
        if value is None:
            raise DiscoveryError(self._discovery.last_error or "no discovery document")
        return value

    @property
    def jwks(self) -> JwksCache:
        """The provider's signing keys, cached as the JWKS response allows."""
        if self._jwks is None:
            self._jwks = JwksCache(
                self.metadata().jwks_uri,
                session=self.session,
                timeout=self.timeout,
                unknown_kid_interval=self.unknown_kid_interval,
                required_algs=ALLOWED_ALGS,
            )
        return self._jwks

    # -- the code flow

    def authorization_url(
        self,
        scope: str | Sequence[str] = DEFAULT_SCOPE,
        *,
        acr_values: str | Sequence[str] | None = None,
        prompt: str | None = None,
        max_age: int | None = None,
        claims: Mapping[str, Any] | None = None,
        login_hint: str | None = None,
        ui_locales: str | None = None,
    ) -> AuthorizationStart:
        """Where to send the browser, and what to keep until it comes back."""
        scopes = scope.split() if isinstance(scope, str) else list(scope)
        if "openid" not in scopes:
            scopes.insert(0, "openid")
        acrs = tuple(acr_values.split() if isinstance(acr_values, str) else acr_values or ())
        if max_age is not None and max_age < 0:
            raise ValueError("max_age must not be negative")
        state = secrets.token_urlsafe(24)
        nonce = secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(48)  # 64 characters, within RFC 7636's 43–128
        params: dict[str, str] = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": " ".join(scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": _pkce_challenge(verifier),
            "code_challenge_method": "S256",
        }
        if acrs:
            params["acr_values"] = " ".join(acrs)
        if prompt:
            params["prompt"] = prompt
        if max_age is not None:
            params["max_age"] = str(max_age)
        if claims:
            params["claims"] = json.dumps(claims, separators=(",", ":"))
        if login_hint:
            params["login_hint"] = login_hint
        if ui_locales:
            params["ui_locales"] = ui_locales
        endpoint = self.metadata().authorization_endpoint
        url = endpoint + ("&" if "?" in endpoint else "?") + urlencode(params)
        return AuthorizationStart(
            url=url,
            state=state,
            nonce=nonce,
            code_verifier=verifier,
            redirect_uri=self.redirect_uri,
            acr_values=acrs,
            max_age=max_age,
            created_at=self.clock(),
        )

    def exchange_code(self, callback: str | Mapping[str, str], start: AuthorizationStart) -> PortalTokens:
        """Check the callback against ``start``, redeem the code and verify the id_token."""
        params = _callback_params(callback)
        received_state = params.get("state", "")
        if not received_state or not _equal(received_state, start.state):
            raise CallbackError(CallbackReason.WRONG_STATE)
        iss = params.get("iss")
        if iss is not None and iss != self.issuer:
            raise CallbackError(CallbackReason.WRONG_ISSUER)
        if "error" in params:
            raise AuthorizationDeniedError(params["error"][:100], params.get("error_description", "")[:300])
        code = params.get("code")
        if not code:
            raise CallbackError(CallbackReason.MISSING_CODE)
        response = self._token_request(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": start.redirect_uri,
                "code_verifier": start.code_verifier,
            }
        )
        return self._tokens(
            response,
            expected_nonce=start.nonce,
            acr_values=start.acr_values,
            max_age=start.max_age,
            id_token_required=True,
        )

    def refresh(self, refresh_token: str, *, previous: VerifiedIdToken | None = None) -> PortalTokens:
        """New tokens for a refresh token (rotated: keep the new one). A new id_token is verified again
        and, given the ``previous`` one, must be about the same subject (OIDC Core §12.2)."""
        response = self._token_request({"grant_type": "refresh_token", "refresh_token": refresh_token})
        tokens = self._tokens(
            response, expected_nonce=None, acr_values=(), max_age=None, id_token_required=False
        )
        claims = tokens.id_token_claims
        if previous is not None and claims is not None:
            if claims.subject != previous.subject:
                raise InvalidIdTokenError(TokenReason.WRONG_SUBJECT)
            if previous.auth_time is not None and claims.auth_time not in (None, previous.auth_time):
                raise InvalidIdTokenError(TokenReason.WRONG_SUBJECT, "auth_time changed on refresh")
        return tokens

    def userinfo(self, access_token: str, *, expected_subject: str | None = None) -> Mapping[str, Any]:
        """The userinfo claims; with ``expected_subject`` (the id_token's ``sub``), a mismatch raises
        (OIDC Core §5.3.2: token substitution)."""
        endpoint = self.metadata().userinfo_endpoint
        if endpoint is None:
            raise DiscoveryError("the provider has no userinfo endpoint")
        try:
            response = self.session.get(
                endpoint,
                headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise UserinfoError(f"userinfo unreachable: {type(exc).__name__}") from exc
        data = _json_object(response)
        if response.status_code != 200 or data is None:
            error = _www_authenticate_error(response) or (str(data.get("error", "")) if data else "")
            raise UserinfoError(
                f"HTTP {response.status_code} {error}".strip(),
                http_status=response.status_code,
                oauth_error=error,
            )
        sub = data.get("sub")
        if not isinstance(sub, str) or (expected_subject is not None and not _equal(sub, expected_subject)):
            raise UserinfoError("userinfo is about another subject", http_status=200)
        return _frozen(data)

    def logout_url(
        self,
        id_token_hint: str | None = None,
        post_logout_redirect_uri: str | None = None,
        state: str | None = None,
    ) -> str:
        """RP-Initiated Logout 1.0 §2: where to send the browser to end the OneCard session everywhere."""
        endpoint = self.metadata().end_session_endpoint
        if endpoint is None:
            raise DiscoveryError("the provider has no end_session_endpoint")
        params = {"client_id": self.client_id}
        if id_token_hint:
            params["id_token_hint"] = id_token_hint
        if post_logout_redirect_uri:
            params["post_logout_redirect_uri"] = post_logout_redirect_uri
            if state:
                params["state"] = state
        return endpoint + ("&" if "?" in endpoint else "?") + urlencode(params)

    # -- verification

    def verify_id_token(
        self,
        token: str,
        *,
        expected_nonce: str | None,
        acr_values: Collection[str] = (),
        max_age: int | None = None,
        access_token: str | None = None,
    ) -> VerifiedIdToken:
        """OIDC Core §3.1.3.7 in full; ``InvalidIdTokenError`` with the reason otherwise.

        ``expected_nonce`` None means the token must carry none (a refreshed id_token, §12.2).
        """
        now = self.clock()
        header, claims = self._verify_signed(token, InvalidIdTokenError)
        typ = str(header.get("typ", "JWT")).lower()
        if typ not in ("jwt", "application/jwt"):
            raise InvalidIdTokenError(TokenReason.WRONG_TYPE, f"typ {typ!r}")
        self._check_common(claims, InvalidIdTokenError, now)
        if "events" in claims:
            raise InvalidIdTokenError(TokenReason.WRONG_TYPE, "a security event token, not an id_token")
        exp = claims.get("exp")
        if type(exp) is not int:
            raise InvalidIdTokenError(TokenReason.MISSING_CLAIM, "exp")
        if now >= exp + self.clock_skew:
            raise InvalidIdTokenError(TokenReason.EXPIRED)
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise InvalidIdTokenError(TokenReason.MISSING_CLAIM, "sub")
        nonce = claims.get("nonce")
        if expected_nonce is not None:
            if not isinstance(nonce, str) or not _equal(nonce, expected_nonce):
                raise InvalidIdTokenError(TokenReason.WRONG_NONCE)
        elif nonce is not None:
            raise InvalidIdTokenError(TokenReason.WRONG_NONCE, "unexpected nonce")
        acr = claims.get("acr")
        if acr is not None and not isinstance(acr, str):
            raise InvalidIdTokenError(TokenReason.MALFORMED, "acr")
        if not acr_satisfies(acr, acr_values):
            raise InvalidIdTokenError(TokenReason.INSUFFICIENT_ACR, f"acr {acr!r}")
        auth_time = claims.get("auth_time")
        if auth_time is not None and type(auth_time) is not int:
            raise InvalidIdTokenError(TokenReason.MALFORMED, "auth_time")
        if max_age is not None:
            if auth_time is None:
                raise InvalidIdTokenError(TokenReason.MISSING_CLAIM, "auth_time")
            if now - auth_time > max_age + self.clock_skew:
                raise InvalidIdTokenError(TokenReason.AUTH_TOO_OLD)
        at_hash = claims.get("at_hash")
        if (access_token is not None and at_hash is not None) and (
            not isinstance(at_hash, str) or not _equal(at_hash, _half_hash(access_token))
        ):
            raise InvalidIdTokenError(TokenReason.WRONG_AT_HASH)
        amr = claims.get("amr", [])
        sid = claims.get("sid")
        audience = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        return VerifiedIdToken(
            subject=subject,
            issuer=self.issuer,
            audience=tuple(str(value) for value in audience),
            issued_at=int(claims["iat"]),
            expires_at=exp,
            auth_time=auth_time,
            acr=acr,
            amr=tuple(str(value) for value in amr) if isinstance(amr, list) else (),
            sid=sid if isinstance(sid, str) else None,
            nonce=nonce if isinstance(nonce, str) else None,
            claims=_frozen(claims),
        )

    def verify_logout_token(self, token: str) -> VerifiedLogoutToken:
        """Back-Channel Logout 1.0 §2.6; ``InvalidLogoutTokenError`` with the reason otherwise.

        A token is accepted once: its ``jti`` stays in the replay cache until it could no longer verify.
        """
        now = self.clock()
        header, claims = self._verify_signed(token, InvalidLogoutTokenError)
        typ = str(header.get("typ", "")).lower()
        if typ not in ("logout+jwt", "application/logout+jwt"):
            raise InvalidLogoutTokenError(TokenReason.WRONG_TYPE, f"typ {typ!r}")
        self._check_common(claims, InvalidLogoutTokenError, now)
        iat = int(claims["iat"])
        exp = claims.get("exp")
        if exp is not None and (type(exp) is not int or now >= exp + self.clock_skew):
            raise InvalidLogoutTokenError(TokenReason.EXPIRED)
        if now - iat > self.logout_token_max_age + self.clock_skew:
            raise InvalidLogoutTokenError(TokenReason.STALE)
        events = claims.get("events")
        if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_LOGOUT_EVENT), dict):
            raise InvalidLogoutTokenError(TokenReason.MISSING_EVENT)
        if "nonce" in claims:
            raise InvalidLogoutTokenError(TokenReason.NONCE_PRESENT)
        sub, sid = claims.get("sub"), claims.get("sid")
        if sub is not None and not (isinstance(sub, str) and sub):
            raise InvalidLogoutTokenError(TokenReason.MALFORMED, "sub")
        if sid is not None and not (isinstance(sid, str) and sid):
            raise InvalidLogoutTokenError(TokenReason.MALFORMED, "sid")
        if sub is None and sid is None:
            raise InvalidLogoutTokenError(TokenReason.MISSING_CLAIM, "sub or sid")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > 256:
            raise InvalidLogoutTokenError(TokenReason.MISSING_CLAIM, "jti")
        last_valid = max(iat + self.logout_token_max_age, exp if isinstance(exp, int) else 0)
        keep_until = last_valid + self.clock_skew
        if not self.replay_cache.mark_used(f"{self.issuer} {jti}", keep_until=keep_until, now=now):
            raise InvalidLogoutTokenError(TokenReason.REPLAYED)
        return VerifiedLogoutToken(
            issuer=self.issuer, subject=sub, sid=sid, jti=jti, issued_at=iat, claims=_frozen(claims)
        )

    def validate_logout_token(self, token: str) -> VerifiedLogoutToken:
        """The same as ``verify_logout_token`` (the name the issue uses)."""
        return self.verify_logout_token(token)

    # -- machinery

    def _verify_signed(
        self, token: str, error: type[TokenValidationError]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Header and claims of a JWT signed by a key of the provider's JWKS with an allowed algorithm."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            raise error(TokenReason.MALFORMED, "empty or too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise error(TokenReason.MALFORMED, type(exc).__name__) from exc
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALLOWED_ALGS:
            raise error(TokenReason.WRONG_ALGORITHM, f"alg {alg!r}")
        if not isinstance(kid, str) or not kid:
            raise error(TokenReason.UNKNOWN_KEY, "no kid")
        now = self.clock()
        jwks = self.jwks
        key = jwks.key_set(now).find(kid)
        if key is None and jwks.refresh_for_unknown_kid(kid, now):
            key = jwks.key_set(now).find(kid)
        if key is None:
            raise error(TokenReason.UNKNOWN_KEY, f"kid {kid!r}")
        if key.alg != alg:
            raise error(TokenReason.WRONG_ALGORITHM, f"alg {alg!r} for a {key.alg} key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.public_key,  # type: ignore[arg-type]
                algorithms=[key.alg],
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "verify_aud": False,
                    "verify_iss": False,
                },
            )
        except jwt.InvalidSignatureError as exc:
            raise error(TokenReason.TAMPERED) from exc
        except jwt.PyJWTError as exc:
            raise error(TokenReason.MALFORMED, type(exc).__name__) from exc
        return header, claims

    def _check_common(self, claims: Mapping[str, Any], error: type[TokenValidationError], now: float) -> None:
        """iss, aud, azp and iat: what id_tokens and logout tokens share."""
        if claims.get("iss") != self.issuer:
            raise error(TokenReason.WRONG_ISSUER)
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if self.client_id not in audiences:
            raise error(TokenReason.WRONG_AUDIENCE)
        azp = claims.get("azp")
        if (azp is not None and azp != self.client_id) or (len(audiences) > 1 and azp is None):
            raise error(TokenReason.WRONG_AUTHORIZED_PARTY)
        iat = claims.get("iat")
        if type(iat) is not int:
            raise error(TokenReason.MISSING_CLAIM, "iat")
        if iat > now + self.clock_skew:
            raise error(TokenReason.ISSUED_IN_FUTURE)

    def _client_auth(self, token_endpoint: str) -> tuple[dict[str, str], dict[str, str]]:
        """Headers and form fields that authenticate this client at the token endpoint."""
        if isinstance(self._credential, str):
            # RFC 6749 §2.3.1: form-encode id and secret before Basic.
            raw = f"{quote_plus(self.client_id)}:{quote_plus(self._credential)}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}, {}
        now = int(self.clock())
        assertion = jwt.encode(
            {
                "iss": self.client_id,
                "sub": self.client_id,
                "aud": token_endpoint,
                "jti": secrets.token_urlsafe(16),
                "iat": now,
                "exp": now + 60,
            },
            self._credential.private_key,  # type: ignore[arg-type]
            algorithm=self._credential.alg,
            headers={"kid": self._credential.kid},
        )
        return {}, {
            "client_id": self.client_id,
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": assertion,
        }

    def _token_request(self, form: dict[str, str]) -> dict[str, Any]:
        endpoint = self.metadata().token_endpoint
        headers, auth_fields = self._client_auth(endpoint)
        headers["Accept"] = "application/json"
        try:
            response = self.session.post(
                endpoint, data={**form, **auth_fields}, headers=headers, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise TokenRequestError(f"token endpoint unreachable: {type(exc).__name__}") from exc
        data = _json_object(response)
        if response.status_code != 200 or data is None:
            error = str(data.get("error", "")) if data else ""
            raise TokenRequestError(
                f"HTTP {response.status_code} {error}".strip(),
                http_status=response.status_code,
                oauth_error=error,
            )
        return data

    def _tokens(
        self,
        data: Mapping[str, Any],
        *,
        expected_nonce: str | None,
        acr_values: Collection[str],
        max_age: int | None,
        id_token_required: bool,
    ) -> PortalTokens:
        access_token = data.get("access_token")
        token_type = data.get("token_type")
        if not isinstance(access_token, str) or not isinstance(token_type, str):
            raise TokenRequestError("token response without access_token/token_type", http_status=200)
        if token_type.lower() != "bearer":
            raise TokenRequestError(f"unexpected token_type {token_type!r}", http_status=200)
        id_token = data.get("id_token")
        claims = None
        if isinstance(id_token, str):
            claims = self.verify_id_token(
                id_token,
                expected_nonce=expected_nonce,
                acr_values=acr_values,
                max_age=max_age,
                access_token=access_token,
            )
        elif id_token_required:
            raise InvalidIdTokenError(TokenReason.MISSING_CLAIM, "no id_token in the token response")
        expires_in = data.get("expires_in")
        refresh_token = data.get("refresh_token")
        scope = data.get("scope")
        return PortalTokens(
            access_token=access_token,
            token_type=token_type,
            expires_at=self.clock() + expires_in if isinstance(expires_in, int) else None,
            refresh_token=refresh_token if isinstance(refresh_token, str) else None,
            scope=tuple(scope.split()) if isinstance(scope, str) else (),
            id_token=id_token if isinstance(id_token, str) else None,
            id_token_claims=claims,
        )


def _callback_params(callback: str | Mapping[str, str]) -> dict[str, str]:
    if isinstance(callback, str):
        query = urlsplit(callback).query if "?" in callback or "://" in callback else callback
        pairs = parse_qsl(query, keep_blank_values=True)
        params: dict[str, str] = {}
        for name, value in pairs:
            if name in params:
                # RFC 6749 §3.1: parameters must not repeat; a second state or code is an attack.
                raise CallbackError(CallbackReason.WRONG_STATE, f"repeated parameter {name!r}")
            params[name] = value
        return params
    return {str(name): str(value) for name, value in callback.items()}


def _json_object(response: requests.Response) -> dict[str, Any] | None:
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _www_authenticate_error(response: requests.Response) -> str:
    header = response.headers.get("WWW-Authenticate", "")
    marker = 'error="'
    if marker in header:
        return header.split(marker, 1)[1].split('"', 1)[0]
    return ""
