"""Errors of the gates across regions, one class per wire code."""

from __future__ import annotations

from typing import ClassVar

from sdk.errors import OneCardError, UnauthorizedError


class FederationCallerError(UnauthorizedError):
    """``/federation/suspended-handles``: no bearer assertion, or one this deployment cannot verify with keys
    the federation vouches for (RFC 6750 §3.1 ``invalid_token``)."""

    error = "invalid_token"
    description = "The caller is not a deployment the federation vouches for."
    headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": 'Bearer realm="onecard-federation"'}


class RegionListStaleError(OneCardError):
    """The online verify API holds the issuing region's suspended list, but older than it may be: no
    verdict (an offline gate would answer ``revocation_list_stale``); the code is not used up."""

    error = "temporarily_unavailable"
    description = "The issuing region's list of suspended cards is out of date. Please try again later."
    status_code = 503


class RegionSyncError(Exception):
    """One peer region could not be synced (unreachable, refused, unusable answer); ``str`` says why."""
