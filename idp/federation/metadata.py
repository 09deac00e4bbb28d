"""The metadata this deployment publishes in its entity configuration (§3, §5), beyond the federation's own.

- ``openid_provider``: the discovery document (``idp.oauth.discovery``) and OneCard's region parameters
  (``idp.federation.regions``): the card-issuer region codes it is home for, its QR key set, and the
  suspended-handles list other regions' gates sync through the federation.
- ``openid_relying_party``: what it is as a client of other regions' OneCards for cross-region login
  (automatic registration, §12.1) — ``relying_party_metadata``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from idp.cards.issuance import CA_KEY_SET_PREFIX, list_issuer_cas
from idp.federation.config import FederationConfig
from idp.federation.regions import FEDERATION_SUSPENDED_HANDLES_ENDPOINT, QR_JWKS_URI, REGION_CODES
from idp.keys import QR_KEYS_PATH

FEDERATION_SUSPENDED_HANDLES_PATH = "/federation/suspended-handles"


def home_region_codes(session: Session, config: FederationConfig) -> list[str]:
    """The configured region codes, else the regions of this deployment's card-issuer CAs."""
    if config.region_codes:
        return list(config.region_codes)
    regions = {record.key_set.removeprefix(CA_KEY_SET_PREFIX) for record in list_issuer_cas(session)}
    return sorted(regions)


def provider_extras(session: Session, config: FederationConfig) -> dict[str, Any]:
    base = config.entity_id
    extras: dict[str, Any] = {
        QR_JWKS_URI: base + QR_KEYS_PATH,
        FEDERATION_SUSPENDED_HANDLES_ENDPOINT: base + FEDERATION_SUSPENDED_HANDLES_PATH,
    }
    codes = home_region_codes(session, config)
    if codes:
        extras[REGION_CODES] = codes
    return extras


def relying_party_metadata(config: FederationConfig, *, now: float) -> dict[str, Any] | None:
    """This deployment as a relying party of other regions (cross-region login); None: it is not one."""
    return None
