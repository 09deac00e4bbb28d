"""The contract of the code page's refresh call (``wallet.qr.views``, DESIGN.md §5 "Dynamic QR"): its part of
``/api/openapi.json``."""

from __future__ import annotations

from typing import Final

from idp.openapi.components import POSIX_SECONDS, SIGNED_IN_CITIZEN, json_response, ref, refusals
from idp.openapi.contract import ContractFragment, Operation
from wallet.ecards.service import DISCLOSURE_LABELS
from wallet.qr.service import REFRESH_INTERVAL

CONTRACT: Final = ContractFragment(
    tag="wallet-code",
    description="The signed-in citizen's dynamic e-card code, refreshed by the wallet's code page.",
    schemas={
        "EcardCode": {
            "type": "object",
            "required": [
                "text",
                "image",
                "refresh_in",
                "disclosures",
                "issued_at",
                "expires_at",
                "refresh_at",
            ],
            "additionalProperties": False,
            "properties": {
                "text": {"type": "string", "pattern": "^ESSC1:", "description": "What the image shows."},
                "image": {"type": "string", "pattern": "^data:image/svg\\+xml;base64,"},
                "refresh_in": {"const": REFRESH_INTERVAL, "description": "Seconds until the next code."},
                "disclosures": {
                    "type": "array",
                    "items": {"enum": list(DISCLOSURE_LABELS)},
                    "description": "What the citizen chose the code to show.",
                },
                "issued_at": POSIX_SECONDS,
                "expires_at": POSIX_SECONDS,
                "refresh_at": POSIX_SECONDS,
            },
        },
    },
    operations=(
        Operation(
            "get",
            "/wallet/api/code",
            {
                "operationId": "issueEcardCode",
                "summary": "A fresh code for the signed-in citizen's e-card",
                "description": "`login_required` (401) without a wallet session, `ecard_not_found` (404) "
                "before activation, `ecard_not_usable` (403) while it is suspended or cancelled.",
                "security": SIGNED_IN_CITIZEN,
                "responses": {
                    "200": json_response("The code.", ref("EcardCode")),
                    **refusals(401, 403, 404, 503),
                },
            },
        ),
    ),
)
