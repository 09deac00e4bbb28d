"""The contract of the key management API and the published QR key set (``idp.keys.views``): its part of
``/api/openapi.json``. Every change names the calling client and the body's ``reason`` in its audit event."""

from __future__ import annotations

from typing import Final

from idp.admin.contract import ADMIN_TOKEN
from idp.keys import QR_KEYS_PATH
from idp.keys.actor import MAX_REASON_LENGTH
from idp.keys.model import KeyState
from idp.keys.service import CORE_KEY_SETS
from idp.openapi.components import (
    CACHE_HEADERS,
    FLAG,
    IF_NONE_MATCH,
    NOT_MODIFIED,
    OPTIONAL_TIMESTAMP,
    PUBLIC,
    TIMESTAMP,
    JsonObject,
    json_request,
    json_response,
    path_parameter,
    query_parameter,
    ref,
    refusals,
)
from idp.openapi.contract import ContractFragment, Operation

KEYS: Final = "/api/v1/admin/keys"
KID: Final = path_parameter("kid", "The key's id.")
_KEY_SET_NAMES: Final = ", ".join(f"`{spec.name}`" for spec in CORE_KEY_SETS)
_REASON: Final[JsonObject] = {
    "type": "string",
    "description": f"Why: recorded in the audit event. Printable, at most {MAX_REASON_LENGTH} characters "
    "once runs of whitespace are one space.",
}
_FORCE: Final[JsonObject] = {
    "type": "boolean",
    "default": False,
    "description": "Skip the waiting period (pre-publication, retention): an emergency, audited as forced.",
}
_KEY_PROPERTIES: Final[JsonObject] = {
    "kid": {"type": "string"},
    "key_set": {"type": "string"},
    "alg": {"type": "string"},
    "state": {"enum": [state.value for state in KeyState]},
    "created_at": TIMESTAMP,
    "activated_at": OPTIONAL_TIMESTAMP,
    "retired_at": OPTIONAL_TIMESTAMP,
    "removed_at": OPTIONAL_TIMESTAMP,
    "revoked_at": OPTIONAL_TIMESTAMP,
    "published": {"type": "boolean", "description": "In the JWKS or the QR key set now."},
    "next": {
        "description": "The key's next lifecycle step and the earliest time for it, if any.",
        "oneOf": [
            {"type": "null"},
            {
                "type": "object",
                "required": ["action", "not_before"],
                "additionalProperties": False,
                "properties": {
                    "action": {"enum": ["activate", "remove", "rotate"]},
                    "not_before": OPTIONAL_TIMESTAMP,
                },
            },
        ],
    },
}


def _change_body(*, reason_required: bool = False, force: bool = True) -> JsonObject:
    properties: JsonObject = {"reason": {**_REASON, "minLength": 1} if reason_required else _REASON}
    if force:
        properties["force"] = _FORCE
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["reason"] if reason_required else [],
        "properties": properties,
    }


def _change(
    operation_id: str, action: str, summary: str, description: str, *, revoke: bool = False
) -> Operation:
    return Operation(
        "post",
        f"{KEYS}/{{kid}}/{action}",
        {
            "operationId": operation_id,
            "summary": summary,
            "description": description,
            "security": ADMIN_TOKEN,
            "parameters": [KID],
            "requestBody": json_request(
                _change_body(reason_required=revoke, force=not revoke), required=revoke
            ),
            "responses": {
                "200": json_response("What changed.", ref("KeyChanges")),
                **refusals(400, 401, 403, 404, 409),
            },
        },
    )


