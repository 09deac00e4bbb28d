"""The gates-across-regions endpoints (docs/formats/essc1.md §6a, docs/federation.md "Gates across regions").

- ``GET /federation/suspended-handles``: this deployment's suspended list for *other OneCard deployments*,
  which authenticate with a bearer assertion signed by their federation key (``wallet.regions.service``);
  the same document venues get at ``/api/v1/gate/suspended-handles``.
- ``GET /api/v1/gate/regions``: for this deployment's gates (the venue's credentials), every region the
  federation trusts with its synced QR key set and suspended list.
"""

from __future__ import annotations

import json
from typing import Final

from flask import Blueprint, Response, request

from idp.federation.metadata import FEDERATION_SUSPENDED_HANDLES_PATH, home_region_codes
from idp.openapi.validation import validate_current_request
from idp.services import services
from idp.web import conditional_json, db_session, json_error
from sdk.errors import NotFoundError, OneCardError
from wallet.regions.errors import FederationCallerError
from wallet.regions.runtime import region_runtime
from wallet.regions.service import regions_document, verify_federation_assertion
from wallet.scans.views import authenticate_venue, suspended_handles_answer

bp = Blueprint("regions", __name__)

REGIONS_PATH: Final = "/api/v1/gate/regions"
REGIONS_MAX_AGE: Final = 60


def _refused(error: OneCardError) -> Response:
    response = json_error(error)
    response.headers["Cache-Control"] = "no-store"
    return response


class _NoFederationError(NotFoundError):
    error = "not_found"
    description = "This deployment takes part in no federation."


@bp.get(FEDERATION_SUSPENDED_HANDLES_PATH)
def federation_suspended_handles() -> Response:
    """The suspended list for another region's deployment, which names itself with a bearer assertion."""
    svc = services()
    federation = svc.federation
    if federation is None:
        return _refused(_NoFederationError("no federation configured"))
    now = svc.now()
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    try:
        if scheme.lower() != "bearer" or not token.strip():
            raise FederationCallerError("no bearer assertion")
        verify_federation_assertion(
            token.strip(),
            resolver=federation.resolver,
            expected_audience=federation.config.entity_id + FEDERATION_SUSPENDED_HANDLES_PATH,
            store=svc.store,
            now=now,
            is_peer=lambda caller: federation.directory.get(caller, now=now) is not None,
        )
        validate_current_request()
    except OneCardError as exc:
        return _refused(exc)
    return suspended_handles_answer(now=now)


@bp.get(REGIONS_PATH)
def gate_regions() -> Response:
    """Every trusted region's QR key set and suspended list, for this deployment's gates."""
    svc = services()
    try:
        authenticate_venue()
        validate_current_request()
    except OneCardError as exc:
        return _refused(exc)
    now = svc.now()
    region_runtime().sync_if_due(svc, now=now)
    session = db_session()
    home = home_region_codes(session, svc.federation.config) if svc.federation is not None else []
    document, etag_of = regions_document(session, home_region_codes=home, now=now)
    return conditional_json(
        json.dumps(document, separators=(",", ":")),
        cache_control=f"private, max-age={REGIONS_MAX_AGE}",
        etag_of=etag_of,
    )
