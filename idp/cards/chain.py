"""Card certificate verification with the chain check kept per certificate (issue 16, DESIGN.md §4 step 5).

A card's certificate is the same at every login, so parsing it and checking its issuer's signature
(``sdk.card_auth.verify_card_certificate``) need not be repeated: the result is kept under the SHA-256 of
the certificate's bytes *and* the trust list's version, so a CA added to or removed from the trust list
(a new version) makes every kept result unreachable at once. What changes with time is checked at every
use: the certificate's and its issuer's validity windows (``VerifiedCardCertificate.valid_at``); a kept
result outside them is verified afresh, which raises the precise reason. The card's register status and its
holder's are not certificate facts: ``check_card_usable`` reads them at every login.

Failures are never kept: an untrusted certificate is verified again next time (it may be trusted by then).
"""

from __future__ import annotations

import hashlib
import threading
from typing import Final

from idp.cards.issuance import IssuerTrustList
from sdk.card_auth import VerifiedCardCertificate, verify_card_certificate

# One entry is a parsed certificate and its issuer (a few KiB); a city's logins in a few minutes fit.
DEFAULT_MAX_ENTRIES: Final = 50_000


class CardCertificateVerifier:
    """``verify_card_certificate`` against this node's trust list, its results kept per certificate."""

    def __init__(self, trust_list: IssuerTrustList, *, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.trust_list = trust_list
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._verified: dict[tuple[bytes, bytes], VerifiedCardCertificate] = {}
        self.hits = 0  # for tests and the bench: how often the chain check was skipped
        self.misses = 0

    def verify(self, certificate_der: bytes, *, now: float) -> VerifiedCardCertificate:
        """The verified certificate, or ``InvalidCardAuthError`` as ``verify_card_certificate`` raises it."""
        trusted = self.trust_list.snapshot(now=now)
        key = (hashlib.sha256(certificate_der).digest(), trusted.version)
        kept = self._verified.get(key)
        if kept is not None and kept.valid_at(now):
            self.hits += 1
            return kept
        self.misses += 1
        verified = verify_card_certificate(certificate_der, trusted_issuers=trusted.certificates, now=now)
        with self._lock:
            if len(self._verified) >= self._max_entries:
                # Oldest first (dicts keep insertion order): a card not seen for a while is verified again.
                del self._verified[next(iter(self._verified))]
            self._verified[key] = verified
        return verified

    def clear(self) -> None:
        with self._lock:
            self._verified.clear()
