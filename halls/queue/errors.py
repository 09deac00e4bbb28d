"""Errors of the queue, one class per wire code."""

from __future__ import annotations

from typing import Any

from sdk.errors import ConflictError, ForbiddenError, InvalidRequestError, NotFoundError


class AlreadyQueuedError(ConflictError):
    """One number per citizen and service at a time; ``ticket`` is the one they hold (for the kiosk)."""

    error = "already_queued"
    description = "This citizen already holds a number for this service."

    def __init__(self, detail: str = "", *, ticket: Any = None) -> None:
        super().__init__(detail)
        self.ticket = ticket


class TicketNotFoundError(NotFoundError):
    error = "ticket_not_found"
    description = "No such ticket."


class TicketStateError(ConflictError):
    error = "ticket_state"
    description = "The ticket is not in a state that allows this."


class CounterBusyError(ConflictError):
    error = "counter_busy"
    description = "This counter is serving a number: mark it served or no-show first."


class InvalidTicketRequestError(InvalidRequestError):
    error = "invalid_ticket_request"
    description = "The request for a number is not valid."


class ScannerForbiddenError(ForbiddenError):
    error = "forbidden"
    description = "This client is not the scanner of a live hall."


class CounterForbiddenError(ForbiddenError):
    error = "counter_forbidden"
    description = "This client is not the registered device of this counter."
