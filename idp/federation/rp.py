"""Cross-region login, the relying-party side (docs/federation.md "Cross-region login"; /work/notes
protocol steps 2, 4, 5): this OneCard sends a citizen of another region to their home region's OneCard and
takes them back. Plain protocol code: the peer region (``PeerRegion``, after the trust chain's policies),
this deployment's ``federation-rp`` keys, a ``FederationHttp`` and ``now`` come in; no Flask, no database.

- the authorization request: a signed request object (RFC 9101 §4, ``typ`` ``oauth-authz-req+jwt``) with
  state, nonce and PKCE (RFC 7636, S256), sent as ``request`` to the home ``authorization_endpoint``;
- the code exchange with ``private_key_jwt`` (OIDC Core §9, RFC 7523 §2.2);
- the id_token's verification (OIDC Core §3.1.3.7) with the home region's JWKS, fetched through the
  federation's HTTP and cached briefly (``ProviderKeyCache``; an unknown ``kid`` refetches once: rotation);
- the userinfo call (OIDC Core §5.3.2: its ``sub`` must be the id_token's);
- the logout token's verification (OIDC Back-Channel Logout 1.0 §2.6).

Every failure is its own error class with a wire code; the reason for operators is ``detail`` (never PII),
what a citizen sees is the class's ``description``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Final
from urllib.parse import urlencode

from idp.federation.errors import FederationError
from idp.federation.regions import PeerRegion
from idp.federation.transport import FederationHttp, HttpAnswer
from idp.oauth.tokens import InvalidTokenError, sign_jwt, verify_jwt
from idp.scopes import (
    ACR_HIGH,
    ACR_LEVELS,
    ACR_SUBSTANTIAL,
    MASKED_ID_CLAIM,
    OPENID,
    PROFILE,
    REALNAME,
    SCOPE_CLAIMS,
)
from sdk.errors import InvalidRequestError, OneCardError
from sdk.jwks_cache import DEFAULT_UNKNOWN_KID_INTERVAL
from sdk.keys import InvalidKeyError, KeySet
from sdk.oidc import BACKCHANNEL_LOGOUT_EVENT, LOGOUT_TOKEN_TYPE, VERIFIED_CLAIM_NAMES, VERIFIED_CLAIMS

REQUEST_OBJECT_TYPE: Final = "oauth-authz-req+jwt"
REQUEST_LIFETIME: Final = 300  # request object (≤ 5 min, protocol step 2) and the state kept for it
ASSERTION_LIFETIME: Final = 60  # the client assertion at the home token endpoint
LEEWAY: Final = 30  # clock skew between regions, either way
LOGOUT_TOKEN_MAX_AGE: Final = 300  # a logout token issued longer ago is refused (its jti is not kept longer)
PROVIDER_KEYS_SECONDS: Final = 300  # how long a home region's JWKS is used before it is fetched again
CLIENT_ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_CLAIM_TEXT: Final = 255


# Errors: one class per wire code ---------------------------------------------------------------------------


class FederatedLoginError(OneCardError):
    """Base of cross-region login's errors; ``description`` is what the citizen's page says."""

    status_code: ClassVar[int] = 400


class UnknownRegionError(FederatedLoginError):
    """No region in the federation's directory is home for the code, entity or issuer asked for."""

    error = "unknown_region"
    description = "This OneCard does not know that region, or does not trust it now."


class RegionNotTrustedError(FederatedLoginError):
    """The home region lacks the trust mark the login needs (loa:high), or an endpoint it must have."""

    error = "region_not_trusted"
    description = "This service needs a login at a level the other region is not trusted for."
    status_code = 403


class InvalidStateError(FederatedLoginError):
    """The callback's ``state`` is unknown, already used, expired or from another browser."""

    error = "invalid_state"
    description = "This sign-in has expired or was started in another browser. Please start again."


class HomeLoginDeniedError(FederatedLoginError):
    """The home region answered the callback with an error (the citizen cancelled, or it refused)."""

    error = "home_login_denied"
    description = "Your home region did not complete the sign-in. You can start again."
    status_code = 403


class TokenExchangeError(FederatedLoginError):
    """The home token endpoint could not be reached or refused the code."""

    error = "token_exchange_failed"
    description = "Your home region could not be reached to finish the sign-in. Please try again later."
    status_code = 502


