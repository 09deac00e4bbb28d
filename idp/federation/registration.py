"""Automatic registration (OpenID Federation 1.0 §12.1): another region's OneCard is a client of this one by
its entity id, with no registration by staff.

When a ``client_id`` that is an entity id reaches the OAuth server and no client of that id is registered
(or its automatic registration has expired), its trust chain is resolved to one of this deployment's trust
anchors, its ``openid_relying_party`` metadata after the chain's policies is validated
(``parse_relying_party_metadata``), and a client row of kind ``federation`` is written: inline ``jwks``,
``private_key_jwt`` only, signed request objects required (§12.1.1.1: the request object is how the
relying party proves it holds the keys its entity configuration lists), the code grant only, the citizen
scopes ``openid profile realname`` at most, pairwise subjects in a sector of its own (its entity id), never
the full ID number. The row lives as long as the chain does, or the resolver's cache, whichever is shorter;
then the chain is resolved afresh, and a relying party the federation no longer vouches for (an anchor
removed it, its metadata no longer fits) loses its row and is refused.

A refusal is ``invalid_client`` (``FederatedClientRefusedError``, with a ``RegistrationRefusal`` reason for
tests and logs) and writes nothing. A registration is written only once the request that needed it has
been validated (``write_pending_registrations``): a request that is refused — a forged request object, a
redirect URI the relying party never published — changes no row. It is a unit of work of its own, so
that two nodes registering the same relying party at once do not fail each other.
Only the chain's public metadata is stored: no citizen data comes into it.

Left out of §12.1: the ``trust_chain`` header parameter of a request object (the chain is always resolved
here), ``jwks_uri`` and ``signed_jwks_uri`` (keys must be inline), and registration through PAR without a
request object (§12.1.1.2): a federation client pushes its request object like any other.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import InvalidClientError
from flask import Flask, g, has_request_context
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from idp.audit.service import record_event
from idp.clients.model import Client
from idp.clients.service import ID_TOKEN_ALGS, MAX_CLIENT_FIELD_LENGTHS, find_client
from idp.db import Database, utc_from_timestamp
from idp.federation.config import is_entity_id
from idp.federation.context import FederationContext
from idp.federation.errors import FederationError
from idp.federation.statements import FEDERATION_ENTITY, OPENID_RELYING_PARTY
from idp.oauth.request_object import REQUEST_OBJECT_SIGNING_ALGS
from idp.scopes import OPENID, PROFILE, REALNAME
from idp.services import services
from idp.text import is_storable_text
from idp.web import client_ip
from sdk.keys import InvalidKeyError, KeySet

log = logging.getLogger(__name__)

FEDERATION_CLIENT_KIND: Final = "federation"
AUTOMATIC: Final = "automatic"
# What another region's OneCard may ask of a citizen's home region (docs/federation.md): never ``idcard``
# (the full ID number) nor ``offline_access``.
FEDERATED_SCOPES: Final = (OPENID, PROFILE, REALNAME)
FEDERATED_GRANT_TYPES: Final = ("authorization_code",)
DEFAULT_ID_TOKEN_ALG: Final = "ES256"
MAX_CLIENT_ID_LENGTH: Final = MAX_CLIENT_FIELD_LENGTHS["client_id"]  # oauth_clients.client_id
MAX_NAME_LENGTH: Final = MAX_CLIENT_FIELD_LENGTHS["name"]
MAX_BACKCHANNEL_URI_LENGTH: Final = MAX_CLIENT_FIELD_LENGTHS["backchannel_logout_uri"]
MAX_URI_LENGTH: Final = 2000  # as the admin API's contract allows for redirect URIs
MAX_URIS: Final = 10
MAX_KEYS: Final = 10
# JWK members of private or symmetric keys (RFC 7518 §6.2.2, §6.3.2, §6.4.1): a relying party's metadata is
# public, and a key published with them is compromised.
PRIVATE_JWK_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
# Allowed in an OAuth error_description (RFC 6749 §5.2): printable ASCII but '"' and '\'.
_DESCRIPTION_CHARACTERS: Final = frozenset(chr(c) for c in range(0x20, 0x7F)) - {'"', "\\"}


class RegistrationRefusal(StrEnum):
    """Why an automatic registration was refused (tests and the log; the wire code is invalid_client)."""

    ENTITY_ID_TOO_LONG = "entity_id_too_long"
    OWN_ENTITY = "own_entity"
    RATE_LIMITED = "rate_limited"
    NO_TRUST_CHAIN = "no_trust_chain"
    NOT_A_RELYING_PARTY = "not_a_relying_party"
    NOT_AUTOMATIC = "not_automatic"
    KEYS_NOT_INLINE = "keys_not_inline"
    INVALID_METADATA = "invalid_metadata"


class FederatedClientRefusedError(InvalidClientError):  # type: ignore[misc]
    """``invalid_client`` for an entity this provider does not register automatically."""

    def __init__(self, reason: RegistrationRefusal, description: str, *, status_code: int = 400) -> None:
        super().__init__(description=description, status_code=status_code)
        self.reason = reason


def _refuse(reason: RegistrationRefusal, description: str) -> FederatedClientRefusedError:
    return FederatedClientRefusedError(reason, description)


def _invalid(description: str) -> FederatedClientRefusedError:
    return _refuse(RegistrationRefusal.INVALID_METADATA, "Automatic registration refused: " + description)


@dataclass(frozen=True)
class FederatedClientMetadata:
    """A relying party's ``openid_relying_party`` metadata as this provider registers it."""

    name: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    backchannel_logout_uri: str | None
    jwks: dict[str, Any]  # public keys only, normalised (sdk.keys)
    scope: str
    id_token_signed_response_alg: str


