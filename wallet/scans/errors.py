"""Errors of the gate API without a verdict (docs/formats/essc1.md §7 "No verdict"), one class per code.

A verdict — pass or reject with a ``QrTokenReason`` — is never an error: it is HTTP 200.
"""

from __future__ import annotations

from sdk.errors import ForbiddenError, OneCardError

# Credentials missing or wrong: idp.clients.errors.ClientAuthenticationError (invalid_client, 401), the one
# class for that code, raised by idp's client authentication.


class GateForbiddenError(ForbiddenError):
    """Authenticated, but not a live venue allowed to verify codes."""

    error = "forbidden"
    description = "This client is not a venue allowed to verify codes."


class ScanNotRecordedError(OneCardError):
    """The scan record could not be committed, so no verdict is given (a verdict is never given for a scan
    that is not recorded). The code's one use may be spent: the citizen shows a fresh code."""

    error = "temporarily_unavailable"
    description = "The scan could not be recorded. Please scan a fresh code."
    status_code = 503