CONTRACT: Final = ContractFragment(
    tag="keys",
    description="Signing, encryption and cookie keys through their lifecycle (pending → active → retired → "
    "removed, or revoked), as `onecard keys` does (`admin` scope); and the published QR key set.",
    schemas={
        "Key": {
            "description": "A key as operators see it: never its secret.",
            "type": "object",
            "required": list(_KEY_PROPERTIES),
            "additionalProperties": False,
            "properties": {
                **_KEY_PROPERTIES,
                "public_jwk": {"type": "object", "description": "The public key (RFC 7517), for key pairs."},
                "rows": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Data keys: rows encrypted under it.",
                },
            },
        },
        "KeySetPolicy": {
            "type": "object",
            "required": [
                "key_set",
                "published",
                "prepublication_seconds",
                "retention_seconds",
                "rotation_interval_seconds",
                "rotatable",
                "derivation",
            ],
            "additionalProperties": False,
            "properties": {
                "key_set": {"type": "string"},
                "published": {"type": "boolean"},
                "prepublication_seconds": {"type": "integer", "minimum": 0},
                "retention_seconds": {"type": "integer", "minimum": 0},
                "rotation_interval_seconds": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "0: manual only.",
                },
                "rotatable": {"type": "boolean"},
                "derivation": {"type": "string", "description": "How the numbers follow from the settings."},
            },
        },
        "KeyChanges": {
            "type": "object",
            "required": ["changes"],
            "additionalProperties": False,
            "properties": {
                "changes": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["kid", "key_set", "action", "from", "to", "forced"],
                        "additionalProperties": False,
                        "properties": {
                            "kid": {"type": "string"},
                            "key_set": {"type": "string"},
                            "action": {"enum": ["create", "activate", "retire", "remove", "revoke"]},
                            "from": {"type": ["string", "null"]},
                            "to": {"type": "string"},
                            "forced": {"type": "boolean"},
                        },
                    },
                }
            },
        },
        "JwkSet": {
            "description": "A JWK Set (RFC 7517 §5).",
            "type": "object",
            "required": ["keys"],
            "properties": {"keys": {"type": "array", "items": {"type": "object", "required": ["kty"]}}},
        },
    },
    operations=(
        Operation(
            "get",
            KEYS,
            {
                "operationId": "listKeys",
                "summary": "The keys, by key set and newest first",
                "security": ADMIN_TOKEN,
                "parameters": [
                    query_parameter(
                        "key_set", {"type": "string"}, f"Only this key set ({_KEY_SET_NAMES}, …)."
                    ),
                    query_parameter("all", FLAG, "Also keys no longer published (removed, revoked)."),
                ],
                "responses": {
                    "200": json_response(
                        "The keys.",
                        {
                            "type": "object",
                            "required": ["keys"],
                            "additionalProperties": False,
                            "properties": {"keys": {"type": "array", "items": ref("Key")}},
                        },
                    ),
                    **refusals(400, 401, 403),
                },
            },
        ),
        Operation(
            "get",
            KEYS + "/policy",
            {
                "operationId": "listKeySetPolicies",
                "summary": "Each key set's waiting periods and rotation interval, and how they were derived",
                "security": ADMIN_TOKEN,
                "responses": {
                    "200": json_response(
                        "The policies.",
                        {
                            "type": "object",
                            "required": ["policies"],
                            "additionalProperties": False,
                            "properties": {"policies": {"type": "array", "items": ref("KeySetPolicy")}},
                        },
                    ),
                    **refusals(401, 403),
                },
            },
        ),
        Operation(
            "get",
            KEYS + "/{kid}",
            {
                "operationId": "getKey",
                "summary": "One key",
                "security": ADMIN_TOKEN,
                "parameters": [KID],
                "responses": {"200": json_response("The key.", ref("Key")), **refusals(401, 403, 404)},
            },
        ),
        Operation(
            "post",
            KEYS + "/rotate",
            {
                "operationId": "rotateKeySet",
                "summary": "Create the next key of a key set (pending: published before it may sign)",
                "security": ADMIN_TOKEN,
                "requestBody": json_request(
                    {
                        "type": "object",
                        "required": ["key_set"],
                        "additionalProperties": False,
                        "properties": {
                            "key_set": {"type": "string", "minLength": 1, "description": _KEY_SET_NAMES},
                            "reason": _REASON,
                        },
                    }
                ),
                "responses": {
                    "201": json_response("The key created.", ref("KeyChanges")),
                    **refusals(400, 401, 403, 404, 409),
                },
            },
        ),
        _change(
            "activateKey",
            "activate",
            "Let a pending key sign (the active one retires)",
            "`key_not_published_long_enough` before its pre-publication period is over, unless forced.",
        ),
        _change(
            "retireKey",
            "retire",
            "Stop an active key signing; it still verifies",
            "`key_state_conflict` for a key that is not active, or the last active key of its set.",
        ),
        _change(
            "removeKey",
            "remove",
            "Unpublish a retired or pending key",
            "`key_retention_not_over` while what it signed may still be in use, unless forced; "
            "`key_in_use` for a data key rows are still encrypted under.",
        ),
        _change(
            "revokeKey",
            "revoke",
            "Withdraw a key at once (a suspected leak): nothing it signed verifies any more",
            "A `reason` is required. Whatever the key signed stops verifying with the next request.",
            revoke=True,
        ),
        Operation(
            "post",
            KEYS + "/tick",
            {
                "operationId": "runKeyScheduler",
                "summary": "Run the key scheduler's step now: rotate, activate and remove what is due",
                "security": ADMIN_TOKEN,
                "requestBody": json_request(_change_body(force=False), required=False),
                "responses": {
                    "200": json_response("What changed.", ref("KeyChanges")),
                    **refusals(400, 401, 403),
                },
            },
        ),
        Operation(
            "get",
            QR_KEYS_PATH,
            {
                "operationId": "getQrKeySet",
                "summary": "The QR key set gates verify e-card codes with (docs/formats/essc1.md §5)",
                "security": PUBLIC,
                "parameters": [IF_NONE_MATCH],
                "responses": {
                    "200": json_response("The key set.", ref("JwkSet"), headers=CACHE_HEADERS),
                    "304": NOT_MODIFIED,
                },
            },
        ),
    ),
)