# Validation (pure) -------------------------------------------------------------------------------------


def _uri(value: Any, what: str, *, allow_http: bool, longest: int = MAX_URI_LENGTH) -> str:
    """An absolute https URL (plain http in development and test), without fragment, in ASCII."""
    schemes = ("https", "http") if allow_http else ("https",)
    if not isinstance(value, str) or not value or len(value) > longest:
        raise _invalid(f"{what} must be a URL of at most {longest} characters.")
    if not (value.isascii() and value.isprintable()) or " " in value:
        raise _invalid(f"{what} must be a URL in printable ASCII.")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError on a port that is not a number
    except ValueError:
        raise _invalid(f"{what} is not a valid URL.") from None
    if parts.scheme not in schemes or not parts.hostname or parts.fragment:
        raise _invalid(f"{what} must be an absolute https URL without fragment.")
    return value


def _uris(value: Any, what: str, *, allow_http: bool, required: bool) -> tuple[str, ...]:
    if value is None and not required:
        return ()
    if not isinstance(value, list) or not (1 if required else 0) <= len(value) <= MAX_URIS:
        raise _invalid(f"{what} must be a list of 1 to {MAX_URIS} URLs.")
    return tuple(dict.fromkeys(_uri(uri, what, allow_http=allow_http) for uri in value))


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _invalid(f"{what} must be a list of strings.")
    return value


def _public_keys(rp: Mapping[str, Any]) -> dict[str, Any]:
    """The inline ``jwks``, public signing keys of an algorithm this provider verifies, normalised."""
    jwks = rp.get("jwks")
    by_reference = [name for name in ("jwks_uri", "signed_jwks_uri") if rp.get(name) is not None]
    if jwks is None:
        if by_reference:
            raise _refuse(
                RegistrationRefusal.KEYS_NOT_INLINE,
                "Automatic registration refused: jwks_uri and signed_jwks_uri are not supported; "
                "publish the keys inline as jwks.",
            )
        raise _invalid("jwks is required.")
    if by_reference:
        raise _invalid("jwks excludes jwks_uri and signed_jwks_uri.")
    entries = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_KEYS:
        raise _invalid(f"jwks must be a JWK Set of 1 to {MAX_KEYS} keys.")
    if not all(isinstance(jwk, Mapping) for jwk in entries):
        raise _invalid("jwks must be a JWK Set of public keys.")
    if any(PRIVATE_JWK_MEMBERS & set(jwk) for jwk in entries):
        raise _invalid("jwks must hold public keys only.")
    signing = [jwk for jwk in entries if jwk.get("use") in (None, "sig")]
    try:
        keys = KeySet.from_jwks({"keys": signing})
    except InvalidKeyError:
        raise _invalid("jwks is not a valid JWK Set of public keys.") from None
    usable = KeySet.of(key for key in keys if key.alg in REQUEST_OBJECT_SIGNING_ALGS)
    if not len(usable):
        raise _invalid(f"jwks holds no signing key for {', '.join(REQUEST_OBJECT_SIGNING_ALGS)}.")
    return usable.to_jwks()


