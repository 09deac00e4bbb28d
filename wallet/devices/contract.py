"""The contract of the passkey ceremonies' JSON calls (``wallet.devices.views``, DESIGN.md §3, §5): its part
of ``/api/openapi.json``. The browser's answer to a ceremony goes back in an ordinary form POST (a page
flow, not in the contract); these calls only hand out the WebAuthn options."""

from __future__ import annotations

from typing import Final

from idp.openapi.components import (
    BROWSER_PAGE,
    SIGNED_IN_PAGE,
    JsonObject,
    json_response,
    query_parameter,
    ref,
    refusals,
)
from idp.openapi.contract import ContractFragment, Operation


def passkey_ceremony(options: str) -> JsonObject:
    """A ceremony's id and the options for ``navigator.credentials`` (WebAuthn Level 3 §5.4's JSON forms)."""
    return {
        "type": "object",
        "required": ["ceremony", "options"],
        "additionalProperties": False,
        "properties": {
            "ceremony": {"type": "string", "description": "Posted back with the browser's answer."},
            "options": {
                "type": "object",
                "required": ["challenge"],
                "description": f"{options}, as JSON (base64url for binary members).",
                "properties": {"challenge": {"type": "string"}},
            },
        },
    }


CONTRACT: Final = ContractFragment(
    tag="wallet-passkeys",
    description="Passkey ceremonies of the wallet: signing in with the e-card's passkey, and binding one.",
    schemas={
        "PasskeyRequestCeremony": passkey_ceremony("PublicKeyCredentialRequestOptions"),
        "PasskeyCreationCeremony": passkey_ceremony("PublicKeyCredentialCreationOptions"),
    },
    operations=(
        Operation(
            "post",
            "/wallet/api/passkeys/authentication-options",
            {
                "operationId": "startPasskeySignIn",
                "summary": "Options to sign in with a passkey (the wallet, or the e-card login method)",
                "description": "With the wallet sign-in page's CSRF token, or with `tx` and the e-card login "
                "page's; a stale page is `invalid_request` (400). Rate-limited per address.",
                "security": BROWSER_PAGE,
                "parameters": [
                    query_parameter(
                        "tx", {"type": "string"}, "The login transaction, from the e-card login page."
                    )
                ],
                "responses": {
                    "200": json_response("The ceremony.", ref("PasskeyRequestCeremony")),
                    **refusals(400, 429),
                },
            },
        ),
        Operation(
            "post",
            "/wallet/api/passkeys/registration-options",
            {
                "operationId": "startPasskeyBinding",
                "summary": "Options to bind a new passkey to the signed-in citizen's e-card",
                "description": "Needs a session at `urn:onecard:loa:high` (card and PIN): `step_up_required` "
                "(403) otherwise; `login_required` (401) without one; `device_limit` (409) with the most "
                "devices bound.",
                "security": SIGNED_IN_PAGE,
                "responses": {
                    "200": json_response("The ceremony.", ref("PasskeyCreationCeremony")),
                    **refusals(400, 401, 403, 409),
                },
            },
        ),
    ),
)