class InvalidIdTokenError(FederatedLoginError):
    """The home id_token failed verification; ``reason`` says which check (for logs and tests)."""

    error = "invalid_id_token"
    description = "Your home region's answer could not be verified. Please start again."

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UserinfoError(FederatedLoginError):
    """The home userinfo endpoint could not be reached, refused the token or answered another subject."""

    error = "userinfo_failed"
    description = "Your home region did not send your details. Please try again later."
    status_code = 502


class InvalidLogoutTokenError(InvalidRequestError):
    """A logout token that fails OIDC Back-Channel Logout §2.6 (``invalid_request``, §2.8)."""

    description = "The logout token is not valid."

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# The authorization request ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutgoingRequest:
    """What this deployment keeps of one authorization request sent to a home region, until its callback
    (in the short-lived store, taken once, under ``state``)."""

    state: str
    nonce: str
    code_verifier: str
    tx_id: str  # the login transaction the citizen came from
    home_entity_id: str
    browser: str  # the browser binding of the transaction
    redirect_uri: str
    created_at: float
    max_age: int | None = None  # the portal's, sent on to the home region: its auth_time must meet it
    scope: str = ""  # what was asked of the home region

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> OutgoingRequest:
        data = json.loads(raw)
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def provider_issuer(region: PeerRegion) -> str:
    issuer = region.provider.get("issuer")
    return issuer if isinstance(issuer, str) and issuer else region.entity_id


def _endpoint(region: PeerRegion, name: str) -> str:
    url = region.endpoint(name)
    if url is None:
        raise RegionNotTrustedError(f"{region.entity_id} publishes no {name}")
    return url


def home_scope(portal_scope: str, supported: str) -> str:
    """The scopes to ask the home region for: those of the portal's request that cross-region login
    supports (``supported``), and ``openid`` — so this deployment holds no more of the home register than
    the portal's request (and so its consent) covers."""
    asked = set(portal_scope.split())
    return " ".join(scope for scope in supported.split() if scope == OPENID or scope in asked)


def create_authorization_request(
    *,
    region: PeerRegion,
    client_id: str,
    redirect_uri: str,
    keys: KeySet,
    scope: str,
    tx_id: str,
    browser: str,
    acr_values: str,
    login_hint: str | None,
    ui_locales: str | None,
    now: float,
    prompt_login: bool = False,
    max_age: int | None = None,
) -> tuple[str, OutgoingRequest]:
    """The URL that sends the browser to the home region, and what to keep for its callback.

    ``prompt_login`` and ``max_age`` pass on the portal's demand for a fresh authentication (OIDC Core
    §3.1.2.1): the citizen authenticates at home, so only the home region can meet it — not its SSO session
    of hours ago."""
    endpoint = _endpoint(region, "authorization_endpoint")
    outgoing = OutgoingRequest(
        state=secrets.token_urlsafe(32),
        nonce=secrets.token_urlsafe(32),
        code_verifier=secrets.token_urlsafe(48),
        tx_id=tx_id,
        home_entity_id=region.entity_id,
        browser=browser,
        redirect_uri=redirect_uri,
        created_at=now,
        max_age=max_age,
        scope=scope,
    )
    iat = int(now)
    claims: dict[str, Any] = {
        "iss": client_id,
        "client_id": client_id,
        "aud": provider_issuer(region),
        "iat": iat,
        "nbf": iat,
        "exp": iat + REQUEST_LIFETIME,
        "jti": secrets.token_urlsafe(16),
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": outgoing.state,
        "nonce": outgoing.nonce,
        "code_challenge": _s256(outgoing.code_verifier),
        "code_challenge_method": "S256",
        "acr_values": acr_values,
    }
    if login_hint:
        claims["login_hint"] = login_hint
    if ui_locales:
        claims["ui_locales"] = ui_locales
    if prompt_login:
        claims["prompt"] = "login"
    if max_age is not None:
        claims["max_age"] = max_age
    request_object = sign_jwt(claims, keys.signing_key(), typ=REQUEST_OBJECT_TYPE)
    query = urlencode(
        {"client_id": client_id, "response_type": "code", "scope": scope, "request": request_object}
    )
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}", outgoing


# The code exchange ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HomeTokens:
    id_token: str
    access_token: str
    scope: str  # what the home region granted (RFC 6749 §5.1: the asked scope when it names none)


def create_client_assertion(*, keys: KeySet, client_id: str, audience: str, now: float) -> str:
    iat = int(now)
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": iat,
        "exp": iat + ASSERTION_LIFETIME,
        "jti": secrets.token_urlsafe(16),
    }
    return sign_jwt(claims, keys.signing_key(), typ="JWT")


