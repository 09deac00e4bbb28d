"""This deployment's place in the federation, read once from ``Settings`` (``federation_*``): its roles,
superiors, trust anchors (entity id and the keys it trusts them by), and the trust marks it holds.

Bad federation settings stop the start-up with a ``ConfigError`` naming the setting, as every setting does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from idp.config import ConfigError, Settings
from idp.federation.chain import TrustAnchor
from idp.federation.model import MAX_ENTITY_ID_LENGTH
from idp.federation.transport import Destinations
from sdk.keys import InvalidKeyError, KeySet

LEAF: Final = "leaf"
INTERMEDIATE: Final = "intermediate"
ANCHOR: Final = "anchor"
ROLES: Final = (LEAF, INTERMEDIATE, ANCHOR)


def is_entity_id(value: Any, *, allow_http: bool) -> bool:
    """An entity identifier (§1.2): an https URL with a host, no query or fragment (http too in dev/test)."""
    if not isinstance(value, str) or not value or len(value) > MAX_ENTITY_ID_LENGTH:
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError on a port that is not a number
    except ValueError:
        return False
    schemes = ("https", "http") if allow_http else ("https",)
    plain = not (parts.query or parts.fragment or "@" in parts.netloc or value.endswith("?"))
    return parts.scheme in schemes and bool(parts.hostname) and plain and value.isprintable()


@dataclass(frozen=True)
class FederationConfig:
    entity_id: str
    roles: frozenset[str]
    organization_name: str
    authority_hints: tuple[str, ...]
    anchors: Mapping[str, TrustAnchor]
    trust_marks: tuple[str, ...]  # JWTs, as the trust mark issuer gave them
    statement_ttl: int
    chain_cache_seconds: int
    trust_mark_ttl: int
    loa_high_trust_mark: str
    allow_http: bool  # development and test only: entity ids and fetches over plain HTTP
    # Card-issuer region codes this deployment is home for (empty: its card-issuer CAs' regions, read when
    # the metadata is built), other regions it deals with beside its anchors' subordinates, and how often
    # the directory of those regions is rebuilt.
    region_codes: tuple[str, ...] = ()
    peers: tuple[str, ...] = ()
    directory_refresh_seconds: int = 300
    # Where outgoing calls may go (idp.federation.transport): https and public addresses in production,
    # and the hosts the operator lets resolve to private ones.
    private_hosts: frozenset[str] = frozenset()

    @property
    def destinations(self) -> Destinations:
        production = not self.allow_http
        return Destinations(
            require_https=production, check_addresses=production, private_hosts=self.private_hosts
        )

    @property
    def is_authority(self) -> bool:
        """An anchor or intermediate: it registers subordinates and serves ``fetch`` and ``list``."""
        return bool(self.roles & {INTERMEDIATE, ANCHOR})

    @property
    def is_anchor(self) -> bool:
        return ANCHOR in self.roles

    @classmethod
    def from_settings(cls, settings: Settings) -> FederationConfig:
        allow_http = not settings.is_production
        roles = frozenset(part.strip() for part in settings.federation_roles.split(",") if part.strip())
        if not roles or not roles <= set(ROLES):
            raise ConfigError(f"ONECARD_FEDERATION_ROLES must name some of {', '.join(ROLES)}")
        hints = tuple(h.strip() for h in settings.federation_authority_hints.split(",") if h.strip())
        for hint in hints:
            if not is_entity_id(hint, allow_http=allow_http) or hint == settings.issuer:
                raise ConfigError(
                    f"ONECARD_FEDERATION_AUTHORITY_HINTS: {hint!r} is not a superior's entity id"
                )
        codes = tuple(c.strip() for c in settings.federation_region_codes.split(",") if c.strip())
        if not all(len(code) == 6 and code.isascii() and code.isdigit() for code in codes):
            raise ConfigError("ONECARD_FEDERATION_REGION_CODES must be 6-digit region codes (GB/T 2260)")
        peers = tuple(p.strip() for p in settings.federation_peers.split(",") if p.strip())
        for peer in peers:
            if not is_entity_id(peer, allow_http=allow_http) or peer == settings.issuer:
                raise ConfigError(f"ONECARD_FEDERATION_PEERS: {peer!r} is not another region's entity id")
        for name in (
            "federation_statement_ttl",
            "federation_chain_cache_seconds",
            "federation_trust_mark_ttl",
            "federation_directory_refresh_seconds",
        ):
            if getattr(settings, name) <= 0:
                raise ConfigError(f"ONECARD_{name.upper()} must be positive")
        private_hosts = frozenset(
            h.strip().lower() for h in settings.federation_private_hosts.split(",") if h.strip()
        )
        if not all(h.isascii() and h.replace(".", "").replace("-", "").isalnum() for h in private_hosts):
            raise ConfigError("ONECARD_FEDERATION_PRIVATE_HOSTS must be host names (ASCII, comma-separated)")
        if not settings.federation_loa_high_trust_mark.strip():
            raise ConfigError("ONECARD_FEDERATION_LOA_HIGH_TRUST_MARK must name a trust mark type")
        return cls(
            entity_id=settings.issuer,
            roles=roles,
            organization_name=settings.federation_organization_name,
            authority_hints=hints,
            anchors=_read_anchors(settings.federation_trust_anchors_file, allow_http=allow_http),
            trust_marks=_read_trust_marks(settings.federation_trust_marks_file),
            statement_ttl=settings.federation_statement_ttl,
            chain_cache_seconds=settings.federation_chain_cache_seconds,
            trust_mark_ttl=settings.federation_trust_mark_ttl,
            loa_high_trust_mark=settings.federation_loa_high_trust_mark.strip(),
            allow_http=allow_http,
            region_codes=codes,
            peers=peers,
            directory_refresh_seconds=settings.federation_directory_refresh_seconds,
            private_hosts=private_hosts,
        )


def _read_json(path: str, setting: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        # The file's name and the kind of failure only: never what was read.
        raise ConfigError(f"{setting} {path}: not a readable JSON file ({type(exc).__name__})") from exc


def _read_anchors(path: str, *, allow_http: bool) -> dict[str, TrustAnchor]:
    if not path:
        return {}
    setting = "ONECARD_FEDERATION_TRUST_ANCHORS_FILE"
    document = _read_json(path, setting)
    if not isinstance(document, dict):
        raise ConfigError(f"{setting} {path}: must be an object of entity id to JWKS")
    anchors: dict[str, TrustAnchor] = {}
    for entity_id, jwks in document.items():
        if not is_entity_id(entity_id, allow_http=allow_http):
            raise ConfigError(f"{setting} {path}: {entity_id!r} is not an entity id")
        try:
            keys = KeySet.from_jwks(jwks)
        except InvalidKeyError as exc:
            raise ConfigError(f"{setting} {path}: the JWKS of {entity_id}: {exc}") from exc
        if not len(keys):
            raise ConfigError(f"{setting} {path}: the JWKS of {entity_id} holds no usable key")
        anchors[entity_id] = TrustAnchor(entity_id, keys)
    return anchors


def _read_trust_marks(path: str) -> tuple[str, ...]:
    if not path:
        return ()
    setting = "ONECARD_FEDERATION_TRUST_MARKS_FILE"
    document = _read_json(path, setting)
    if not isinstance(document, list) or not all(isinstance(mark, str) and mark for mark in document):
        raise ConfigError(f"{setting} {path}: must be an array of trust mark JWTs")
    return tuple(document)
