"""The contract of the card register's admin API (``idp.cards.views``): its part of ``/api/openapi.json``."""

from __future__ import annotations

from typing import Final

from idp.admin.contract import ADMIN_TOKEN
from idp.cards.errors import InvalidCardStatusError
from idp.cards.model import CardStatus
from idp.cards.service import MAX_PAGE_SIZE
from idp.cards.views import ACTIONS, MAX_CITIZEN_ID, MAX_OFFSET
from idp.openapi.components import (
    OPTIONAL_TIMESTAMP,
    TIMESTAMP,
    JsonObject,
    clamped_integer,
    json_response,
    path_parameter,
    query_parameter,
    ref,
    refusals,
)
from idp.openapi.contract import ContractFragment, Operation

CARDS: Final = "/api/v1/admin/cards"
_STATUS: Final[JsonObject] = {"type": "string", "enum": [status.value for status in CardStatus]}
_DATE: Final[JsonObject] = {"type": "string", "format": "date"}
_REFERENCE: Final = path_parameter(
    "reference", "The card's id (32 hexadecimal digits) or its printed card number."
)
_CARD_PROPERTIES: Final[JsonObject] = {
    "card_id": {"type": "string", "pattern": "^[0-9A-F]{32}$"},
    "card_number": {"type": "string"},
    "citizen_id": {"type": "string"},
    "region": {"type": "string", "description": "The issuing region, a GB/T 2260 division code."},
    "status": _STATUS,
    "issuer_kid": {"type": "string"},
    "certificate_serial": {"type": "string"},
    "certificate_fingerprint": {"type": "string"},
    "issued_on": _DATE,
    "expires_on": _DATE,
    "created_at": TIMESTAMP,
    "updated_at": TIMESTAMP,
    "status_changed_at": OPTIONAL_TIMESTAMP,
}

CONTRACT: Final = ContractFragment(
    tag="cards",
    description="The card register, for card-service staff tools (`admin` scope). Cards are issued with "
    "`onecard cards issue`, never over an API: a card file holds a private key and a PIN.",
    schemas={
        "Card": {
            "description": "A card as staff see it: no name, no ID number.",
            "type": "object",
            "required": list(_CARD_PROPERTIES),
            "additionalProperties": False,
            "properties": _CARD_PROPERTIES,
        },
    },
    operations=(
        Operation(
            "get",
            CARDS,
            {
                "operationId": "listCards",
                "summary": "A page of cards, oldest first",
                "security": ADMIN_TOKEN,
                "parameters": [
                    query_parameter(
                        "citizen_id",
                        {"type": "string", "maxLength": MAX_CITIZEN_ID},
                        "Only this citizen's cards.",
                    ),
                    query_parameter("status", _STATUS, "Only cards in this status."),
                    query_parameter("offset", clamped_integer(0, MAX_OFFSET, 0), "Cards to skip."),
                    query_parameter("limit", clamped_integer(1, MAX_PAGE_SIZE, 100), "Cards to return."),
                ],
                "responses": {
                    "200": json_response(
                        "The page.",
                        {
                            "type": "object",
                            "required": ["total", "offset", "cards"],
                            "additionalProperties": False,
                            "properties": {
                                "total": {"type": "integer", "minimum": 0},
                                "offset": {"type": "integer", "minimum": 0},
                                "cards": {"type": "array", "items": ref("Card")},
                            },
                        },
                    ),
                    **refusals(400, 401, 403),
                },
            },
            field_refusals={"status": InvalidCardStatusError},
        ),
        Operation(
            "get",
            CARDS + "/{reference}",
            {
                "operationId": "getCard",
                "summary": "One card",
                "security": ADMIN_TOKEN,
                "parameters": [_REFERENCE],
                "responses": {"200": json_response("The card.", ref("Card")), **refusals(401, 403, 404)},
            },
        ),
        Operation(
            "post",
            CARDS + "/{reference}/{action}",
            {
                "operationId": "changeCardStatus",
                "summary": "Report lost, suspend, restore or cancel a card (audited)",
                "description": "`card_status_conflict` when the card's status does not allow the change "
                "(a cancelled card stays cancelled).",
                "security": ADMIN_TOKEN,
                "parameters": [
                    _REFERENCE,
                    path_parameter("action", "The change.", {"type": "string", "enum": list(ACTIONS)}),
                ],
                "responses": {
                    "200": json_response("The card after the change.", ref("Card")),
                    **refusals(400, 401, 403, 404, 409),
                },
            },
        ),
    ),
)
