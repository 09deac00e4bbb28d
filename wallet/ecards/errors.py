"""Errors of e-card activation and use, one class per wire code (STYLE.md "Errors")."""

from __future__ import annotations

from sdk.errors import ConflictError, ForbiddenError, InvalidRequestError, NotFoundError, UnauthorizedError


class EcardNotFoundError(NotFoundError):
    error = "ecard_not_found"
    description = "You have no electronic card yet."


class EcardExistsError(ConflictError):
    error = "ecard_exists"
    description = "This card already has its electronic card."


class CardNotEligibleError(ConflictError):
    error = "card_not_eligible"
    description = "Only an active card of your own can get an electronic card."


class EcardNotUsableError(ForbiddenError):
    error = "ecard_not_usable"
    description = (
        "Your electronic card cannot be used right now (it is suspended or cancelled). "
        "Please log in with your social security card and PIN."
    )


class WalletSignInRequiredError(UnauthorizedError):
    error = "login_required"
    description = "Please sign in again."


class StepUpRequiredError(ForbiddenError):
    error = "step_up_required"
    description = "Please log in with your social security card and PIN first."


class InvalidDisclosureError(InvalidRequestError):
    error = "invalid_disclosure"
    description = "This is not something your electronic card can show."
