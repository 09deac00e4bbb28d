"""The gate API: ``POST /api/v1/gate/verify`` and ``GET /api/v1/gate/suspended-handles``
(docs/formats/essc1.md §6, §7 — the contract ``sdk.gate`` follows).

Both take the venue's client credentials with HTTP Basic, form-encoded first as RFC 6749 §2.3.1 requires.
A verdict is always HTTP 200; 400/401/403/429/503 mean "no verdict" (503: the scan could not be recorded).

The verify path (issue 16) reads the venue and its client from the per-process venue cache, makes one
store round trip (generation check, the venue's own rate limit, the code's one use: wallet.scans.admission)
and waits for the group commit that records its scan (wallet.scans.batch) before it answers.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Final

from authlib.oauth2.rfc6749.util import extract_basic_authorization
from flask import Blueprint, Response, jsonify, request

from idp.clients.errors import ClientAuthenticationError
from idp.oauth.resource import authenticate_basic_client
from idp.observability.web import note_client
from idp.openapi.validation import validate_current_request
from idp.presented_codes import SERVER_CLOCK_SKEW
from idp.scopes import GATE_VERIFY
from idp.services import services
from idp.web import conditional_json, db_session, json_body, json_error
from sdk.errors import InvalidRequestError, OneCardError, RateLimitedError
from sdk.qr_token import VerifiedQrToken
from wallet.ecards.service import suspended_handles
from wallet.regions.runtime import online_regions
from wallet.scans.errors import GateForbiddenError, ScanNotRecordedError
from wallet.scans.runtime import GateRuntime
from wallet.scans.service import (
    MAX_GATE_ID,
    decide_gate_code,
    recorded_verdict,
    scan_row,
    suspended_handles_document,
)
from wallet.services import wallet_services
from wallet.venues.cache import GateVenue, VenueCache
from wallet.venues.model import Venue
from wallet.venues.service import find_venue_by_client

bp = Blueprint("gate", __name__, url_prefix="/api/v1/gate")

SUSPENDED_LIST_MAX_AGE: Final = 60
# Tries of one verification when the venue cache turns out stale (a venue change committed meanwhile).
_TRIES: Final = 3


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


class _VenueChanged(Exception):
    """The venue generation moved on between the cache's load and this verification's admission."""


def _no_verdict(error: OneCardError) -> Response:
    response = json_error(error)
    response.headers["Cache-Control"] = "no-store"
    return response


def _admit(
    gate: GateRuntime, venue: GateVenue, generation: bytes, token: VerifiedQrToken | None, *, now: float
) -> bool:
    """The one store round trip of a verification (wallet.scans.admission); True if the code is used now."""
    admission = gate.admission.admit(
        venue_id=venue.id,
        limit=venue.verify_per_minute,
        generation=generation,
        cti=None if token is None else token.cti,
        cti_ttl=0.0 if token is None else max(1.0, token.expires_at + SERVER_CLOCK_SKEW - now),
        now=now,
    )
    if admission.stale:
        raise _VenueChanged
    if not admission.allowed:
        raise RateLimitedError(
            f"rate limit gate_verify: venue {venue.id} over {venue.verify_per_minute} per minute",
            retry_after=admission.retry_after,
        )
    return admission.first_use


def _parse_body() -> tuple[str, str | None]:
    validate_current_request()  # after authentication (idp.openapi.validation)
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
    return code, gate_id


@bp.post("/verify")
def verify() -> Response:
    svc = services()
    gate = wallet_services().gate
    now = svc.now()
    session = db_session()
    reload = False
    for _try in range(_TRIES):
        try:
            venue, generation = authenticate_gate_venue(gate.venues, now=now, reload=reload)
            try:
                code, gate_id = _parse_body()
            except OneCardError:
                _admit(gate, venue, generation, None, now=now)  # a bad request counts too (429 first)
                raise
            decision = decide_gate_code(
                session,
                keyring=svc.keyring,
                cipher_factory=svc.pii_cipher,
                venue=venue,
                text=code,
                use_once=partial(_admit, gate, venue, generation, now=now),
                now=now,
                foreign=online_regions(svc),
            )
            row = scan_row(venue, decision, gate_id=gate_id, now=now)
            gate.scans.record(row)  # committed, or ScanNotRecordedError: no verdict
        except _VenueChanged:
            reload = True
            continue
        except OneCardError as exc:
            return _no_verdict(exc)
        response = jsonify(recorded_verdict(venue, decision, row).to_json())
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
