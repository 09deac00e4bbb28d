"""Errors of the hall register, one class per wire code."""

from __future__ import annotations

from sdk.errors import ConflictError, InvalidRequestError, NotFoundError


class InvalidHallError(InvalidRequestError):
    error = "invalid_hall"
    description = "The hall, service, counter or kiosk is not valid."


class HallNotFoundError(NotFoundError):
    error = "hall_not_found"
    description = "No such hall."


class HallServiceNotFoundError(NotFoundError):
    error = "service_not_found"
    description = "No such service in this hall."


class CounterNotFoundError(NotFoundError):
    error = "counter_not_found"
    description = "No such counter in this hall."


class KioskNotFoundError(NotFoundError):
    error = "kiosk_not_found"
    description = "No such kiosk in this hall."


class HallExistsError(ConflictError):
    error = "hall_exists"
    description = "A hall, service, counter or kiosk with this id, code, prefix or name exists already."
