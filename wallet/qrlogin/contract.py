"""The contract of QR scan-to-login's JSON calls (``wallet.qrlogin.views``, DESIGN.md §6): the computer's
long poll and collection inside its login transaction, and the phone's passkey options. Its part of
``/api/openapi.json``; the pages around them are browser flows, not in it."""

from __future__ import annotations

from typing import Final

from idp.openapi.components import (
    BROWSER,
    BROWSER_PAGE,
    LOGIN_CONTINUES,
    json_response,
    path_parameter,
    query_parameter,
    ref,
    refusals,
)
from idp.openapi.contract import ContractFragment, Operation
from wallet.qrlogin.channel import ChannelState
from wallet.qrlogin.views import COOKIE_PREFIX

TX: Final = path_parameter("tx", "The login transaction the computer's page belongs to.")
CHANNEL: Final = path_parameter("channel_id", "The QR login channel, as its code names it.")
_STATES: Final = [state.value for state in ChannelState]
_COMPUTER: Final = (
    f"From the browser that showed the code, with the channel's secret cookie (`{COOKIE_PREFIX}…`, "
    "HttpOnly, scoped to the transaction): `login_expired` (400) without its login transaction, "
    "`channel_foreign_browser` (403) from another browser, `channel_not_found` (404) once collected."
)

CONTRACT: Final = ContractFragment(
    tag="qr-login",
    description="Logging in on a computer by scanning its code with the phone that holds the e-card passkey.",
    operations=(
        Operation(
            "get",
            "/login/{tx}/qr/{channel_id}/status",
            {
                "operationId": "watchQrLogin",
                "summary": "The channel's state, at once or when it differs from `known` (a long poll)",
                "description": _COMPUTER,
                "security": BROWSER,
                "parameters": [
                    TX,
                    CHANNEL,
                    query_parameter(
                        "known",
                        {"type": "string"},
                        f"The state the page knows ({', '.join(_STATES)}); anything else answers at once.",
                    ),
                ],
                "responses": {
                    "200": json_response(
                        "The state.",
                        {
                            "type": "object",
                            "required": ["state", "expires_in"],
                            "additionalProperties": False,
                            "properties": {
                                "state": {"enum": _STATES},
                                "expires_in": {"type": "integer", "minimum": 0},
                            },
                        },
                    ),
                    **refusals(400, 403, 404),
                },
            },
        ),
        Operation(
            "post",
            "/login/{tx}/qr/{channel_id}/collect",
            {
                "operationId": "collectQrLogin",
                "summary": "Finish the login the phone approved (once)",
                "description": f"{_COMPUTER} With the page's CSRF token (`csrf_failed`, 403); "
                "`channel_not_approved` (409) before the phone approved, `channel_denied` (403) after it "
                "refused, `channel_expired` (400).",
                "security": BROWSER_PAGE,
                "parameters": [TX, CHANNEL],
                "responses": {
                    "200": json_response("Logged in.", LOGIN_CONTINUES),
                    **refusals(400, 403, 404, 409),
                },
            },
        ),
        Operation(
            "post",
            "/wallet/qr-login/{channel_id}/options",
            {
                "operationId": "startQrLoginApproval",
                "summary": "The phone's passkey options to approve the login",
                "description": "From the phone that opened the channel, with its page's CSRF token: "
                "`csrf_failed` or `channel_taken` (403), `match_required` (409) before the number was "
                "picked, `channel_closed` (409) once answered, `channel_expired` (400). Rate-limited per "
                "channel.",
                "security": BROWSER_PAGE,
                "parameters": [CHANNEL],
                "responses": {
                    "200": json_response("The ceremony.", ref("PasskeyRequestCeremony")),
                    **refusals(400, 403, 404, 409, 429),
                },
            },
        ),
    ),
)
