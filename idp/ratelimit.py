"""Fixed-window rate limiting on top of an ``EphemeralStore`` counter (DESIGN.md §8).

A ``RateLimiter`` counts attempts per key (a card, a client IP, a client id) in a window that opens at the
first attempt; once ``limit`` attempts are used, further ones are refused until the window closes. The count
lives in the shared store, so the limit holds across all nodes. Time is a parameter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from idp.observability.metrics import count_rate_limit_refusal
from idp.stores.base import EphemeralStore
from sdk.errors import RateLimitedError


@dataclass(frozen=True)
class RateLimitDecision:
    allowed: bool
    count: int  # attempts in the current window, this one included
    remaining: int  # attempts still allowed in this window
    retry_after: int  # whole seconds until the window closes; 0 when allowed


class RateLimiter:
    """At most ``limit`` attempts per key in any window of ``window`` seconds that opens at the first one."""

    def __init__(self, store: EphemeralStore, namespace: str, limit: int, window: float) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if window <= 0:
            raise ValueError("window must be positive")
        self.store = store
        self.namespace = namespace
        self.limit = limit
        self.window = window
        # The store's counter does not say when its window opened; the limiter notes that itself, once per
        # window, so a refusal can tell the caller how long to wait.
        self._opened_namespace = f"{namespace}.opened"

    def check(self, key: str, now: float) -> RateLimitDecision:
        """Count one attempt and say whether it is allowed; never raises for being over the limit."""
        count = self.store.incr(self.namespace, key, window=self.window, now=now)
        if count == 1:
            self.store.put(self._opened_namespace, key, repr(now).encode(), ttl=self.window, now=now)
        if count <= self.limit:
            return RateLimitDecision(allowed=True, count=count, remaining=self.limit - count, retry_after=0)
        count_rate_limit_refusal(self.namespace)  # the limit's name, fixed in code: never the key
        return RateLimitDecision(
            allowed=False, count=count, remaining=0, retry_after=self._retry_after(key, now)
        )

    def hit(self, key: str, now: float) -> None:
        """Count one attempt; raise ``RateLimitedError`` if it is over the limit."""
        decision = self.check(key, now)
        if not decision.allowed:
            raise RateLimitedError(
                f"rate limit {self.namespace}: {decision.count} attempts, limit {self.limit} per "
                f"{self.window:g}s; retry after {decision.retry_after}s",
                retry_after=decision.retry_after,
            )

    def reset(self, key: str) -> None:
        """Forget the attempts for ``key`` (e.g. after a successful login)."""
        self.store.delete(self.namespace, key)
        self.store.delete(self._opened_namespace, key)

    def _retry_after(self, key: str, now: float) -> int:
        raw = self.store.get(self._opened_namespace, key, now=now)
        try:
            closes_at = float(raw) + self.window if raw is not None else now + self.window
        except ValueError:
            closes_at = now + self.window
        # At least a second: a client told "0" would retry at once and be refused again.
        return max(1, math.ceil(closes_at - now))
