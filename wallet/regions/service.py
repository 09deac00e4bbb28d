"""Gates across regions (issue 12 item 3; docs/federation.md "Gates across regions", docs/formats/essc1.md
§6a): both sides of syncing other regions' QR key sets and suspended lists.

- **Home side** (the region a card belongs to): ``verify_federation_assertion`` checks the bearer JWT
  another deployment presents at ``/federation/suspended-handles`` — signed by its federation key as its
  superior vouches for it (``resolver.resolve_any(caller).subject_keys``), ``iss`` = ``sub`` = its entity
  id, ``aud`` = that URL, a short ``exp``, a ``jti`` used once (the shared store).
- **Visiting side**: ``sync_regions`` takes each peer region of the federation's directory, fetches its QR
  key set and suspended list (conditionally, ``If-None-Match``, where the peer sent an ``ETag``) through
  ``FederationHttp``, and keeps them in ``wallet_synced_regions``; a region the directory no longer lists
  loses its row. ``load_trusted_regions`` reads the rows for the online verify API and ``regions_document``
  renders them for the gates (``GET /api/v1/gate/regions``).

Functions take a ``Session`` and ``now`` and never commit.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import jwt
from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.db import utc_from_timestamp
from idp.federation.chain import ChainResolver
from idp.federation.context import FederationContext
from idp.federation.errors import FederationError
from idp.federation.regions import FEDERATION_SUSPENDED_HANDLES_ENDPOINT, QR_JWKS_URI, PeerRegion
from idp.federation.transport import FederationHttp, HttpAnswer
from idp.stores.base import EphemeralStore
from sdk.errors import OneCardError
from sdk.gate import TrustedRegion, TrustedRegions, parse_suspended_handles
from sdk.keys import Key, KeySet
from wallet.regions.errors import FederationCallerError, RegionSyncError
from wallet.regions.model import SyncedRegion

log = logging.getLogger(__name__)

ASSERTION_LIFETIME: Final = 60
MAX_ASSERTION_LIFETIME: Final = 300  # "short exp": an assertion living longer is refused
ASSERTION_SKEW: Final = 30
ASSERTION_JTI_NAMESPACE: Final = "federation_assertion_jti"
MAX_JTI: Final = 128
MAX_ETAG: Final = 200  # wallet_synced_regions.*_etag
_QR_ALG: Final = "EdDSA"


# --- the home side: who is asking ---------------------------------------------------------------------


def issue_federation_assertion(key: Key, *, entity_id: str, audience: str, now: float) -> str:
    """A one-time bearer JWT naming this deployment to ``audience``, signed with its federation key."""
    issued_at = int(now)
    claims = {
        "iss": entity_id,
        "sub": entity_id,
        "aud": audience,
        "iat": issued_at,
        "exp": issued_at + ASSERTION_LIFETIME,
        "jti": secrets.token_urlsafe(16),
    }
    return jwt.encode(claims, key.private_key, algorithm=key.alg, headers={"kid": key.kid, "typ": "JWT"})  # type: ignore[arg-type]


def verify_federation_assertion(
    token: str,
    *,
    resolver: ChainResolver,
    expected_audience: str,
    store: EphemeralStore,
    now: float,
    is_peer: Callable[[str], bool],
) -> str:
    """The entity id of the deployment the assertion names, once; else ``FederationCallerError``.

    ``is_peer``: asked first, with the unverified caller — the view passes "is it in the region directory",
    so an unauthenticated request cannot make this server resolve (fetch) whatever entity it names."""
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise FederationCallerError(f"unreadable assertion: {type(exc).__name__}") from None
    caller, kid = unverified.get("iss"), header.get("kid")
    if not isinstance(caller, str) or unverified.get("sub") != caller or not isinstance(kid, str):
        raise FederationCallerError("the assertion's iss and sub must name the caller, with a kid")
    if not is_peer(caller):
        raise FederationCallerError("the caller is not a region of the federation's directory")
    try:
        chain = resolver.resolve_any(caller, now=now)
    except (FederationError, ValueError) as exc:
        raise FederationCallerError(
            f"the federation does not vouch for the caller: {type(exc).__name__}"
        ) from None
    key = chain.subject_keys.find(kid)
    if key is None or key.public_key is None:
        raise FederationCallerError("the assertion's key is not one the caller's superior vouches for")
    try:
        # pyjwt checks exp against its own clock; time is a parameter here, so it is checked below.
        claims = jwt.decode(
            token,
            key.public_key,  # type: ignore[arg-type]
            algorithms=[key.alg],
            audience=expected_audience,
            issuer=caller,
            options={
                "require": ["iss", "sub", "aud", "iat", "exp", "jti"],
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.PyJWTError as exc:
        raise FederationCallerError(f"assertion refused: {type(exc).__name__}") from None
    issued_at, expires_at, jti = claims["iat"], claims["exp"], claims["jti"]
    if not (type(issued_at) is int and type(expires_at) is int and isinstance(jti, str)):
        raise FederationCallerError("iat and exp must be integers, jti text")
    if not 0 < len(jti) <= MAX_JTI:
        raise FederationCallerError("jti length")
    if not issued_at < expires_at <= issued_at + MAX_ASSERTION_LIFETIME:
        raise FederationCallerError(f"an assertion lives at most {MAX_ASSERTION_LIFETIME} s")
    if now >= expires_at + ASSERTION_SKEW or now < issued_at - ASSERTION_SKEW:
        raise FederationCallerError("assertion expired or not yet valid")
    # One use per assertion, across every node: a captured header cannot be replayed.
    if not store.add(
        ASSERTION_JTI_NAMESPACE, f"{caller} {jti}", b"1", ttl=expires_at + ASSERTION_SKEW - now, now=now
    ):
        raise FederationCallerError("assertion already used")
    return caller


# --- the visiting side: the sync --------------------------------------------------------------------------


@dataclass
class SyncReport:
    """What one sync did, by entity id."""

    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # entity id → why (no PII, no secrets)

    def to_json(self) -> dict[str, Any]:
        return {
            "changed": self.changed,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "failed": self.failed,
        }


@dataclass(frozen=True)
class _Fetched:
    """One document's answer: ``document`` is None for a 304 (the held copy is confirmed)."""

    document: Any
    etag: str | None


