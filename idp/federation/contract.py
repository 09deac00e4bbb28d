"""The federation's part of ``/api/openapi.json``: the public federation endpoints (OpenID Federation 1.0
§8, §9; their answers are signed JWTs, not JSON) and the admin API for subordinates
(``idp.federation.views``).
"""

from __future__ import annotations

from typing import Final

from idp.federation import ENTITY_CONFIGURATION_PATH
from idp.federation.errors import FederationRequestError
from idp.federation.model import MAX_ENTITY_ID_LENGTH
from idp.federation.service import (
    FETCH_PATH,
    LIST_PATH,
    MAX_TRUST_MARK_TYPES,
    RESOLVE_PATH,
)
from idp.federation.statements import ENTITY_STATEMENT_CONTENT_TYPE, RESOLVE_RESPONSE_CONTENT_TYPE
from idp.federation.views import LIST_FILTERS, SUBORDINATES
from idp.openapi.components import (
    NO_CONTENT,
    PUBLIC,
    TIMESTAMP,
    JsonObject,
    json_request,
    json_response,
    path_parameter,
    query_parameter,
    ref,
    refusals,
    service_token,
)
from idp.openapi.contract import ContractFragment, Operation
from idp.scopes import ADMIN

ADMIN_TOKEN: Final = service_token(ADMIN)
SUBORDINATE_ID: Final = path_parameter("subordinate_id", "The subordinate's id (`fs_…`) or its entity id.")
_ENTITY_ID: Final[JsonObject] = {
    "type": "string",
    "format": "uri",
    "minLength": 1,
    "maxLength": MAX_ENTITY_ID_LENGTH,
    "description": "An entity identifier: an https URL without query or fragment (§1.2).",
}
_OBJECT: Final[JsonObject] = {"type": "object"}
_NULLABLE_OBJECT: Final[JsonObject] = {"type": ["object", "null"]}
_CONSTRAINTS: Final[JsonObject] = {
    "type": "object",
    "additionalProperties": False,
    "description": "Constraints (§6.2) the subordinate statement carries.",
    "properties": {
        "max_path_length": {"type": "integer", "minimum": 0, "maximum": 10},
        "allowed_entity_types": {"type": "array", "items": {"type": "string", "minLength": 1}},
    },
}
_TRUST_MARK_TYPES: Final[JsonObject] = {
    "type": "array",
    "maxItems": MAX_TRUST_MARK_TYPES,
    "items": {"type": "string", "minLength": 1, "maxLength": 200},
    "description": "Trust mark types this issuer may issue to the subordinate.",
}
_SUBORDINATE_PROPERTIES: Final[JsonObject] = {
    "id": {"type": "string", "pattern": "^fs_"},
    "entity_id": {"type": "string"},
    "jwks": _OBJECT,
    "metadata_policy": _NULLABLE_OBJECT,
    "metadata": _NULLABLE_OBJECT,
    "constraints": _NULLABLE_OBJECT,
    "trust_mark_types": {"type": "array", "items": {"type": "string"}},
    "created_at": TIMESTAMP,
    "updated_at": TIMESTAMP,
}
_SUBORDINATE: Final[JsonObject] = {
    "type": "object",
    "required": list(_SUBORDINATE_PROPERTIES),
    "additionalProperties": False,
    "properties": _SUBORDINATE_PROPERTIES,
}
_REGISTRATION: Final[JsonObject] = {
    "type": "object",
    "required": ["entity_id", "jwks"],
    "additionalProperties": False,
    "properties": {
        "entity_id": _ENTITY_ID,
        "jwks": {**_OBJECT, "description": "The subordinate's federation keys, public (RFC 7517 §5)."},
        "metadata_policy": {**_OBJECT, "description": "The metadata policy (§6.1) for the subordinate."},
        "metadata": {**_OBJECT, "description": "Metadata parameters set for the subordinate (§3.1.2)."},
        "constraints": _CONSTRAINTS,
        "trust_mark_types": _TRUST_MARK_TYPES,
    },
}


def _jwt_response(description: str, content_type: str) -> JsonObject:
    return {"description": description, "content": {content_type: {"schema": {"type": "string"}}}}


_ENTITY_STATEMENT: Final = _jwt_response("A signed entity statement (§3).", ENTITY_STATEMENT_CONTENT_TYPE)