def exchange_code(
    http: FederationHttp,
    *,
    region: PeerRegion,
    client_id: str,
    keys: KeySet,
    code: str,
    outgoing: OutgoingRequest,
    now: float,
) -> HomeTokens:
    endpoint = _endpoint(region, "token_endpoint")
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": outgoing.redirect_uri,
        "code_verifier": outgoing.code_verifier,
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": create_client_assertion(
            keys=keys, client_id=client_id, audience=endpoint, now=now
        ),
    }
    answer = _call(http, "POST", endpoint, TokenExchangeError, form=form)
    if answer.status != 200:
        refusal = answer.body[:200].decode("utf-8", "replace")  # an OAuth error: no PII
        raise TokenExchangeError(f"{region.entity_id} token endpoint answered {answer.status}: {refusal}")
    body = _json_object(answer, TokenExchangeError)
    id_token, access_token = body.get("id_token"), body.get("access_token")
    if not isinstance(id_token, str) or not isinstance(access_token, str):
        raise TokenExchangeError("the token response lacks id_token or access_token")
    if str(body.get("token_type", "")).lower() != "bearer":
        raise TokenExchangeError("the token response is not a Bearer token")
    granted = body.get("scope", outgoing.scope)
    if not isinstance(granted, str):
        raise TokenExchangeError("the token response's scope is not a string")
    return HomeTokens(id_token, access_token, granted)


def _call(
    http: FederationHttp,
    method: str,
    url: str,
    error: type[FederatedLoginError],
    *,
    headers: Mapping[str, str] | None = None,
    form: Mapping[str, str] | None = None,
) -> HttpAnswer:
    try:
        return http(method, url, headers=headers, form=form)
    except FederationError as exc:  # EntityUnreachableError and its kin
        raise error(f"{url}: {type(exc).__name__}") from exc


def _json_object(answer: HttpAnswer, error: type[FederatedLoginError]) -> dict[str, Any]:
    try:
        body = json.loads(answer.body)
    except ValueError:
        raise error("the answer is not JSON") from None
    if not isinstance(body, dict):
        raise error("the answer is not a JSON object")
    return body


# The home region's keys -------------------------------------------------------------------------------------


class ProviderKeyCache:
    """Home regions' JWKS by ``jwks_uri``, each for ``seconds`` after it was fetched (one per application);
    a ``kid`` the copy lacks refetches it, but only a copy older than ``refresh_interval``: the back-channel
    logout endpoint is open to anyone, and a stream of forged kids must not become a stream of requests to
    the home region (as ``sdk.jwks_cache``; a home region publishes a key before it signs with it)."""

    def __init__(
        self, seconds: float = PROVIDER_KEYS_SECONDS, refresh_interval: float = DEFAULT_UNKNOWN_KID_INTERVAL
    ) -> None:
        self._seconds = seconds
        self._refresh_interval = refresh_interval
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, KeySet]] = {}

    def keys(self, http: FederationHttp, region: PeerRegion, *, now: float, refresh: bool = False) -> KeySet:
        """The region's keys; ``refresh`` fetches them again (a ``kid`` the cached copy does not know)."""
        uri = _endpoint(region, "jwks_uri")
        with self._lock:
            entry = self._entries.get(uri)
        fresh_for = self._refresh_interval if refresh else self._seconds
        if entry is not None and 0 <= now - entry[0] < fresh_for:
            return entry[1]
        answer = _call(http, "GET", uri, InvalidIdTokenError)
        if answer.status != 200:
            raise InvalidIdTokenError("jwks_unreachable")
        try:
            keys = KeySet.from_jwks(_json_object(answer, InvalidIdTokenError))
        except (InvalidKeyError, ValueError, TypeError, KeyError):
            raise InvalidIdTokenError("jwks_malformed") from None
        with self._lock:
            self._entries[uri] = (now, keys)
        return keys


def _verify_with_refresh(
    token: str, keys_for: Callable[[bool], KeySet], verify: Callable[[KeySet], dict[str, Any]]
) -> dict[str, Any]:
    try:
        return verify(keys_for(False))
    except InvalidTokenError as exc:
        if exc.reason != "unknown_key":
            raise
    return verify(keys_for(True))  # the home region may have rotated its keys since the copy was fetched


# The id_token ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedHomeLogin:
    """A verified home id_token: who (the home region's pairwise ``sub`` for this deployment), how, which
    home session."""

    home_entity_id: str
    subject: str
    sid: str
    acr: str  # as the home region said; see ``accepted_acr``
    amr: tuple[str, ...]
    auth_time: float


