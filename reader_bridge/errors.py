"""Errors of the reader bridge, one class per wire code (STYLE.md "Errors").

Card status words map onto the ``CardStatusError`` subclasses through the table in ``reader_bridge.apdu``
(CARD_PROFILE.md "Status words"); the other classes describe the reader, the PIN entry and the local API.
Descriptions are shown to the cardholder, so they say what to do.
"""

from __future__ import annotations

from typing import Any

from sdk.errors import OneCardError


class BridgeError(OneCardError):
    error = "bridge_error"
    description = "The card operation failed."
    status_code = 500


# --- reader and card presence -------------------------------------------------------------------------


class PcscUnavailableError(BridgeError):
    error = "pcsc_unavailable"
    description = "The smart card service is not running. Start the PC/SC service (pcscd) and try again."
    status_code = 503


class NoReaderError(BridgeError):
    error = "no_reader"
    description = "No card reader is connected. Connect a card reader and try again."
    status_code = 409


class NoCardError(BridgeError):
    error = "no_card"
    description = "No card was inserted in time. Insert your social security card and try again."
    status_code = 409


class CardRemovedError(BridgeError):
    error = "card_removed"
    description = "The card was removed during the operation. Insert the card and try again."
    status_code = 409


class ReaderBusyError(BridgeError):
    error = "reader_busy"
    description = "Another program is using the card. Close it and try again."
    status_code = 409


class VirtualReaderRefusedError(BridgeError):
    error = "virtual_reader_refused"
    description = "This is a development card or reader; it is accepted only in development mode."
    status_code = 403


class CardMismatchError(BridgeError):
    error = "card_mismatch"
    description = "The card's certificate does not belong to this card. Contact a card service counter."
    status_code = 409


class UnsupportedCardError(BridgeError):
    error = "unsupported_card"
    description = "This card does not support online login. Contact a card service counter."
    status_code = 409


class CardResponseError(BridgeError):
    """The card answered something the profile does not allow (bad TLV, wrong length)."""

    error = "bad_card_response"
    description = "The card gave an unexpected answer. Remove the card, insert it again and retry."
    status_code = 502


# --- PIN entry ------------------------------------------------------------------------------------------


class PinCancelledError(BridgeError):
    error = "cancelled"
    description = "The operation was cancelled."
    status_code = 409


class PinTimeoutError(BridgeError):
    error = "timeout"
    description = "The operation took too long and was stopped. Please try again."
    status_code = 408


class PinPadUnavailableError(BridgeError):
    error = "pinpad_unavailable"
    description = "The card reader has no PIN pad. Use the PIN dialog instead."
    status_code = 409


class InvalidPinFormatError(BridgeError):
    error = "invalid_pin_format"
    description = "The PIN must be 6 digits."
    status_code = 400


# --- the local API ---------------------------------------------------------------------------------------


class BusyError(BridgeError):
    error = "busy"
    description = "Another card operation is in progress. Finish or cancel it first."
    status_code = 409


class OriginNotAllowedError(BridgeError):
    error = "origin_not_allowed"
    description = "This web site may not use the card reader bridge."
    status_code = 403


class BadRequestError(BridgeError):
    error = "invalid_request"
    description = "The request is missing a parameter or has a malformed one."
    status_code = 400


class NotFoundError(BridgeError):
    error = "not_found"
    description = "No such operation or page."
    status_code = 404


# --- status words (mapped in reader_bridge.apdu) ---------------------------------------------------------


class CardStatusError(BridgeError):
    """The card answered a status word other than success; ``sw`` is the status word."""

    error = "card_error"
    description = "The card refused the operation."
    status_code = 502
    sw: int

    def __init__(self, sw: int, detail: str = "") -> None:
        super().__init__(detail or f"card answered {sw:04X}")
        self.sw = sw

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "sw": f"{self.sw:04X}"}


class WrongPinError(CardStatusError):
    error = "pin_wrong"
    description = "The PIN is wrong."
    status_code = 409

    @property
    def tries_left(self) -> int:
        return self.sw & 0x0F

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "tries_left": self.tries_left}


class PinBlockedError(CardStatusError):
    error = "card_blocked"
    description = (
        "The card's PIN is blocked after too many wrong tries. Take the card and your ID card to a social "
        "security card service counter to unblock or reset the PIN."
    )
    status_code = 423


class WrongLengthError(CardStatusError):
    error = "wrong_length"


class SecurityStatusError(CardStatusError):
    error = "security_status_not_satisfied"
    description = "The card needs the PIN first."


class ConditionsNotSatisfiedError(CardStatusError):
    error = "conditions_not_satisfied"


class IncorrectDataError(CardStatusError):
    error = "incorrect_data"


class CardFileNotFoundError(CardStatusError):
    error = "file_not_found"
    description = "The card does not hold the expected application. It may not be a social security card."
    status_code = 409


class RecordNotFoundError(CardStatusError):
    error = "record_not_found"


class IncorrectParametersError(CardStatusError):
    error = "incorrect_parameters"


class InstructionNotSupportedError(CardStatusError):
    error = "instruction_not_supported"


class ClassNotSupportedError(CardStatusError):
    error = "class_not_supported"


class ApplicationLockedError(CardStatusError):
    error = "application_locked"
    description = (
        "The card's application is permanently locked. Take the card to a social security card service "
        "counter."
    )
    status_code = 423


class UnexpectedStatusError(CardStatusError):
    error = "unexpected_status"
