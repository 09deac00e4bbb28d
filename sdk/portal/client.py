"""The HTTP side of ``sdk.portal``: ``PortalClient``, one portal registered at one OneCard provider.

It fetches and caches discovery (OIDC Discovery 1.0 §4, ``Cache-Control``-aware) and the JWKS
(``sdk.jwks_cache.JwksCache``: cache headers, ETag, one rate-limited refresh on an unknown ``kid``), starts
the code flow with PKCE, redeems codes and refresh tokens at the token endpoint (``client_secret_basic`` or
``private_key_jwt``), reads userinfo and builds the RP-initiated logout URL. With
``pushed_authorization_requests`` the authorization request is pushed (RFC 9126, as FAPI 2.0 requires) and
the browser carries only ``client_id`` and ``request_uri``. The checks themselves are the
pure ``sdk.portal.authorization`` and ``sdk.portal.verification``; this module supplies them keys and the
``clock``'s ``now``, and keeps the logout-token replay cache. With a ``DpopKey`` its tokens are DPoP-bound
(RFC 9449): every token request and userinfo call carries a proof of that key.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote_plus, urlencode

import requests

from sdk.client_assertion import client_assertion_fields
from sdk.clock import Clock, system_clock
from sdk.dpop import SCHEME as DPOP_SCHEME
from sdk.dpop import DpopKey, DpopSigner
from sdk.gate import ReplayCache
from sdk.jwks_cache import DEFAULT_HTTP_TIMEOUT, DEFAULT_UNKNOWN_KID_INTERVAL, DocumentSync, JwksCache
from sdk.keys import Key, KeySet
from sdk.oidc import OPENID, PROFILE
from sdk.portal import verification
from sdk.portal._util import equal, frozen
from sdk.portal.authorization import AuthorizationStart, parse_callback, pkce_challenge, validate_callback
from sdk.portal.errors import (
    DiscoveryError,
    InvalidIdTokenError,
    InvalidLogoutTokenError,
    PushedRequestError,
    TokenReason,
    TokenRequestError,
    TokenValidationError,
    UserinfoError,
)
from sdk.portal.metadata import ProviderMetadata, parse_provider_metadata
from sdk.portal.verification import (
    ALLOWED_ALGS,
    DEFAULT_CLOCK_SKEW,
    LOGOUT_TOKEN_MAX_AGE,
    VerifiedIdToken,
    VerifiedLogoutToken,
    logout_token_keep_until,
    parse_jose_header,
)

DEFAULT_SCOPE: Final = f"{OPENID} {PROFILE}"


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


class _DiscoverySync(DocumentSync[ProviderMetadata]):
    kind = "discovery document"

    def __init__(self, issuer: str, **kwargs: Any) -> None:
        self.expected_issuer = issuer
        super().__init__(issuer + "/.well-known/openid-configuration", **kwargs)

    def _parse(self, document: Any) -> ProviderMetadata:
        return parse_provider_metadata(document, expected_issuer=self.expected_issuer)


class PortalClient:
    """One portal registered at one OneCard provider.

    ``credential`` is the client secret (``client_secret_basic``) or a ``sdk.keys.Key`` with a private part
    (``private_key_jwt``, the key registered in the client's JWKS). ``clock`` is read for every time check.
    ``dpop_key``: the portal's DPoP key (kept by the portal, e.g. for the life of its process); tokens are
    then bound to it and useless to anyone who steals them without it. ``require_dpop``: a ``Bearer`` token
    response (a downgrade) is refused. ``pushed_authorization_requests``: ``authorization_url`` pushes the
    request first (RFC 9126), with the client's authentication and, given a key, a DPoP proof (which binds
    the code to the key, RFC 9449 §10.1).
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
        dpop_key: DpopKey | None = None,
        require_dpop: bool = False,
        pushed_authorization_requests: bool = False,
    ) -> None:
        if require_dpop and dpop_key is None:
            raise ValueError("require_dpop needs a dpop_key")
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
        self._dpop = DpopSigner(dpop_key, clock=clock) if dpop_key is not None else None
        self.require_dpop = require_dpop
        self.pushed_authorization_requests = pushed_authorization_requests

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
        """Where to send the browser, and what to keep until it comes back (pushed first, when the client is
        configured for it: ``PushedRequestError`` if the provider refuses)."""
        scopes = scope.split() if isinstance(scope, str) else list(scope)
        if OPENID not in scopes:
            scopes.insert(0, OPENID)
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
            "code_challenge": pkce_challenge(verifier),
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
        if self.pushed_authorization_requests:
            params = {"client_id": self.client_id, "request_uri": self._push(params)}
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
        params = parse_callback(callback)
        validate_callback(params, expected_state=start.state, expected_issuer=self.issuer)
        response = self._token_request(
            {
                "grant_type": "authorization_code",
                "code": params["code"],
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

    def userinfo(
        self, access_token: str, *, expected_subject: str | None = None, token_type: str | None = None
    ) -> Mapping[str, Any]:
        """The userinfo claims; with ``expected_subject`` (the id_token's ``sub``), a mismatch raises
        (OIDC Core §5.3.2: token substitution). ``token_type`` is the token response's (``PortalTokens``);
        left out, a client with a DPoP key presents a DPoP token, others a Bearer one."""
        endpoint = self.metadata().userinfo_endpoint
        if endpoint is None:
            raise DiscoveryError("the provider has no userinfo endpoint")
        dpop = self._dpop if (token_type or DPOP_SCHEME).lower() == DPOP_SCHEME.lower() else None
        scheme = DPOP_SCHEME if dpop is not None else "Bearer"

        def send(extra: dict[str, str]) -> requests.Response:
            headers = {"Authorization": f"{scheme} {access_token}", "Accept": "application/json", **extra}
            return self.session.get(endpoint, headers=headers, timeout=self.timeout)

        try:
            if dpop is None:
                response = send({})
            else:
                response = dpop.send("GET", endpoint, send, access_token=access_token)
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
        if not isinstance(sub, str) or (expected_subject is not None and not equal(sub, expected_subject)):
            raise UserinfoError("userinfo is about another subject", http_status=200)
        return frozen(data)

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
        keys = self._provider_keys(token, InvalidIdTokenError, now)
        return verification.verify_id_token(
            token,
            keys=keys,
            expected_issuer=self.issuer,
            expected_client_id=self.client_id,
            expected_nonce=expected_nonce,
            acr_values=acr_values,
            max_age=max_age,
            access_token=access_token,
            now=now,
            clock_skew=self.clock_skew,
        )

    def verify_logout_token(self, token: str) -> VerifiedLogoutToken:
        """Back-Channel Logout 1.0 §2.6; ``InvalidLogoutTokenError`` with the reason otherwise.

        A token is accepted once: its ``jti`` stays in the replay cache until it could no longer verify.
        """
        now = self.clock()
        keys = self._provider_keys(token, InvalidLogoutTokenError, now)
        verified = verification.verify_logout_token(
            token,
            keys=keys,
            expected_issuer=self.issuer,
            expected_client_id=self.client_id,
            now=now,
            clock_skew=self.clock_skew,
            max_age=self.logout_token_max_age,
        )
        # Last, so a token refused for any other reason is not remembered.
        keep_until = logout_token_keep_until(
            verified, clock_skew=self.clock_skew, max_age=self.logout_token_max_age
        )
        if not self.replay_cache.mark_used(f"{self.issuer} {verified.jti}", keep_until=keep_until, now=now):
            raise InvalidLogoutTokenError(TokenReason.REPLAYED)
        return verified

    def validate_logout_token(self, token: str) -> VerifiedLogoutToken:
        """The same as ``verify_logout_token`` (the name the issue uses)."""
        return self.verify_logout_token(token)

    # -- machinery

    def _provider_keys(self, token: str, error: type[TokenValidationError], now: float) -> KeySet:
        """The provider's keys for ``token``: refetched once (rate-limited) if they lack its ``kid``.

        The header is checked first, so a malformed token is refused without fetching anything.
        """
        kid = parse_jose_header(token, error=error)["kid"]
        jwks = self.jwks
        keys = jwks.key_set(now)
        if keys.find(kid) is None and jwks.refresh_for_unknown_kid(kid, now):
            keys = jwks.key_set(now)
        return keys

    def _client_auth(self) -> tuple[dict[str, str], dict[str, str]]:
        """Headers and form fields that authenticate this client at the token and PAR endpoints."""
        if isinstance(self._credential, str):
            # RFC 6749 §2.3.1: form-encode id and secret before Basic.
            raw = f"{quote_plus(self.client_id)}:{quote_plus(self._credential)}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}, {}
        # The issuer as audience: what every OneCard endpoint accepts, and all a FAPI 2.0 client may name.
        return {}, client_assertion_fields(
            client_id=self.client_id, audience=self.issuer, key=self._credential, now=self.clock()
        )

    def _authenticated_post(self, endpoint: str, form: Mapping[str, str]) -> requests.Response:
        """A back-channel POST with the client's authentication and, given a key, a DPoP proof."""

        def send(extra: dict[str, str]) -> requests.Response:
            # A fresh client assertion each time: a retry must not replay the first one's jti.
            headers, auth_fields = self._client_auth()
            headers = {**headers, "Accept": "application/json", **extra}
            return self.session.post(
                endpoint, data={**form, **auth_fields}, headers=headers, timeout=self.timeout
            )

        return send({}) if self._dpop is None else self._dpop.send("POST", endpoint, send)

    def _push(self, params: Mapping[str, str]) -> str:
        """RFC 9126 §2: push the authorization request; its ``request_uri``."""
        endpoint = self.metadata().pushed_authorization_request_endpoint
        if endpoint is None:
            raise DiscoveryError("the provider has no pushed_authorization_request_endpoint")
        try:
            response = self._authenticated_post(endpoint, params)
        except requests.RequestException as exc:
            raise PushedRequestError(f"PAR endpoint unreachable: {type(exc).__name__}") from exc
        data = _json_object(response)
        request_uri = data.get("request_uri") if data else None
        if response.status_code != 201 or not isinstance(request_uri, str) or not request_uri:
            error = str(data.get("error", "")) if data else ""
            raise PushedRequestError(
                f"HTTP {response.status_code} {error}".strip(),
                http_status=response.status_code,
                oauth_error=error,
            )
        return request_uri

    def _token_request(self, form: dict[str, str]) -> dict[str, Any]:
        endpoint = self.metadata().token_endpoint
        try:
            response = self._authenticated_post(endpoint, form)
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
        if self.require_dpop:
            accepted: tuple[str, ...] = (DPOP_SCHEME.lower(),)  # a Bearer answer would be a downgrade
        elif self._dpop is not None:
            accepted = ("bearer", DPOP_SCHEME.lower())
        else:
            accepted = ("bearer",)
        if token_type.lower() not in accepted:
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
