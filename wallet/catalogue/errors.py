"""Errors of the application catalogue, one class per wire code."""

from __future__ import annotations

from sdk.errors import ConflictError, InvalidRequestError, NotFoundError


class CatalogueEntryNotFoundError(NotFoundError):
    error = "catalogue_entry_not_found"
    description = "No such catalogue entry."


class InvalidCatalogueEntryError(InvalidRequestError):
    error = "invalid_catalogue_entry"
    description = "The catalogue entry's fields are not valid."


class CatalogueEntryExistsError(ConflictError):
    error = "catalogue_entry_exists"
    description = "A catalogue entry with this id exists already."


class CatalogueEntryChangedError(ConflictError):
    error = "catalogue_entry_changed"
    description = "The catalogue entry was changed by someone else; read it again."


class InvalidCatalogueQueryError(InvalidRequestError):
    error = "invalid_catalogue_query"
    description = "The catalogue search is not valid."
