"""client_credentials at the token endpoint on the lean path (RFC 6749 §4.4, §2.3.1; RFC 9068 tokens).

``parse_token_request`` takes only the plainest form of the request: ``grant_type=client_credentials`` and
an optional ``scope``, the client authenticated by ``client_secret_basic`` or ``client_secret_post``, each
parameter once, printable ASCII, no DPoP proof. ``grant_scope`` then applies the rules Authlib's path
applies (idp.oauth.server): the client exists, is registered for the method it used and for
client_credentials, is not bound to DPoP or FAPI 2.0, its secret matches the stored hash, and every scope
asked is a service scope it is registered for. Where either says None the full path answers instead — with
its refusal, or with whatever it makes of a request this module does not read — so no refusal is written
twice. The token is the same JWT the full path issues (``issue_access_token``), so introspection and
revocation (a stateless signature check plus the revoked-jti list in the shared store) work on every node.

Client registrations are cached per process for ``CLIENT_CACHE_SECONDS`` (1 s, on the injected clock): the
row is read with one primary-key SELECT in SQLAlchemy Core (no ORM identity map or attribute loading) at most
once a second per client, instead of on every request (it was most of the lean path's time). A client
removed or edited on any node is seen by every node within that second. Why a TTL and not a version check:
a check against the database costs the same SELECT the cache saves, and the window is small beside what a
removal leaves anyway — the tokens the client already holds stay valid for ``access_token_ttl`` (600 s).
A secret that does not match the cached hash is not refused here: the request goes to the full path, which
reads the row afresh, so a new secret works at once and only an old one may live on for that second.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from dataclasses import dataclass
from urllib.parse import unquote_plus

from sqlalchemy import Engine, bindparam, select

from idp.bearer_secrets import matches_hash
from idp.clients.model import Client
from idp.keys.service import OIDC_ES256, KeyRing
from idp.oauth.server import granted_service_scope
from idp.oauth.tokens import issue_access_token

GRANT_TYPE = "client_credentials"
MAX_BODY_BYTES = 4096  # a plain client_credentials body is under 200 bytes; anything larger goes to Flask
MAX_CLIENT_ID_LENGTH = 64  # as idp.clients.service.find_client
CLIENT_CACHE_SECONDS = 1.0
MAX_CACHED_CLIENTS = 10_000  # registrations are hundreds; the bound only keeps memory finite
_TOKEN_PARAMETERS = frozenset({"grant_type", "scope"})
_POST_CREDENTIALS = frozenset({"client_id", "client_secret"})
_CLIENT_ROW = select(
    Client.client_secret_hash,
    Client.token_endpoint_auth_method,
    Client.grant_types,
    Client.scope,
    Client.fapi2_security_profile,
    Client.dpop_bound_access_tokens,
).where(Client.client_id == bindparam("client_id"))


@dataclass(frozen=True)
class TokenRequest:
    client_id: str
    client_secret: str
    method: str  # client_secret_basic | client_secret_post
    scope: str | None


@dataclass(frozen=True)
class IssuedToken:
    body: bytes  # the JSON answer, as Authlib's path writes it
    client_id: str


def _plain(value: str) -> bool:
    return value.isascii() and value.isprintable()


def _form(body: bytes) -> dict[str, str] | None:
    """``application/x-www-form-urlencoded`` with each name once and every value printable ASCII."""
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        return None
    params: dict[str, str] = {}
    for pair in text.split("&"):
        name, sep, raw = pair.partition("=")
        if not sep or name in params or not name.isidentifier():
            return None
        value = unquote_plus(raw)
        if not _plain(value):
            return None
        params[name] = value
    return params


def _basic_credentials(authorization: str) -> tuple[str, str] | None:
    """RFC 6749 §2.3.1 ``Basic``; credentials with percent-escapes (form-encoded before base64) are left to
    Authlib's decoding on the full path."""
    scheme, _, encoded = authorization.partition(" ")
    if scheme != "Basic":
        return None
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    if not sep or "%" in decoded or "+" in decoded or not _plain(decoded):
        return None
    return client_id, secret


