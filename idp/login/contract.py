"""The contract of the login pages' JSON call (``idp.login.views``): its part of ``/api/openapi.json``."""

from __future__ import annotations

from typing import Final

from idp.login.views import LONGEST_LOGIN
from idp.openapi.components import BROWSER_PAGE, json_response, path_parameter, refusals
from idp.openapi.contract import ContractFragment, Operation

CONTRACT: Final = ContractFragment(
    tag="login",
    description="The login pages, inside a login transaction.",
    operations=(
        Operation(
            "post",
            "/login/{tx}/more-time",
            {
                "operationId": "extendLogin",
                "summary": "More time for the login (WCAG 2.2.1): the transaction's full lifetime again",
                "description": f"Never more than {LONGEST_LOGIN} s after the login started. From the login "
                "page, with its CSRF token: `login_expired` (400) without a live transaction in this "
                "browser, `csrf_failed` (403) for a stale page.",
                "security": BROWSER_PAGE,
                "parameters": [path_parameter("tx", "The login transaction, as the page's URL names it.")],
                "responses": {
                    "200": json_response(
                        "The time left.",
                        {
                            "type": "object",
                            "required": ["expires_in"],
                            "additionalProperties": False,
                            "properties": {"expires_in": {"type": "integer", "minimum": 0}},
                        },
                    ),
                    **refusals(400, 403),
                },
            },
        ),
    ),
)
