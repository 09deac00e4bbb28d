"""Errors of the statistics API."""

from __future__ import annotations

from sdk.errors import InvalidRequestError


class InvalidPeriodError(InvalidRequestError):
    error = "invalid_period"
    description = "The period must be 'from' and 'to' dates (YYYY-MM-DD), at most 366 days, 'from' first."