def _name(metadata: Mapping[str, Any], rp: Mapping[str, Any], entity_id: str) -> str:
    entity = metadata.get(FEDERATION_ENTITY)
    organization = entity.get("organization_name") if isinstance(entity, Mapping) else None
    for candidate, what in ((rp.get("client_name"), "client_name"), (organization, "organization_name")):
        if candidate is None:
            continue
        if not isinstance(candidate, str) or not is_storable_text(candidate) or not candidate.isprintable():
            raise _invalid(f"{what} must be printable text.")
        if candidate.strip():
            return candidate.strip()[:MAX_NAME_LENGTH]
    return entity_id


def _scope(rp: Mapping[str, Any]) -> str:
    requested = rp.get("scope", OPENID)
    if not isinstance(requested, str):
        raise _invalid("scope must be a space-separated string.")
    asked = set(requested.split())
    if OPENID not in asked:
        raise _invalid("scope must include openid.")
    return " ".join(scope for scope in FEDERATED_SCOPES if scope in asked)


def _check_algorithms(rp: Mapping[str, Any]) -> None:
    # Request objects and client assertions are verified with the same algorithms (idp.oauth.request_object,
    # idp.oauth.server.CLIENT_ASSERTION_SIGNING_ALGS): one the relying party insists on must be among them.
    for name in ("request_object_signing_alg", "token_endpoint_auth_signing_alg"):
        alg = rp.get(name)
        if alg is not None and alg not in REQUEST_OBJECT_SIGNING_ALGS:
            raise _invalid(f"{name} must be one of {', '.join(REQUEST_OBJECT_SIGNING_ALGS)}.")


def parse_relying_party_metadata(
    metadata: Mapping[str, Any], *, entity_id: str, allow_http: bool
) -> FederatedClientMetadata:
    """The client this provider registers for ``metadata`` (a resolved chain's, every entity type); raises
    ``FederatedClientRefusedError`` naming the parameter that does not fit."""
    rp = metadata.get(OPENID_RELYING_PARTY)
    if not isinstance(rp, Mapping):
        raise _refuse(
            RegistrationRefusal.NOT_A_RELYING_PARTY,
            "Automatic registration refused: the entity publishes no openid_relying_party metadata.",
        )
    if AUTOMATIC not in _strings(rp.get("client_registration_types"), "client_registration_types"):
        raise _refuse(
            RegistrationRefusal.NOT_AUTOMATIC,
            "Automatic registration refused: client_registration_types does not include automatic.",
        )
    if rp.get("token_endpoint_auth_method") != "private_key_jwt":
        raise _invalid("token_endpoint_auth_method must be private_key_jwt.")
    _check_algorithms(rp)
    if not set(_strings(rp.get("grant_types", list(FEDERATED_GRANT_TYPES)), "grant_types")) == set(
        FEDERATED_GRANT_TYPES
    ):
        raise _invalid("grant_types must be authorization_code only.")
    if _strings(rp.get("response_types", ["code"]), "response_types") != ["code"]:
        raise _invalid("response_types must be code only.")
    alg = rp.get("id_token_signed_response_alg")
    backchannel = rp.get("backchannel_logout_uri")
    return FederatedClientMetadata(
        name=_name(metadata, rp, entity_id),
        redirect_uris=_uris(rp.get("redirect_uris"), "redirect_uris", allow_http=allow_http, required=True),
        post_logout_redirect_uris=_uris(
            rp.get("post_logout_redirect_uris"),
            "post_logout_redirect_uris",
            allow_http=allow_http,
            required=False,
        ),
        backchannel_logout_uri=None
        if backchannel is None
        else _uri(
            backchannel, "backchannel_logout_uri", allow_http=allow_http, longest=MAX_BACKCHANNEL_URI_LENGTH
        ),
        jwks=_public_keys(rp),
        scope=_scope(rp),
        id_token_signed_response_alg=alg if alg in ID_TOKEN_ALGS else DEFAULT_ID_TOKEN_ALG,
    )


# Registration ------------------------------------------------------------------------------------------


def _safe_description(text: str, fallback: str) -> str:
    return text if text and set(text) <= _DESCRIPTION_CHARACTERS else fallback


def _is_current(client: Client, now: float) -> bool:
    expires = client.federation_expires_at
    return expires is not None and now < expires.timestamp()


