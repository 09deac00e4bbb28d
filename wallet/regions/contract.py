"""The contract of the gates-across-regions endpoints (``wallet.regions.views``, docs/formats/essc1.md §6a):
their part of ``/api/openapi.json``."""

from __future__ import annotations

from typing import Final

from idp.federation.metadata import FEDERATION_SUSPENDED_HANDLES_PATH
from idp.openapi.components import (
    CACHE_HEADERS,
    IF_NONE_MATCH,
    NOT_MODIFIED,
    POSIX_SECONDS,
    PUBLIC,
    VENUE,
    json_response,
    ref,
    refusals,
)
from idp.openapi.contract import ContractFragment, Operation
from wallet.regions.views import REGIONS_PATH

CONTRACT: Final = ContractFragment(
    tag="gate-regions",
    description="Gates across regions: other OneCard deployments fetch this one's suspended list through the "
    "federation, and this deployment's gates get every trusted region's QR key set and suspended list "
    "(docs/formats/essc1.md §6a, docs/federation.md).",
    schemas={
        "TrustedRegions": {
            "type": "object",
            "required": ["home_region_codes", "regions", "generated_at"],
            "properties": {
                "generated_at": POSIX_SECONDS,
                "home_region_codes": {
                    "type": "array",
                    "description": "This deployment's own region codes: no trusted region vouches for them.",
                    "items": {"type": "string", "pattern": "^[0-9]{6}$"},
                },
                "regions": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": [
                            "entity_id",
                            "name",
                            "region_codes",
                            "qr_jwks",
                            "qr_jwks_updated_at",
                            "suspended_handles",
                        ],
                        "properties": {
                            "entity_id": {
                                "type": "string",
                                "description": "The region's federation entity id.",
                            },
                            "name": {"type": "string"},
                            "region_codes": {
                                "type": "array",
                                "minItems": 1,
                                "items": {"type": "string", "pattern": "^[0-9]{6}$"},
                            },
                            "qr_jwks": {
                                "type": "object",
                                "required": ["keys"],
                                "description": "The region's QR key set (EdDSA keys), as last synced.",
                            },
                            "qr_jwks_updated_at": {
                                **POSIX_SECONDS,
                                "description": "When the key set was last confirmed by the region.",
                            },
                            "suspended_handles": {
                                "type": "object",
                                "required": ["handles", "updated_at"],
                                "properties": {
                                    "handles": {
                                        "type": "array",
                                        "items": {"type": "string"},
                                        "uniqueItems": True,
                                    },
                                    "updated_at": {
                                        **POSIX_SECONDS,
                                        "description": "When the list was last confirmed by the region: a "
                                        "gate refuses the region's codes once this is older than its limit.",
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
    operations=(
        Operation(
            "get",
            REGIONS_PATH,
            {
                "operationId": "listTrustedRegions",
                "summary": "Every region the federation trusts, with its QR key set and suspended list",
                "security": VENUE,
                "parameters": [IF_NONE_MATCH],
                "responses": {
                    "200": json_response("The regions.", ref("TrustedRegions"), headers=CACHE_HEADERS),
                    "304": NOT_MODIFIED,
                    **refusals(401, 403),
                },
            },
        ),
        Operation(
            "get",
            FEDERATION_SUSPENDED_HANDLES_PATH,
            {
                "operationId": "listSuspendedHandlesForFederation",
                "summary": "The suspended-handles list, for other OneCard deployments of the federation",
                "description": "The caller sends `Authorization: Bearer <JWT>`: signed by its federation key "
                "as its superior vouches for it, `iss` = `sub` = its entity id, `aud` = this URL, `exp` at "
                "most 300 s after `iat`, a `jti` used once. Anything else is 401.",
                "security": PUBLIC,
                "parameters": [IF_NONE_MATCH],
                "responses": {
                    "200": json_response("The list.", ref("SuspendedHandles"), headers=CACHE_HEADERS),
                    "304": NOT_MODIFIED,
                    **refusals(401, 404),
                },
            },
        ),
    ),
)
