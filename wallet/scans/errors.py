"""Errors of the gate API without a verdict (docs/formats/essc1.md §7 "No verdict"), one class per code.

A verdict — pass or reject with a ``QrTokenReason`` — is never an error: it is HTTP 200.
"""

from __future__ import annotations

from sdk.errors import ForbiddenError

# Credentials missing or wrong: idp.clients.errors.ClientAuthenticationError (invalid_client, 401), the one
# class for that code, raised by idp's client authentication.


class GateForbiddenError(ForbiddenError):
    """Authenticated, but not a live venue allowed to verify codes."""

    error = "forbidden"
    description = "This client is not a venue allowed to verify codes."
