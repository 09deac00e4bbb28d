"""The gate API: ``POST /api/v1/gate/verify`` and ``GET /api/v1/gate/suspended-handles``
(docs/formats/essc1.md §6, §7 — the contract ``sdk.gate`` follows).

Both take the venue's client credentials with HTTP Basic, form-encoded first as RFC 6749 §2.3.1 requires.
A verdict is always HTTP 200; 400/401/403/429 mean "no verdict".
"""

from __future__ import annotations

import json
from typing import Final

from flask import Blueprint, Response, jsonify

from idp.oauth.resource import authenticate_basic_client
from idp.openapi.validation import validate_current_request
from idp.ratelimit import RateLimiter
from idp.scopes import GATE_VERIFY
from idp.services import services
from idp.web import conditional_json, db_session, json_body, json_error
from sdk.errors import InvalidRequestError, OneCardError
from wallet.ecards.service import suspended_handles
from wallet.scans.errors import GateForbiddenError
from wallet.scans.service import MAX_GATE_ID, suspended_handles_document, verify_gate_code
from wallet.venues.model import Venue
from wallet.venues.service import find_venue_by_client

bp = Blueprint("gate", __name__, url_prefix="/api/v1/gate")

# Per venue, across all its gates and all nodes: a busy metro station stays far below it.
VERIFY_PER_MINUTE: Final = 12_000
SUSPENDED_LIST_MAX_AGE: Final = 60


def authenticate_venue() -> Venue:
    """The live venue whose gate credentials the request carries; else a 401 or 403 error."""
    client = authenticate_basic_client(endpoint="gate")
    if client.kind != "venue" or GATE_VERIFY not in client.allowed_scopes:
        raise GateForbiddenError("not a venue client with gate:verify")
    venue = find_venue_by_client(db_session(), client.client_id)
    if venue is None:
        raise GateForbiddenError("no live venue for this client")
    return venue


def _no_verdict(error: OneCardError) -> Response:
    response = json_error(error)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/verify")
def verify() -> Response:
    svc = services()
    now = svc.now()
    try:
        venue = authenticate_venue()
        RateLimiter(svc.store, "gate_verify", VERIFY_PER_MINUTE, 60).hit(venue.id, now)
        validate_current_request()  # after authentication and the rate limit (idp.openapi.validation)
        body = json_body()
        code = body.get("code")
        if not isinstance(code, str):
            raise InvalidRequestError("code", description="'code' is required and must be text.")
        gate_id = body.get("gate_id")
        if gate_id is not None and (
            not isinstance(gate_id, str) or not 0 < len(gate_id) <= MAX_GATE_ID or not gate_id.isprintable()
        ):
            raise InvalidRequestError(
                "gate_id", description=f"'gate_id' must be 1..{MAX_GATE_ID} printable characters."
            )
    except OneCardError as exc:
        return _no_verdict(exc)
    verdict = verify_gate_code(
        db_session(),
        store=svc.store,
        keyring=svc.keyring,
        cipher_factory=svc.pii_cipher,
        venue=venue,
        text=code,
        gate_id=gate_id,
        now=now,
    )
    response = jsonify(verdict.to_json())
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/suspended-handles")
def suspended() -> Response:
    """The suspended-handles list (§6), for venues' gates only: it reveals *that* an e-card is suspended."""
    svc = services()
    try:
        authenticate_venue()
        validate_current_request()
    except OneCardError as exc:
        return _no_verdict(exc)
    now = svc.now()
    handles = suspended_handles(db_session(), now=now)
    body = json.dumps(suspended_handles_document(handles, now=now), separators=(",", ":"))
    # The ETag covers the handles, not generated_at: an unchanged list answers 304 however often it is asked.
    return conditional_json(
        body,
        cache_control=f"private, max-age={SUSPENDED_LIST_MAX_AGE}",
        etag_of="\n".join(handles).encode(),
    )
