"""Errors of client registration."""

from __future__ import annotations

from typing import ClassVar

from sdk.errors import ConflictError, InvalidRequestError, NotFoundError, UnauthorizedError


class ClientNotFoundError(NotFoundError):
    error = "client_not_found"
    description = "No such client."


class ClientExistsError(ConflictError):
    error = "client_exists"
    description = "A client with this id already exists."


class InvalidClientMetadataError(InvalidRequestError):
    error = "invalid_client_metadata"
    description = "The client registration is not valid."


class ClientAuthenticationError(UnauthorizedError):
    """Client credentials missing, unreadable or wrong (RFC 6749 §5.2 ``invalid_client``)."""

    error = "invalid_client"
    description = "Client authentication failed."
    headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": 'Basic realm="onecard"'}