def _apply(row: Client, registration: FederatedClientMetadata, *, entity_id: str, expires_at: float) -> bool:
    """Write the registration onto ``row``; whether anything but the expiry changed."""
    values: dict[str, Any] = {
        "name": registration.name,
        "kind": FEDERATION_CLIENT_KIND,
        "client_secret_hash": None,
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": registration.jwks,
        "redirect_uris": list(registration.redirect_uris),
        "post_logout_redirect_uris": list(registration.post_logout_redirect_uris),
        "grant_types": list(FEDERATED_GRANT_TYPES),
        "scope": registration.scope,
        "subject_type": "pairwise",
        # Its own sector: the same citizen has another sub at each region, and it stays when the region
        # moves its redirect URIs.
        "sector_identifier": entity_id,
        "id_token_signed_response_alg": registration.id_token_signed_response_alg,
        "first_party": False,
        "id_number_allowed": False,
        "backchannel_logout_uri": registration.backchannel_logout_uri,
        "fapi2_security_profile": False,
        "require_pushed_authorization_requests": False,
        "require_signed_request_object": True,
        "dpop_bound_access_tokens": False,
    }
    changed = any(getattr(row, name, None) != value for name, value in values.items())
    for name, value in values.items():
        setattr(row, name, value)
    row.federation_expires_at = utc_from_timestamp(expires_at)
    return changed


def _remove(database: Database, entity_id: str, reason: RegistrationRefusal, *, now: float) -> None:
    with database.session() as own:
        removed = own.execute(
            delete(Client).where(Client.client_id == entity_id, Client.kind == FEDERATION_CLIENT_KIND)
        )
        if getattr(removed, "rowcount", 0):
            record_event(
                own,
                actor="system",
                action="client.federation.remove",
                target_type="client",
                target_id=entity_id,
                details={"reason": reason.value},
                now=now,
            )


@dataclass(frozen=True)
class PendingRegistration:
    """An automatic registration the federation vouches for, not written yet: the request that needed it
    writes it (``write``) only once that request has been validated — a refused request (a forged request
    object, a redirect URI the relying party never published) changes no row."""

    entity_id: str
    registration: FederatedClientMetadata
    anchor: str
    expires_at: float
    created_at: float

    def client(self) -> Client:
        """The client as it will be registered (transient: in no session), for validating the request."""
        row = Client(client_id=self.entity_id, created_at=utc_from_timestamp(self.created_at))
        _apply(row, self.registration, entity_id=self.entity_id, expires_at=self.expires_at)
        return row

    def write(self, database: Database, *, now: float) -> None:
        """Write it, in a unit of work of its own."""
        try:
            with database.session() as own:
                row = own.get(Client, self.entity_id)
                if row is not None and row.kind != FEDERATION_CLIENT_KIND:
                    return  # staff registered this id meanwhile: their registration stands
                action = "client.federation.update"
                if row is None:
                    row = Client(client_id=self.entity_id, created_at=utc_from_timestamp(now))
                    own.add(row)
                    action = "client.federation.register"
                if _apply(row, self.registration, entity_id=self.entity_id, expires_at=self.expires_at):
                    record_event(
                        own,
                        actor="system",
                        action=action,
                        target_type="client",
                        target_id=self.entity_id,
                        details={"trust_anchor": self.anchor, "scope": self.registration.scope},
                        now=now,
                    )
        except IntegrityError:
            # Another node registered the same relying party at the same moment: its row stands.
            log.info("automatic registration of %s: registered concurrently", self.entity_id)


