"""The contract of the gate API (``wallet.scans.views``, docs/formats/essc1.md §6, §7): its part of
``/api/openapi.json``. A verdict, pass or reject, is always 200; any other status means "no verdict"."""

from __future__ import annotations

from typing import Final

from idp.citizens.idnumber import Gender
from idp.openapi.components import (
    CACHE_HEADERS,
    IF_NONE_MATCH,
    NOT_MODIFIED,
    POSIX_SECONDS,
    VENUE,
    JsonObject,
    json_request,
    json_response,
    ref,
    refusals,
)
from idp.openapi.contract import ContractFragment, Operation
from sdk.qr_token import QrTokenReason
from wallet.scans.service import MAX_GATE_ID
from wallet.venues.service import VENUE_CLAIMS

# What a venue's policy may let it learn (VENUE_CLAIMS), with the type each has.
_CLAIM_TYPES: Final[dict[str, JsonObject]] = {
    "valid_resident": {"const": True},
    "region": {"type": "string"},
    "age_over_18": {"type": "boolean"},
    "age_over_60": {"type": "boolean"},
    "age_over_65": {"type": "boolean"},
    "gender": {"enum": [gender.value for gender in Gender]},
    "name": {"type": "string"},
    "id_number_masked": {"type": "string"},
}
assert set(_CLAIM_TYPES) == set(VENUE_CLAIMS), "every claim a venue may learn has its type here"
# The online API never answers revocation_list_stale: only an offline gate finds that, in its own state.
_ONLINE_REASONS: Final = [
    reason.value for reason in QrTokenReason if reason is not QrTokenReason.REVOCATION_LIST_STALE
]

CONTRACT: Final = ContractFragment(
    tag="gate",
    description="Venues' gates: verifying a scanned e-card code online, and the suspended-handles list for "
    "verifying offline (docs/formats/essc1.md). The venue's gate credentials, never a token.",
    schemas={
        "GateVerdict": {
            "oneOf": [
                {
                    "title": "pass",
                    "type": "object",
                    "required": [
                        "verdict",
                        "handle",
                        "issuer",
                        "issued_at",
                        "expires_at",
                        "claims",
                        "scan_id",
                    ],
                    "additionalProperties": False,
                    "properties": {
                        "verdict": {"const": "pass"},
                        "handle": {"type": "string", "description": "The e-card's pseudonymous handle."},
                        "issuer": {"type": "string", "description": "The issuing region."},
                        "issued_at": POSIX_SECONDS,
                        "expires_at": POSIX_SECONDS,
                        "claims": {
                            "description": "What the venue's policy lets it learn; may be empty.",
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                name: {**schema, "description": VENUE_CLAIMS[name]}
                                for name, schema in _CLAIM_TYPES.items()
                            },
                        },
                        "scan_id": {"type": "string"},
                        "issuing_region": {
                            "description": "Only for a code of another region the federation trusts: the "
                            "region that issued it. Absent for this deployment's own codes.",
                            "type": "object",
                            "required": ["entity_id", "name"],
                            "additionalProperties": False,
                            "properties": {
                                "entity_id": {"type": "string", "description": "Its federation entity id."},
                                "name": {"type": "string"},
                            },
                        },
                    },
                },
                {
                    "title": "reject",
                    "type": "object",
                    "required": ["verdict", "reason"],
                    "additionalProperties": False,
                    "properties": {"verdict": {"const": "reject"}, "reason": {"enum": _ONLINE_REASONS}},
                },
            ],
        },
        "SuspendedHandles": {
            "type": "object",
            "required": ["handles", "generated_at"],
            "properties": {
                "handles": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
                "generated_at": POSIX_SECONDS,
                "count": {"type": "integer", "minimum": 0},
            },
        },
    },
    operations=(
        Operation(
            "post",
            "/api/v1/gate/verify",
            {
                "operationId": "verifyGateCode",
                "summary": "Verify a scanned e-card code, and use it up (one entry per code)",
                "security": VENUE,
                "requestBody": json_request(
                    {
                        "type": "object",
                        "required": ["code"],
                        "additionalProperties": False,
                        "properties": {
                            "code": {"type": "string", "description": "The scanned text, as read."},
                            "gate_id": {
                                "type": ["string", "null"],
                                "minLength": 1,
                                "maxLength": MAX_GATE_ID,
                                "description": "The venue's label for the scanner (printable); recorded.",
                            },
                        },
                    }
                ),
                "responses": {
                    "200": json_response("The verdict: pass or reject.", ref("GateVerdict")),
                    # 503: the scan could not be recorded, so no verdict is given (wallet.scans.batch).
                    **refusals(400, 401, 403, 429, 503),
                },
            },
        ),
        Operation(
            "get",
            "/api/v1/gate/suspended-handles",
            {
                "operationId": "listSuspendedHandles",
                "summary": "The handles of every suspended e-card, for offline verification",
                "security": VENUE,
                "parameters": [IF_NONE_MATCH],
                "responses": {
                    "200": json_response("The list.", ref("SuspendedHandles"), headers=CACHE_HEADERS),
                    "304": NOT_MODIFIED,
                    **refusals(401, 403),
                },
            },
        ),
    ),
)
