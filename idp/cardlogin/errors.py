"""Errors of card login, one class per wire code (STYLE.md "Errors").

The page shows ``error_description`` to the citizen as it is, so each says plainly what happened and what
to do. What exactly failed in the cryptography stays inside (``reason``, logged without personal data):
outward a forged or mis-addressed answer is just ``invalid_card_auth``.
"""

from __future__ import annotations

from sdk.card_auth import CardAuthFailure
from sdk.errors import ForbiddenError, InvalidRequestError, RateLimitedError


class ChallengeInvalidError(InvalidRequestError):
    error = "challenge_invalid"
    description = "This login attempt has expired or was already used. Please start again."


class LoginExpiredError(InvalidRequestError):
    error = "login_expired"
    description = (
        "This sign-in has expired, or it was started in another browser. "
        "Please go back to the service and start again."
    )


class CsrfError(ForbiddenError):
    error = "csrf_failed"
    description = "The page was out of date. Please reload it and try again."


class CardNotTrustedError(ForbiddenError):
    error = "card_not_trusted"
    description = (
        "This card was not issued by a card issuer this service accepts. "
        "Please contact a card service counter."
    )

    def __init__(self, reason: CardAuthFailure = CardAuthFailure.UNTRUSTED_ISSUER, detail: str = "") -> None:
        super().__init__(detail or reason.value)
        self.reason = reason


class CardExpiredError(ForbiddenError):
    error = "card_expired"
    description = "Your card has expired (or is not valid yet). Please renew it at a card service counter."

    def __init__(
        self, reason: CardAuthFailure = CardAuthFailure.EXPIRED_CERTIFICATE, detail: str = ""
    ) -> None:
        super().__init__(detail or reason.value)
        self.reason = reason


class CardNotRegisteredError(ForbiddenError):
    error = "card_not_registered"
    description = "This card is not registered for online login. Please contact a card service counter."


class CardLostError(ForbiddenError):
    error = "card_lost"
    description = (
        "This card has been reported lost, so it cannot be used to log in. If you have found it, "
        "restore it at a card service counter or on the service hotline."
    )


class CardSuspendedError(ForbiddenError):
    error = "card_suspended"
    description = (
        "This card is suspended and cannot be used to log in. Please contact a card service counter."
    )


class CardCancelledError(ForbiddenError):
    error = "card_cancelled"
    description = (
        "This card has been cancelled (for example because it was replaced). Please use your new card."
    )


class CitizenDisabledError(ForbiddenError):
    error = "account_disabled"
    description = "Online login is not available for this card holder. Please contact a card service counter."


class CardNotUsableError(ForbiddenError):
    """The pre-check's only "no" (before the PIN): one answer for a foreign, unregistered, replaced, lost,
    suspended, expired card or an inactive holder, so it tells nobody whether a card exists, what its
    status is or whose it is. ``reason`` is the error the login would have given: logged, never sent."""

    error = "card_not_usable"
    description = (
        "This card cannot be used to log in here. Please choose another way to log in, or ask a card "
        "service counter about your card."
    )

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


def too_many_attempts(detail: str, *, retry_after: int) -> RateLimitedError:
    """Card login's refusal while an address, a card or a transaction is over its limit: the one
    ``rate_limited`` error, in card login's words."""
    return RateLimitedError(
        detail,
        retry_after=retry_after,
        description="Too many failed attempts. Please wait a few minutes and try again.",
    )
