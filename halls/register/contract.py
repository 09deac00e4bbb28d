"""The contract of the hall admin API (``halls.register.views``): its part of ``/api/openapi.json``. A
malformed hall, service, counter, kiosk or device key set is ``invalid_hall``."""

from __future__ import annotations

from typing import Final

from halls.queue.errors import InvalidTicketRequestError
from halls.register.errors import InvalidHallError
from halls.register.service import (
    CODE_PATTERN,
    HALL_ID_PATTERN,
    MAX_ADDRESS,
    MAX_BRIDGE_URL,
    MAX_COUNTER_NAME,
    MAX_COUNTER_SERVICES,
    MAX_NAME,
    PREFIX_PATTERN,
)
from idp.openapi.components import (
    NO_CONTENT,
    POSIX_SECONDS,
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

HALLS: Final = "/api/v1/admin/halls"
HALL: Final = HALLS + "/{hall_id}"
ADMIN_TOKEN: Final = service_token(ADMIN)
HALL_ID: Final = path_parameter("hall_id", "The hall's id.")
CODE: Final = path_parameter("code", "The service's or counter's code.")
KIOSK_ID: Final = path_parameter("client_id", "The kiosk's client id.")
_CODE: Final[JsonObject] = {"type": "string", "pattern": f"^{CODE_PATTERN}$"}
_SERVICE_PROPERTIES: Final[JsonObject] = {
    "code": _CODE,
    "name": {"type": "string", "maxLength": MAX_NAME, "description": "In Chinese, as the hall's signs say."},
    "name_en": {"type": "string", "maxLength": MAX_NAME},
    "prefix": {"type": "string", "pattern": f"^{PREFIX_PATTERN}$", "description": "Its numbers' letter."},
}
_COUNTER_PROPERTIES: Final[JsonObject] = {
    "code": _CODE,
    "name": {"type": "string", "maxLength": MAX_COUNTER_NAME, "description": "e.g. 3号窗口."},
    "services": {
        "type": "array",
        "minItems": 1,
        "maxItems": MAX_COUNTER_SERVICES,
        "items": _CODE,
        "description": "The services whose numbers it calls.",
    },
}
_COUNTER_VIEW: Final[JsonObject] = {
    **_COUNTER_PROPERTIES,
    "device_client_id": {
        "type": ["string", "null"],
        "description": "The client id of the counter's registered device (private_key_jwt), if any.",
    },
}
_JWKS: Final[JsonObject] = {
    "type": "object",
    "description": "The device's public JWK Set (RFC 7517 §5): its private_key_jwt keys.",
}
_DEVICE_KEYS: Final[JsonObject] = {
    "type": "object",
    "required": ["jwks"],
    "additionalProperties": False,
    "properties": {"jwks": _JWKS},
}
_KIOSK_NAME: Final[JsonObject] = {"type": "string", "minLength": 1, "maxLength": MAX_NAME}
_BRIDGE_URL: Final[JsonObject] = {
    "type": "string",
    "maxLength": MAX_BRIDGE_URL,
    "pattern": "^http://127\\.0\\.0\\.1(:[0-9]{1,5})?$",
    "description": "Where the kiosk's own reader bridge listens, if not on the deployment's card_bridge_url.",
}
_KIOSK_PROPERTIES: Final[JsonObject] = {
    "hall_id": {"type": "string"},
    "client_id": {"type": "string", "description": "The kiosk's client id (private_key_jwt, kind kiosk)."},
    "name": {"type": "string"},
    "bridge_url": {**_BRIDGE_URL, "type": ["string", "null"]},
    "created_at": POSIX_SECONDS,
}
_DEVICE: Final[JsonObject] = {
    "type": "object",
    "required": ["hall_id", "counter", "device_client_id"],
    "additionalProperties": False,
    "properties": {
        "hall_id": {"type": "string"},
        "counter": {"type": "string", "description": "The counter's code."},
        "device_client_id": {"type": "string"},
    },
}
_HALL_PROPERTIES: Final[JsonObject] = {
    "hall_id": {"type": "string"},
    "name": {"type": "string"},
    "address": {"type": "string"},
    "scanner_client_id": {
        "type": ["string", "null"],
        "description": "The client id of the hall scanner's credentials (a venue's gate client).",
    },
    "services": {"type": "array", "items": ref("HallService")},
    "counters": {"type": "array", "items": ref("HallCounter")},
    "kiosks": {"type": "array", "items": ref("Kiosk")},
    "created_at": POSIX_SECONDS,
    "removed_at": {"type": ["integer", "null"]},
}
_HALL: Final[JsonObject] = {
    "type": "object",
    "required": list(_HALL_PROPERTIES),
    "additionalProperties": False,
    "properties": _HALL_PROPERTIES,
}


def _object(properties: JsonObject, required: list[str]) -> JsonObject:
    return {"type": "object", "required": required, "additionalProperties": False, "properties": properties}


def _admin(
    method: str,
    path: str,
    operation_id: str,
    summary: str,
    *,
    parameters: list[JsonObject],
    responses: JsonObject,
    body: JsonObject | None = None,
    refusal: type[InvalidHallError] | type[InvalidTicketRequestError] = InvalidHallError,
) -> Operation:
    definition: JsonObject = {
        "operationId": operation_id,
        "summary": summary,
        "security": ADMIN_TOKEN,
        "parameters": parameters,
        "responses": responses,
    }
    if body is not None:
        definition["requestBody"] = json_request(body)
    return Operation(method, path, definition, refusal=refusal)


CONTRACT: Final = ContractFragment(
    tag="hall-admin",
    description="Service halls, their services, counters, counter devices and kiosks (`admin` scope).",
    schemas={
        "Hall": _HALL,
        "CreatedHall": {
            **_HALL,
            "required": [*_HALL_PROPERTIES, "scanner_client_secret"],
            "properties": {**_HALL_PROPERTIES, "scanner_client_secret": {"type": "string"}},
            "description": "The hall with its scanner's secret: shown this once (only its hash is kept).",
        },
        "HallService": _object(_SERVICE_PROPERTIES, list(_SERVICE_PROPERTIES)),
        "HallCounter": _object(_COUNTER_VIEW, list(_COUNTER_VIEW)),
        "CounterDevice": _DEVICE,
        "Kiosk": _object(_KIOSK_PROPERTIES, list(_KIOSK_PROPERTIES)),
    },
    operations=(
        _admin(
            "get",
            HALLS,
            "listHalls",
            "The live halls",
            parameters=[],
            responses={
                "200": json_response(
                    "The halls.", _object({"halls": {"type": "array", "items": ref("Hall")}}, ["halls"])
                ),
                **refusals(401, 403),
            },
        ),
        _admin(
            "post",
            HALLS,
            "createHall",
            "Register a hall and its scanner's credentials (audited)",
            parameters=[],
            body=_object(
                {
                    "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME},
                    "address": {"type": "string", "maxLength": MAX_ADDRESS},
                    "hall_id": {"type": "string", "pattern": f"^{HALL_ID_PATTERN}$"},
                },
                ["name"],
            ),
            responses={
                "201": json_response("The hall and its scanner's secret.", ref("CreatedHall")),
                **refusals(400, 401, 403, 409),
            },
        ),
        _admin(
            "get",
            HALL,
            "getHall",
            "One hall",
            parameters=[HALL_ID],
            responses={"200": json_response("The hall.", ref("Hall")), **refusals(401, 403, 404)},
        ),
        _admin(
            "delete",
            HALL,
            "removeHall",
            "Remove a hall (audited): its scanner's credentials stop working at once",
            parameters=[HALL_ID],
            responses={"204": NO_CONTENT, **refusals(401, 403, 404)},
        ),
        _admin(
            "post",
            HALL + "/services",
            "addHallService",
            "Add a service (业务) to a hall (audited)",
            parameters=[HALL_ID],
            body=_object(_SERVICE_PROPERTIES, ["code", "name", "prefix"]),
            responses={
                "201": json_response("The service.", ref("HallService")),
                **refusals(400, 401, 403, 404, 409),
            },
        ),
        _admin(
            "delete",
            HALL + "/services/{code}",
            "removeHallService",
            "Withdraw a service: no new numbers (audited)",
            parameters=[HALL_ID, CODE],
            responses={"204": NO_CONTENT, **refusals(401, 403, 404)},
        ),
        _admin(
            "post",
            HALL + "/counters",
            "addHallCounter",
            "Add a counter (窗口) calling the numbers of some services (audited)",
            parameters=[HALL_ID],
            body=_object(_COUNTER_PROPERTIES, ["code", "name", "services"]),
            responses={
                "201": json_response("The counter.", ref("HallCounter")),
                **refusals(400, 401, 403, 404, 409),
            },
        ),
        _admin(
            "delete",
            HALL + "/counters/{code}",
            "removeHallCounter",
            "Remove a counter (audited)",
            parameters=[HALL_ID, CODE],
            responses={"204": NO_CONTENT, **refusals(401, 403, 404)},
        ),
        _admin(
            "post",
            HALL + "/counters/{code}/device",
            "registerCounterDevice",
            "Register the counter's device: a private_key_jwt client bound to this counter (audited)",
            parameters=[HALL_ID, CODE],
            body=_DEVICE_KEYS,
            responses={
                "201": json_response("The device's client id.", ref("CounterDevice")),
                **refusals(400, 401, 403, 404, 409),
            },
        ),
        _admin(
            "put",
            HALL + "/counters/{code}/device/jwks",
            "replaceCounterDeviceKeys",
            "Replace the keys of the counter's device (key rotation, audited)",
            parameters=[HALL_ID, CODE],
            body=_DEVICE_KEYS,
            responses={
                "200": json_response("The device's client id.", ref("CounterDevice")),
                **refusals(400, 401, 403, 404),
            },
        ),
        _admin(
            "delete",
            HALL + "/counters/{code}/device",
            "removeCounterDevice",
            "Remove the counter's device: its credentials and tokens stop working at once (audited)",
            parameters=[HALL_ID, CODE],
            responses={"204": NO_CONTENT, **refusals(401, 403, 404)},
        ),
        _admin(
            "get",
            HALL + "/kiosks",
            "listKiosks",
            "The hall's kiosk terminals",
            parameters=[HALL_ID],
            responses={
                "200": json_response(
                    "The kiosks.", _object({"kiosks": {"type": "array", "items": ref("Kiosk")}}, ["kiosks"])
                ),
                **refusals(401, 403, 404),
            },
        ),
        _admin(
            "post",
            HALL + "/kiosks",
            "registerKiosk",
            "Register a kiosk terminal of this hall: a private_key_jwt client of kind kiosk (audited)",
            parameters=[HALL_ID],
            body=_object({"name": _KIOSK_NAME, "jwks": _JWKS, "bridge_url": _BRIDGE_URL}, ["name", "jwks"]),
            responses={
                "201": json_response("The kiosk.", ref("Kiosk")),
                **refusals(400, 401, 403, 404, 409),
            },
        ),
        _admin(
            "put",
            HALL + "/kiosks/{client_id}/jwks",
            "replaceKioskKeys",
            "Replace a kiosk's keys (key rotation, audited)",
            parameters=[HALL_ID, KIOSK_ID],
            body=_DEVICE_KEYS,
            responses={"200": json_response("The kiosk.", ref("Kiosk")), **refusals(400, 401, 403, 404)},
        ),
        _admin(
            "delete",
            HALL + "/kiosks/{client_id}",
            "removeKiosk",
            "Remove a kiosk: its credentials stop working at once (audited)",
            parameters=[HALL_ID, KIOSK_ID],
            responses={"204": NO_CONTENT, **refusals(401, 403, 404)},
        ),
        _admin(
            "get",
            HALL + "/stats",
            "getHallStats",
            "A hall's day: numbers taken, served, no-shows, average wait per service; served per hour",
            parameters=[
                HALL_ID,
                query_parameter(
                    "day", {"type": "string", "format": "date"}, "The day (China); today if absent."
                ),
            ],
            responses={
                "200": json_response(
                    "The statistics.",
                    _object(
                        {
                            "hall_id": {"type": "string"},
                            "day": {"type": "string", "format": "date"},
                            "services": {
                                "type": "array",
                                "items": _object(
                                    {
                                        "code": {"type": "string"},
                                        "name": {"type": "string"},
                                        "taken": {"type": "integer"},
                                        "served": {"type": "integer"},
                                        "no_show": {"type": "integer"},
                                        "average_wait": {
                                            "type": ["integer", "null"],
                                            "description": "Seconds from taking to being called.",
                                        },
                                    },
                                    ["code", "name", "taken", "served", "no_show", "average_wait"],
                                ),
                            },
                            "served_per_hour": {
                                "type": "object",
                                "description": "Hour of the day in China (00-23) → numbers served.",
                                "additionalProperties": {"type": "integer"},
                            },
                        },
                        ["hall_id", "day", "services", "served_per_hour"],
                    ),
                ),
                **refusals(400, 401, 403, 404),
            },
            refusal=InvalidTicketRequestError,
        ),
    ),
)
