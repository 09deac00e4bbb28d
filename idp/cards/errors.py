"""Errors of the card register and card issuance, one class per wire code (STYLE.md "Errors")."""

from __future__ import annotations

from sdk.errors import ConflictError, InvalidRequestError, NotFoundError


class CardNotFoundError(NotFoundError):
    error = "card_not_found"
    description = "No such card."


class InvalidCardIdError(InvalidRequestError):
    error = "invalid_card_id"
    description = "A card identification code is 32 hexadecimal characters."


class InvalidCardStatusError(InvalidRequestError):
    error = "invalid_card_status"
    description = "A card's status is 'active', 'lost', 'suspended' or 'cancelled'."


class InvalidRegionError(InvalidRequestError):
    error = "invalid_region"
    description = "A region is a 6-digit administrative division code (GB/T 2260), e.g. 420100."


class IssuerCaNotFoundError(NotFoundError):
    error = "issuer_ca_not_found"
    description = (
        "This region has no card-issuer CA. Check the region code, or create its CA with "
        "'onecard cards ca create --region REGION'."
    )


class CardStatusConflictError(ConflictError):
    error = "card_status_conflict"
    description = "The card's current status does not allow this change."


class CardExistsError(ConflictError):
    error = "card_exists"
    description = "The citizen already holds a card that is not cancelled; issue a replacement instead."


class CitizenNotEligibleError(ConflictError):
    error = "citizen_not_eligible"
    description = "Cards are issued to active citizens of the register only."
