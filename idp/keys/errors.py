"""Errors of the key store."""

from __future__ import annotations

from sdk.errors import ConflictError, NotFoundError


class KeyNotFoundError(NotFoundError):
    error = "key_not_found"
    description = "No such key."


class KeyStateError(ConflictError):
    error = "key_state_conflict"
    description = "The key is not in a state that allows this change."
