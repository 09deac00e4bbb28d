"""The Redis implementation of ``EphemeralStore`` (DESIGN.md §2), for nodes that scale out.

Each entry is one Redis string ``<expires_at>|<value>`` under ``<prefix>:<namespace>:<key>``. The expiry
travels inside the value because the caller's ``now`` decides what is alive (see ``idp.stores.base``); the
Redis TTL, set a margin beyond it, only collects the garbage. One-time operations are single commands or
single Lua scripts, which Redis runs without interleaving anything else: ``take`` is ``GETDEL``, ``add``,
``incr`` and ``touch`` are scripts that read the expiry and write in one step.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import redis

# Longest expected disagreement between a caller's clock and the Redis server's, plus slack: Redis may drop
# an entry only after the caller's clock has declared it dead.
DEFAULT_EXPIRY_MARGIN = 60.0

# KEYS[1] = entry; ARGV = now, packed entry, backstop TTL in ms. Returns 1 if stored.
_ADD_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if current then
  local sep = string.find(current, '|', 1, true)
  local expires = sep and tonumber(string.sub(current, 1, sep - 1))
  if expires and expires > tonumber(ARGV[1]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""

# KEYS[1] = counter; ARGV = now, expiry of a new window, backstop TTL in ms. Returns the count. The stored
# expiry text is copied, not recomputed, because Lua 5.1 prints numbers with 14 digits and would round it.
_INCR_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if current then
  local sep = string.find(current, '|', 1, true)
  local expires = sep and tonumber(string.sub(current, 1, sep - 1))
  if expires and expires > tonumber(ARGV[1]) then
    local count = (tonumber(string.sub(current, sep + 1)) or 0) + 1
    redis.call('SET', KEYS[1], string.sub(current, 1, sep) .. string.format('%d', count), 'KEEPTTL')
    return count
  end
end
redis.call('SET', KEYS[1], ARGV[2] .. '|1', 'PX', ARGV[3])
return 1
"""


# The start of every script that changes a live entry in place: it finds the entry's expiry prefix, and
# leaves a missing or dead entry alone, so no such change ever brings back what a take removed.
_IF_LIVE = """
local current = redis.call('GET', KEYS[1])
if not current then
  return 0
end
local sep = string.find(current, '|', 1, true)
local expires = sep and tonumber(string.sub(current, 1, sep - 1))
if not expires or expires <= tonumber(ARGV[1]) then
  return 0
end
"""

# KEYS[1] = entry; ARGV = now, new expiry (repr), backstop TTL in ms. Returns 1 if the entry was alive
# and now expires then; the value after the separator is copied as it is.
_TOUCH_SCRIPT = (
    _IF_LIVE
    + """
redis.call('SET', KEYS[1], ARGV[2] .. string.sub(current, sep), 'PX', ARGV[3])
return 1
"""
)

# KEYS[1] = entry; ARGV = now, new value. Returns 1 if the entry was alive and now holds the new value,
# with its expiry prefix and its Redis TTL kept.
_REPLACE_SCRIPT = (
    _IF_LIVE
    + """
redis.call('SET', KEYS[1], string.sub(current, 1, sep) .. ARGV[2], 'KEEPTTL')
return 1
"""
)


def _pack(value: bytes, expires_at: float) -> bytes:
    # repr() round-trips a float exactly, and Lua's tonumber reads it back.
    return repr(expires_at).encode() + b"|" + value


def _unpack(raw: Any, now: float) -> bytes | None:
    """The value of a stored entry if it is alive at ``now``; None if absent, dead or not ours."""
    entry = _unpack_entry(raw, now)
    return None if entry is None else entry[0]


def _unpack_entry(raw: Any, now: float) -> tuple[bytes, float] | None:
    """The value and expiry of a stored entry if it is alive at ``now``; None if absent, dead or not ours."""
    if not isinstance(raw, bytes):
        return None
    head, sep, value = raw.partition(b"|")
    if not sep:
        return None
    try:
        expires_at = float(head)
    except ValueError:
        return None
    return (value, expires_at) if now < expires_at else None