def _short_text(value: Any) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_CLAIM_TEXT
        and value.isascii()
        and value.isprintable()
    )


def verify_id_token(
    token: str,
    *,
    keys_for: Callable[[bool], KeySet],
    region: PeerRegion,
    expected_audience: str,
    expected_nonce: str,
    algorithm: str,
    now: float,
    max_age: int | None = None,
) -> VerifiedHomeLogin:
    """OIDC Core §3.1.3.7: signature by the home region's key of ``algorithm`` (the
    ``id_token_signed_response_alg`` this deployment registered: no other key of the home JWKS counts), iss,
    aud (and azp), exp, iat, nonce; a known acr, an amr list, and a ``sid`` (this deployment registers with
    backchannel_logout_session_required); with ``max_age``, an ``auth_time`` no older (§3.1.3.7 item 13)."""
    issuer = provider_issuer(region)

    def verify(keys: KeySet) -> dict[str, Any]:
        return verify_jwt(
            token,
            keys=KeySet.of(key for key in keys if key.alg == algorithm),
            expected_issuer=issuer,
            expected_audience=expected_audience,
            now=now,
            leeway=LEEWAY,
        )

    try:
        claims = _verify_with_refresh(token, keys_for, verify)
    except InvalidTokenError as exc:
        raise InvalidIdTokenError(exc.reason) from None
    aud, azp = claims.get("aud"), claims.get("azp")
    if (azp is not None or (isinstance(aud, list) and len(aud) > 1)) and azp != expected_audience:
        raise InvalidIdTokenError("wrong_azp")  # OIDC Core §3.1.3.7 items 4 and 5
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or iat > now + LEEWAY or iat < now - REQUEST_LIFETIME - LEEWAY:
        raise InvalidIdTokenError("bad_iat")
    nonce = claims.get("nonce")
    if not isinstance(nonce, str) or not secrets.compare_digest(nonce.encode(), expected_nonce.encode()):
        raise InvalidIdTokenError("wrong_nonce")
    subject, sid = claims.get("sub"), claims.get("sid")
    if not _short_text(subject):
        raise InvalidIdTokenError("bad_sub")
    if not _short_text(sid):
        raise InvalidIdTokenError("missing_sid")
    acr = claims.get("acr")
    if acr not in ACR_LEVELS:
        raise InvalidIdTokenError("unknown_acr")
    amr = claims.get("amr", [])
    if not isinstance(amr, list) or not all(_short_text(method) for method in amr) or len(amr) > 10:
        raise InvalidIdTokenError("bad_amr")
    auth_time = claims.get("auth_time", None if max_age is not None else iat)
    if not isinstance(auth_time, int | float) or auth_time > now + LEEWAY:
        raise InvalidIdTokenError("bad_auth_time")
    if max_age is not None and now - auth_time > max_age + LEEWAY:
        raise InvalidIdTokenError("auth_too_old")
    return VerifiedHomeLogin(region.entity_id, str(subject), str(sid), str(acr), tuple(amr), float(auth_time))


def accepted_acr(login: VerifiedHomeLogin, region: PeerRegion, *, loa_high_trust_mark: str) -> str:
    """The acr this deployment vouches for: the home one, but ``loa:high`` only from a region holding the
    anchor's loa:high trust mark — from any other it is capped at ``loa:substantial`` (the login is still a
    login at home; this deployment just does not claim more than the federation vouches for). The caller
    then refuses the login if that is below what the portal asked for."""
    if login.acr == ACR_HIGH and loa_high_trust_mark not in region.trust_mark_types:
        return ACR_SUBSTANTIAL
    return login.acr


def can_log_in_at(region: PeerRegion, required_acr: str, *, loa_high_trust_mark: str) -> bool:
    """Whether a login at ``region`` can meet ``required_acr`` at all (checked before sending anyone)."""
    return required_acr != ACR_HIGH or loa_high_trust_mark in region.trust_mark_types


# Userinfo ----------------------------------------------------------------------------------------------


def fetch_userinfo(
    http: FederationHttp, *, region: PeerRegion, access_token: str, expected_subject: str
) -> dict[str, Any]:
    endpoint = _endpoint(region, "userinfo_endpoint")
    answer = _call(http, "GET", endpoint, UserinfoError, headers={"Authorization": f"Bearer {access_token}"})
    if answer.status != 200:
        raise UserinfoError(f"{region.entity_id} userinfo answered {answer.status}")
    body = _json_object(answer, UserinfoError)
    if body.get("sub") != expected_subject:
        raise UserinfoError("the userinfo sub is not the id_token's")  # OIDC Core §5.3.2
    return body


