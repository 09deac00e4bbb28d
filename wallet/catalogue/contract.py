"""The contract of the catalogue's JSON APIs (``wallet.catalogue.views``): its part of
``/api/openapi.json``. A malformed search is ``invalid_catalogue_query``; a malformed entry
``invalid_catalogue_entry``, whether the contract or the service refuses it."""

from __future__ import annotations

from typing import Final

from idp.openapi.components import (
    CACHE_HEADERS,
    FLAG,
    IF_NONE_MATCH,
    NO_CONTENT,
    NOT_MODIFIED,
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
from wallet.catalogue.errors import InvalidCatalogueEntryError, InvalidCatalogueQueryError
from wallet.catalogue.search import DEFAULT_PER_PAGE, MAX_KEYWORD, MAX_PAGE, MAX_PER_PAGE
from wallet.catalogue.service import (
    CAPABILITIES,
    CATEGORIES,
    ENTRY_ID_PATTERN,
    FACTS,
    MAX_ADDRESS,
    MAX_ITEMS,
    MAX_NAME,
    REGION_PATTERN,
)

PUBLIC_PATH: Final = "/api/v1/catalogue"
ADMIN_PATH: Final = "/api/v1/admin/catalogue"
ENTRY_ID: Final = path_parameter("entry_id", "The entry's id.")
ADMIN_TOKEN: Final = service_token(ADMIN)
_REGION_CODE: Final[JsonObject] = {"type": "string", "pattern": f"^{REGION_PATTERN}$"}
_DIVISION: Final[JsonObject] = {
    "type": "object",
    "required": ["code", "name", "name_en"],
    "additionalProperties": False,
    "properties": {"code": _REGION_CODE, "name": {"type": "string"}, "name_en": {"type": "string"}},
}
_ENTRY_PROPERTIES: Final[JsonObject] = {
    "entry_id": {"type": "string"},
    "name": {"type": "string"},
    "category": {"enum": list(CATEGORIES)},
    "region": {
        "type": ["object", "null"],
        "description": "The GB/T 2260 code, with the divisions it lies in where the gazetteer knows them.",
        "required": ["code", "name", "divisions"],
        "additionalProperties": False,
        "properties": {
            "code": _REGION_CODE,
            "name": {"type": ["string", "null"]},
            "divisions": {"type": "array", "items": _DIVISION},
        },
    },
    "address": {"type": "string"},
    "coordinates": {
        "type": ["object", "null"],
        "required": ["latitude", "longitude"],
        "additionalProperties": False,
        "properties": {"latitude": {"type": "number"}, "longitude": {"type": "number"}},
    },
    "capabilities": {"type": "array", "items": {"enum": list(CAPABILITIES)}},
    "claims": {
        "type": "array",
        "items": {"enum": list(FACTS)},
        "description": "What the place learns about the citizen.",
    },
    "claims_source": {
        "enum": ["venue", "staff"],
        "description": "`venue`: the gate venue's registered claims (kept by the venue register).",
    },
    "venue_id": {"type": ["string", "null"], "description": "The gate venue this entry lists, if any."},
    "listed": {"type": "boolean", "description": "False once withdrawn from the public catalogue."},
    "version": {"type": "integer", "minimum": 1},
    "updated_at": TIMESTAMP,
}
_ENTRY: Final[JsonObject] = {
    "type": "object",
    "required": list(_ENTRY_PROPERTIES),
    "additionalProperties": False,
    "properties": _ENTRY_PROPERTIES,
}
_FIELDS: Final[JsonObject] = {
    "name": {"type": "string", "description": f"Printable, at most {MAX_NAME} characters (trimmed)."},
    "category": {"type": "string", "enum": list(CATEGORIES)},
    "region": {**_REGION_CODE, "type": ["string", "null"], "description": "GB/T 2260 code."},
    "address": {"type": "string", "description": f"At most {MAX_ADDRESS} characters."},
    "latitude": {"type": ["number", "null"], "minimum": -90, "maximum": 90},
    "longitude": {"type": ["number", "null"], "minimum": -180, "maximum": 180},
    "capabilities": {"type": "array", "items": {"enum": list(CAPABILITIES)}, "maxItems": MAX_ITEMS},
    "claims": {
        "type": "array",
        "items": {"enum": list(FACTS)},
        "maxItems": MAX_ITEMS,
        "description": "Staff-entered; on an entry of a gate venue, the venue's own (not changeable here).",
    },
}
_SEARCH_PARAMETERS: Final = [
    query_parameter("q", {"type": "string", "maxLength": MAX_KEYWORD}, "Words of the name or address."),
    query_parameter("category", {"type": "string"}, "One of the categories."),
    query_parameter("region", {"type": "string"}, "A GB/T 2260 code: its divisions' entries too."),
    query_parameter("capability", {"type": "string"}, "What the card should do there."),
    query_parameter("near", {"type": "string"}, "A division code of `/regions`: sorted by distance from it."),
    query_parameter("lat", {"type": "string"}, "With `lon`: sorted by distance from this point."),
    query_parameter("lon", {"type": "string"}, "With `lat`."),
    query_parameter("page", {"type": "string"}, f"1…{MAX_PAGE}, default 1."),
    query_parameter("per_page", {"type": "string"}, f"1…{MAX_PER_PAGE}, default {DEFAULT_PER_PAGE}."),
]

CONTRACT: Final = ContractFragment(
    tag="catalogue",
    description=(
        "The application catalogue: where the card works, what it does there and what each place learns. "
        "Public and read-only with ETags; kept by staff (`admin` scope) with a history of every version."
    ),
    schemas={
        "CatalogueEntry": _ENTRY,
        "CatalogueHit": {
            **_ENTRY,
            "required": [*_ENTRY_PROPERTIES, "distance_km"],
            "properties": {
                **_ENTRY_PROPERTIES,
                "distance_km": {"type": ["number", "null"], "description": "From the point searched near."},
            },
        },
        "NewCatalogueEntry": {
            "type": "object",
            "required": ["name", "category"],
            "additionalProperties": False,
            "properties": {
                **_FIELDS,
                "entry_id": {
                    "type": ["string", "null"],
                    "pattern": f"^{ENTRY_ID_PATTERN}$",
                    "description": "The id to create under; generated (`ce_…`) when absent.",
                },
            },
        },
        "CatalogueChange": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                **_FIELDS,
                "version": {
                    "type": ["integer", "null"],
                    "description": "The version changed; a later one is refused (`catalogue_entry_changed`).",
                },
            },
        },
        "CatalogueRevision": {
            "type": "object",
            "required": ["version", "action", "actor", "at", "changed", "entry"],
            "additionalProperties": False,
            "properties": {
                "version": {"type": "integer"},
                "action": {"enum": ["create", "update", "withdraw", "restore"]},
                "actor": {"type": "string"},
                "at": TIMESTAMP,
                "changed": {"type": "array", "items": {"type": "string"}},
                "entry": {"type": "object", "description": "The entry's content in this version."},
            },
        },
    },
    operations=(
        Operation(
            "get",
            PUBLIC_PATH,
            {
                "operationId": "searchCatalogue",
                "summary": "Search the public catalogue (no login)",
                "security": PUBLIC,
                "parameters": [*_SEARCH_PARAMETERS, IF_NONE_MATCH],
                "responses": {
                    "200": json_response(
                        "One page of the entries found.",
                        {
                            "type": "object",
                            "required": ["entries", "total", "page", "per_page", "pages"],
                            "additionalProperties": False,
                            "properties": {
                                "entries": {"type": "array", "items": ref("CatalogueHit")},
                                "total": {"type": "integer"},
                                "page": {"type": "integer"},
                                "per_page": {"type": "integer"},
                                "pages": {"type": "integer"},
                            },
                        },
                        headers=CACHE_HEADERS,
                    ),
                    "304": NOT_MODIFIED,
                    **refusals(400),
                },
            },
            refusal=InvalidCatalogueQueryError,
        ),
        Operation(
            "get",
            PUBLIC_PATH + "/regions",
            {
                "operationId": "listCatalogueRegions",
                "summary": "The divisions one can search near, with their centroids",
                "security": PUBLIC,
                "parameters": [IF_NONE_MATCH],
                "responses": {
                    "200": json_response(
                        "The gazetteer.",
                        {
                            "type": "object",
                            "required": ["divisions"],
                            "additionalProperties": False,
                            "properties": {"divisions": {"type": "array", "items": {"type": "object"}}},
                        },
                        headers=CACHE_HEADERS,
                    ),
                    "304": NOT_MODIFIED,
                },
            },
        ),
        Operation(
            "get",
            PUBLIC_PATH + "/{entry_id}",
            {
                "operationId": "getCatalogueEntry",
                "summary": "One listed entry",
                "security": PUBLIC,
                "parameters": [ENTRY_ID, IF_NONE_MATCH],
                "responses": {
                    "200": json_response("The entry.", ref("CatalogueEntry"), headers=CACHE_HEADERS),
                    "304": NOT_MODIFIED,
                    **refusals(404),
                },
            },
        ),
        Operation(
            "get",
            ADMIN_PATH,
            {
                "operationId": "listCatalogueEntries",
                "summary": "Every entry, with the categories, capabilities and claims an entry may have",
                "security": ADMIN_TOKEN,
                "parameters": [query_parameter("include_withdrawn", FLAG, "Also withdrawn entries.")],
                "responses": {
                    "200": json_response(
                        "The entries.",
                        {
                            "type": "object",
                            "required": ["entries", "categories", "capabilities", "claims"],
                            "additionalProperties": False,
                            "properties": {
                                "entries": {"type": "array", "items": ref("CatalogueEntry")},
                                "categories": {"type": "array", "items": {"type": "string"}},
                                "capabilities": {"type": "array", "items": {"type": "string"}},
                                "claims": {"type": "array", "items": {"type": "string"}},
                            },
                        },
                    ),
                    **refusals(400, 401, 403),
                },
            },
        ),
        Operation(
            "post",
            ADMIN_PATH,
            {
                "operationId": "createCatalogueEntry",
                "summary": "Add an entry (its version 1; audited)",
                "security": ADMIN_TOKEN,
                "requestBody": json_request(ref("NewCatalogueEntry")),
                "responses": {
                    "201": json_response("The entry.", ref("CatalogueEntry")),
                    **refusals(400, 401, 403, 409),
                },
            },
            refusal=InvalidCatalogueEntryError,
        ),
        Operation(
            "get",
            ADMIN_PATH + "/{entry_id}",
            {
                "operationId": "getCatalogueEntryForStaff",
                "summary": "One entry, withdrawn or not",
                "security": ADMIN_TOKEN,
                "parameters": [ENTRY_ID],
                "responses": {
                    "200": json_response("The entry.", ref("CatalogueEntry")),
                    **refusals(401, 403, 404),
                },
            },
        ),
        Operation(
            "patch",
            ADMIN_PATH + "/{entry_id}",
            {
                "operationId": "changeCatalogueEntry",
                "summary": "Change some fields: the next version (audited); no change, no version",
                "security": ADMIN_TOKEN,
                "parameters": [ENTRY_ID],
                "requestBody": json_request(ref("CatalogueChange")),
                "responses": {
                    "200": json_response("The entry as it is now.", ref("CatalogueEntry")),
                    **refusals(400, 401, 403, 404, 409),
                },
            },
            refusal=InvalidCatalogueEntryError,
        ),
        Operation(
            "delete",
            ADMIN_PATH + "/{entry_id}",
            {
                "operationId": "withdrawCatalogueEntry",
                "summary": "Withdraw an entry from the public catalogue (a new version; audited)",
                "security": ADMIN_TOKEN,
                "parameters": [ENTRY_ID],
                "responses": {"204": NO_CONTENT, **refusals(401, 403, 404)},
            },
        ),
        Operation(
            "post",
            ADMIN_PATH + "/{entry_id}/restore",
            {
                "operationId": "restoreCatalogueEntry",
                "summary": "List a withdrawn entry again (a new version; audited)",
                "security": ADMIN_TOKEN,
                "parameters": [ENTRY_ID],
                "responses": {
                    "200": json_response("The entry.", ref("CatalogueEntry")),
                    **refusals(400, 401, 403, 404),
                },
            },
            refusal=InvalidCatalogueEntryError,
        ),
        Operation(
            "get",
            ADMIN_PATH + "/{entry_id}/history",
            {
                "operationId": "getCatalogueEntryHistory",
                "summary": "Every version of an entry, oldest first: who changed what, when",
                "security": ADMIN_TOKEN,
                "parameters": [ENTRY_ID],
                "responses": {
                    "200": json_response(
                        "The versions.",
                        {
                            "type": "object",
                            "required": ["entry_id", "revisions"],
                            "additionalProperties": False,
                            "properties": {
                                "entry_id": {"type": "string"},
                                "revisions": {"type": "array", "items": ref("CatalogueRevision")},
                            },
                        },
                    ),
                    **refusals(401, 403, 404),
                },
            },
        ),
    ),
)
