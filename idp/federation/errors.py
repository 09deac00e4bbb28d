"""The federation's errors: one class per failure kind, under the wire code OpenID Federation 1.0 §8.9
names for it (``invalid_request``, ``invalid_trust_anchor``, ``invalid_trust_chain``, ``invalid_metadata``,
``not_found``, ``unsupported_parameter``).

A chain that fails to resolve says why inward (the class, and ``detail`` for the log), and outward only
its code and a safe description: a resolver tells a caller nothing about another deployment's keys.
"""

from __future__ import annotations

from sdk.errors import InvalidRequestError, NotFoundError, OneCardError


class FederationError(OneCardError):
    """Base of the federation's errors."""


# invalid_trust_chain (§8.9): the chain cannot be built or does not verify ----------------------------------


class InvalidTrustChainError(FederationError):
    error = "invalid_trust_chain"
    description = "No valid trust chain could be built for the entity."
    status_code = 400


class MalformedStatementError(InvalidTrustChainError):
    """Not an entity statement: not a JWT, wrong ``typ``, a missing or mistyped claim, an unknown ``crit``."""


class StatementSignatureError(InvalidTrustChainError):
    """The statement is not signed by a key its verifier holds (an unknown ``kid`` included)."""


class StatementExpiredError(InvalidTrustChainError):
    """``exp`` has passed, or ``iat`` lies in the future beyond the allowed skew."""


class UnexpectedStatementError(InvalidTrustChainError):
    """A statement about someone else: ``iss`` or ``sub`` is not the entity asked for."""


class EntityUnreachableError(InvalidTrustChainError):
    """An entity configuration or subordinate statement could not be fetched (network, HTTP status, size,
    a redirect, plain HTTP where https is required)."""


class TrustChainLoopError(InvalidTrustChainError):
    """``authority_hints`` lead back to an entity already on the path."""


class PathTooLongError(InvalidTrustChainError):
    """The path breaks a superior's ``max_path_length`` constraint, or the resolver's own depth limit."""


class NoPathToAnchorError(InvalidTrustChainError):
    """No ``authority_hints`` path reaches the trust anchor asked for."""


# invalid_metadata (§8.9): the metadata policy cannot be combined or the metadata breaks it ---------------


class InvalidMetadataError(FederationError):
    error = "invalid_metadata"
    description = "The entity's metadata does not fit the federation's metadata policy."
    status_code = 400


class PolicyConflictError(InvalidMetadataError):
    """A metadata policy is malformed, combines operators §6.1.3 does not allow, or conflicts with a
    superior's policy when merged (§6.1.4.1)."""


class PolicyViolationError(InvalidMetadataError):
    """The metadata breaks the merged policy when it is applied (§6.1.4.2): a value outside ``one_of``, a
    missing ``superset_of`` value, an absent ``essential`` parameter."""


# trust marks (§7): not a wire code of §8.9; a mark that fails is left out of the chain's marks ------------


class InvalidTrustMarkError(FederationError):
    error = "invalid_trust_mark"
    description = "The trust mark is not valid."
    status_code = 400


class UntrustedTrustMarkIssuerError(InvalidTrustMarkError):
    """The trust anchor does not list the mark's issuer for its type in ``trust_mark_issuers``."""


class TrustMarkSignatureError(InvalidTrustMarkError):
    """The mark is not signed by a key of its issuer."""


class TrustMarkExpiredError(InvalidTrustMarkError):
    """The mark's ``exp`` has passed (or its ``iat`` is in the future)."""


class TrustMarkSubjectError(InvalidTrustMarkError):
    """The mark was issued to another entity than the one presenting it, or for another type."""


class MalformedTrustMarkError(InvalidTrustMarkError):
    """Not a trust mark JWT: wrong ``typ``, missing claims."""


# The endpoints' own refusals (§8.9) --------------------------------------------------------------------


class FederationRequestError(InvalidRequestError):
    """A federation endpoint's query is missing a parameter or has a malformed one (``invalid_request``)."""


class UnsupportedParameterError(InvalidRequestError):
    error = "unsupported_parameter"
    description = "The server does not support this request parameter."


class UnknownTrustAnchorError(FederationError):
    error = "invalid_trust_anchor"
    description = "The trust anchor is not one this entity trusts."
    status_code = 404


class SubordinateNotFoundError(NotFoundError):
    """``fetch`` for an entity that is not (or no longer) a registered subordinate (``not_found``)."""

    description = "The entity is not a subordinate of this issuer."


class NotAFederationAuthorityError(NotFoundError):
    """``fetch``/``list`` on a deployment that is neither trust anchor nor intermediate."""

    description = "This entity issues no subordinate statements."


class SubordinateExistsError(FederationError):
    error = "subordinate_exists"
    description = "The entity is already registered as a subordinate."
    status_code = 409


class InvalidSubordinateError(InvalidRequestError):
    """A subordinate's registration does not fit: entity id, JWKS, policy, constraints or trust marks."""

    error = "invalid_subordinate"
    description = "The subordinate's registration is not valid."