def _get(http: FederationHttp, url: str, *, etag: str | None, authorization: str | None = None) -> _Fetched:
    headers = {"Accept": "application/json"}
    if etag:
        headers["If-None-Match"] = etag
    if authorization:
        headers["Authorization"] = authorization
    try:
        answer: HttpAnswer = http("GET", url, headers=headers)
    except OneCardError as exc:
        raise RegionSyncError(f"{url}: unreachable ({type(exc).__name__})") from None
    if answer.status == 304 and etag:
        return _Fetched(None, _storable_etag(answer) or etag)
    if answer.status != 200:
        raise RegionSyncError(f"{url}: HTTP {answer.status}")
    try:
        document = json.loads(answer.body)
    except ValueError:
        raise RegionSyncError(f"{url}: not JSON") from None
    return _Fetched(document, _storable_etag(answer))


def _storable_etag(answer: HttpAnswer) -> str | None:
    """The answer's ETag if it fits its column; a longer one is dropped (the next request is unconditional)
    rather than failing the flush, and with it every other region's sync."""
    etag = answer.headers.get("etag")
    return etag if etag and len(etag) <= MAX_ETAG else None


def _qr_key_set(document: Any) -> dict[str, Any]:
    try:
        keys = KeySet.from_jwks(document)
    except (OneCardError, ValueError, TypeError, AttributeError) as exc:
        raise RegionSyncError(f"unusable QR key set: {type(exc).__name__}") from None
    # Keys are published before they sign: an empty set is a publishing accident, not a rotation.
    if not any(key.alg == _QR_ALG for key in keys):
        raise RegionSyncError("the QR key set holds no EdDSA key")
    return {"keys": [key.public_jwk() for key in keys if key.alg == _QR_ALG]}


def _sync_one(
    session: Session,
    peer: PeerRegion,
    row: SyncedRegion | None,
    *,
    federation: FederationContext,
    http: FederationHttp,
    now: float,
) -> bool:
    """Fetch both documents of ``peer`` and store them; True if anything changed. Nothing is written
    unless both answered usably (a new region needs both; a known one keeps its last good copies)."""
    jwks_url = peer.endpoint(QR_JWKS_URI)
    list_url = peer.endpoint(FEDERATION_SUSPENDED_HANDLES_ENDPOINT)
    if jwks_url is None or list_url is None:
        raise RegionSyncError("the region publishes no QR key set or suspended-handles endpoint")
    config = federation.config
    assertion = issue_federation_assertion(
        federation.signing_keys(now=now).signing_key(),
        entity_id=config.entity_id,
        audience=list_url,
        now=now,
    )
    jwks = _get(http, jwks_url, etag=row.qr_jwks_etag if row else None)
    listed = _get(
        http, list_url, etag=row.suspended_etag if row else None, authorization=f"Bearer {assertion}"
    )
    qr_jwks = _qr_key_set(jwks.document) if jwks.document is not None else None
    handles = None
    if listed.document is not None:
        try:
            handles = parse_suspended_handles(listed.document)
        except ValueError as exc:
            raise RegionSyncError(f"unusable suspended list: {exc}") from None
        if row is not None and handles.generated_at < row.suspended_generated_at:
            # A stale mirror or a replayed answer must not lift a suspension.
            raise RegionSyncError("the suspended list is older than the one held")
    at = utc_from_timestamp(now)
    if row is None:
        if qr_jwks is None or handles is None:  # a 304 to a request without If-None-Match: broken peer
            raise RegionSyncError("no documents to start from")
        row = SyncedRegion(entity_id=peer.entity_id)
        session.add(row)
    changed = row.name != peer.name or list(row.region_codes or []) != list(peer.region_codes)
    row.name = peer.name[:200]
    row.region_codes = list(peer.region_codes)
    if qr_jwks is not None:
        changed = changed or row.qr_jwks != qr_jwks
        row.qr_jwks = qr_jwks
    row.qr_jwks_etag = jwks.etag
    row.qr_jwks_synced_at = at
    if handles is not None:
        new_handles = sorted(handles.handles)
        changed = changed or row.suspended_handles != new_handles
        row.suspended_handles = new_handles
        row.suspended_generated_at = handles.generated_at
    row.suspended_etag = listed.etag
    row.suspended_synced_at = at
    row.updated_at = at
    return changed


