"""The contract of the admin API's clients and citizen register (``idp.admin.views``): its part of
``/api/openapi.json``. Enumerations come from the constants the services check, so they cannot drift."""

from __future__ import annotations

from typing import Final

from idp.admin.views import MAX_OFFSET, MAX_PAGE_SIZE
from idp.citizens.importer import ImportProblemReason
from idp.citizens.model import CitizenStatus
from idp.clients.service import (
    AUTH_METHODS,
    CLIENT_KINDS,
    CLIENT_POLICY_FLAGS,
    ID_TOKEN_ALGS,
    MAX_CLIENT_FIELD_LENGTHS,
    SUBJECT_TYPES,
)
from idp.federation.registration import FEDERATION_CLIENT_KIND
from idp.openapi.components import (
    FLAG,
    NO_CONTENT,
    TIMESTAMP,
    JsonObject,
    clamped_integer,
    json_request,
    json_response,
    path_parameter,
    query_parameter,
    ref,
    refusals,
    service_token,
)
from idp.openapi.contract import ContractFragment, Operation
from idp.scopes import ADMIN, ALL_SCOPES

ADMIN_TOKEN: Final = service_token(ADMIN)
CLIENTS: Final = "/api/v1/admin/clients"
CLIENT_ID: Final = path_parameter("client_id", "The client's id.")


def _text(field: str, description: str = "") -> JsonObject:
    schema: JsonObject = {"type": "string", "maxLength": MAX_CLIENT_FIELD_LENGTHS[field]}
    return {**schema, "description": description} if description else schema


_URIS: Final[JsonObject] = {"type": "array", "items": {"type": "string", "format": "uri", "maxLength": 2000}}
_CLIENT_PROPERTIES: Final[JsonObject] = {
    "client_id": {"type": "string"},
    "name": {"type": "string"},
    # Staff register the CLIENT_KINDS; another region's OneCard registers itself (OpenID Federation §12.1).
    "kind": {"enum": [*CLIENT_KINDS, FEDERATION_CLIENT_KIND]},
    "redirect_uris": _URIS,
    "post_logout_redirect_uris": _URIS,
    "grant_types": {"type": "array", "items": {"type": "string"}},
    "scope": {"type": "string", "description": "Space-separated scopes."},
    "token_endpoint_auth_method": {"enum": list(AUTH_METHODS)},
    "subject_type": {"enum": list(SUBJECT_TYPES)},
    "sector_identifier": {"type": "string", "description": "The pairwise sector (OIDC Core §8.1)."},
    "id_token_signed_response_alg": {"enum": list(ID_TOKEN_ALGS)},
    "first_party": {"type": "boolean"},
    "id_number_allowed": {"type": "boolean"},
    "backchannel_logout_uri": {"type": ["string", "null"], "format": "uri"},
    **{name: {"type": "boolean"} for name in CLIENT_POLICY_FLAGS},
    "created_at": TIMESTAMP,
}
_CLIENT: Final[JsonObject] = {
    "type": "object",
    "required": list(_CLIENT_PROPERTIES),
    "additionalProperties": False,
    "properties": _CLIENT_PROPERTIES,
}
_REGISTRATION: Final[JsonObject] = {
    "description": "Client metadata (RFC 7591 names where they exist); only `name` is required.",
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": _text("name"),
        "kind": {"type": "string", "enum": list(CLIENT_KINDS), "default": "portal"},
        "redirect_uris": {**_URIS, "description": "https, or http on a loopback host; compared exactly."},
        "post_logout_redirect_uris": _URIS,
        "scope": _text("scope", f"Space-separated, from: {' '.join(ALL_SCOPES)}."),
        "token_endpoint_auth_method": {"type": "string", "enum": list(AUTH_METHODS)},
        "jwks": {"type": "object", "description": "The client's JWK Set (RFC 7517 §5), for private_key_jwt."},
        "subject_type": {"type": "string", "enum": list(SUBJECT_TYPES)},
        "sector_identifier": _text("sector_identifier"),
        "id_token_signed_response_alg": {"type": "string", "enum": list(ID_TOKEN_ALGS)},
        "first_party": {"type": "boolean"},
        "id_number_allowed": {"type": "boolean"},
        "backchannel_logout_uri": {**_text("backchannel_logout_uri"), "format": "uri"},
        "client_id": _text("client_id", "The id to register under; generated when absent or empty."),
        "fapi2_security_profile": {
            "type": "boolean",
            "description": "Enforce the FAPI 2.0 Security Profile: PAR, PKCE S256, DPoP-bound tokens, "
            "`private_key_jwt` only (required), a code lifetime of 60 s at most.",
        },
        "require_pushed_authorization_requests": {
            "type": "boolean",
            "description": "Authorization requests only through the PAR endpoint (RFC 9126 §6).",
        },
        "require_signed_request_object": {
            "type": "boolean",
            "description": "Authorization requests only as signed request objects (RFC 9101 §10.5); "
            "needs `private_key_jwt` and its `jwks`.",
        },
        "dpop_bound_access_tokens": {
            "type": "boolean",
            "description": "Every token is DPoP-bound (RFC 9449 §5.2).",
        },
    },
}
_CITIZEN_PAGE: Final[JsonObject] = {
    "type": "object",
    "required": ["total", "offset", "citizens"],
    "additionalProperties": False,
    "properties": {
        "total": {"type": "integer", "minimum": 0},
        "offset": {"type": "integer", "minimum": 0},
        "citizens": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["citizen_id", "id_number", "status", "created_at"],
                "additionalProperties": False,
                "properties": {
                    "citizen_id": {"type": "string"},
                    "id_number": {"type": "string", "description": "Always masked outside the owner's view."},
                    "status": {"enum": [status.value for status in CitizenStatus]},
                    "created_at": TIMESTAMP,
                },
            },
        },
    },
}
_IMPORT_REPORT: Final[JsonObject] = {
    "description": "All rows imported, or none; the problems name lines and reasons, never a cell's value.",
    "type": "object",
    "required": ["ok", "rows", "imported", "summary", "problems"],
    "additionalProperties": False,
    "properties": {
        "ok": {"type": "boolean"},
        "rows": {"type": "integer", "minimum": 0},
        "imported": {"type": "integer", "minimum": 0},
        "summary": {"type": "string"},
        "problems": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["line", "reason", "detail"],
                "additionalProperties": False,
                "properties": {
                    "line": {"type": "integer", "minimum": 0},
                    "reason": {"enum": [reason.value for reason in ImportProblemReason]},
                    "detail": {"type": "string"},
                },
            },
        },
    },
}

