"""Online gate verification, the suspended-handles list and scan records (docs/formats/essc1.md §6, §7).

``decide_gate_code`` is the protocol core of ``POST /api/v1/gate/verify``, free of Flask: steps 1–6 of §3
with the server's own QR key set (pending and retired keys included) and its stated skew, then the e-card's
*current* status (``revoked``), then global one-time use — an atomic ``add`` of the ``cti`` in the shared
store until ``exp + skew`` (``replayed``), taken only once everything else passed so a refused code keeps its
one scan. A code of another region (its key not ours, its ``iss`` not ours) takes a slower path when the
caller passes the synced regions (``ForeignRegions``, wallet.regions): that region's keys and suspended list,
``untrusted_region`` when no trusted region is home for it, the same one-time use, and the region named in
the verdict. Every outcome is recorded as a ``ScanRecord`` before its verdict is given — in the caller's unit
of work (``verify_gate_code``, a hall's scanner) or in a group commit (the gate API, ``wallet.scans.batch``);
the claims of a pass are exactly those the venue's policy names.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.citizens.facts import PROFILE_FACTS, citizen_facts
from idp.citizens.service import decrypt_profile, find_citizen, local_date
from idp.crypto.pii import PiiCipher
from idp.db import utc_from_timestamp
from idp.keys.service import KeyRing
from idp.observability.metrics import count_gate_verification
from idp.presented_codes import EVERY_REGION, SERVER_CLOCK_SKEW, use_once, verify_presented_code
from idp.stores.base import EphemeralStore
from sdk.gate import IssuingRegion, TrustedRegions
from sdk.qr_token import (
    QrTokenError,
    QrTokenReason,
    VerifiedQrToken,
    parse_qr_token,
    verify_qr_token,
)
from wallet.ecards.service import HandleStatus, status_by_handle
from wallet.regions.errors import RegionListStaleError
from wallet.scans.admission import GATE_CTI_NAMESPACE
from wallet.scans.model import ScanRecord
from wallet.venues.model import Venue
from wallet.venues.service import VENUE_CLAIMS

MAX_GATE_ID: Final = 64
# Reasons that are decided after the signature held: the handle in the code is then the issuer's own, and
# the scan can go into that e-card's history.
_SIGNED_REASONS: Final = frozenset(
    {QrTokenReason.WRONG_ISSUER, QrTokenReason.EXPIRED, QrTokenReason.NOT_YET_VALID}
)


@dataclass(frozen=True)
class GateVerdict:
    """The answer to one scan: a pass with claims, or a reject with its reason."""

    scan_id: str
    reason: QrTokenReason | None
    token: VerifiedQrToken | None = None
    claims: dict[str, Any] = field(default_factory=dict)
    issuing_region: IssuingRegion | None = None  # another region's code: the region that issued it

    @property
    def passed(self) -> bool:
        return self.reason is None

    def to_json(self) -> dict[str, Any]:
        if self.reason is not None or self.token is None:
            return {"verdict": "reject", "reason": str(self.reason)}
        verdict = {
            "verdict": "pass",
            "handle": self.token.handle,
            "issuer": self.token.issuer,
            "issued_at": self.token.issued_at,
            "expires_at": self.token.expires_at,
            "claims": self.claims,
            "scan_id": self.scan_id,
        }
        if self.issuing_region is not None:
            # Only for other regions' codes: a client that predates it sees the same verdict as before.
            region = self.issuing_region
            verdict["issuing_region"] = {"entity_id": region.entity_id, "name": region.name}
        return verdict


class GatePolicy(Protocol):
    """What a verification needs of the venue: a ``Venue`` row, or the gate's cached copy of one
    (``wallet.venues.cache.GateVenue``)."""

    @property
    def id(self) -> str: ...
    @property
    def category(self) -> str: ...
    @property
    def claims(self) -> Sequence[str]: ...
    @property
    def regions(self) -> Sequence[str]: ...


# The one-time step: called once per verification, last — with the verified token once everything else
# passed (True: first use), or with None for a code refused before it (the gate API counts its rate limit
# there). It may raise to refuse the verification as a whole (a rate limit): then nothing is recorded.
UseOnce = Callable[[VerifiedQrToken | None], bool]


@dataclass(frozen=True)
class GateDecision:
    """The outcome of one scan, before it is recorded."""

    reason: QrTokenReason | None
    ecard: HandleStatus | None  # the e-card the scan goes into the history of, when the code names one
    token: VerifiedQrToken | None = None
    claims: dict[str, Any] = field(default_factory=dict)
    issuing_region: IssuingRegion | None = None


class ForeignRegions(Protocol):
    """The other regions whose codes the online API accepts (wallet.regions.runtime.OnlineRegions)."""

    @property
    def max_list_age(self) -> float: ...

    def is_own(self, session: Session, code: str, regions: TrustedRegions) -> bool:
        """Whether a region code is this deployment's own rather than one of ``regions``' (its codes keep
        the local path's reasons)."""
        ...

    def trusted_regions(self, session: Session, *, now: float) -> TrustedRegions: ...


# What a venue may learn of another region's citizen: only what the code itself proves (no register here).
_FOREIGN_FACTS: Final = ("valid_resident", "region")


def _decide_foreign(
    session: Session,
    *,
    foreign: ForeignRegions,
    venue: GatePolicy,
    text: str,
    use_once: UseOnce,
    now: float,
    clock_skew: int,
) -> GateDecision | None:
    """Another region's code, or None when the code is not one (the local path's refusal stands)."""
    try:
        # Unverified, only to choose whose keys verify it (or to name the refusal); the signature comes next.
        issuer = parse_qr_token(text).issuer
    except QrTokenError:
        return None
    trusted = foreign.trusted_regions(session, now=now)
    if foreign.is_own(session, issuer, trusted):
        return None
    region = trusted.home_for(issuer)
    if region is None:
        use_once(None)
        return GateDecision(QrTokenReason.UNTRUSTED_REGION, None)
    named = region.issuing_region
    try:
        token = verify_qr_token(
            text,
            keys=region.keys,
            expected_issuers=list(venue.regions) or EVERY_REGION,
            now=now,
            clock_skew=clock_skew,
        )
    except QrTokenError as exc:
        use_once(None)
        return GateDecision(exc.reason, None, issuing_region=named)
    if now - region.suspended_updated_at > foreign.max_list_age:
        use_once(None)
        raise RegionListStaleError(f"the suspended list of {region.entity_id} is too old")
    if token.handle in region.suspended:
        use_once(None)
        return GateDecision(QrTokenReason.REVOKED, None, issuing_region=named)
    if not use_once(token):
        return GateDecision(QrTokenReason.REPLAYED, None, issuing_region=named)
    facts = {"valid_resident": True, "region": token.issuer}
    claims = {name: facts[name] for name in venue.claims if name in _FOREIGN_FACTS}
    return GateDecision(None, None, token, claims, issuing_region=named)


def venue_claims(
    venue: GatePolicy,
    ecard: HandleStatus,
    *,
    cipher_factory: Callable[[], PiiCipher],
    session: Session,
    now: float,
) -> dict[str, Any]:
    """What the venue's policy lets it learn; the register is decrypted only when the policy needs it."""
    policy = list(venue.claims)
    facts: dict[str, Any] = {"valid_resident": True, "region": ecard.region}
    if PROFILE_FACTS.intersection(policy):
        citizen = find_citizen(session, ecard.citizen_id)
        if citizen is not None:
            facts.update(citizen_facts(decrypt_profile(cipher_factory(), citizen), now=now))
    # Only what a venue may ever learn (VENUE_CLAIMS: never the full ID number or the birthdate), whatever
    # the stored policy says.
    return {name: facts[name] for name in policy if name in VENUE_CLAIMS and name in facts}


def decide_gate_code(
    session: Session,
    *,
    keyring: KeyRing,
    cipher_factory: Callable[[], PiiCipher],
    venue: GatePolicy,
    text: str,
    use_once: UseOnce,
    now: float,
    clock_skew: int = SERVER_CLOCK_SKEW,
    foreign: ForeignRegions | None = None,
) -> GateDecision:
    """Decide on one scanned code for ``venue`` (docs/formats/essc1.md §3, §7); records nothing.

    ``foreign``: accept other regions' codes too (the gate API); None keeps to this deployment's own."""
    expected_issuers: Collection[str] = list(venue.regions) or EVERY_REGION
    try:
        token = verify_presented_code(
            text, keyring=keyring, now=now, expected_issuers=expected_issuers, clock_skew=clock_skew
        )
    except QrTokenError as exc:
        if foreign is not None and exc.reason is QrTokenReason.UNKNOWN_KEY:
            decided = _decide_foreign(
                session,
                foreign=foreign,
                venue=venue,
                text=text,
                use_once=use_once,
                now=now,
                clock_skew=clock_skew,
            )
            if decided is not None:
                return decided
        signed = exc.reason in _SIGNED_REASONS
        ecard = status_by_handle(session, parse_qr_token(text).handle) if signed else None
        use_once(None)
        return GateDecision(exc.reason, ecard)
    # One statement: the e-card, its card's status and its citizen's (read now, never cached).
    ecard = status_by_handle(session, token.handle)
    if ecard is None or not ecard.usable:
        use_once(None)
        return GateDecision(QrTokenReason.REVOKED, ecard)
    # Last: one scan per code across every node.
    if not use_once(token):
        return GateDecision(QrTokenReason.REPLAYED, ecard)
    claims = venue_claims(venue, ecard, cipher_factory=cipher_factory, session=session, now=now)
    return GateDecision(None, ecard, token, claims)


def scan_row(venue: GatePolicy, decision: GateDecision, *, gate_id: str | None, now: float) -> dict[str, Any]:
    """The ``wallet_scans`` row of a decision."""
    return {
        "id": uuid.uuid4().hex,
        "venue_id": venue.id,
        "category": venue.category,
        "ecard_id": decision.ecard.ecard_id if decision.ecard is not None else None,
        "at": utc_from_timestamp(now),
        "day": local_date(now),
        "result": "pass" if decision.reason is None else "reject",
        "reason": None if decision.reason is None else decision.reason.value,
        "gate_id": gate_id,
    }


def recorded_verdict(venue: GatePolicy, decision: GateDecision, row: dict[str, Any]) -> GateVerdict:
    """The verdict of a decision whose scan ``row`` is recorded (and only then)."""
    count_gate_verification(category=venue.category, reason=row["reason"])
    return GateVerdict(row["id"], decision.reason, decision.token, decision.claims, decision.issuing_region)


def verify_gate_code(
    session: Session,
    *,
    store: EphemeralStore,
    keyring: KeyRing,
    cipher_factory: Callable[[], PiiCipher],
    venue: GatePolicy,
    text: str,
    gate_id: str | None,
    now: float,
    clock_skew: int = SERVER_CLOCK_SKEW,
) -> GateVerdict:
    """Decide on one code and record the scan in ``session``'s unit of work (a hall's scanner: the scan and
    the queue number it takes commit together). The gate API records through ``wallet.scans.batch``."""

    def use(token: VerifiedQrToken | None) -> bool:
        return token is None or use_once(store, GATE_CTI_NAMESPACE, token, now=now, clock_skew=clock_skew)

    decision = decide_gate_code(
        session,
        keyring=keyring,
        cipher_factory=cipher_factory,
        venue=venue,
        text=text,
        use_once=use,
        now=now,
        clock_skew=clock_skew,
    )
    row = scan_row(venue, decision, gate_id=gate_id, now=now)
    session.add(ScanRecord(**row))
    session.flush()
    return recorded_verdict(venue, decision, row)


@dataclass(frozen=True)
class ScanEntry:
    """One line of a citizen's scan history."""

    at: datetime
    venue_name: str
    category: str
    result: str
    reason: str | None


def list_scans_of_ecards(
    session: Session, ecard_ids: Collection[str], *, limit: int = 100
) -> list[ScanEntry]:
    if not ecard_ids:
        return []
    rows = session.execute(
        select(ScanRecord, Venue.name)
        .join(Venue, Venue.id == ScanRecord.venue_id)
        .where(ScanRecord.ecard_id.in_(list(ecard_ids)))
        .order_by(ScanRecord.at.desc())
        .limit(max(1, min(limit, 500)))
    ).all()
    return [ScanEntry(scan.at, name, scan.category, scan.result, scan.reason) for scan, name in rows]


def suspended_handles_document(handles: list[str], *, now: float) -> dict[str, Any]:
    """docs/formats/essc1.md §6; ``count`` is an extra member the format allows."""
    return {"handles": handles, "generated_at": int(now), "count": len(handles)}