def releasable_home_claims(userinfo: Mapping[str, Any], *, scopes: Collection[str]) -> dict[str, Any]:
    """What this deployment keeps of the home userinfo, within ``scopes``: the profile claims (``profile``),
    the verified claims and the masked ID number (``realname``) — never a full ID number, whatever the home
    region sent."""
    kept: dict[str, Any] = {}
    for name in SCOPE_CLAIMS[PROFILE] if PROFILE in scopes else ():
        if name in userinfo and isinstance(userinfo[name], str | bool | int):
            kept[name] = userinfo[name]
    if REALNAME not in scopes:
        return kept
    verified = userinfo.get(VERIFIED_CLAIMS)
    if isinstance(verified, Mapping):
        claims = verified.get("claims")
        verification = verified.get("verification")
        if isinstance(claims, Mapping) and isinstance(verification, Mapping):
            kept[VERIFIED_CLAIMS] = {
                "verification": {
                    name: verification[name]
                    for name in ("trust_framework", "assurance_level", "time", "evidence")
                    if name in verification
                },
                "claims": {
                    name: claims[name] for name in VERIFIED_CLAIM_NAMES if isinstance(claims.get(name), str)
                },
            }
    masked = userinfo.get(MASKED_ID_CLAIM)
    if isinstance(masked, str) and "*" in masked:
        kept[MASKED_ID_CLAIM] = masked
    return kept


# Back-channel logout ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedLogout:
    home_entity_id: str
    subject: str | None
    sid: str | None
    jti: str
    expires_at: float


def find_logout_issuer(token: str) -> str:
    """The ``iss`` of a logout token, unverified: only to choose whose keys verify it."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, IndexError, AttributeError):
        raise InvalidLogoutTokenError("malformed") from None
    issuer = claims.get("iss") if isinstance(claims, dict) else None
    if not isinstance(issuer, str) or not issuer:
        raise InvalidLogoutTokenError("no_issuer")
    return issuer


def verify_logout_token(
    token: str, *, keys_for: Callable[[bool], KeySet], region: PeerRegion, expected_audience: str, now: float
) -> VerifiedLogout:
    """OIDC Back-Channel Logout §2.6: signed by the home region, iss, aud, iat (recent), exp, the event, a
    ``sub`` or ``sid``, no ``nonce``, a ``jti`` (the caller spends it once); ``typ`` if any is logout+jwt."""
    issuer = provider_issuer(region)

    def verify(keys: KeySet) -> dict[str, Any]:
        return verify_jwt(
            token,
            keys=keys,
            expected_issuer=issuer,
            expected_audience=expected_audience,
            now=now,
            leeway=LEEWAY,
        )

    try:
        claims = _verify_with_refresh(token, keys_for, verify)
        header = json.loads(
            base64.urlsafe_b64decode(token.split(".")[0] + "=" * (-len(token.split(".")[0]) % 4))
        )
    except InvalidTokenError as exc:
        raise InvalidLogoutTokenError(exc.reason) from None
    except ValueError:
        raise InvalidLogoutTokenError("malformed") from None
    typ = header.get("typ") if isinstance(header, dict) else None
    if typ is not None and str(typ).lower() not in (LOGOUT_TOKEN_TYPE, f"application/{LOGOUT_TOKEN_TYPE}"):
        raise InvalidLogoutTokenError("wrong_type")
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or iat > now + LEEWAY or iat < now - LOGOUT_TOKEN_MAX_AGE:
        raise InvalidLogoutTokenError("bad_iat")
    events = claims.get("events")
    if not isinstance(events, Mapping) or not isinstance(events.get(BACKCHANNEL_LOGOUT_EVENT), Mapping):
        raise InvalidLogoutTokenError("no_logout_event")
    if "nonce" in claims:
        raise InvalidLogoutTokenError("nonce_present")
    subject, sid, jti = claims.get("sub"), claims.get("sid"), claims.get("jti")
    if subject is not None and not _short_text(subject):
        raise InvalidLogoutTokenError("bad_sub")
    if sid is not None and not _short_text(sid):
        raise InvalidLogoutTokenError("bad_sid")
    if subject is None and sid is None:
        raise InvalidLogoutTokenError("no_sub_or_sid")
    if not _short_text(jti):
        raise InvalidLogoutTokenError("no_jti")
    return VerifiedLogout(region.entity_id, subject, sid, str(jti), float(claims["exp"]))