def resolve_federated_client(
    session: Session,
    client_id: str,
    *,
    federation: FederationContext | None,
    database: Database,
    now: float,
    client_address: str,
) -> Client | PendingRegistration | None:
    """The client ``client_id`` names: a registered one, else — for another deployment's entity id — the
    automatic registration the federation vouches for now, to be written once the request is validated.
    None for an unknown client that is no entity id.

    ``client_address`` keys the rate limit that bounds the statements fetched for entities not registered
    yet (the resolve endpoint's, idp.federation.context). Raises ``FederatedClientRefusedError``; a
    registration the federation vouches for no longer is removed then (the federation's revocation taking
    effect, whatever the request)."""
    client = find_client(session, client_id)
    if client is not None and (client.kind != FEDERATION_CLIENT_KIND or _is_current(client, now)):
        return client
    if federation is None:
        return None  # without the federation, nothing vouches for an automatic registration
    config = federation.config
    if not is_entity_id(client_id, allow_http=config.allow_http):
        return None  # an ordinary unknown client_id (Authlib refuses it), or an entity id no longer allowed
    if len(client_id) > MAX_CLIENT_ID_LENGTH:
        raise _refuse(
            RegistrationRefusal.ENTITY_ID_TOO_LONG,
            f"Automatic registration refused: an entity id used as client_id has at most "
            f"{MAX_CLIENT_ID_LENGTH} characters.",
        )
    if client_id == config.entity_id:
        raise _refuse(RegistrationRefusal.OWN_ENTITY, "This provider is not a client of itself.")
    if client is None and not federation.resolve_limiter.check(client_address, now).allowed:
        raise FederatedClientRefusedError(
            RegistrationRefusal.RATE_LIMITED,
            "Too many automatic registrations from this address. Please try again later.",
            status_code=429,
        )
    refusal: FederatedClientRefusedError | None = None
    try:
        # Resolved afresh: a registration rests on the chain as it stands now, not on a cached one.
        chain = federation.resolver.resolve_any(client_id, now=now, fresh=True)
        registration = parse_relying_party_metadata(
            chain.metadata, entity_id=client_id, allow_http=config.allow_http
        )
    except FederationError as exc:
        refusal = _refuse(
            RegistrationRefusal.NO_TRUST_CHAIN,
            "Automatic registration refused: "
            + _safe_description(exc.description, "no valid trust chain to a trust anchor of this provider."),
        )
        refusal.__cause__ = exc
        log.info("automatic registration of %s refused: no trust chain (%s)", client_id, type(exc).__name__)
    except FederatedClientRefusedError as exc:
        refusal = exc
        log.info("automatic registration of %s refused: %s", client_id, exc.reason.value)
    if refusal is not None:
        if client is not None:
            # The federation vouches for it no longer (removed by its anchor, or its metadata changed).
            session.expunge(client)
            _remove(database, client_id, refusal.reason, now=now)
        raise refusal
    expires_at = min(float(chain.expires_at), now + config.chain_cache_seconds)
    created_at = client.created_at.timestamp() if client is not None else now
    return PendingRegistration(client_id, registration, chain.anchor, expires_at, created_at)


_PENDING: Final = "onecard_pending_registrations"


def _pending() -> dict[str, tuple[PendingRegistration, Client]]:
    pending: dict[str, tuple[PendingRegistration, Client]] = g.setdefault(_PENDING, {})
    return pending


def find_or_register_client(session: Session, client_id: str) -> Client | None:
    """What the OAuth server's ``query_client`` answers with: ``resolve_federated_client`` with the running
    application's federation, database, clock and the caller's address. A registration it finds is kept
    for this request (the chain is resolved once per request, however often the client is looked up) and
    written by ``write_pending_registrations`` once the request has been validated."""
    in_request = has_request_context()
    if in_request and client_id in _pending():
        return _pending()[client_id][1]
    svc = services()
    found = resolve_federated_client(
        session,
        client_id,
        federation=svc.federation,
        database=svc.database,
        now=svc.now(),
        client_address=client_ip() if in_request else "",
    )
    if not isinstance(found, PendingRegistration):
        return found
    if not in_request:
        found.write(svc.database, now=svc.now())
        return session.get(Client, client_id, populate_existing=True)
    client = found.client()
    _pending()[client_id] = (found, client)
    return client


def write_pending_registrations() -> None:
    """Write the registrations this request found: called once the request has been validated (the
    authorization request: its parameters and request object)."""
    if not has_request_context():
        return
    svc = services()
    pending = _pending()
    for found, _client in pending.values():
        found.write(svc.database, now=svc.now())
    pending.clear()


_AUTHENTICATED: Final = "onecard_client_authenticated"


def note_client_authenticated() -> None:
    """The client proved it holds a key of its registration (the token, PAR, introspection and revocation
    endpoints): its pending registration is written if the request then succeeds."""
    if has_request_context():
        g.setdefault(_AUTHENTICATED, True)


def install_registration_writes(app: Flask) -> None:
    """After a successful answer to an authenticated client, its pending registration is written; a
    refused request (4xx, 5xx) writes none."""

    @app.after_request
    def _write(response: Response) -> Response:
        if g.pop(_AUTHENTICATED, False) and response.status_code < 400:
            try:
                write_pending_registrations()
            except SQLAlchemyError as exc:
                # The answer stands (a code may be spent already); the next request registers again.
                log.warning("automatic registration not written: %s", type(exc).__name__)
        return response
