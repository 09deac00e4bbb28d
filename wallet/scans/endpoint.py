"""The steps of ``POST /api/v1/gate/verify`` free of Flask, shared by its view (``wallet.scans.views``) and
its lean path (``wallet.scans.lean``), so the two cannot drift apart.

A verification is: the request's fields (``verify_fields``, after the contract's shape), then
``verify_and_record`` — the decision (``decide_gate_code``) whose one store round trip is ``admit``, and the
scan recorded in the group commit before the verdict exists. ``VenueChanged`` means the venue cache's entry
was stale: nothing was counted or used, and the caller verifies again with the venue reloaded.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Final

from sqlalchemy.orm import Session

from idp.presented_codes import SERVER_CLOCK_SKEW
from idp.services import Services
from sdk.errors import InvalidRequestError, RateLimitedError
from sdk.qr_token import VerifiedQrToken
from wallet.scans.runtime import GateRuntime
from wallet.scans.service import (
    MAX_GATE_ID,
    ForeignRegions,
    GateVerdict,
    decide_gate_code,
    recorded_verdict,
    scan_row,
)
from wallet.venues.cache import GateVenue

# Tries of one verification when the venue cache turns out stale (a venue change committed meanwhile).
TRIES: Final = 3
FIELDS: Final = frozenset({"code", "gate_id"})  # the request body's members (the contract's properties)


class VenueChanged(Exception):
    """The venue generation moved on between the cache's load and this verification's admission."""


def admit(
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
        raise VenueChanged
    if not admission.allowed:
        raise RateLimitedError(
            f"rate limit gate_verify: venue {venue.id} over {venue.verify_per_minute} per minute",
            retry_after=admission.retry_after,
        )
    return admission.first_use


def verify_fields(body: dict[str, Any]) -> tuple[str, str | None]:
    """The scanned code and the optional scanner label of a request body, or ``InvalidRequestError``."""
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


def verify_and_record(
    session: Session,
    *,
    svc: Services,
    gate: GateRuntime,
    venue: GateVenue,
    generation: bytes,
    code: str,
    gate_id: str | None,
    foreign: ForeignRegions | None,
    now: float,
) -> GateVerdict:
    """Decide on ``code`` for ``venue`` and record the scan (committed, or ``ScanNotRecordedError``: no
    verdict). Raises ``VenueChanged`` before anything is counted or used, and the decision's refusals
    (``RateLimitedError``, a region's stale list)."""
    decision = decide_gate_code(
        session,
        keyring=svc.keyring,
        cipher_factory=svc.pii_cipher,
        venue=venue,
        text=code,
        use_once=partial(admit, gate, venue, generation, now=now),
        now=now,
        foreign=foreign,
    )
    row = scan_row(venue, decision, gate_id=gate_id, now=now)
    gate.scans.record(row)
    return recorded_verdict(venue, decision, row)
