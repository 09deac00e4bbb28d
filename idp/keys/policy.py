"""The waiting periods of every key set, derived from the lifetimes that make them necessary (DESIGN.md §7).

    pending ──activate──▶ active ──(successor activated)──▶ retired ──(retention over)──▶ removed
       └───────────────────────── revoke (any published state) ──────────────────────▶ revoked

The waiting periods are not settings of their own: they derive from the lifetimes that make them necessary
(STYLE.md "Time is a parameter"; issue #6 item 4), so they cannot disagree with what they protect.

- *Pre-publication* (pending → active): a relying party or gate that fetched the JWKS / QR key set just
  before the key appeared keeps that copy for ``jwks_max_age`` (the ``Cache-Control: max-age`` both
  documents carry), and another node keeps its key ring for ``KEY_RING_CACHE_SECONDS``. A key that signs
  only after both have passed is never an unknown ``kid`` to anyone. Symmetric sets (data, cookie, index)
  are never published outside, so for them only the key ring counts.
- *Retention* (retired → removed): until everything the key signed has expired — the longest token it
  signs (access / id / logout token; a QR code's lifetime plus the gates' clock skew; a session for cookie
  keys; a card certificate for a card-issuer CA) — plus the key ring (a node that has not yet seen the
  activation still signs with the old key) plus the published document's cache lifetime. A data key is
  removed only when no stored row is encrypted under it any more, whatever the time.
- *Rotation*: with an interval configured for the set, ``tick`` creates the next pending key when the
  active one is ``interval - prepublication`` old, so the successor can take over exactly on schedule.

The operations that enforce these periods are in ``idp.keys.lifecycle``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from idp.config import Settings
from idp.keys.errors import KeyStateError
from idp.keys.service import (
    COOKIE_KEYS,
    DATA_KEYS,
    FEDERATION_KEYS,
    FEDERATION_RP_KEYS,
    INDEX_KEYS,
    KEY_RING_CACHE_SECONDS,
    OIDC_ES256,
    OIDC_RS256,
    QR_SIGNING,
    spec_for,
)
from sdk.qr_token import DEFAULT_CLOCK_SKEW, DEFAULT_LIFETIME

DAY = 86_400
# idp.oauth.tokens.issue_logout_token: back-channel logout tokens live two minutes.
LOGOUT_TOKEN_LIFETIME = 120
CARD_CA_PREFIX = "card-ca-"
# idp.federation.rp: request objects and client assertions of cross-region login live five minutes at most.
RP_ASSERTION_LIFETIME = 300


@dataclass(frozen=True)
class KeySetPolicy:
    """How one key set moves through the lifecycle; every number derived from ``Settings``."""

    name: str
    published: bool  # in a document outside parties cache (JWKS, QR key set)
    prepublication: int  # seconds a pending key is published before it may sign
    retention: int  # seconds a retired key stays accepted before it may be removed
    rotation_interval: int  # seconds between automatic rotations; 0 = manual only
    rotatable: bool = True
    why: str = ""  # the derivation, for `onecard keys policy` and the runbook

    def rotation_due(self, activated_at: float) -> float | None:
        """When ``tick`` creates the successor of a key activated at ``activated_at``."""
        if not self.rotation_interval:
            return None
        return activated_at + max(self.rotation_interval - self.prepublication, 0)


def policy_for(
    settings: Settings, name: str, *, cache_seconds: float = KEY_RING_CACHE_SECONDS
) -> KeySetPolicy:
    ring = math.ceil(cache_seconds)
    outside = settings.jwks_max_age
    if name in (OIDC_RS256.name, OIDC_ES256.name):
        longest = max(settings.access_token_ttl, settings.id_token_ttl, LOGOUT_TOKEN_LIFETIME)
        return KeySetPolicy(
            name,
            True,
            outside + ring,
            longest + ring + outside,
            settings.key_rotation_oidc_days * DAY,
            why=f"pre-publication = jwks_max_age {outside} + key ring {ring}; retention = longest token "
            f"{longest} + key ring {ring} + jwks_max_age {outside}",
        )
    if name == QR_SIGNING.name:
        longest = DEFAULT_LIFETIME + DEFAULT_CLOCK_SKEW
        return KeySetPolicy(
            name,
            True,
            outside + ring,
            longest + ring + outside,
            settings.key_rotation_qr_days * DAY,
            why=f"pre-publication = QR key set max-age {outside} + key ring {ring}; retention = QR code "
            f"{DEFAULT_LIFETIME} + gate clock skew {DEFAULT_CLOCK_SKEW} + key ring {ring} "
            f"+ max-age {outside}",
        )
    if name == DATA_KEYS.name:
        return KeySetPolicy(
            name,
            False,
            ring,
            ring,
            settings.key_rotation_data_days * DAY,
            why=f"pre-publication = key ring {ring}; removal once no row is encrypted under the key "
            f"(after `onecard keys reencrypt`) and the key ring {ring} has passed",
        )
    if name == COOKIE_KEYS.name:
        longest = max(settings.sso_session_ttl, settings.login_transaction_ttl)
        return KeySetPolicy(
            name,
            False,
            ring,
            longest + ring,
            settings.key_rotation_cookie_days * DAY,
            why=f"pre-publication = key ring {ring}; retention = session {longest} + key ring {ring}",
        )
    if name == FEDERATION_KEYS.name:
        # Copies of the federation keys outside: superiors' subordinate statements list them (registered by
        # their staff, docs/federation.md), and resolvers cache chains until the earliest statement expires.
        statement = settings.federation_statement_ttl
        longest = max(statement, settings.federation_trust_mark_ttl)
        return KeySetPolicy(
            name,
            True,
            statement + ring,
            longest + ring,
            settings.key_rotation_federation_days * DAY,
            why=f"pre-publication = statement lifetime {statement} (a superior's statement or a resolver's "
            f"cached chain without the new key) + key ring {ring}; retention = longest of statement "
            f"{statement} and trust mark {settings.federation_trust_mark_ttl} + key ring {ring}",
        )
    if name == FEDERATION_RP_KEYS.name:
        # Copies outside: every OP that registered this deployment automatically keeps the jwks of its
        # openid_relying_party metadata until the trust chain expires (statement lifetime), and the key
        # ring; what the key signs (request objects, client assertions) lives five minutes at most.
        statement = settings.federation_statement_ttl
        longest = max(statement, RP_ASSERTION_LIFETIME)
        return KeySetPolicy(
            name,
            True,
            statement + ring,
            longest + ring,
            settings.key_rotation_federation_days * DAY,
            why=f"pre-publication = statement lifetime {statement} (an OP's automatic registration cached "
            f"until the chain expires) + key ring {ring}; retention = longest of statement {statement} and "
            f"request object / client assertion {RP_ASSERTION_LIFETIME} + key ring {ring}",
        )
    if name == INDEX_KEYS.name:
        return KeySetPolicy(
            name,
            False,
            ring,
            ring,
            0,
            rotatable=False,
            why="the blind-index key cannot rotate by re-encryption: every index would change",
        )
    if name.startswith(CARD_CA_PREFIX):
        longest = settings.card_certificate_days * DAY
        return KeySetPolicy(
            name,
            False,
            ring,
            longest + ring,
            settings.key_rotation_card_ca_days * DAY,
            why=f"pre-publication = key ring {ring} (the trust list); retention = card certificate "
            f"{longest} + key ring {ring}",
        )
    spec_for(name)  # raises KeyNotFoundError for an unknown set
    raise KeyStateError(f"no lifecycle policy for key set {name}")
