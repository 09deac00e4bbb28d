"""Errors of the real-name register.

No message or detail here ever carries a name or an ID number: errors are logged (DESIGN.md §2).
"""

from __future__ import annotations

import enum

from sdk.errors import ConflictError, InvalidRequestError, NotFoundError


class IdNumberProblem(enum.StrEnum):
    """Why an ID number was refused, in the order they are checked."""

    LENGTH = "length"
    CHARACTERS = "characters"
    BIRTH_DATE = "birth_date"
    CHECK_DIGIT = "check_digit"


_ID_NUMBER_DESCRIPTIONS = {
    IdNumberProblem.LENGTH: "An ID number has 18 characters.",
    IdNumberProblem.CHARACTERS: "An ID number has 17 digits followed by a digit or X.",
    IdNumberProblem.BIRTH_DATE: "The ID number does not contain a valid date of birth.",
    IdNumberProblem.CHECK_DIGIT: "The ID number's check digit is wrong; please check for a typing mistake.",
}


class InvalidIdNumberError(InvalidRequestError):
    error = "invalid_id_number"
    description = "The ID number is not valid."

    def __init__(self, reason: IdNumberProblem, detail: str = "") -> None:
        super().__init__(detail or reason.value, description=_ID_NUMBER_DESCRIPTIONS[reason])
        self.reason = reason


class InvalidNameError(InvalidRequestError):
    error = "invalid_name"
    description = "The name is empty, too long or contains characters a name cannot have."


class InvalidCitizenStatusError(InvalidRequestError):
    error = "invalid_citizen_status"
    description = "A citizen's status is 'active' or 'disabled'."


class CitizenExistsError(ConflictError):
    error = "citizen_exists"
    description = "A citizen with this ID number is already registered."


class CitizenNotFoundError(NotFoundError):
    error = "citizen_not_found"
    description = "No such citizen."