def parse_token_request(body: bytes, *, authorization: str | None) -> TokenRequest | None:
    """The request if it is a plain client_credentials request the lean path reads, else None."""
    params = _form(body)
    if params is None or params.get("grant_type") != GRANT_TYPE:
        return None
    names = params.keys()
    scope = params.get("scope")
    if scope == "":
        return None
    if authorization is not None:
        credentials = _basic_credentials(authorization)
        if credentials is None or not names <= _TOKEN_PARAMETERS:
            return None
        client_id, secret = credentials
        method = "client_secret_basic"
    else:
        if not names <= _TOKEN_PARAMETERS | _POST_CREDENTIALS or not names >= _POST_CREDENTIALS:
            return None
        client_id, secret = params["client_id"], params["client_secret"]
        method = "client_secret_post"
    if not client_id or not secret or len(client_id) > MAX_CLIENT_ID_LENGTH:
        return None
    return TokenRequest(client_id, secret, method, scope)


@dataclass(frozen=True)
class Registration:
    """What the lean path needs of a client that may use it (every other client is not cached)."""

    secret_hash: str
    method: str
    scopes: frozenset[str]
    read_at: float


class Registrations:
    """Client registrations read from the database, kept ``CLIENT_CACHE_SECONDS`` (see the module doc)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._cached: dict[str, Registration | None] = {}
        self._read_at: dict[str, float] = {}
        self._lock = threading.Lock()

    def find(self, client_id: str, *, now: float) -> Registration | None:
        """The client's registration if it may take the lean path, else None (unknown clients included)."""
        read_at = self._read_at.get(client_id)
        if read_at is not None and 0 <= now - read_at < CLIENT_CACHE_SECONDS:
            return self._cached.get(client_id)
        registration = self._read(client_id, now=now)
        with self._lock:
            if len(self._read_at) >= MAX_CACHED_CLIENTS:
                self._cached.clear()
                self._read_at.clear()
            self._cached[client_id] = registration
            self._read_at[client_id] = now
        return registration

    def _read(self, client_id: str, *, now: float) -> Registration | None:
        with self._engine.connect() as connection:
            row = connection.execute(_CLIENT_ROW, {"client_id": client_id}).first()
        if row is None:
            return None
        secret_hash, method, grant_types, scope, fapi2, dpop_bound = row
        # Client.check_endpoint_auth_method, Client.requires_dpop, Client.check_grant_type.
        if fapi2 or dpop_bound or not secret_hash or GRANT_TYPE not in grant_types:
            return None
        return Registration(secret_hash, method, frozenset(scope.split()), now)


def grant_scope(registrations: Registrations, request: TokenRequest, *, now: float) -> str | None:
    """The scope Authlib's path would grant this request, or None where the full path must answer."""
    registration = registrations.find(request.client_id, now=now)
    if registration is None or registration.method != request.method:
        return None
    if not matches_hash(request.client_secret, registration.secret_hash):
        return None
    return granted_service_scope(set(registration.scopes), request.scope)


def issue_token(
    request: TokenRequest, scope: str, *, keyring: KeyRing, issuer: str, ttl: int, now: float
) -> IssuedToken:
    """The token and its JSON answer, as ``OneCardAuthorizationServer.generate_token`` and Authlib give
    them."""
    access = issue_access_token(
        keys=keyring.key_set(OIDC_ES256.name, now=now),
        issuer=issuer,
        client_id=request.client_id,
        subject=request.client_id,
        scope=scope,
        ttl=ttl,
        now=now,
    )
    answer = {
        "access_token": access.token,
        "token_type": "Bearer",
        "expires_in": access.expires_in,
        "scope": scope,
    }
    # flask.json as Authlib calls it: sorted keys, the default separators.
    return IssuedToken(json.dumps(answer, sort_keys=True).encode(), request.client_id)
