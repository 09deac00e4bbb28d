"""The contract of the venue admin API (``wallet.venues.views``): its part of ``/api/openapi.json``.
A malformed registration is ``invalid_venue``, whether the contract or the service refuses it."""

from __future__ import annotations

from typing import Final

from idp.openapi.components import (
    FLAG,
    NO_CONTENT,
    OPTIONAL_TIMESTAMP,
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
from wallet.venues.errors import InvalidVenueError
from wallet.venues.model import DEFAULT_VERIFY_PER_MINUTE
from wallet.venues.service import (
    MAX_NAME,
    MAX_POLICY_ITEMS,
    MAX_VERIFY_PER_MINUTE,
    MIN_VERIFY_PER_MINUTE,
    REGION_PATTERN,
    VENUE_CATEGORIES,
    VENUE_CLAIMS,
    VENUE_ID_PATTERN,
)

VENUES: Final = "/api/v1/admin/venues"
VENUE_ID: Final = path_parameter("venue_id", "The venue's id.")
ADMIN_TOKEN: Final = service_token(ADMIN)
_REGION: Final[JsonObject] = {
    "type": "string",
    "pattern": f"^{REGION_PATTERN}$",
    "description": "GB/T 2260 code.",
}
_CLAIMS: Final[JsonObject] = {"type": "array", "items": {"enum": list(VENUE_CLAIMS)}}
_VERIFY_PER_MINUTE: Final[JsonObject] = {
    "type": "integer",
    "minimum": MIN_VERIFY_PER_MINUTE,
    "maximum": MAX_VERIFY_PER_MINUTE,
    "description": "Online verifications a minute all the venue's gates together may ask for (then 429).",
}
_VENUE_PROPERTIES: Final[JsonObject] = {
    "venue_id": {"type": "string"},
    "name": {"type": "string"},
    "category": {"enum": list(VENUE_CATEGORIES)},
    "client_id": {
        "type": ["string", "null"],
        "description": "The gate credentials' client id; null once the venue is removed.",
    },
    "claims": _CLAIMS,
    "regions": {"type": "array", "items": _REGION},
    "verify_per_minute": _VERIFY_PER_MINUTE,
    "created_at": TIMESTAMP,
    "removed_at": OPTIONAL_TIMESTAMP,
}
_VENUE: Final[JsonObject] = {
    "type": "object",
    "required": list(_VENUE_PROPERTIES),
    "additionalProperties": False,
    "properties": _VENUE_PROPERTIES,
}

CONTRACT: Final = ContractFragment(
    tag="venues",
    description="Venues and their gate credentials (`admin` scope): what each venue's gates may learn.",
    schemas={
        "Venue": _VENUE,
        "CreatedVenue": {
            **_VENUE,
            "description": "The venue with its gate secret: shown this once (only its hash is kept).",
            "properties": {**_VENUE_PROPERTIES, "client_secret": {"type": "string", "pattern": "^occs_"}},
        },
        "VenueRegistration": {
            "type": "object",
            "required": ["name", "category"],
            "additionalProperties": False,
            "properties": {
                "name": {
                    "type": "string",
                    "description": f"Printable, at most {MAX_NAME} characters (trimmed).",
                },
                "category": {"type": "string", "enum": list(VENUE_CATEGORIES)},
                "claims": {
                    **_CLAIMS,
                    "maxItems": MAX_POLICY_ITEMS,
                    "description": "What its gates may learn of a citizen whose code passed.",
                },
                "regions": {
                    "type": "array",
                    "items": _REGION,
                    "maxItems": MAX_POLICY_ITEMS,
                    "description": "Only codes of these regions pass; any region when empty.",
                },
                "venue_id": {
                    "type": ["string", "null"],
                    "pattern": f"^{VENUE_ID_PATTERN}$",
                    "description": "The id to register under; generated (`vn_…`) when absent.",
                },
                "verify_per_minute": {**_VERIFY_PER_MINUTE, "default": DEFAULT_VERIFY_PER_MINUTE},
            },
        },
        "VenueUpdate": {
            "type": "object",
            "required": ["verify_per_minute"],
            "additionalProperties": False,
            "properties": {"verify_per_minute": _VERIFY_PER_MINUTE},
        },
    },
    operations=(
        Operation(
            "get",
            VENUES,
            {
                "operationId": "listVenues",
                "summary": "The venues, with the categories and claims a venue may have",
                "security": ADMIN_TOKEN,
                "parameters": [query_parameter("include_removed", FLAG, "Also removed venues.")],
                "responses": {
                    "200": json_response(
                        "The venues.",
                        {
                            "type": "object",
                            "required": ["venues", "categories", "claims"],
                            "additionalProperties": False,
                            "properties": {
                                "venues": {"type": "array", "items": ref("Venue")},
                                "categories": {"type": "array", "items": {"type": "string"}},
                                "claims": {
                                    "type": "object",
                                    "description": "Each claim a venue may learn, with what it means.",
                                    "additionalProperties": {"type": "string"},
                                },
                            },
                        },
                    ),
                    **refusals(400, 401, 403),
                },
            },
        ),
        Operation(
            "post",
            VENUES,
            {
                "operationId": "createVenue",
                "summary": "Register a venue and its gate credentials (audited)",
                "security": ADMIN_TOKEN,
                "requestBody": json_request(ref("VenueRegistration")),
                "responses": {
                    "201": json_response("The venue and its gate secret.", ref("CreatedVenue")),
                    **refusals(400, 401, 403, 409),
                },
            },
            refusal=InvalidVenueError,
        ),
        Operation(
            "get",
            VENUES + "/{venue_id}",
            {
                "operationId": "getVenue",
                "summary": "One venue",
                "security": ADMIN_TOKEN,
                "parameters": [VENUE_ID],
                "responses": {"200": json_response("The venue.", ref("Venue")), **refusals(401, 403, 404)},
            },
        ),
        Operation(
            "patch",
            VENUES + "/{venue_id}",
            {
                "operationId": "updateVenue",
                "summary": "Set a venue's limit of online verifications per minute (audited)",
                "security": ADMIN_TOKEN,
                "parameters": [VENUE_ID],
                "requestBody": json_request(ref("VenueUpdate")),
                "responses": {
                    "200": json_response("The venue.", ref("Venue")),
                    **refusals(400, 401, 403, 404),
                },
            },
            refusal=InvalidVenueError,
        ),
        Operation(
            "delete",
            VENUES + "/{venue_id}",
            {
                "operationId": "removeVenue",
                "summary": "Remove a venue (audited): its gate credentials stop working at once",
                "security": ADMIN_TOKEN,
                "parameters": [VENUE_ID],
                "responses": {"204": NO_CONTENT, **refusals(401, 403, 404)},
            },
        ),
    ),
)
