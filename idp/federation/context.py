"""The federation's part of the running application: its configuration and the chain resolver, built by
the composition root (``idp.app``) and reached through ``Services.federation``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from idp.config import Settings
from idp.federation.chain import ChainResolver, Fetcher, TrustAnchor, http_fetcher
from idp.federation.config import FederationConfig
from idp.federation.regions import RegionDirectory
from idp.federation.transport import FederationHttp, requests_http
from idp.keys.service import FEDERATION_KEYS, KeyRing
from idp.ratelimit import RateLimiter
from idp.stores.base import EphemeralStore
from sdk.keys import KeySet

# /federation/resolve makes this server fetch the statements ``sub`` leads to (bounded: https, no redirects,
# 5 s, 64 KiB each): a caller gets that many resolutions a minute from one address, across all nodes.
RESOLVES_PER_MINUTE = 30


@dataclass
class FederationContext:
    config: FederationConfig
    resolver: ChainResolver
    keyring: KeyRing
    resolve_limiter: RateLimiter
    directory: RegionDirectory  # the other regions, as the federation vouches for them
    http: FederationHttp  # calls to other deployments beyond statements (token, userinfo, gate sync)

    def signing_keys(self, *, now: float) -> KeySet:
        """The federation key set: the active key (able to sign) first, pending and retired ones after."""
        return self.keyring.key_set(FEDERATION_KEYS.name, now=now)


def create_federation_context(
    settings: Settings, keyring: KeyRing, store: EphemeralStore, *, fetcher: Fetcher | None = None
) -> FederationContext:
    """``fetcher``: how statements are fetched (tests pass their test clients'); HTTP by default, https
    only in production."""
    config = FederationConfig.from_settings(settings)

    def anchors(now: float) -> Mapping[str, TrustAnchor]:
        found = dict(config.anchors)
        if config.is_anchor and config.entity_id not in found:
            # A trust anchor trusts itself by its own key set, as it stands in its key lifecycle now.
            keys = keyring.key_set(FEDERATION_KEYS.name, now=now)
            found[config.entity_id] = TrustAnchor(config.entity_id, KeySet.of(k.public_only() for k in keys))
        return found

    fetch = fetcher or http_fetcher(config.destinations)
    resolver = ChainResolver(fetch, anchors, cache_seconds=config.chain_cache_seconds)
    limiter = RateLimiter(store, "federation_resolve_ip", RESOLVES_PER_MINUTE, 60.0)
    directory = RegionDirectory(config, resolver)
    http = requests_http(config.destinations)
    return FederationContext(config, resolver, keyring, limiter, directory, http)
