"""What card login keeps per process: the issuer trust list, the card certificates verified against it,
and the rate limits, built from the settings and the policy (tests tighten the policy with
``create_card_login_context``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from idp.cardlogin.challenge import CardLoginPolicy, FailureLimits
from idp.cards.chain import CardCertificateVerifier
from idp.cards.issuance import IssuerTrustList
from idp.config import Settings
from idp.db import Database
from idp.keys.service import KeyRing
from idp.ratelimit import RateLimiter
from idp.stores.base import EphemeralStore


@dataclass
class CardLoginContext:
    trust_list: IssuerTrustList
    certificates: CardCertificateVerifier
    limits: FailureLimits
    challenge_limiter: RateLimiter
    precheck_limiter: RateLimiter
    policy: CardLoginPolicy = field(default_factory=CardLoginPolicy)


def create_card_login_context(
    settings: Settings,
    database: Database,
    store: EphemeralStore,
    keyring: KeyRing,
    policy: CardLoginPolicy | None = None,
) -> CardLoginContext:
    policy = policy or CardLoginPolicy()
    trust_list = IssuerTrustList(database, keyring)
    return CardLoginContext(
        trust_list=trust_list,
        certificates=CardCertificateVerifier(trust_list),
        limits=FailureLimits(store, policy),
        challenge_limiter=RateLimiter(
            store, "card_challenge_issue", policy.challenges_per_transaction, settings.login_transaction_ttl
        ),
        precheck_limiter=RateLimiter(store, "card_precheck_ip", policy.prechecks_per_ip, policy.window),
        policy=policy,
    )
