"""What a OneCard deployment signs in the federation, and the subordinates an anchor or intermediate keeps.

- ``create_entity_configuration``: this deployment's entity configuration (§3, §9) — its ``openid_provider``
  metadata (the discovery document's, so the two cannot drift), its ``federation_entity`` metadata with the
  endpoints its roles serve, its superiors, the trust marks it holds, and, for an anchor, who may issue the
  ``loa:high`` trust mark.
- Subordinates (§8.1): registered by staff, validated whole before a row is written; each becomes the
  subordinate statement ``fetch`` serves (``create_subordinate_statement``) and may be issued trust marks.
- ``create_resolve_response``: the signed answer of the resolve endpoint (§8.3.2).

Services take the session (the caller commits), keys and ``now``.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.db import utc_from_timestamp
from idp.federation.chain import TrustChain
from idp.federation.config import FederationConfig, is_entity_id
from idp.federation.errors import (
    InvalidSubordinateError,
    InvalidTrustMarkError,
    PolicyConflictError,
    SubordinateExistsError,
    SubordinateNotFoundError,
)
from idp.federation.model import Subordinate
from idp.federation.policy import validate_metadata_policy
from idp.federation.statements import (
    FEDERATION_ENTITY,
    OPENID_PROVIDER,
    OPENID_RELYING_PARTY,
    RESOLVE_RESPONSE_TYPE,
    create_entity_statement,
    sign_typed_jwt,
)
from idp.federation.trust_marks import TrustMark, issue_trust_mark, parse_trust_mark
from sdk.keys import InvalidKeyError, Key, KeySet

FETCH_PATH: Final = "/federation/fetch"
LIST_PATH: Final = "/federation/list"
RESOLVE_PATH: Final = "/federation/resolve"
# Constraints (§6.2) a registration may carry; naming_constraints (§6.2.2) is not implemented yet.
SUPPORTED_CONSTRAINTS: Final = ("max_path_length", "allowed_entity_types")
MAX_TRUST_MARK_TYPES: Final = 20


# Entity configuration ----------------------------------------------------------------------------------


def held_trust_marks(config: FederationConfig, *, now: float) -> list[TrustMark]:
    """The configured trust marks that are about this entity and not expired (signatures are the
    verifier's business: a resolver checks them against its anchor)."""
    marks = []
    for token in config.trust_marks:
        try:
            mark = parse_trust_mark(token)
        except InvalidTrustMarkError:
            continue
        if mark.subject == config.entity_id and (mark.expires_at is None or now < mark.expires_at):
            marks.append(mark)
    return marks


def federation_entity_metadata(config: FederationConfig) -> dict[str, Any]:
    metadata: dict[str, Any] = {"organization_name": config.organization_name}
    if config.is_authority:
        base = config.entity_id
        metadata["federation_fetch_endpoint"] = base + FETCH_PATH
        metadata["federation_list_endpoint"] = base + LIST_PATH
        metadata["federation_resolve_endpoint"] = base + RESOLVE_PATH
    return metadata


def create_entity_configuration(
    config: FederationConfig,
    *,
    keys: KeySet,
    provider_metadata: Mapping[str, Any],
    now: float,
    relying_party_metadata: Mapping[str, Any] | None = None,
) -> str:
    """``keys``: the federation key set, the signing key first; every published key goes into ``jwks``.
    ``relying_party_metadata``: this deployment as a client of other regions' OneCards, if it is one."""
    extra: dict[str, Any] = {}
    if config.is_anchor:
        extra["trust_mark_issuers"] = {config.loa_high_trust_mark: [config.entity_id]}
    return create_entity_statement(
        key=keys.signing_key(),
        issuer=config.entity_id,
        subject=config.entity_id,
        jwks=KeySet.of(key.public_only() for key in keys),
        now=now,
        lifetime=config.statement_ttl,
        authority_hints=config.authority_hints,
        metadata={
            OPENID_PROVIDER: dict(provider_metadata),
            FEDERATION_ENTITY: federation_entity_metadata(config),
            **({OPENID_RELYING_PARTY: dict(relying_party_metadata)} if relying_party_metadata else {}),
        },
        trust_marks=[mark.entry() for mark in held_trust_marks(config, now=now)],
        extra=extra,
    )


def create_resolve_response(config: FederationConfig, chain: TrustChain, *, key: Key, now: float) -> str:
    """The resolve endpoint's answer (§8.3.2): the chain's metadata and verified trust marks, and the chain
    itself, signed by this resolver; it expires with the chain."""
    claims = {
        "iss": config.entity_id,
        "sub": chain.subject,
        "iat": int(now),
        "exp": chain.expires_at,
        "metadata": dict(chain.metadata),
        "trust_marks": [mark.entry() for mark in chain.trust_marks],
        "trust_chain": [statement.token for statement in chain.statements],
    }
    return sign_typed_jwt(claims, key, typ=RESOLVE_RESPONSE_TYPE)


# Subordinates -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubordinateRegistration:
    entity_id: str
    jwks: Mapping[str, Any]
    metadata_policy: Mapping[str, Any] | None = None
    metadata: Mapping[str, Any] | None = None
    constraints: Mapping[str, Any] | None = None
    trust_mark_types: Sequence[str] = field(default_factory=tuple)


def validate_registration(registration: SubordinateRegistration, config: FederationConfig) -> None:
    """The whole registration, before anything is written; ``InvalidSubordinateError`` names the field."""
    if not is_entity_id(registration.entity_id, allow_http=config.allow_http):
        raise InvalidSubordinateError(
            "entity_id", description="entity_id must be an https URL without query or fragment."
        )
    if registration.entity_id == config.entity_id:
        raise InvalidSubordinateError("entity_id", description="An entity cannot be its own subordinate.")
    jwks = registration.jwks
    if not isinstance(jwks, Mapping) or any(
        isinstance(jwk, Mapping) and "d" in jwk for jwk in jwks.get("keys", []) or []
    ):
        raise InvalidSubordinateError("jwks", description="jwks must be a JWK Set of public keys.")
    try:
        keys = KeySet.from_jwks(jwks)
    except InvalidKeyError as exc:
        raise InvalidSubordinateError(str(exc), description="jwks must be a JWK Set of public keys.") from exc
    if not len(keys):
        raise InvalidSubordinateError("jwks", description="jwks holds no usable key.")
    if registration.metadata_policy is not None:
        try:
            validate_metadata_policy(registration.metadata_policy)
        except PolicyConflictError as exc:
            raise InvalidSubordinateError(
                exc.detail, description=f"metadata_policy is not valid: {exc.detail}"
            ) from exc
    metadata = registration.metadata
    if metadata is not None and not (
        isinstance(metadata, Mapping) and all(isinstance(v, Mapping) for v in metadata.values())
    ):
        raise InvalidSubordinateError("metadata", description="metadata must be an object of entity types.")
    _validate_constraints(registration.constraints)
    types = registration.trust_mark_types
    if (
        not isinstance(types, list | tuple)
        or len(types) > MAX_TRUST_MARK_TYPES
        or not all(isinstance(t, str) and 0 < len(t) <= 200 and t.isprintable() for t in types)
    ):
        raise InvalidSubordinateError(
            "trust_mark_types", description="trust_mark_types must be a short list of trust mark types."
        )


def _validate_constraints(constraints: Mapping[str, Any] | None) -> None:
    if constraints is None:
        return
    description = f"constraints may hold {', '.join(SUPPORTED_CONSTRAINTS)} only."
    if not isinstance(constraints, Mapping) or not set(constraints) <= set(SUPPORTED_CONSTRAINTS):
        raise InvalidSubordinateError("constraints", description=description)
    length = constraints.get("max_path_length")
    if length is not None and (
        not isinstance(length, int) or isinstance(length, bool) or not 0 <= length <= 10
    ):
        raise InvalidSubordinateError("max_path_length", description="max_path_length must be 0 to 10.")
    types = constraints.get("allowed_entity_types")
    if types is not None and not (isinstance(types, list) and all(isinstance(t, str) and t for t in types)):
        raise InvalidSubordinateError(
            "allowed_entity_types", description="allowed_entity_types must be a list of entity types."
        )


def create_subordinate(
    session: Session,
    registration: SubordinateRegistration,
    config: FederationConfig,
    *,
    now: float,
    replace: bool = False,
) -> Subordinate:
    """Register a subordinate (or, with ``replace``, update the one registered under its entity id)."""
    validate_registration(registration, config)
    existing = find_subordinate(session, registration.entity_id)
    if existing is not None and not replace:
        raise SubordinateExistsError(registration.entity_id)
    at = utc_from_timestamp(now)
    row = existing or Subordinate(
        id="fs_" + secrets.token_hex(8), entity_id=registration.entity_id, created_at=at
    )
    row.jwks = dict(registration.jwks)
    row.metadata_policy = dict(registration.metadata_policy) if registration.metadata_policy else None
    row.entity_metadata = dict(registration.metadata) if registration.metadata else None
    row.constraints = dict(registration.constraints) if registration.constraints else None
    row.trust_mark_types = list(registration.trust_mark_types)
    row.updated_at = at
    session.add(row)
    session.flush()
    return row


def list_subordinates(session: Session) -> list[Subordinate]:
    return list(session.scalars(select(Subordinate).order_by(Subordinate.created_at, Subordinate.entity_id)))


def find_subordinate(session: Session, entity_id: str) -> Subordinate | None:
    if not isinstance(entity_id, str) or not entity_id:
        return None
    return session.scalar(select(Subordinate).where(Subordinate.entity_id == entity_id))


def get_subordinate(session: Session, subordinate_id: str) -> Subordinate:
    """By row id (the admin API) or by entity id (the CLI, ``fetch``)."""
    row = session.get(Subordinate, subordinate_id) if len(subordinate_id) <= 32 else None
    row = row or find_subordinate(session, subordinate_id)
    if row is None:
        raise SubordinateNotFoundError(f"subordinate {subordinate_id[:100]!r}")
    return row


def remove_subordinate(session: Session, subordinate_id: str) -> Subordinate:
    row = get_subordinate(session, subordinate_id)
    session.delete(row)
    session.flush()
    return row


def describe_subordinate(row: Subordinate) -> dict[str, Any]:
    return {
        "id": row.id,
        "entity_id": row.entity_id,
        "jwks": row.jwks,
        "metadata_policy": row.metadata_policy,
        "metadata": row.entity_metadata,
        "constraints": row.constraints,
        "trust_mark_types": list(row.trust_mark_types),
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def create_subordinate_statement(row: Subordinate, config: FederationConfig, *, key: Key, now: float) -> str:
    """The statement ``fetch`` answers with (§3.1, §8.1.2): the subordinate's keys, the policy, the
    constraints and the metadata this issuer sets for it."""
    return create_entity_statement(
        key=key,
        issuer=config.entity_id,
        subject=row.entity_id,
        jwks=KeySet.from_jwks(row.jwks),
        now=now,
        lifetime=config.statement_ttl,
        metadata=row.entity_metadata,
        metadata_policy=row.metadata_policy,
        constraints=row.constraints,
        extra={"source_endpoint": config.entity_id + FETCH_PATH},
    )


def issue_subordinate_trust_mark(
    session: Session,
    config: FederationConfig,
    entity_id: str,
    trust_mark_type: str,
    *,
    key: Key,
    now: float,
    lifetime: int | None = None,
) -> str:
    """A trust mark for a registered subordinate, of a type its registration allows."""
    row = get_subordinate(session, entity_id)
    if trust_mark_type not in row.trust_mark_types:
        raise InvalidSubordinateError(
            "trust_mark_type",
            description=f"{row.entity_id} is not registered for the trust mark {trust_mark_type}.",
        )
    return issue_trust_mark(
        key=key,
        issuer=config.entity_id,
        subject=row.entity_id,
        trust_mark_type=trust_mark_type,
        now=now,
        lifetime=lifetime or config.trust_mark_ttl,
    )
