"""Errors of the key store: one class per wire code (STYLE.md "Errors")."""

from __future__ import annotations

from sdk.errors import ConflictError, InvalidRequestError, NotFoundError, OneCardError


class KeyNotFoundError(NotFoundError):
    error = "key_not_found"
    description = "No such key."


class KeyStateError(ConflictError):
    error = "key_state_conflict"
    description = "The key is not in a state that allows this change."


class PrepublicationError(ConflictError):
    """Activating a key that relying parties and gates may not have fetched yet."""

    error = "key_not_published_long_enough"
    description = "The key has not been published long enough to sign; wait, or force it."


class RetentionError(ConflictError):
    """Removing a key while something it signed (or a cache holding it) may still be in use."""

    error = "key_retention_not_over"
    description = "The key may still be needed to verify what it signed; wait, or force it."


class KeyInUseError(ConflictError):
    """Removing or revoking a data key that stored records are still encrypted under."""

    error = "key_in_use"
    description = "Stored data is still encrypted under this key; re-encrypt it first."


class KeySetNotRotatableError(InvalidRequestError):
    error = "key_set_not_rotatable"
    description = "This key set cannot be rotated this way."


class HsmError(OneCardError):
    """The PKCS#11 token could not be used (not installed, not configured, refused, failed)."""

    error = "hsm_error"
    description = "The hardware security module could not be used."
    status_code = 500
