"""The contract of real-name verification (``idp.realname.views``, docs/portal-guide.md §6): its part of
``/api/openapi.json``. Lengths, characters and check digits stay with ``parse_realname_request``, which
answers each with its own code (``invalid_name``, ``invalid_id_number``, ``invalid_code``); so does a
``purpose`` that is missing or not text (``invalid_purpose``), as the guide promises."""

from __future__ import annotations

from typing import Final, get_args

from idp.openapi.components import JsonObject, json_request, json_response, ref, refusals, service_token
from idp.openapi.contract import ContractFragment, Operation
from idp.realname.errors import InvalidPurposeError
from idp.realname.service import MAX_CODE_LENGTH, MAX_PURPOSE_LENGTH, Assurance, Result
from idp.scopes import REALNAME_VERIFY

_OPTIONAL_TEXT: Final[JsonObject] = {"type": ["string", "null"]}

CONTRACT: Final = ContractFragment(
    tag="realname",
    description="Does this name and ID number, or this presented e-card code, belong to a citizen in the "
    "register? Answered match or no match, with the assurance of the evidence, and nothing else.",
    schemas={
        "RealnameQuery": {
            "type": "object",
            "required": ["purpose"],
            "additionalProperties": False,
            "properties": {
                "purpose": {
                    "type": "string",
                    "description": f"Why you verify: printable text, at most {MAX_PURPOSE_LENGTH} characters "
                    "after trimming (audited).",
                },
                "name": {**_OPTIONAL_TEXT, "description": "Compared after NFC normalisation and trimming."},
                "id_number": {**_OPTIONAL_TEXT, "description": "18 characters, GB 11643 check digit."},
                "code": {
                    **_OPTIONAL_TEXT,
                    "description": f"A presented ESSC1 code (at most {MAX_CODE_LENGTH} characters); each "
                    "code verifies once here.",
                },
            },
            "anyOf": [
                {"title": "name and id_number", "required": ["name", "id_number"]},
                {"title": "a presented code (with name and/or id_number if you like)", "required": ["code"]},
            ],
        },
        "RealnameVerdict": {
            "type": "object",
            "required": ["result", "assurance"],
            "additionalProperties": False,
            "properties": {
                "result": {"enum": list(get_args(Result))},
                "assurance": {
                    "enum": list(get_args(Assurance)),
                    "description": "`high` for name + ID number (the card register); `substantial`, a code.",
                },
            },
        },
    },
    operations=(
        Operation(
            "post",
            "/api/v1/realname/verify",
            {
                "operationId": "verifyRealname",
                "summary": "Verify a name and ID number, or a presented e-card code (audited, rate-limited)",
                "description": "400 codes: `invalid_purpose`, `invalid_name`, `invalid_id_number`, "
                "`invalid_code` (with `reason`), `code_not_supported`, `invalid_request`.",
                "security": service_token(REALNAME_VERIFY),
                "requestBody": json_request(ref("RealnameQuery")),
                "responses": {
                    "200": json_response("The verdict.", ref("RealnameVerdict")),
                    **refusals(400, 401, 403, 429),
                },
            },
            field_refusals={"purpose": InvalidPurposeError},
        ),
    ),
)
