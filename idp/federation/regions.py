"""The other regions this deployment deals with, as the federation vouches for them (DESIGN.md §13).

A **peer region** is another OneCard deployment reached through a valid trust chain to one of this
deployment's trust anchors: its entity id, name, the card-issuer region codes it is home for, and its
``openid_provider`` metadata *after* the chain's metadata policies. Cross-region login finds a citizen's
home region here (by the region code of their card, or a login hint), and the gates' sync takes each
region's QR key set and suspended list from the endpoints named here.

Who the peers are: every subordinate the configured anchors list (``federation_list_endpoint``, §8.2) and
the configured ``federation_peers``, this deployment left out. Each is resolved afresh at every rebuild
(``directory_refresh_seconds``): a region the anchor removed, whose statements expired or whose metadata
breaks the policy is not in the next directory, and so is trusted for login and at gates no longer.
A region that cannot be resolved is left out and logged; it never fails the directory.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from idp.federation.chain import ChainResolver, TrustChain
from idp.federation.config import FederationConfig, is_entity_id
from idp.federation.errors import FederationError, InvalidTrustChainError
from idp.federation.statements import FEDERATION_ENTITY, OPENID_PROVIDER
from sdk.gate import home_region_for
from sdk.qr_token import is_region_code

# The metadata parameters OneCard adds to its openid_provider metadata (OpenID Federation §5 allows
# parameters beyond the registered ones; these are prefixed so they cannot clash with a future standard).
REGION_CODES: Final = "onecard_region_codes"
QR_JWKS_URI: Final = "onecard_qr_jwks_uri"
FEDERATION_SUSPENDED_HANDLES_ENDPOINT: Final = "onecard_federation_suspended_handles_endpoint"
MAX_LISTED: Final = 1000  # subordinates taken from one anchor's list, at most
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeerRegion:
    entity_id: str
    anchor: str
    name: str
    region_codes: tuple[str, ...]
    provider: Mapping[str, Any]  # openid_provider metadata, the chain's policies applied
    trust_mark_types: frozenset[str]
    expires_at: int

    def endpoint(self, name: str) -> str | None:
        value = self.provider.get(name)
        return value if isinstance(value, str) and value else None

    @classmethod
    def from_chain(cls, chain: TrustChain) -> PeerRegion | None:
        """None when the entity is not an identity provider with region codes (e.g. a bare intermediate)."""
        provider = chain.metadata.get(OPENID_PROVIDER)
        if not isinstance(provider, Mapping):
            return None
        codes = provider.get(REGION_CODES)
        if not isinstance(codes, list) or not codes or not all(is_region_code(code) for code in codes):
            return None
        entity = chain.metadata.get(FEDERATION_ENTITY)
        name = entity.get("organization_name") if isinstance(entity, Mapping) else None
        return cls(
            entity_id=chain.subject,
            anchor=chain.anchor,
            name=name if isinstance(name, str) and name else chain.subject,
            region_codes=tuple(codes),
            provider=provider,
            trust_mark_types=frozenset(mark.trust_mark_type for mark in chain.trust_marks),
            expires_at=chain.expires_at,
        )


@dataclass(frozen=True)
class _Snapshot:
    built_at: float
    regions: tuple[PeerRegion, ...]


class RegionDirectory:
    """The peer regions as of the last rebuild; rebuilt when older than ``directory_refresh_seconds`` or
    past the earliest chain expiry, by whichever request first finds it stale (one at a time)."""

    def __init__(self, config: FederationConfig, resolver: ChainResolver) -> None:
        self._config = config
        self._resolver = resolver  # its ``fetch`` fetches the anchors' lists too
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None

    def invalidate(self) -> None:
        with self._lock:
            self._snapshot = None

    def regions(self, *, now: float) -> tuple[PeerRegion, ...]:
        snapshot = self._snapshot
        if snapshot is not None and self._fresh(snapshot, now):
            return snapshot.regions
        with self._lock:
            snapshot = self._snapshot
            if snapshot is None or not self._fresh(snapshot, now):
                snapshot = _Snapshot(now, tuple(self._build(now)))
                self._snapshot = snapshot
        return snapshot.regions

    def get(self, entity_id: str, *, now: float) -> PeerRegion | None:
        return next((r for r in self.regions(now=now) if r.entity_id == entity_id), None)

    def for_region_code(self, code: str, *, now: float) -> PeerRegion | None:
        """The home region of a card-issuer region code: an exact code, else the region whose code is the
        same prefecture (4 digits) or province (2 digits) — a city platform is home for its districts
        (``sdk.gate.home_region_for``, the rule the gates apply too)."""
        if not is_region_code(code):
            return None
        return home_region_for(code, self.regions(now=now))

    def _fresh(self, snapshot: _Snapshot, now: float) -> bool:
        age = now - snapshot.built_at
        soonest = min((r.expires_at for r in snapshot.regions), default=None)
        expired = soonest is not None and now >= soonest
        return 0 <= age < self._config.directory_refresh_seconds and not expired

    def _candidates(self, now: float) -> list[str]:
        found: list[str] = []
        for anchor_id in self._resolver.anchors(now):
            try:
                found.extend(self._listed(anchor_id, now))
            except (FederationError, ValueError) as exc:
                log.warning("the subordinates of %s could not be listed: %s", anchor_id, type(exc).__name__)
        found.extend(self._config.peers)
        own, allow_http = self._config.entity_id, self._config.allow_http
        return list(dict.fromkeys(e for e in found if e != own and is_entity_id(e, allow_http=allow_http)))

    def _listed(self, anchor_id: str, now: float) -> list[str]:
        configuration = self._resolver.resolve(anchor_id, anchor_id, now=now).statements[0]
        endpoint = configuration.federation_endpoint("federation_list_endpoint")
        if endpoint is None:
            return []
        listed = json.loads(self._resolver.fetch(endpoint))
        if not isinstance(listed, list):
            raise ValueError("the list endpoint did not answer a JSON array")
        return [entry for entry in listed[:MAX_LISTED] if isinstance(entry, str)]

    def _build(self, now: float) -> list[PeerRegion]:
        regions: list[PeerRegion] = []
        for entity_id in self._candidates(now):
            try:
                chain = self._resolver.resolve_any(entity_id, now=now, fresh=True)
            except (InvalidTrustChainError, FederationError) as exc:
                log.info("region %s left out of the directory: %s", entity_id, type(exc).__name__)
                continue
            region = PeerRegion.from_chain(chain)
            if region is not None:
                regions.append(region)
        return regions