class RedisStore:
    """``EphemeralStore`` on a Redis server shared by every node.

    ``prefix`` separates deployments (and test runs) sharing one Redis; the client must return bytes
    (``decode_responses`` off), since values are arbitrary bytes.
    """

    backend: ClassVar[str] = "redis"  # the store metrics' label (idp.stores.timed)

    def __init__(
        self, client: redis.Redis, prefix: str, *, expiry_margin: float = DEFAULT_EXPIRY_MARGIN
    ) -> None:
        if not prefix:
            raise ValueError("RedisStore needs a non-empty key prefix")
        if client.get_connection_kwargs().get("decode_responses"):
            raise ValueError("RedisStore needs a client with decode_responses=False")
        if expiry_margin < 0:
            raise ValueError("expiry_margin must not be negative")
        self.client = client
        self.prefix = prefix
        self._margin = expiry_margin
        self._add = client.register_script(_ADD_SCRIPT)
        self._incr = client.register_script(_INCR_SCRIPT)
        self._touch = client.register_script(_TOUCH_SCRIPT)
        self._replace = client.register_script(_REPLACE_SCRIPT)

    def redis_key(self, namespace: str, key: str) -> bytes:
        # The namespace may not contain the separator, or ("a:b", "c") and ("a", "b:c") would collide; escape
        # it (and the escape character) so every (namespace, key) pair maps to one Redis key. Keys may come
        # from outside and carry lone surrogates (JSON allows them), which strict UTF-8 would refuse.
        escaped = namespace.replace("%", "%25").replace(":", "%3A")
        return f"{self.prefix}:{escaped}:{key}".encode("utf-8", "surrogatepass")

    def _backstop_ms(self, ttl: float) -> int:
        return int((math.ceil(max(ttl, 0.0)) + self._margin) * 1000) or 1

    def put(self, namespace: str, key: str, value: bytes, *, ttl: float, now: float) -> None:
        self.client.set(self.redis_key(namespace, key), _pack(value, now + ttl), px=self._backstop_ms(ttl))

    def add(self, namespace: str, key: str, value: bytes, *, ttl: float, now: float) -> bool:
        stored = self._add(
            keys=[self.redis_key(namespace, key)],
            args=[repr(now), _pack(value, now + ttl), self._backstop_ms(ttl)],
        )
        return bool(stored)

    def get(self, namespace: str, key: str, *, now: float) -> bytes | None:
        return _unpack(self.client.get(self.redis_key(namespace, key)), now)

    def get_with_expiry(self, namespace: str, key: str, *, now: float) -> tuple[bytes, float] | None:
        return _unpack_entry(self.client.get(self.redis_key(namespace, key)), now)

    def touch(self, namespace: str, key: str, *, ttl: float, now: float) -> bool:
        touched = self._touch(
            keys=[self.redis_key(namespace, key)], args=[repr(now), repr(now + ttl), self._backstop_ms(ttl)]
        )
        return bool(touched)

    def replace(self, namespace: str, key: str, value: bytes, *, now: float) -> bool:
        replaced = self._replace(keys=[self.redis_key(namespace, key)], args=[repr(now), value])
        return bool(replaced)

    def take(self, namespace: str, key: str, *, now: float) -> bytes | None:
        # GETDEL hands the entry to exactly one caller; a dead one is removed too and reported as absent.
        return _unpack(self.client.getdel(self.redis_key(namespace, key)), now)

    def delete(self, namespace: str, key: str) -> None:
        self.client.delete(self.redis_key(namespace, key))

    def incr(self, namespace: str, key: str, *, window: float, now: float) -> int:
        count = self._incr(
            keys=[self.redis_key(namespace, key)],
            args=[repr(now), repr(now + window), self._backstop_ms(window)],
        )
        return int(count)

    def purge_expired(self, *, now: float) -> int:
        # Redis drops entries by their TTL; one that is dead by the caller's clock but not yet by Redis's is
        # invisible to every operation here, so scanning for it would buy nothing.
        return 0