CONTRACT: Final = ContractFragment(
    tag="admin",
    description="Clients and the citizen register, for the security and operations staff (`admin` scope).",
    schemas={
        "Client": _CLIENT,
        "CreatedClient": {
            **_CLIENT,
            "description": "The registered client, with its secret: shown this once (only its hash is kept).",
            "properties": {**_CLIENT_PROPERTIES, "client_secret": {"type": "string", "pattern": "^occs_"}},
        },
        "ClientRegistration": _REGISTRATION,
        "CitizenPage": _CITIZEN_PAGE,
        "ImportReport": _IMPORT_REPORT,
    },
    operations=(
        Operation(
            "get",
            CLIENTS,
            {
                "operationId": "listClients",
                "summary": "Every registered client",
                "security": ADMIN_TOKEN,
                "responses": {
                    "200": json_response(
                        "The clients, oldest first.",
                        {
                            "type": "object",
                            "required": ["clients"],
                            "additionalProperties": False,
                            "properties": {"clients": {"type": "array", "items": ref("Client")}},
                        },
                    ),
                    **refusals(401, 403),
                },
            },
        ),
        Operation(
            "post",
            CLIENTS,
            {
                "operationId": "createClient",
                "summary": "Register a client (audited)",
                "description": "`invalid_client_metadata` for metadata that does not fit together (a "
                "redirect URI without https, an unknown scope, citizen scopes without `openid`…), "
                "`client_exists` for a taken `client_id`.",
                "security": ADMIN_TOKEN,
                "requestBody": json_request(ref("ClientRegistration")),
                "responses": {
                    "201": json_response("The client and its secret.", ref("CreatedClient")),
                    **refusals(400, 401, 403, 409),
                },
            },
        ),
        Operation(
            "get",
            CLIENTS + "/{client_id}",
            {
                "operationId": "getClient",
                "summary": "One client",
                "security": ADMIN_TOKEN,
                "parameters": [CLIENT_ID],
                "responses": {"200": json_response("The client.", ref("Client")), **refusals(401, 403, 404)},
            },
        ),
        Operation(
            "delete",
            CLIENTS + "/{client_id}",
            {
                "operationId": "removeClient",
                "summary": "Remove a client (audited); its credentials stop working at once",
                "security": ADMIN_TOKEN,
                "parameters": [CLIENT_ID],
                "responses": {"204": NO_CONTENT, **refusals(401, 403, 404)},
            },
        ),
        Operation(
            "get",
            "/api/v1/admin/citizens",
            {
                "operationId": "listCitizens",
                "summary": "A page of the citizen register, ID numbers masked",
                "security": ADMIN_TOKEN,
                "parameters": [
                    query_parameter("offset", clamped_integer(0, MAX_OFFSET, 0), "Rows to skip."),
                    query_parameter("limit", clamped_integer(1, MAX_PAGE_SIZE, 100), "Rows to return."),
                ],
                "responses": {
                    "200": json_response("The page.", ref("CitizenPage")),
                    **refusals(400, 401, 403),
                },
            },
        ),
        Operation(
            "post",
            "/api/v1/admin/citizens/import",
            {
                "operationId": "importCitizens",
                "summary": "Import citizens from CSV, all rows or none (audited)",
                "description": "A CSV file with the header row `name,id_number`, UTF-8, at most 16 MiB.",
                "security": ADMIN_TOKEN,
                "parameters": [query_parameter("dry_run", FLAG, "Check the file, import nothing.")],
                "requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}},
                "responses": {
                    "200": json_response(
                        "Every row is valid (and imported, unless a dry run).", ref("ImportReport")
                    ),
                    "422": json_response("Problems were found; nothing was imported.", ref("ImportReport")),
                    **refusals(400, 401, 403),
                },
            },
        ),
    ),
)
