"""Online verification of a presented e-card code (ESSC1, docs/formats/essc1.md §3), one path for every
API that takes one — the gate API (wallet.scans) and the real-name API (idp.realname): the server's own QR
key set, the issuers a caller accepts (by default every region this server issues for), the stated clock
skew, and one-time use across nodes per purpose (a code used at a gate may still prove identity once to a
real-name check, and the other way round, but never twice for one purpose).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Final

from idp.keys.service import QR_SIGNING, KeyRing
from idp.stores.base import EphemeralStore
from sdk.qr_token import DEFAULT_CLOCK_SKEW, VerifiedQrToken, verify_qr_token

SERVER_CLOCK_SKEW: Final = DEFAULT_CLOCK_SKEW  # 30 s, stated in docs/venues.md


class _EveryRegion(Collection[str]):
    """Codes of any region this server issues for (its own key set is the real check)."""

    def __contains__(self, value: object) -> bool:
        return isinstance(value, str)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


EVERY_REGION: Final = _EveryRegion()


def verify_presented_code(
    text: str,
    *,
    keyring: KeyRing,
    now: float,
    expected_issuers: Collection[str] = EVERY_REGION,
    clock_skew: int = SERVER_CLOCK_SKEW,
) -> VerifiedQrToken:
    """Signature, issuer and lifetime; raises ``QrTokenError`` with its reason."""
    return verify_qr_token(
        text,
        keys=keyring.key_set(QR_SIGNING.name, now=now),
        expected_issuers=expected_issuers,
        now=now,
        clock_skew=clock_skew,
    )


def use_once(
    store: EphemeralStore,
    purpose: str,
    token: VerifiedQrToken,
    *,
    now: float,
    clock_skew: int = SERVER_CLOCK_SKEW,
) -> bool:
    """Mark the code used for ``purpose`` (one atomic add, any node); False if it was used already. The mark
    is kept until the code would be refused as expired anyway."""
    keep = max(1.0, token.expires_at + clock_skew - now)
    return store.add(purpose, token.cti, b"1", ttl=keep, now=now)
