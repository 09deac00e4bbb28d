"""Server-provided DPoP nonces (RFC 9449 §8, §9), the same at every node.

Time is cut into windows of ``lifetime`` seconds; the first node that needs the nonce of a window creates it
in the shared store with an atomic ``add`` (whoever loses the race reads the winner's), so every node hands
out and accepts the same value. A nonce is accepted in its own window and the next one: a client that was
just given one never meets an immediate refusal at the edge of a window, and no proof outlives
two windows, whatever the client's clock says.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Final

from idp.stores.base import EphemeralStore

NONCE_NAMESPACE: Final = "dpop_nonce"
DEFAULT_LIFETIME: Final = 300
MAX_NONCE_LENGTH: Final = 64


class DpopNonces:
    def __init__(self, store: EphemeralStore, *, lifetime: int = DEFAULT_LIFETIME) -> None:
        if lifetime <= 0:
            raise ValueError("lifetime must be positive")
        self.store = store
        self.lifetime = lifetime

    def _window(self, now: float) -> int:
        return int(now // self.lifetime)

    def current(self, *, now: float) -> str:
        """The nonce of ``now``'s window (created if no node has yet)."""
        key = str(self._window(now))
        ttl = 2 * self.lifetime + 1  # it is accepted until the end of the next window
        self.store.add(NONCE_NAMESPACE, key, secrets.token_urlsafe(24).encode(), ttl=ttl, now=now)
        value = self.store.get(NONCE_NAMESPACE, key, now=now)
        assert value is not None  # just added, by this node or another, and alive for two windows
        return value.decode()

    def is_current(self, nonce: object, *, now: float) -> bool:
        """``nonce`` is this window's or the last one's."""
        if not isinstance(nonce, str) or not nonce or len(nonce) > MAX_NONCE_LENGTH or not nonce.isascii():
            return False  # ours are short base64url; a lone surrogate would not survive .encode()
        window = self._window(now)
        for key in (str(window), str(window - 1)):
            known = self.store.get(NONCE_NAMESPACE, key, now=now)
            if known is not None and hmac.compare_digest(known, nonce.encode()):
                return True
        return False
