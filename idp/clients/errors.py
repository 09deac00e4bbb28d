"""Errors of client registration."""

from __future__ import annotations

from sdk.errors import ConflictError, InvalidRequestError, NotFoundError


class ClientNotFoundError(NotFoundError):
    error = "client_not_found"
    description = "No such client."


class ClientExistsError(ConflictError):
    error = "client_exists"
    description = "A client with this id already exists."


class InvalidClientMetadataError(InvalidRequestError):
    error = "invalid_client_metadata"
    description = "The client registration is not valid."
