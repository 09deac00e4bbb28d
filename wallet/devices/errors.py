"""Errors of passkey binding and sign-in, one class per wire code (STYLE.md "Errors").

``PasskeyError`` is opaque outward (one code, one description) and precise inward: ``reason`` says which
check failed, for tests and operators (pyca's ``InvalidToken`` idea).
"""

from __future__ import annotations

import enum

from sdk.errors import ConflictError, NotFoundError, OneCardError


class PasskeyReason(enum.StrEnum):
    EXPIRED = "expired"  # no such ceremony: unknown, used already, timed out, or started in another browser
    MALFORMED = "malformed"  # not a WebAuthn credential we can read
    WRONG_TYPE = "wrong_type"  # clientData.type is not the ceremony's
    WRONG_CHALLENGE = "wrong_challenge"
    WRONG_ORIGIN = "wrong_origin"
    WRONG_RP = "wrong_rp"  # the authenticator signed for another RP id
    USER_NOT_VERIFIED = "user_not_verified"
    BAD_SIGNATURE = "bad_signature"
    COUNTER = "counter"  # the sign counter did not go up: a cloned authenticator, or a replay
    UNKNOWN_CREDENTIAL = "unknown_credential"
    ALREADY_BOUND = "already_bound"
    CITIZEN_NOT_ACTIVE = "citizen_not_active"
    REFUSED = "refused"  # anything else py_webauthn refuses


class PasskeyError(OneCardError):
    error = "passkey_refused"
    description = "The passkey could not be used. Please try again."
    status_code = 400

    def __init__(self, reason: PasskeyReason, detail: str = "") -> None:
        self.reason = reason
        super().__init__(detail or reason.value)


class DeviceNotFoundError(NotFoundError):
    error = "device_not_found"
    description = "No such device."


class DeviceLimitError(ConflictError):
    error = "device_limit"
    description = "You have bound the most devices allowed. Remove one first."
