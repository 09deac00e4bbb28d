"""The contract of card login's JSON calls (``idp.cardlogin.views``, DESIGN.md §4), made by the card login
page's script inside a login transaction: its part of ``/api/openapi.json``."""

from __future__ import annotations

from typing import Final

from idp.cardlogin.challenge import CHALLENGE_TTL
from idp.openapi.components import (
    BROWSER_PAGE,
    LOGIN_CONTINUES,
    JsonObject,
    json_request,
    json_response,
    path_parameter,
    refusals,
)
from idp.openapi.contract import ContractFragment, Operation

TX: Final = path_parameter("tx", "The login transaction, as the page's URL names it.")
_IN_THE_PAGE: Final = (
    "Called by the card login page with its CSRF token, from the browser that started the login: "
    "`login_expired` (400) otherwise, or `csrf_failed` (403) for a stale page."
)
_CHALLENGE: Final[JsonObject] = {"type": "string", "description": "The challenge this page was issued."}


def _card_call(
    step: str, summary: str, description: str, body: JsonObject | None, answer: JsonObject
) -> Operation:
    definition: JsonObject = {
        "operationId": f"cardLogin{step.capitalize()}",
        "summary": summary,
        "description": f"{description} {_IN_THE_PAGE}",
        "security": BROWSER_PAGE,
        "parameters": [TX],
        "responses": {"200": answer, **refusals(400, 403, 429)},
    }
    if body is not None:
        definition["requestBody"] = json_request(body)
    return Operation("post", f"/login/{{tx}}/card/{step}", definition)


CONTRACT: Final = ContractFragment(
    tag="card-login",
    description="Logging in with the social security card and PIN through the local reader bridge.",
    operations=(
        _card_call(
            "challenge",
            "A challenge for the card to sign (step 1)",
            "Rate-limited per transaction.",
            None,
            json_response(
                "The challenge and its lifetime.",
                {
                    "type": "object",
                    "required": ["challenge", "expires_in"],
                    "additionalProperties": False,
                    "properties": {
                        "challenge": {"type": "string"},
                        "expires_in": {"type": "integer", "const": int(CHALLENGE_TTL)},
                    },
                },
            ),
        ),
        _card_call(
            "precheck",
            "Can this card log in here? Asked after the bridge read the card, before it asks the PIN",
            "One answer for every card that cannot (`card_not_usable`, 403): it tells nobody whether a card "
            "exists or what its status is.",
            {
                "type": "object",
                "required": ["challenge", "card_certificate"],
                "additionalProperties": False,
                "properties": {
                    "challenge": _CHALLENGE,
                    "card_certificate": {
                        "type": "string",
                        "description": "The card's certificate, base64 DER.",
                    },
                },
            },
            json_response(
                "The card can be used.",
                {
                    "type": "object",
                    "required": ["usable"],
                    "additionalProperties": False,
                    "properties": {"usable": {"const": True}},
                },
            ),
        ),
        _card_call(
            "verify",
            "The card's signature over the challenge (step 5): logs the citizen in",
            "`invalid_card_auth` (400) for a forged, mis-addressed or malformed answer; `card_lost`, "
            "`card_suspended`, `card_cancelled`, `card_expired`, `card_not_trusted`, `card_not_registered`, "
            "`account_disabled` (403).",
            {
                "type": "object",
                "required": ["challenge", "token"],
                "additionalProperties": False,
                "properties": {
                    "challenge": _CHALLENGE,
                    "token": {"type": "object", "description": "The card-auth token the bridge returned."},
                },
            },
            json_response("Logged in.", LOGIN_CONTINUES),
        ),
    ),
)
