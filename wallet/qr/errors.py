"""Errors of QR issuance, one class per wire code."""

from __future__ import annotations

from sdk.errors import OneCardError


class QrKeyUnavailableError(OneCardError):
    error = "temporarily_unavailable"
    description = "Codes cannot be made right now. Please try again in a minute."
    status_code = 503