def sync_regions(
    session: Session,
    federation: FederationContext,
    *,
    now: float,
    fresh_directory: bool = False,
) -> SyncReport:
    """Sync every peer region the directory lists; delete the rows of regions it no longer lists.

    ``fresh_directory``: rebuild the directory first (an operator's explicit sync) instead of using the
    copy the federation keeps for ``directory_refresh_seconds``.
    """
    if fresh_directory:
        federation.directory.invalidate()
    peers = federation.directory.regions(now=now)
    rows = {row.entity_id: row for row in session.scalars(select(SyncedRegion))}
    report = SyncReport()
    for peer in peers:
        try:
            # Every refusal comes before the first write: a failed region leaves its row as it was.
            changed = _sync_one(
                session, peer, rows.get(peer.entity_id), federation=federation, http=federation.http, now=now
            )
        except RegionSyncError as exc:
            log.warning("region %s not synced: %s", peer.entity_id, exc)
            report.failed[peer.entity_id] = str(exc)[:300]
            continue
        (report.changed if changed else report.unchanged).append(peer.entity_id)
    listed = {peer.entity_id for peer in peers}
    for entity_id, row in rows.items():
        if entity_id not in listed:
            # The anchor removed it (or its chain broke): its codes are refused from now on.
            session.delete(row)
            report.removed.append(entity_id)
    session.flush()
    return report


def oldest_sync(session: Session) -> float | None:
    """When the least recently synced region was last confirmed (POSIX s); None if there is no row."""
    rows = session.execute(select(SyncedRegion.qr_jwks_synced_at, SyncedRegion.suspended_synced_at)).all()
    if not rows:
        return None
    return min(min(a.timestamp(), b.timestamp()) for a, b in rows)


# --- what gates and the verify API read ---------------------------------------------------------------


def _trusted(row: SyncedRegion) -> TrustedRegion:
    return TrustedRegion(
        entity_id=row.entity_id,
        name=row.name,
        region_codes=tuple(row.region_codes),
        keys=KeySet.from_jwks(row.qr_jwks),
        suspended=frozenset(row.suspended_handles),
        suspended_updated_at=int(row.suspended_synced_at.timestamp()),
    )


def load_trusted_regions(session: Session, *, now: float) -> TrustedRegions:
    """The synced regions as the gate SDK's type (keys parsed, the list's age from its last sync)."""
    rows = session.scalars(select(SyncedRegion).order_by(SyncedRegion.entity_id))
    return TrustedRegions(tuple(_trusted(row) for row in rows), int(now))


def regions_document(
    session: Session, *, home_region_codes: Sequence[str], now: float
) -> tuple[dict[str, Any], bytes]:
    """``GET /api/v1/gate/regions`` (docs/formats/essc1.md §6a) and the bytes its ETag covers: everything but
    ``generated_at``, so an unchanged set of regions answers 304 however often it is asked.
    ``home_region_codes``: this deployment's own, so a gate set up for one district of them still lets no
    trusted region vouch for another."""
    rows = session.scalars(select(SyncedRegion).order_by(SyncedRegion.entity_id)).all()
    regions: list[Mapping[str, Any]] = [
        {
            "entity_id": row.entity_id,
            "name": row.name,
            "region_codes": list(row.region_codes),
            "qr_jwks": row.qr_jwks,
            "qr_jwks_updated_at": int(row.qr_jwks_synced_at.timestamp()),
            "suspended_handles": {
                "handles": list(row.suspended_handles),
                "updated_at": int(row.suspended_synced_at.timestamp()),
            },
        }
        for row in rows
    ]
    home = list(home_region_codes)
    etag_of = json.dumps([home, regions], sort_keys=True, separators=(",", ":")).encode()
    return {"home_region_codes": home, "regions": regions, "generated_at": int(now)}, etag_of
