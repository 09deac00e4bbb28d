"""Client registration: validation of metadata, secrets handed out once, listing and removal."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import String, select
from sqlalchemy.orm import Session

from idp.bearer_secrets import generate_bearer_secret, hash_bearer_secret
from idp.clients.errors import ClientExistsError, ClientNotFoundError, InvalidClientMetadataError
from idp.clients.model import Client
from idp.db import utc_from_timestamp
from idp.scopes import ALL_SCOPES, CITIZEN_SCOPES, OPENID, SERVICE_SCOPES
from sdk.keys import InvalidKeyError, KeySet

# Bearer secrets carry their kind (STYLE.md "Names"); only the hash is stored.
CLIENT_SECRET_PREFIX = "occs_"
# A "device" is a registered terminal (a service hall's counter), a "kiosk" a self-service terminal (its
# kiosk pages, halls/kiosk): both private_key_jwt only, their keys replaceable.
CLIENT_KINDS = ("portal", "operator", "venue", "device", "kiosk")
KEYED_KINDS = ("device", "kiosk")
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")
ID_TOKEN_ALGS = ("RS256", "ES256")
FAPI_ID_TOKEN_ALGS = ("ES256",)  # of ID_TOKEN_ALGS, those FAPI 2.0 allows
SUBJECT_TYPES = ("pairwise", "public")
# The security-policy flags of a registration (idp.oauth.fapi, idp.oauth.par, idp.oauth.request_object, DPoP).
CLIENT_POLICY_FLAGS = (
    "fapi2_security_profile",
    "require_pushed_authorization_requests",
    "require_signed_request_object",
    "dpop_bound_access_tokens",
)


def _column_length(field: str) -> int:
    column_type = Client.__table__.c[field].type
    assert isinstance(column_type, String) and column_type.length is not None
    return column_type.length


# The longest value of each free-text field: its column's size, so that no database refuses (PostgreSQL) or
# silently keeps (SQLite) what validation let through. The admin API's contract states the same limits.
MAX_CLIENT_FIELD_LENGTHS = {
    field: _column_length(field)
    for field in ("client_id", "name", "scope", "sector_identifier", "backchannel_logout_uri")
}


@dataclass(frozen=True)
class ClientRegistration:
    name: str
    kind: str = "portal"
    redirect_uris: Sequence[str] = ()
    post_logout_redirect_uris: Sequence[str] = ()
    scope: str = "openid profile"
    token_endpoint_auth_method: str = "client_secret_basic"
    jwks: dict[str, Any] | None = None
    subject_type: str = "pairwise"
    sector_identifier: str | None = None
    id_token_signed_response_alg: str | None = None  # None: id_token_alg's default
    first_party: bool = False
    id_number_allowed: bool = False
    backchannel_logout_uri: str | None = None
    client_id: str | None = None
    fapi2_security_profile: bool = False
    require_pushed_authorization_requests: bool = False
    require_signed_request_object: bool = False
    dpop_bound_access_tokens: bool = False

    @property
    def id_token_alg(self) -> str:
        """The id_token algorithm asked for, or the default: ES256 for a FAPI 2.0 client (§5.4.1 allows no
        RS256), RS256 for the others."""
        if self.id_token_signed_response_alg is not None:
            return self.id_token_signed_response_alg
        return "ES256" if self.fapi2_security_profile else "RS256"


def _validate_uri(uri: str, what: str) -> None:
    """https, or plain http on a loopback host only (RFC 8252 §7.3, for development and native apps)."""
    try:
        parts = urlsplit(uri)
    except ValueError as exc:
        raise InvalidClientMetadataError(f"{what}: {exc}", description=f"{what} is not a valid URL") from exc
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise InvalidClientMetadataError(what, description=f"{what} must use https: {uri}")
    if not parts.netloc or parts.fragment:
        raise InvalidClientMetadataError(
            what, description=f"{what} must be absolute and without fragment: {uri}"
        )


def _validate_jwks(jwks: Any) -> None:
    try:
        keys = KeySet.from_jwks(jwks if isinstance(jwks, dict) else {})
    except InvalidKeyError as exc:
        raise InvalidClientMetadataError(str(exc), description="jwks is not a valid JWK Set") from exc
    if not len(keys):
        raise InvalidClientMetadataError("jwks", description="private_key_jwt needs a jwks with a public key")


def validate_registration(reg: ClientRegistration) -> list[str]:
    """Check the metadata; returns the grant types the client gets."""
    if not reg.name.strip():
        raise InvalidClientMetadataError("name", description="name is required (at most 200 characters)")
    for field, longest in MAX_CLIENT_FIELD_LENGTHS.items():
        value = getattr(reg, field)
        if value is not None and len(value) > longest:
            raise InvalidClientMetadataError(field, description=f"{field} has at most {longest} characters")
    if reg.kind not in CLIENT_KINDS:
        raise InvalidClientMetadataError("kind", description=f"kind must be one of {', '.join(CLIENT_KINDS)}")
    if reg.token_endpoint_auth_method not in AUTH_METHODS:
        raise InvalidClientMetadataError(
            "auth", description=f"token_endpoint_auth_method must be one of {', '.join(AUTH_METHODS)}"
        )
    if reg.id_token_alg not in ID_TOKEN_ALGS:
        raise InvalidClientMetadataError(
            "alg", description="id_token_signed_response_alg must be RS256 or ES256"
        )
    if reg.fapi2_security_profile and reg.id_token_alg not in FAPI_ID_TOKEN_ALGS:
        # FAPI 2.0 Security Profile §5.4.1: PS256, ES256 or EdDSA only.
        raise InvalidClientMetadataError(
            "fapi2", description="a FAPI 2.0 client's id_token_signed_response_alg must be ES256"
        )
    if reg.subject_type not in SUBJECT_TYPES:
        raise InvalidClientMetadataError(
            "subject_type", description="subject_type must be pairwise or public"
        )
    scopes = reg.scope.split()
    unknown = [s for s in scopes if s not in ALL_SCOPES]
    if unknown:
        raise InvalidClientMetadataError("scope", description=f"unknown scopes: {' '.join(unknown)}")
    if reg.fapi2_security_profile and reg.token_endpoint_auth_method != "private_key_jwt":
        # FAPI 2.0 Security Profile §5.3.2.1: no shared secrets.
        raise InvalidClientMetadataError(
            "fapi2", description="a FAPI 2.0 client must use token_endpoint_auth_method private_key_jwt"
        )
    if reg.require_signed_request_object and reg.token_endpoint_auth_method != "private_key_jwt":
        # Request objects are verified with the client's registered keys (RFC 9101 §6.1).
        raise InvalidClientMetadataError(
            "jar", description="require_signed_request_object needs private_key_jwt and its jwks"
        )
    if reg.kind in KEYED_KINDS and reg.token_endpoint_auth_method != "private_key_jwt":
        # A device keeps a private key, never a shared secret (DESIGN.md §14: devices with their own keys).
        raise InvalidClientMetadataError("auth", description=f"a {reg.kind} client must use private_key_jwt")
    if reg.token_endpoint_auth_method == "private_key_jwt":
        _validate_jwks(reg.jwks)
    for uri in reg.redirect_uris:
        _validate_uri(uri, "redirect_uri")
    for uri in reg.post_logout_redirect_uris:
        _validate_uri(uri, "post_logout_redirect_uri")
    if reg.backchannel_logout_uri:
        _validate_uri(reg.backchannel_logout_uri, "backchannel_logout_uri")
    citizen = [s for s in scopes if s in CITIZEN_SCOPES]
    service = [s for s in scopes if s in SERVICE_SCOPES]
    grant_types = []
    if citizen:
        if OPENID not in scopes:
            raise InvalidClientMetadataError("scope", description="citizen scopes need 'openid'")
        if not reg.redirect_uris:
            raise InvalidClientMetadataError(
                "redirect_uris", description="a portal needs at least one redirect_uri"
            )
        grant_types += ["authorization_code", "refresh_token"]
    if service:
        grant_types.append("client_credentials")
    if not grant_types:
        raise InvalidClientMetadataError("scope", description="the client needs at least one scope")
    return grant_types


def create_client(session: Session, reg: ClientRegistration, *, now: float) -> tuple[Client, str | None]:
    """Register a client; returns it and its secret (shown once), or None for private_key_jwt clients."""
    grant_types = validate_registration(reg)
    client_id = reg.client_id or "oc_" + secrets.token_hex(8)
    if session.get(Client, client_id) is not None:
        raise ClientExistsError(client_id)
    secret = None
    if reg.token_endpoint_auth_method != "private_key_jwt":
        secret = generate_bearer_secret(CLIENT_SECRET_PREFIX)
    client = Client(
        client_id=client_id,
        name=reg.name.strip(),
        kind=reg.kind,
        client_secret_hash=hash_bearer_secret(secret) if secret else None,
        token_endpoint_auth_method=reg.token_endpoint_auth_method,
        jwks=reg.jwks,
        redirect_uris=list(reg.redirect_uris),
        post_logout_redirect_uris=list(reg.post_logout_redirect_uris),
        grant_types=grant_types,
        scope=" ".join(dict.fromkeys(reg.scope.split())),
        subject_type=reg.subject_type,
        sector_identifier=reg.sector_identifier,
        id_token_signed_response_alg=reg.id_token_alg,
        first_party=reg.first_party,
        id_number_allowed=reg.id_number_allowed,
        backchannel_logout_uri=reg.backchannel_logout_uri,
        fapi2_security_profile=reg.fapi2_security_profile,
        require_pushed_authorization_requests=reg.require_pushed_authorization_requests,
        require_signed_request_object=reg.require_signed_request_object,
        dpop_bound_access_tokens=reg.dpop_bound_access_tokens,
        created_at=utc_from_timestamp(now),
    )
    session.add(client)
    session.flush()
    return client, secret


def find_client(session: Session, client_id: str) -> Client | None:
    if not isinstance(client_id, str) or not client_id or len(client_id) > 64:
        return None
    return session.get(Client, client_id)


def get_client(session: Session, client_id: str) -> Client:
    client = find_client(session, client_id)
    if client is None:
        raise ClientNotFoundError(client_id)
    return client


def list_clients(session: Session) -> list[Client]:
    return list(session.scalars(select(Client).order_by(Client.created_at)))


def replace_client_jwks(session: Session, client_id: str, jwks: Any) -> Client:
    """Key rotation of a ``private_key_jwt`` client: its registered JWK Set becomes ``jwks`` (which may hold
    the old key beside the new one while the client switches). Assertions signed by a key no longer in the
    set are refused from the next request on."""
    client = get_client(session, client_id)
    if client.token_endpoint_auth_method != "private_key_jwt":
        raise InvalidClientMetadataError(
            "auth", description="only a private_key_jwt client has keys to replace"
        )
    _validate_jwks(jwks)
    client.jwks = jwks
    session.flush()
    return client


def remove_client(session: Session, client_id: str) -> None:
    session.delete(get_client(session, client_id))


def describe_client(client: Client) -> dict[str, Any]:
    """The client's metadata as the admin API and CLI show it (never the secret hash)."""
    return {
        "client_id": client.client_id,
        "name": client.name,
        "kind": client.kind,
        "redirect_uris": client.redirect_uris,
        "post_logout_redirect_uris": client.post_logout_redirect_uris,
        "grant_types": client.grant_types,
        "scope": client.scope,
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "subject_type": client.subject_type,
        "sector_identifier": client.sector,
        "id_token_signed_response_alg": client.id_token_signed_response_alg,
        "first_party": client.first_party,
        "id_number_allowed": client.id_number_allowed,
        "backchannel_logout_uri": client.backchannel_logout_uri,
        "fapi2_security_profile": client.fapi2_security_profile,
        "require_pushed_authorization_requests": client.require_pushed_authorization_requests,
        "require_signed_request_object": client.require_signed_request_object,
        "dpop_bound_access_tokens": client.dpop_bound_access_tokens,
        "created_at": client.created_at.isoformat(),
    }
