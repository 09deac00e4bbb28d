"""The gate API: ``POST /api/v1/gate/verify`` and ``GET /api/v1/gate/suspended-handles``
(docs/formats/essc1.md §6, §7 — the contract ``sdk.gate`` follows).

Both take the venue's client credentials with HTTP Basic, form-encoded first as RFC 6749 §2.3.1 requires.
A verdict is always HTTP 200; 400/401/403/429/503 mean "no verdict" (503: the scan could not be recorded).

The verify path (issue 16) reads the venue and its client from the per-process venue cache, makes one
store round trip (generation check, the venue's own rate limit, the code's one use: wallet.scans.admission)
and waits for the group commit that records its scan (wallet.scans.batch) before it answers. With the lean
path on, most verifications are answered before Flask by the same steps (wallet.scans.endpoint,
wallet.scans.lean); this view answers the rest — a venue not in the cache, every refusal of credentials or
of a request, a request stating a language.
"""

from __future__ import annotations

import json
from typing import Final

from authlib.oauth2.rfc6749.util import extract_basic_authorization
from flask import Blueprint, Response, jsonify, request

from idp.clients.errors import ClientAuthenticationError
from idp.oauth.resource import authenticate_basic_client
from idp.observability.web import note_client
from idp.openapi.validation import validate_current_request
from idp.scopes import GATE_VERIFY
from idp.services import services
from idp.web import conditional_json, db_session, json_body, json_error
from sdk.errors import OneCardError
from wallet.ecards.service import suspended_handles
from wallet.regions.runtime import online_regions, region_runtime
from wallet.scans.endpoint import TRIES, VenueChanged, admit, verify_and_record, verify_fields
from wallet.scans.errors import GateForbiddenError, ScanNotRecordedError
from wallet.scans.service import suspended_handles_document
from wallet.services import wallet_services
from wallet.venues.cache import GateVenue, VenueCache
from wallet.venues.model import Venue
from wallet.venues.service import find_venue_by_client

bp = Blueprint("gate", __name__, url_prefix="/api/v1/gate")

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


def authenticate_gate_venue(
    cache: VenueCache, *, now: float, reload: bool = False
) -> tuple[GateVenue, bytes]:
    """``authenticate_venue`` through the venue cache: the same checks in the same order as Authlib's
    ``client_secret_basic`` (RFC 6749 §2.3.1, its own parser) and the same errors; the live venue and the
    generation its cache entry must be checked under. A refusal is decided on fresh rows only."""
    client_id, secret = extract_basic_authorization(request.headers)
    if not client_id or not secret:
        raise ClientAuthenticationError("no client_secret_basic credentials")
    session = db_session()
    client, generation = (cache.reload if reload else cache.get)(session, client_id, now=now)
    refused = client is None or not client.basic_auth or not client.check_secret(secret)
    if (refused or client is None or not client.may_verify or client.venue is None) and not reload:
        return authenticate_gate_venue(cache, now=now, reload=True)
    if refused or client is None:
        raise ClientAuthenticationError("invalid_client")
    note_client(client.client_id)
    if not client.may_verify:
        raise GateForbiddenError("not a venue client with gate:verify")
    if client.venue is None:
        raise GateForbiddenError("no live venue for this client")
    return client.venue, generation


def _no_verdict(error: OneCardError) -> Response:
    response = json_error(error)
    response.headers["Cache-Control"] = "no-store"
    return response


def _parse_body() -> tuple[str, str | None]:
    validate_current_request()  # after authentication (idp.openapi.validation)
    return verify_fields(json_body())


@bp.post("/verify")
def verify() -> Response:
    svc = services()
    gate = wallet_services().gate
    now = svc.now()
    reload = False
    for _try in range(TRIES):
        try:
            venue, generation = authenticate_gate_venue(gate.venues, now=now, reload=reload)
            try:
                code, gate_id = _parse_body()
            except OneCardError:
                admit(gate, venue, generation, None, now=now)  # a bad request counts too (429 first)
                raise
            verdict = verify_and_record(
                db_session(),
                svc=svc,
                gate=gate,
                venue=venue,
                generation=generation,
                code=code,
                gate_id=gate_id,
                foreign=online_regions(svc, region_runtime()),
                now=now,
            )
        except VenueChanged:
            reload = True
            continue
        except OneCardError as exc:
            return _no_verdict(exc)
        response = jsonify(verdict.to_json())
        response.headers["Cache-Control"] = "no-store"
        return response
    return _no_verdict(ScanNotRecordedError("the venue kept changing during the verification"))


@bp.get("/suspended-handles")
def suspended() -> Response:
    """The suspended-handles list (§6), for venues' gates only: it reveals *that* an e-card is suspended."""
    svc = services()
    try:
        authenticate_venue()
        validate_current_request()
    except OneCardError as exc:
        return _no_verdict(exc)
    return suspended_handles_answer(now=svc.now())


def suspended_handles_answer(*, now: float) -> Response:
    """The list as venues' gates and other regions' deployments get it (each authenticated by its caller's
    view). The ETag covers the handles, not generated_at: an unchanged list answers 304 however often."""
    handles = suspended_handles(db_session(), now=now)
    body = json.dumps(suspended_handles_document(handles, now=now), separators=(",", ":"))
    return conditional_json(
        body,
        cache_control=f"private, max-age={SUSPENDED_LIST_MAX_AGE}",
        etag_of="\n".join(handles).encode(),
    )