CONTRACT: Final = ContractFragment(
    tag="federation",
    description="OpenID Federation 1.0 between OneCard deployments (docs/federation.md): the entity "
    "configuration every deployment publishes, the endpoints of a trust anchor or intermediate, and the "
    "staff's register of subordinates (`admin` scope). Errors as §8.9 gives them, in the one error shape.",
    schemas={"FederationSubordinate": _SUBORDINATE, "FederationSubordinateRegistration": _REGISTRATION},
    operations=(
        Operation(
            "get",
            ENTITY_CONFIGURATION_PATH,
            {
                "operationId": "getEntityConfiguration",
                "summary": "This deployment's entity configuration (§9), signed with its federation key",
                "security": PUBLIC,
                "responses": {"200": _ENTITY_STATEMENT},
            },
        ),
        Operation(
            "get",
            FETCH_PATH,
            {
                "operationId": "fetchSubordinateStatement",
                "summary": "The subordinate statement about a registered subordinate (§8.1)",
                "description": "`not_found` for an entity that is not (or no longer) a subordinate, and on "
                "a deployment that is neither trust anchor nor intermediate.",
                "security": PUBLIC,
                "parameters": [query_parameter("sub", _ENTITY_ID, "The subordinate.", required=True)],
                "responses": {"200": _ENTITY_STATEMENT, **refusals(400, 404)},
            },
            refusal=FederationRequestError,
        ),
        Operation(
            "get",
            LIST_PATH,
            {
                "operationId": "listSubordinates",
                "summary": "The entity ids of the registered subordinates (§8.2)",
                "description": "The filters of §8.2.1 are refused with `unsupported_parameter`.",
                "security": PUBLIC,
                "parameters": [
                    query_parameter(name, {"type": "string"}, "Not supported.") for name in LIST_FILTERS
                ],
                "responses": {
                    "200": json_response(
                        "The entity ids.", {"type": "array", "items": {"type": "string", "format": "uri"}}
                    ),
                    **refusals(400, 404),
                },
            },
            refusal=FederationRequestError,
        ),
        Operation(
            "get",
            RESOLVE_PATH,
            {
                "operationId": "resolveEntity",
                "summary": "Resolve and validate an entity's trust chain to a trust anchor (§8.3)",
                "description": "A signed resolve response (§8.3.2): the metadata after the chain's policies, "
                "the verified trust marks, the chain. `invalid_trust_anchor` (404) for an anchor this "
                "deployment does not trust, `invalid_trust_chain` or `invalid_metadata` (400) when no valid "
                "chain exists.",
                "security": PUBLIC,
                "parameters": [
                    query_parameter("sub", _ENTITY_ID, "The entity to resolve.", required=True),
                    query_parameter("trust_anchor", _ENTITY_ID, "The trust anchor.", required=True),
                    query_parameter(
                        "entity_type",
                        {"type": "string"},
                        "Only this entity type's metadata; repeat the parameter for several.",
                    ),
                ],
                "responses": {
                    "200": _jwt_response("The resolve response.", RESOLVE_RESPONSE_CONTENT_TYPE),
                    **refusals(400, 404),
                },
            },
            refusal=FederationRequestError,
        ),
        Operation(
            "get",
            SUBORDINATES,
            {
                "operationId": "listFederationSubordinates",
                "summary": "Every registered subordinate",
                "security": ADMIN_TOKEN,
                "responses": {
                    "200": json_response(
                        "The subordinates, oldest first.",
                        {
                            "type": "object",
                            "required": ["subordinates"],
                            "additionalProperties": False,
                            "properties": {
                                "subordinates": {"type": "array", "items": ref("FederationSubordinate")}
                            },
                        },
                    ),
                    **refusals(401, 403, 404),
                },
            },
        ),
        Operation(
            "post",
            SUBORDINATES,
            {
                "operationId": "createFederationSubordinate",
                "summary": "Register a subordinate (audited)",
                "description": "`invalid_subordinate` for a registration that does not fit (a policy whose "
                "operators cannot be combined, a private key in the JWKS…), `subordinate_exists` for an "
                "entity registered already; `not_found` on a leaf.",
                "security": ADMIN_TOKEN,
                "requestBody": json_request(ref("FederationSubordinateRegistration")),
                "responses": {
                    "201": json_response("The subordinate.", ref("FederationSubordinate")),
                    **refusals(400, 401, 403, 404, 409),
                },
            },
        ),
        Operation(
            "get",
            SUBORDINATES + "/{subordinate_id}",
            {
                "operationId": "getFederationSubordinate",
                "summary": "One subordinate",
                "security": ADMIN_TOKEN,
                "parameters": [SUBORDINATE_ID],
                "responses": {
                    "200": json_response("The subordinate.", ref("FederationSubordinate")),
                    **refusals(401, 403, 404),
                },
            },
        ),
        Operation(
            "delete",
            SUBORDINATES + "/{subordinate_id}",
            {
                "operationId": "removeFederationSubordinate",
                "summary": "Remove a subordinate (audited); `fetch` answers `not_found` for it at once",
                "security": ADMIN_TOKEN,
                "parameters": [SUBORDINATE_ID],
                "responses": {"204": NO_CONTENT, **refusals(401, 403, 404)},
            },
        ),
    ),
)
