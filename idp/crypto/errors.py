"""Errors of encryption at rest.

Outward these are opaque server errors: a caller learns only that a stored secret could not be opened.
Inward the ``reason`` says why (malformed blob, unknown key, failed authentication), for tests and
operators (STYLE.md "Verification failures are opaque outward and precise inward").
"""

from __future__ import annotations

import enum

from sdk.errors import OneCardError


class DecryptionFailure(enum.StrEnum):
    MALFORMED = "malformed"  # too short, or an unknown format version
    UNKNOWN_KEY = "unknown_key"  # encrypted under a key that is not (or no longer) configured
    AUTHENTICATION_FAILED = "authentication_failed"  # tampered, or opened with the wrong purpose/field/record


class InvalidKeyMaterialError(OneCardError):
    """A configured key is unusable (wrong length, bad encoding, duplicate): a start-up error."""

    error = "invalid_key_material"
    description = "The server's key configuration is not valid."
    status_code = 500


class DecryptionError(OneCardError):
    """A stored secret or PII field could not be decrypted; never answered with garbage."""

    error = "decryption_failed"
    description = "Stored data could not be decrypted."
    status_code = 500

    def __init__(self, reason: DecryptionFailure, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason


class UnwrapError(DecryptionError):
    """A secret wrapped under a key-encryption key could not be unwrapped."""

    error = "unwrap_failed"
    description = "A stored key could not be unwrapped."
