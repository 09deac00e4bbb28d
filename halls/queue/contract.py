"""The contract of the hall scanner's API, the counter devices' calls and the hall's board
(``halls.queue.views``): its part of ``/api/openapi.json``."""

from __future__ import annotations

from typing import Final

from halls.queue.errors import InvalidTicketRequestError
from halls.queue.model import TicketStatus
from idp.openapi.components import (
    POSIX_SECONDS,
    PUBLIC,
    VENUE,
    JsonObject,
    json_request,
    json_response,
    path_parameter,
    ref,
    refusals,
    service_token,
)
from idp.openapi.contract import ContractFragment, Operation
from idp.scopes import HALL_COUNTER
from sdk.qr_token import QrTokenReason
from wallet.scans.service import MAX_GATE_ID

HALL_ID: Final = path_parameter("hall_id", "The hall's id.")
COUNTER: Final = path_parameter("code", "The counter's code.")
COUNTER_DEVICE: Final = service_token(HALL_COUNTER)
_BY_DEVICE: Final = (
    "Only the counter's registered device: a `hall:counter` token it got with client_credentials at "
    "`/token`, authenticating with private_key_jwt (RFC 7523 §2.2). Another counter's device, an admin "
    "token or a client_secret client: 403, nothing changes."
)
_NULLABLE_SECONDS: Final[JsonObject] = {"type": ["integer", "null"], "description": "POSIX time, in seconds."}

TICKET_SCHEMA: Final[JsonObject] = {
    "type": "object",
    "required": [
        "ticket_id",
        "hall_id",
        "hall_name",
        "service",
        "service_name",
        "service_name_en",
        "number",
        "status",
        "ahead",
        "estimated_wait",
        "counter",
        "taken_at",
        "called_at",
    ],
    "additionalProperties": False,
    "properties": {
        "ticket_id": {"type": "string"},
        "hall_id": {"type": "string"},
        "hall_name": {"type": "string"},
        "service": {"type": "string", "description": "The service's code."},
        "service_name": {"type": "string"},
        "service_name_en": {"type": "string"},
        "number": {"type": "string", "pattern": "^[A-Z]{1,2}[0-9]{3,}$", "description": "e.g. A012."},
        "status": {"enum": [s.value for s in TicketStatus]},
        "ahead": {"type": "integer", "minimum": 0, "description": "Waiting numbers before this one."},
        "estimated_wait": {"type": "integer", "minimum": 0, "description": "Seconds, estimated."},
        "counter": {"type": ["string", "null"], "description": "The counter that called it."},
        "taken_at": POSIX_SECONDS,
        "called_at": _NULLABLE_SECONDS,
    },
}

CONTRACT: Final = ContractFragment(
    tag="halls",
    description="Queue numbers in service halls: the hall scanner's e-card scan, the counter devices' calls, "
    "the hall's board.",
    schemas={"Ticket": TICKET_SCHEMA},
    operations=(
        Operation(
            "post",
            "/api/v1/halls/scan",
            {
                "operationId": "takeNumberWithCode",
                "summary": "Take a number for the citizen whose e-card code the hall's scanner read",
                "description": "HTTP Basic with the hall's scanner credentials (a venue's gate client). The "
                "code is verified as at a gate (one use). Every outcome is 200, as a gate's verdict is; an "
                "error (an unknown service: `service_not_found`, 404) leaves the code unused.",
                "security": VENUE,
                "requestBody": json_request(
                    {
                        "type": "object",
                        "required": ["code", "service"],
                        "additionalProperties": False,
                        "properties": {
                            "code": {"type": "string", "maxLength": 4096, "description": "The ESSC1 text."},
                            "service": {"type": "string", "maxLength": 40, "description": "A service code."},
                            "scanner_id": {"type": "string", "minLength": 1, "maxLength": MAX_GATE_ID},
                        },
                    }
                ),
                "responses": {
                    "200": json_response(
                        "The scan's outcome: a number taken, the number the citizen holds already, or the "
                        "code rejected with its reason (docs/formats/essc1.md §7).",
                        {
                            "type": "object",
                            "required": ["result"],
                            "additionalProperties": False,
                            "properties": {
                                "result": {"enum": ["taken", "already_queued", "rejected"]},
                                "ticket": ref("Ticket"),
                                "reason": {"enum": [r.value for r in QrTokenReason]},
                            },
                        },
                    ),
                    **refusals(400, 401, 403, 404, 429),
                },
            },
            refusal=InvalidTicketRequestError,
        ),
        Operation(
            "post",
            "/api/v1/halls/{hall_id}/counters/{code}/call-next",
            {
                "operationId": "callNextNumber",
                "summary": "Call the longest-waiting number of the counter's services (audited)",
                "description": _BY_DEVICE,
                "security": COUNTER_DEVICE,
                "parameters": [HALL_ID, COUNTER],
                "responses": {
                    "200": json_response("The number called.", ref("Ticket")),
                    "204": {"description": "Nobody is waiting."},
                    **refusals(401, 403, 404, 409),
                },
            },
            refusal=InvalidTicketRequestError,
        ),
        Operation(
            "post",
            "/api/v1/halls/{hall_id}/counters/{code}/finish",
            {
                "operationId": "finishNumber",
                "summary": "Mark the number the counter called as served or no-show (audited)",
                "description": _BY_DEVICE,
                "security": COUNTER_DEVICE,
                "parameters": [HALL_ID, COUNTER],
                "requestBody": json_request(
                    {
                        "type": "object",
                        "required": ["status"],
                        "additionalProperties": False,
                        "properties": {"status": {"enum": ["served", "no_show"]}},
                    }
                ),
                "responses": {
                    "200": json_response("The number, finished.", ref("Ticket")),
                    **refusals(400, 401, 403, 404, 409),
                },
            },
            refusal=InvalidTicketRequestError,
        ),
        Operation(
            "get",
            "/api/v1/halls/{hall_id}/board",
            {
                "operationId": "getHallBoard",
                "summary": "The numbers called now and how many wait per service (the hall's display)",
                "security": PUBLIC,
                "parameters": [HALL_ID],
                "responses": {
                    "200": json_response(
                        "The board.",
                        {
                            "type": "object",
                            "required": ["called", "waiting"],
                            "additionalProperties": False,
                            "properties": {
                                "called": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["number", "counter"],
                                        "additionalProperties": False,
                                        "properties": {
                                            "number": {"type": "string"},
                                            "counter": {"type": "string"},
                                        },
                                    },
                                },
                                "waiting": {
                                    "type": "object",
                                    "description": "Service code → waiting numbers.",
                                    "additionalProperties": {"type": "integer"},
                                },
                            },
                        },
                    ),
                    **refusals(404),
                },
            },
        ),
    ),
)
