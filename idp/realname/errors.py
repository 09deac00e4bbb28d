"""Errors of the real-name verification API; one class per wire code (STYLE.md "Errors").

A malformed ID number is ``idp.citizens.errors.InvalidIdNumberError`` (``invalid_id_number``) and a
malformed name ``InvalidNameError`` (``invalid_name``): bad input, never "no match". Nothing here carries a
name, an ID number or a code.
"""

from __future__ import annotations

from sdk.errors import InvalidRequestError
from sdk.qr_token import QrTokenReason


class InvalidPurposeError(InvalidRequestError):
    error = "invalid_purpose"
    description = "A purpose is required: printable text of at most 200 characters saying why you verify."


class InvalidCodeError(InvalidRequestError):
    """The presented ESSC1 code cannot be used; ``reason`` (from the gate's fixed set) is sent too."""

    error = "invalid_code"
    description = "The presented code is not valid. Ask the citizen to show a fresh code."

    def __init__(self, reason: QrTokenReason, detail: str = "") -> None:
        super().__init__(detail or reason.value)
        self.reason = reason

    def to_dict(self) -> dict[str, str]:
        return {**super().to_dict(), "reason": self.reason.value}


class CodesNotSupportedError(InvalidRequestError):
    error = "code_not_supported"
    description = "This server does not verify presented codes (the wallet is not installed)."
