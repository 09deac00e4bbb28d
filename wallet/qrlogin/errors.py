"""Errors of QR scan-to-login, one class per wire code (STYLE.md "Errors").

Pages show ``description`` to the citizen as it is; ``detail`` (why exactly) is logged, never sent.
"""

from __future__ import annotations

from sdk.errors import ConflictError, ForbiddenError, InvalidRequestError, NotFoundError


class ChannelNotFoundError(NotFoundError):
    """Unknown, already collected, or so old that the store forgot it."""

    error = "channel_not_found"
    description = "This login code is no longer valid. Please go back to the computer and start again."


class ChannelExpiredError(InvalidRequestError):
    error = "channel_expired"
    description = (
        "This login code has expired (codes last 2 minutes). Please show a new code and scan it again."
    )


class ChannelClosedError(ConflictError):
    """The channel was approved or denied already; nothing more can be done on the phone."""

    error = "channel_closed"
    description = "This login request has already been answered."


class ChannelTakenError(ForbiddenError):
    error = "channel_taken"
    description = "This login code was opened on another phone. Please show a new code on the computer."


class WrongMatchCodeError(ForbiddenError):
    error = "wrong_match_code"
    description = (
        "The number you picked is not the one on the computer screen. For your safety the login was stopped. "
        "If you were trying to log in, start again on the computer."
    )


class MatchRequiredError(ConflictError):
    error = "match_required"
    description = "Please pick the number shown on the computer screen first."


class ChannelDeniedError(ForbiddenError):
    error = "channel_denied"
    description = "The login was refused on the phone."


class ChannelNotApprovedError(ConflictError):
    error = "channel_not_approved"
    description = "The login has not been approved on the phone yet. Approve it there, then continue here."


class ForeignBrowserError(ForbiddenError):
    """Collection from a browser other than the one that showed the code (or without its secret)."""

    error = "channel_foreign_browser"
    description = "This login can only be finished in the browser that showed the code."


class CeremonyMismatchError(ForbiddenError):
    error = "ceremony_mismatch"
    description = "The passkey answer does not belong to this login request. Please try again."


class LevelTooLowError(ForbiddenError):
    error = "level_too_low"
    description = "This service needs you to log in with your social security card and PIN."
