"""Errors of the venue register, one class per wire code."""

from __future__ import annotations

from sdk.errors import ConflictError, InvalidRequestError, NotFoundError


class VenueNotFoundError(NotFoundError):
    error = "venue_not_found"
    description = "No such venue."


class InvalidVenueError(InvalidRequestError):
    error = "invalid_venue"
    description = "The venue's name, category, claims or regions are not valid."


class VenueExistsError(ConflictError):
    error = "venue_exists"
    description = "A venue with this id exists already."
