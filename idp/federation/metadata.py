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
from idp.keys.service import FEDERATION_RP_KEYS
from idp.services import services
from sdk.keys import KeySet

FEDERATION_SUSPENDED_HANDLES_PATH = "/federation/suspended-handles"
# Cross-region login (idp.federation.login_views): where other regions' OneCards send citizens back to this
# one, and where they tell it of a home session's end.
FEDERATED_LOGIN_CALLBACK_PATH = "/federation/login/callback"
FEDERATED_BACKCHANNEL_LOGOUT_PATH = "/federation/backchannel-logout"
FEDERATED_LOGOUT_DONE_PATH = "/federation/logout/done"
FEDERATED_LOGIN_SCOPE = "openid profile realname"


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


def relying_party_metadata(
    config: FederationConfig, *, now: float, keys: KeySet | None = None
) -> dict[str, Any] | None:
    """This deployment as a relying party of other regions (cross-region login, docs/federation.md
    "Cross-region login"); None: it is not one (a bare trust anchor or intermediate without region codes).
    ``keys``: the federation-rp key set; by default the running application's, as it stands at ``now``."""
    if config.roles & {"anchor", "intermediate"} and not config.region_codes:
        return None
    if keys is None:
        keys = services().keyring.key_set(FEDERATION_RP_KEYS.name, now=now)
    base = config.entity_id
    return {
        "client_registration_types": ["automatic"],
        "client_name": config.organization_name,
        "redirect_uris": [base + FEDERATED_LOGIN_CALLBACK_PATH],
        "jwks": KeySet.of(key.public_only() for key in keys).to_jwks(),
        "token_endpoint_auth_method": "private_key_jwt",
        "token_endpoint_auth_signing_alg": FEDERATION_RP_KEYS.alg,
        "request_object_signing_alg": FEDERATION_RP_KEYS.alg,
        "id_token_signed_response_alg": FEDERATION_RP_KEYS.alg,
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "scope": FEDERATED_LOGIN_SCOPE,
        "subject_type": "pairwise",
        "backchannel_logout_uri": base + FEDERATED_BACKCHANNEL_LOGOUT_PATH,
        "backchannel_logout_session_required": True,
        "post_logout_redirect_uris": [base + FEDERATED_LOGOUT_DONE_PATH],
    }
