"""The short-lived state interface: login transactions, card challenges, authorization codes, QR-login
channels, WebAuthn challenges, one-time-use markers and rate-limit counters.

Nodes keep none of this themselves; every node reads and writes the same store, so a challenge issued by
node A is answered at node B and a code used at node A is a replay at node B.

Rules every implementation keeps (checked by ``tests/test_store_contract.py`` against all of them):
- ``now`` is a parameter; an entry is alive while ``now < expires_at`` where ``expires_at = now + ttl`` at
  write time. Backends may also expire entries on their own clock, but only later than that.
- ``take``, ``add`` and ``touch`` are atomic across nodes (a single conditional statement or script), never
  read-then-write: of two concurrent ``take`` calls for one key, exactly one gets the value, and a ``touch``
  never brings back an entry a ``take`` removed.
- Keys live in namespaces; the same key in two namespaces is two entries.
"""

from __future__ import annotations

import json
from typing import Any, Protocol


class EphemeralStore(Protocol):
    def put(self, namespace: str, key: str, value: bytes, *, ttl: float, now: float) -> None:
        """Store ``value``, replacing any live entry."""

    def add(self, namespace: str, key: str, value: bytes, *, ttl: float, now: float) -> bool:
        """Store ``value`` only if no live entry exists; True if stored. One-time-use markers use this."""

    def get(self, namespace: str, key: str, *, now: float) -> bytes | None:
        """The live value, or None."""

    def get_with_expiry(self, namespace: str, key: str, *, now: float) -> tuple[bytes, float] | None:
        """The live value and its ``expires_at``, or None."""

    def touch(self, namespace: str, key: str, *, ttl: float, now: float) -> bool:
        """Make a live entry expire ``ttl`` seconds from ``now``, leaving its value alone; False (and nothing
        stored) if there is no live entry."""

    def replace(self, namespace: str, key: str, value: bytes, *, now: float) -> bool:
        """Replace the value of a live entry, keeping its expiry; False (and nothing stored) if there is no
        live entry: an update never brings back what a take consumed."""

    def take(self, namespace: str, key: str, *, now: float) -> bytes | None:
        """Remove the entry and return its value if it was live: atomic one-time consumption."""

    def delete(self, namespace: str, key: str) -> None:
        """Remove the entry if present."""

    def incr(self, namespace: str, key: str, *, window: float, now: float) -> int:
        """Count one event in a fixed window that starts at the first event; returns the count so far."""

    def purge_expired(self, *, now: float) -> int:
        """Drop dead entries (a no-op where the backend expires them itself); returns how many."""


def dump_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def load_json(raw: bytes | None) -> Any:
    return None if raw is None else json.loads(raw)
