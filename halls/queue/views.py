"""The hall's scanner and the hall's board:

- ``POST /api/v1/halls/scan`` — the scanner's venue credentials (HTTP Basic, like the gate API),
  ``{code, service, scanner_id?}``: the ESSC1 code is verified by the gate's own path
  (``wallet.scans.service.verify_gate_code``: signature, e-card status, one use), and the citizen behind it
  gets the next number of ``service``. The outcome is always HTTP 200 (as a gate's verdict is):
  ``{"result": "taken", "ticket"}``, ``{"result": "already_queued", "ticket"}`` (the number they hold) or
  ``{"result": "rejected", "reason"}`` (a ``QrTokenReason``). 400/401/403/404/429 mean "no outcome" and
  change nothing: the service is looked up before the code is used.
- ``POST /api/v1/halls/<hall_id>/counters/<code>/call-next`` → 200 the ticket called, 204 nobody waits, and
  ``POST …/finish`` ``{status: served|no_show}`` → 200 — the counter's registered device only (DESIGN.md §14):
  a ``hall:counter`` token the device got with client_credentials at ``/token``, authenticating with
  private_key_jwt. Any other caller — another counter's device, an admin token, a client_secret client — is
  refused (403), and nothing changes. Staff who must call without the device use ``onecard halls call-next``.
- ``GET /api/v1/halls/<hall_id>/board`` — public: the numbers called now and how many wait per service (what
  the hall's display page polls).
"""

from __future__ import annotations

from typing import Final

from flask import Blueprint, Response, jsonify

from halls.queue.errors import (
    AlreadyQueuedError,
    CounterForbiddenError,
    InvalidTicketRequestError,
    ScannerForbiddenError,
)
from halls.queue.service import call_next, finish_current, hall_board, take_number
from halls.register.model import Counter, Hall
from halls.register.service import counter_of_device, find_hall_by_venue, get_hall, get_service
from idp.clients.service import find_client
from idp.oauth.resource import authenticate_basic_client, current_access, require_scope
from idp.openapi.validation import validate_current_request
from idp.ratelimit import RateLimiter
from idp.scopes import GATE_VERIFY, HALL_COUNTER
from idp.services import services
from idp.web import db_session, json_body
from wallet.ecards.service import citizen_of_usable_handle
from wallet.scans.service import MAX_GATE_ID, verify_gate_code
from wallet.venues.model import Venue
from wallet.venues.service import find_venue_by_client

bp = Blueprint("halls_queue", __name__, url_prefix="/api/v1/halls")

SCANS_PER_MINUTE: Final = 600  # per hall, across its scanners and all nodes: far above a busy hall


def _authenticate_scanner() -> tuple[Hall, Venue]:
    client = authenticate_basic_client(endpoint="gate")
    if client.kind != "venue" or GATE_VERIFY not in client.allowed_scopes:
        raise ScannerForbiddenError("not a venue client")
    session = db_session()
    venue = find_venue_by_client(session, client.client_id)
    hall = find_hall_by_venue(session, venue.id) if venue is not None else None
    if venue is None or hall is None:
        raise ScannerForbiddenError("no live hall for this client")
    return hall, venue


@bp.post("/scan")
def scan() -> Response:
    svc = services()
    now = svc.now()
    hall, venue = _authenticate_scanner()
    RateLimiter(svc.store, "hall_scan", SCANS_PER_MINUTE, 60).hit(hall.id, now)
    validate_current_request()
    body = json_body()
    code = body.get("code")
    if not isinstance(code, str):
        raise InvalidTicketRequestError("code", description="'code' is required and must be text.")
    scanner_id = body.get("scanner_id")
    if scanner_id is not None and (
        not isinstance(scanner_id, str)
        or not 0 < len(scanner_id) <= MAX_GATE_ID
        or not scanner_id.isprintable()
    ):
        raise InvalidTicketRequestError(
            "scanner_id", description=f"'scanner_id' must be 1..{MAX_GATE_ID} printable characters."
        )
    session = db_session()
    service = get_service(session, hall, body.get("service"))  # before the code is used up
    verdict = verify_gate_code(
        session,
        store=svc.store,
        keyring=svc.keyring,
        cipher_factory=svc.pii_cipher,
        venue=venue,
        text=code,
        gate_id=scanner_id,
        now=now,
    )
    citizen_id = citizen_of_usable_handle(session, verdict.token.handle) if verdict.token else None
    if not verdict.passed or citizen_id is None:
        return _answer({"result": "rejected", "reason": str(verdict.reason or "revoked")})
    try:
        ticket = take_number(
            session,
            citizen_id=citizen_id,
            service=service,
            channel="scanner",
            terminal_id=scanner_id,
            now=now,
        )
    except AlreadyQueuedError as held:
        return _answer({"result": "already_queued", "ticket": held.ticket.to_json()})
    return _answer({"result": "taken", "ticket": ticket.to_json()})


def _answer(body: dict[str, object]) -> Response:
    """A scan's outcome is an answer, not a refusal (like a gate's verdict): HTTP 200, and what the scan
    wrote (its scan record, the code's one use, the number) stays."""
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


def _authenticated_counter(hall_id: str, code: str) -> tuple[Counter, str]:
    """The counter the URL names, if the token's client is its registered device; else 403. The client is
    checked again as registered (a device, private_key_jwt): a ``hall:counter`` token of any other client
    — one an admin registered by hand with a secret, say — opens no counter."""
    client_id = current_access().client_id
    session = db_session()
    client = find_client(session, client_id)
    counter = counter_of_device(session, client_id)
    if (
        client is None
        or client.kind != "device"
        or client.token_endpoint_auth_method != "private_key_jwt"
        or counter is None
        or counter.hall_id != hall_id
        or counter.code != code
    ):
        raise CounterForbiddenError("not the device of this counter")
    return counter, client_id


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/<hall_id>/counters/<code>/call-next")
@require_scope(HALL_COUNTER)
def counter_call_next(hall_id: str, code: str) -> Response:
    counter, device = _authenticated_counter(hall_id, code)
    called = call_next(
        db_session(), counter, actor=f"client:{device}", device_client_id=device, now=services().now()
    )
    if called is None:
        return Response(status=204)
    return _no_store(jsonify(called.to_json()))


@bp.post("/<hall_id>/counters/<code>/finish")
@require_scope(HALL_COUNTER)
def counter_finish(hall_id: str, code: str) -> Response:
    counter, device = _authenticated_counter(hall_id, code)
    finished = finish_current(
        db_session(),
        counter,
        json_body().get("status"),
        actor=f"client:{device}",
        device_client_id=device,
        now=services().now(),
    )
    return _no_store(jsonify(finished.to_json()))


@bp.get("/<hall_id>/board")
def board(hall_id: str) -> Response:
    session = db_session()
    hall = get_hall(session, hall_id)
    response = jsonify(hall_board(session, hall, now=services().now()).to_json())
    response.headers["Cache-Control"] = "no-store"
    return response
