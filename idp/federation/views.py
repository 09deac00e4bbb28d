"""The federation endpoints (OpenID Federation 1.0 §8, §9) and the admin API for subordinates.

- ``GET /.well-known/openid-federation``: this deployment's entity configuration (§9), on every deployment.
- ``GET /federation/fetch?sub=`` (§8.1), ``GET /federation/list`` (§8.2) and
  ``GET /federation/resolve?sub=&trust_anchor=`` (§8.3): on an anchor or intermediate only; elsewhere 404.
- ``/api/v1/admin/federation/subordinates``: staff register, list, show and remove subordinates (``admin``
  scope), each change an audit event in the same unit of work, validated before anything is written.

Errors have the shape §8.9 gives them, ``{"error", "error_description"}`` (the one OneCard error shape).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from flask import Blueprint, Response, jsonify, request

from idp.audit.service import record_event
from idp.federation import ENTITY_CONFIGURATION_PATH
from idp.federation.config import FederationConfig, is_entity_id
from idp.federation.context import FederationContext
from idp.federation.errors import (
    FederationRequestError,
    NotAFederationAuthorityError,
    SubordinateNotFoundError,
    UnsupportedParameterError,
)
from idp.federation.metadata import provider_extras, relying_party_metadata
from idp.federation.service import (
    FETCH_PATH,
    LIST_PATH,
    RESOLVE_PATH,
    SubordinateRegistration,
    create_entity_configuration,
    create_resolve_response,
    create_subordinate,
    create_subordinate_statement,
    describe_subordinate,
    find_subordinate,
    get_subordinate,
    list_subordinates,
    remove_subordinate,
)
from idp.federation.statements import ENTITY_STATEMENT_CONTENT_TYPE, RESOLVE_RESPONSE_CONTENT_TYPE
from idp.oauth.discovery import provider_metadata
from idp.oauth.resource import current_access, require_scope
from idp.scopes import ADMIN
from idp.services import services
from idp.web import client_ip, db_session, json_body

bp = Blueprint("federation", __name__)
SUBORDINATES = "/api/v1/admin/federation/subordinates"
# list (§8.2.1) filters this implementation does not offer: asked for, they are refused, not ignored.
LIST_FILTERS = ("entity_type", "trust_marked", "trust_mark_type", "intermediate")


def federation() -> FederationContext:
    context = services().federation
    assert context is not None  # built by create_app for every application
    return context


def _authority() -> FederationConfig:
    config = federation().config
    if not config.is_authority:
        raise NotAFederationAuthorityError(f"{config.entity_id} is a leaf")
    return config


def _jwt(token: str, content_type: str) -> Response:
    response = Response(token, content_type=content_type)
    response.headers["Cache-Control"] = "no-cache"  # a resolver keeps it by its exp, not by HTTP caching
    return response


def _one(name: str, *, required: bool = True) -> str | None:
    values = request.args.getlist(name)
    if len(values) > 1:
        raise FederationRequestError(name, description=f"{name} must be given once.")
    if not values or not values[0]:
        if required:
            raise FederationRequestError(name, description=f"{name} is required.")
        return None
    return values[0]


def _entity_id_arg(name: str, config: FederationConfig) -> str:
    value = _one(name)
    if not is_entity_id(value, allow_http=config.allow_http):
        raise FederationRequestError(name, description=f"{name} must be an entity identifier (an https URL).")
    assert value is not None
    return value


@bp.get(ENTITY_CONFIGURATION_PATH)
def entity_configuration() -> Response:
    svc = services()
    context = federation()
    now = svc.now()
    provider = provider_metadata(svc.settings.issuer, require_par=svc.settings.require_par)
    provider.update(provider_extras(db_session(), context.config))
    token = create_entity_configuration(
        context.config,
        keys=context.signing_keys(now=now),
        provider_metadata=provider,
        now=now,
        relying_party_metadata=relying_party_metadata(context.config, now=now),
    )
    return _jwt(token, ENTITY_STATEMENT_CONTENT_TYPE)


@bp.get(FETCH_PATH)
def fetch() -> Response:
    config = _authority()
    subject = _entity_id_arg("sub", config)
    row = find_subordinate(db_session(), subject)
    if row is None:
        raise SubordinateNotFoundError(f"{subject} is not registered")
    now = services().now()
    key = federation().signing_keys(now=now).signing_key()
    return _jwt(create_subordinate_statement(row, config, key=key, now=now), ENTITY_STATEMENT_CONTENT_TYPE)


@bp.get(LIST_PATH)
def list_entities() -> Response:
    _authority()
    for name in LIST_FILTERS:
        if name in request.args:
            raise UnsupportedParameterError(name, description=f"The list filter {name} is not supported.")
    return jsonify([row.entity_id for row in list_subordinates(db_session())])


@bp.get(RESOLVE_PATH)
def resolve() -> Response:
    config = _authority()
    context = federation()
    subject = _entity_id_arg("sub", config)
    anchor = _entity_id_arg("trust_anchor", config)
    entity_types = request.args.getlist("entity_type")
    now = services().now()
    context.resolve_limiter.hit(client_ip(), now)  # before anything is fetched on the caller's behalf
    context.resolver.anchor(anchor, now=now)  # an unknown anchor is refused before anything is fetched
    chain = context.resolver.resolve(subject, anchor, now=now)
    if entity_types:
        # §8.3.1: only the entity types asked for.
        chain = dataclasses.replace(
            chain, metadata={name: value for name, value in chain.metadata.items() if name in entity_types}
        )
    key = context.signing_keys(now=now).signing_key()
    return _jwt(create_resolve_response(config, chain, key=key, now=now), RESOLVE_RESPONSE_CONTENT_TYPE)


# The admin API ---------------------------------------------------------------------------------------


def _audit(action: str, target_id: str, details: dict[str, Any]) -> None:
    record_event(
        db_session(),
        actor=f"client:{current_access().client_id}",
        action=action,
        target_type="federation_subordinate",
        target_id=target_id,
        details=details,
        now=services().now(),
    )


def registration_from_json(data: dict[str, Any]) -> SubordinateRegistration:
    objects = ("jwks", "metadata_policy", "metadata", "constraints")
    fields: dict[str, Any] = {}
    for name, value in data.items():
        if name == "entity_id":
            if not isinstance(value, str):
                raise FederationRequestError(name, description="entity_id must be a string.")
            fields[name] = value
        elif name in objects:
            if not isinstance(value, dict):
                raise FederationRequestError(name, description=f"{name} must be an object.")
            fields[name] = value
        elif name == "trust_mark_types":
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                raise FederationRequestError(name, description=f"{name} must be a list of strings.")
            fields[name] = tuple(value)
        else:
            raise FederationRequestError(name, description="An unknown field was given.")
    for name in ("entity_id", "jwks"):
        if name not in fields:
            raise FederationRequestError(name, description=f"{name} is required.")
    return SubordinateRegistration(**fields)


@bp.get(SUBORDINATES)
@require_scope(ADMIN)
def subordinates_index() -> Response:
    _authority()
    return jsonify({"subordinates": [describe_subordinate(row) for row in list_subordinates(db_session())]})


@bp.post(SUBORDINATES)
@require_scope(ADMIN)
def subordinates_create() -> Response:
    config = _authority()
    registration = registration_from_json(json_body())
    row = create_subordinate(db_session(), registration, config, now=services().now())
    _audit("federation.subordinate.create", row.id, {"entity_id": row.entity_id})
    federation().resolver.clear()
    response = jsonify(describe_subordinate(row))
    response.status_code = 201
    return response


@bp.get(SUBORDINATES + "/<subordinate_id>")
@require_scope(ADMIN)
def subordinates_show(subordinate_id: str) -> Response:
    _authority()
    return jsonify(describe_subordinate(get_subordinate(db_session(), subordinate_id)))


@bp.delete(SUBORDINATES + "/<subordinate_id>")
@require_scope(ADMIN)
def subordinates_remove(subordinate_id: str) -> Response:
    _authority()
    row = remove_subordinate(db_session(), subordinate_id)
    _audit("federation.subordinate.remove", row.id, {"entity_id": row.entity_id})
    federation().resolver.clear()
    return Response(status=204)
