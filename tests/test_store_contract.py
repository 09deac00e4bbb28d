"""The ``EphemeralStore`` contract (idp/stores/base.py), run against every implementation.

Each test gets a fresh store from the ``store`` / ``store_backend`` fixtures (SQL on SQLite, SQL on
PostgreSQL, Redis). The concurrency tests race real threads, and for the server backends two stores with
their own connection pools standing in for two nodes; "exactly one wins" must hold every round.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest
import redis

from idp.config import Settings
from idp.db import Database
from idp.ratelimit import RateLimiter
from idp.stores.base import EphemeralStore, dump_json, load_json
from idp.stores.factory import create_store
from idp.stores.redis_store import RedisStore
from idp.stores.sql import SqlStore
from sdk.errors import RateLimitedError
from tests.fixtures.services import StoreBackend

NOW = 1_700_000_000.0
NS = "challenges"

T = TypeVar("T")


# --- put / get / expiry ------------------------------------------------------------------------------


def test_get_of_a_missing_key_is_none(store: EphemeralStore) -> None:
    assert store.get(NS, "missing", now=NOW) is None


def test_put_then_get_until_expiry_by_now(store: EphemeralStore) -> None:
    store.put(NS, "k", b"v", ttl=10, now=NOW)
    assert store.get(NS, "k", now=NOW) == b"v"
    assert store.get(NS, "k", now=NOW + 9.999) == b"v"
    # Alive while now < expires_at: at the instant of expiry it is gone.
    assert store.get(NS, "k", now=NOW + 10) is None
    assert store.get(NS, "k", now=NOW + 3600) is None


def test_put_replaces_value_and_expiry(store: EphemeralStore) -> None:
    store.put(NS, "k", b"first", ttl=10, now=NOW)
    store.put(NS, "k", b"second", ttl=100, now=NOW + 5)
    assert store.get(NS, "k", now=NOW + 50) == b"second"
    assert store.get(NS, "k", now=NOW + 105) is None


def test_put_revives_an_expired_key(store: EphemeralStore) -> None:
    store.put(NS, "k", b"old", ttl=1, now=NOW)
    store.put(NS, "k", b"new", ttl=1, now=NOW + 10)
    assert store.get(NS, "k", now=NOW + 10.5) == b"new"


@pytest.mark.parametrize(
    "value",
    [b"", b"\x00\xff|\x00|", bytes(range(256)), "电子社保卡".encode(), b"x" * 65536, b"1700000000.0|spoof"],
    ids=["empty", "nul-and-separator", "all-bytes", "utf8", "64k", "looks-like-header"],
)
def test_values_are_arbitrary_bytes(store: EphemeralStore, value: bytes) -> None:
    store.put(NS, "k", value, ttl=10, now=NOW)
    assert store.get(NS, "k", now=NOW) == value
    assert store.take(NS, "k", now=NOW) == value


def test_keys_may_hold_any_text(store: EphemeralStore) -> None:
    keys = ["a:b", "a|b", "*", "[x]", "卡:💳", "%3A", "a" * 200]
    for i, key in enumerate(keys):
        store.put(NS, key, str(i).encode(), ttl=10, now=NOW)
    assert [store.get(NS, key, now=NOW) for key in keys] == [str(i).encode() for i in range(len(keys))]


def test_long_and_odd_keys_are_kept_apart(store: EphemeralStore) -> None:
    # Keys can come from outside (a jti): too long for a column, a NUL, a lone surrogate from JSON.
    keys = ["a" * 255, "a" * 256, "a" * 10_000, "a" * 10_001, "nul\x00key", "nul", "lone\ud800", "lone"]
    for i, key in enumerate(keys):
        assert store.add(NS, key, str(i).encode(), ttl=10, now=NOW) is True
    assert [store.get(NS, key, now=NOW) for key in keys] == [str(i).encode() for i in range(len(keys))]
    assert store.take(NS, "a" * 10_000, now=NOW) == b"2"
    assert store.take(NS, "a" * 10_000, now=NOW) is None
    store.delete(NS, "lone\ud800")
    assert store.get(NS, "lone\ud800", now=NOW) is None
    assert store.incr("rl", "x" * 1000, window=60, now=NOW) == 1
    assert store.incr("rl", "x" * 1000, window=60, now=NOW) == 2


def test_json_helpers_round_trip(store: EphemeralStore) -> None:
    store.put(NS, "tx", dump_json({"nonce": "abc", "n": 1}), ttl=10, now=NOW)
    assert load_json(store.get(NS, "tx", now=NOW)) == {"n": 1, "nonce": "abc"}
    assert load_json(store.get(NS, "other", now=NOW)) is None


# --- namespaces ---------------------------------------------------------------------------------------


def test_namespaces_are_separate(store: EphemeralStore) -> None:
    store.put("codes", "k", b"code", ttl=10, now=NOW)
    store.put("challenges", "k", b"challenge", ttl=10, now=NOW)
    assert store.get("codes", "k", now=NOW) == b"code"
    assert store.take("challenges", "k", now=NOW) == b"challenge"
    assert store.get("codes", "k", now=NOW) == b"code"
    assert store.get("other", "k", now=NOW) is None
    assert store.add("other", "k", b"x", ttl=10, now=NOW) is True
    store.delete("codes", "k")
    assert store.get("other", "k", now=NOW) == b"x"


def test_separator_in_namespace_does_not_collide(store: EphemeralStore) -> None:
    store.put("a:b", "c", b"one", ttl=10, now=NOW)
    store.put("a", "b:c", b"two", ttl=10, now=NOW)
    assert store.get("a:b", "c", now=NOW) == b"one"
    assert store.get("a", "b:c", now=NOW) == b"two"


# --- add ----------------------------------------------------------------------------------------------


def test_add_stores_only_if_absent(store: EphemeralStore) -> None:
    assert store.add(NS, "cti", b"first", ttl=60, now=NOW) is True
    assert store.add(NS, "cti", b"second", ttl=60, now=NOW + 30) is False
    assert store.get(NS, "cti", now=NOW + 30) == b"first"
    # The losing add did not extend the entry either.
    assert store.get(NS, "cti", now=NOW + 60) is None


def test_add_refuses_over_a_put_entry(store: EphemeralStore) -> None:
    store.put(NS, "k", b"put", ttl=60, now=NOW)
    assert store.add(NS, "k", b"add", ttl=60, now=NOW) is False
    assert store.get(NS, "k", now=NOW) == b"put"


def test_add_succeeds_after_expiry_with_a_fresh_lifetime(store: EphemeralStore) -> None:
    assert store.add(NS, "cti", b"first", ttl=60, now=NOW) is True
    assert store.add(NS, "cti", b"second", ttl=60, now=NOW + 60) is True
    assert store.get(NS, "cti", now=NOW + 119) == b"second"
    assert store.get(NS, "cti", now=NOW + 120) is None
    assert store.add(NS, "cti", b"third", ttl=60, now=NOW + 100) is False


def test_add_succeeds_after_take_and_delete(store: EphemeralStore) -> None:
    assert store.add(NS, "k", b"1", ttl=60, now=NOW)
    assert store.take(NS, "k", now=NOW) == b"1"
    assert store.add(NS, "k", b"2", ttl=60, now=NOW)
    store.delete(NS, "k")
    assert store.add(NS, "k", b"3", ttl=60, now=NOW)
    assert store.get(NS, "k", now=NOW) == b"3"


# --- take ---------------------------------------------------------------------------------------------


def test_take_is_one_time(store: EphemeralStore) -> None:
    store.put(NS, "code", b"v", ttl=60, now=NOW)
    assert store.take(NS, "code", now=NOW + 1) == b"v"
    assert store.take(NS, "code", now=NOW + 1) is None
    assert store.get(NS, "code", now=NOW + 1) is None


def test_take_of_a_missing_key_is_none(store: EphemeralStore) -> None:
    assert store.take(NS, "missing", now=NOW) is None


def test_take_of_an_expired_entry_is_none(store: EphemeralStore) -> None:
    store.put(NS, "code", b"v", ttl=60, now=NOW)
    assert store.take(NS, "code", now=NOW + 60) is None
    assert store.take(NS, "code", now=NOW + 60) is None
    # Whatever a backend did with the dead entry, a later add may use the key.
    assert store.add(NS, "code", b"w", ttl=60, now=NOW + 61) is True


# --- get_with_expiry / touch ---------------------------------------------------------------------------


def test_get_with_expiry_returns_the_value_and_its_deadline(store: EphemeralStore) -> None:
    store.put(NS, "k", b"v", ttl=60, now=NOW)
    assert store.get_with_expiry(NS, "k", now=NOW + 1) == (b"v", NOW + 60)
    assert store.get_with_expiry(NS, "k", now=NOW + 60) is None
    assert store.get_with_expiry(NS, "missing", now=NOW) is None


def test_touch_changes_only_the_expiry_of_a_live_entry(store: EphemeralStore) -> None:
    store.put(NS, "k", b"v", ttl=60, now=NOW)
    assert store.touch(NS, "k", ttl=300, now=NOW + 50) is True
    assert store.get_with_expiry(NS, "k", now=NOW + 100) == (b"v", NOW + 350)
    assert store.get(NS, "k", now=NOW + 349) == b"v"
    assert store.get(NS, "k", now=NOW + 350) is None


def test_touch_never_brings_back_a_taken_deleted_or_expired_entry(store: EphemeralStore) -> None:
    assert store.touch(NS, "never", ttl=60, now=NOW) is False
    store.put(NS, "taken", b"v", ttl=60, now=NOW)
    assert store.take(NS, "taken", now=NOW) == b"v"
    assert store.touch(NS, "taken", ttl=60, now=NOW) is False
    store.put(NS, "deleted", b"v", ttl=60, now=NOW)
    store.delete(NS, "deleted")
    assert store.touch(NS, "deleted", ttl=60, now=NOW) is False
    store.put(NS, "expired", b"v", ttl=60, now=NOW)
    assert store.touch(NS, "expired", ttl=60, now=NOW + 60) is False
    for key in ("never", "taken", "deleted", "expired"):
        assert store.get(NS, key, now=NOW + 61) is None, key
    # An add after any of these still finds the key free.
    assert store.add(NS, "taken", b"w", ttl=60, now=NOW + 1) is True


def test_touch_keeps_a_value_written_since_it_was_read(store: EphemeralStore) -> None:
    store.put(NS, "k", b"old", ttl=60, now=NOW)
    store.put(NS, "k", b"new", ttl=60, now=NOW + 1)
    assert store.touch(NS, "k", ttl=120, now=NOW + 2) is True
    assert store.get(NS, "k", now=NOW + 100) == b"new"


def test_replace_changes_only_the_value_of_a_live_entry(store: EphemeralStore) -> None:
    store.put(NS, "k", b"old", ttl=60, now=NOW)
    assert store.replace(NS, "k", b"new", now=NOW + 10) is True
    assert store.get_with_expiry(NS, "k", now=NOW + 20) == (b"new", NOW + 60)
    assert store.get(NS, "k", now=NOW + 60) is None


def test_replace_never_brings_back_a_taken_deleted_or_expired_entry(store: EphemeralStore) -> None:
    assert store.replace(NS, "never", b"x", now=NOW) is False
    store.put(NS, "taken", b"v", ttl=60, now=NOW)
    assert store.take(NS, "taken", now=NOW) == b"v"
    assert store.replace(NS, "taken", b"x", now=NOW) is False
    store.put(NS, "deleted", b"v", ttl=60, now=NOW)
    store.delete(NS, "deleted")
    assert store.replace(NS, "deleted", b"x", now=NOW) is False
    store.put(NS, "expired", b"v", ttl=60, now=NOW)
    assert store.replace(NS, "expired", b"x", now=NOW + 60) is False
    for key in ("never", "taken", "deleted"):
        assert store.get(NS, key, now=NOW + 1) is None, key
    assert store.get(NS, "expired", now=NOW + 61) is None


# --- delete -------------------------------------------------------------------------------------------


def test_delete(store: EphemeralStore) -> None:
    store.put(NS, "k", b"v", ttl=60, now=NOW)
    store.delete(NS, "k")
    assert store.get(NS, "k", now=NOW) is None
    assert store.take(NS, "k", now=NOW) is None
    store.delete(NS, "k")  # deleting what is not there is fine
    store.delete(NS, "never-existed")


# --- incr ---------------------------------------------------------------------------------------------


def test_incr_counts_within_a_window_that_starts_at_the_first_event(store: EphemeralStore) -> None:
    assert store.incr("rl", "ip", window=60, now=NOW) == 1
    assert store.incr("rl", "ip", window=60, now=NOW + 1) == 2
    assert store.incr("rl", "ip", window=60, now=NOW + 59.9) == 3
    # The window closes 60 s after its first event, however many events came later.
    assert store.incr("rl", "ip", window=60, now=NOW + 60) == 1
    assert store.incr("rl", "ip", window=60, now=NOW + 119.9) == 2
    assert store.incr("rl", "ip", window=60, now=NOW + 120) == 1


def test_incr_after_a_long_pause_restarts(store: EphemeralStore) -> None:
    assert store.incr("rl", "ip", window=10, now=NOW) == 1
    assert store.incr("rl", "ip", window=10, now=NOW + 10_000) == 1
    assert store.incr("rl", "ip", window=10, now=NOW + 10_001) == 2


def test_incr_keys_and_namespaces_count_separately(store: EphemeralStore) -> None:
    for _ in range(3):
        store.incr("rl", "a", window=60, now=NOW)
    assert store.incr("rl", "b", window=60, now=NOW) == 1
    assert store.incr("other", "a", window=60, now=NOW) == 1
    assert store.incr("rl", "a", window=60, now=NOW) == 4


def test_incr_after_delete_restarts(store: EphemeralStore) -> None:
    store.incr("rl", "a", window=60, now=NOW)
    store.incr("rl", "a", window=60, now=NOW)
    store.delete("rl", "a")
    assert store.incr("rl", "a", window=60, now=NOW) == 1


# --- purge_expired ------------------------------------------------------------------------------------


def test_purge_expired_drops_dead_entries_only(store_backend: StoreBackend) -> None:
    store = store_backend.store
    store.put(NS, "a", b"a", ttl=10, now=NOW)
    store.put(NS, "b", b"b", ttl=20, now=NOW)
    store.put("other", "c", b"c", ttl=100, now=NOW)
    store.incr("rl", "d", window=5, now=NOW)
    store.incr("rl", "e", window=500, now=NOW)
    purged = store.purge_expired(now=NOW + 30)
    assert purged == (0 if store_backend.expires_itself else 3)
    assert store.get(NS, "a", now=NOW + 30) is None
    assert store.get(NS, "b", now=NOW + 30) is None
    assert store.get("other", "c", now=NOW + 30) == b"c"
    assert store.incr("rl", "e", window=500, now=NOW + 30) == 2
    assert store.add(NS, "a", b"again", ttl=10, now=NOW + 30) is True
    assert store.purge_expired(now=NOW + 30) == 0


# --- concurrency --------------------------------------------------------------------------------------

THREADS = 16
ROUNDS = 8


def race(stores: list[EphemeralStore], call: Callable[[EphemeralStore], T]) -> list[T]:
    """Run ``call`` on THREADS threads at once, spread over ``stores`` (the "nodes"); return all results."""
    barrier = threading.Barrier(THREADS, timeout=30)

    def one(i: int) -> T:
        store = stores[i % len(stores)]
        barrier.wait()
        return call(store)

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(one, range(THREADS)))


def test_concurrent_take_has_exactly_one_winner(store_backend: StoreBackend) -> None:
    nodes = [store_backend.store, store_backend.peer()]
    for round_ in range(ROUNDS):
        key = f"code-{round_}"
        nodes[0].put(NS, key, b"secret", ttl=60, now=NOW)
        results = race(nodes, lambda s, key=key: s.take(NS, key, now=NOW + 1))  # type: ignore[misc]
        assert sorted(results, key=lambda r: r is None) == [b"secret"] + [None] * (THREADS - 1)


def test_concurrent_add_has_exactly_one_winner(store_backend: StoreBackend) -> None:
    nodes = [store_backend.store, store_backend.peer()]
    for round_ in range(ROUNDS):
        key = f"cti-{round_}"
        results = race(nodes, lambda s, key=key: s.add(NS, key, b"used", ttl=60, now=NOW))  # type: ignore[misc]
        assert results.count(True) == 1, results


def test_concurrent_add_over_an_expired_entry_has_exactly_one_winner(store_backend: StoreBackend) -> None:
    nodes = [store_backend.store, store_backend.peer()]
    # Every contender writes its own value, so the surviving value names the winner.
    contenders = itertools.count()
    lock = threading.Lock()

    def add(s: EphemeralStore, key: str) -> tuple[bool, bytes]:
        with lock:
            mine = str(next(contenders)).encode()
        return s.add(NS, key, mine, ttl=60, now=NOW + 5), mine

    for round_ in range(ROUNDS):
        key = f"cti-{round_}"
        nodes[0].put(NS, key, b"old", ttl=1, now=NOW)
        results = race(nodes, functools.partial(add, key=key))
        winners = [value for stored, value in results if stored]
        assert len(winners) == 1, results
        assert nodes[1].get(NS, key, now=NOW + 5) == winners[0]


def test_concurrent_incr_loses_no_count(store_backend: StoreBackend) -> None:
    nodes = [store_backend.store, store_backend.peer()]

    def five(s: EphemeralStore) -> list[int]:
        return [s.incr("rl", "k", window=60, now=NOW) for _ in range(5)]

    counts = [c for batch in race(nodes, five) for c in batch]
    assert sorted(counts) == list(range(1, THREADS * 5 + 1))


# --- rate limiter -------------------------------------------------------------------------------------


def test_rate_limiter_allows_limit_then_refuses_until_the_window_closes(store: EphemeralStore) -> None:
    limiter = RateLimiter(store, "pin", limit=3, window=60)
    for i in range(3):
        limiter.hit("card-1", NOW + i)
    refused = limiter.check("card-1", NOW + 3)
    assert (refused.allowed, refused.remaining, refused.retry_after) == (False, 0, 57)
    with pytest.raises(RateLimitedError) as excinfo:
        limiter.hit("card-1", NOW + 30.5)
    assert excinfo.value.error == "rate_limited"
    assert excinfo.value.status_code == 429
    # Refused attempts do not push the window out.
    allowed = limiter.check("card-1", NOW + 60)
    assert (allowed.allowed, allowed.count, allowed.remaining, allowed.retry_after) == (True, 1, 2, 0)


def test_rate_limiter_keys_are_independent_and_reset(store: EphemeralStore) -> None:
    limiter = RateLimiter(store, "pin", limit=1, window=60)
    limiter.hit("card-1", NOW)
    limiter.hit("card-2", NOW)
    RateLimiter(store, "login-ip", limit=1, window=60).hit("card-1", NOW)
    with pytest.raises(RateLimitedError):
        limiter.hit("card-1", NOW + 1)
    limiter.reset("card-1")
    limiter.hit("card-1", NOW + 2)


def test_rate_limiter_retry_after_is_at_least_one_second(store: EphemeralStore) -> None:
    limiter = RateLimiter(store, "pin", limit=1, window=10)
    limiter.hit("k", NOW)
    assert limiter.check("k", NOW + 9.99).retry_after == 1


@pytest.mark.parametrize(("limit", "window"), [(0, 60), (1, 0), (1, -1)])
def test_rate_limiter_rejects_nonsense_settings(limit: int, window: float) -> None:
    with pytest.raises(ValueError):
        RateLimiter(None, "x", limit=limit, window=window)  # type: ignore[arg-type]


# --- construction -------------------------------------------------------------------------------------


def test_factory_picks_sql_without_redis_url(sqlite_database: Database) -> None:
    assert isinstance(create_store(Settings(redis_url=""), sqlite_database), SqlStore)


def test_factory_picks_redis_with_redis_url(sqlite_database: Database) -> None:
    # Building the client does not connect, so this needs no Redis server.
    store = create_store(Settings(redis_url="redis://127.0.0.1:6379/0"), sqlite_database)
    assert isinstance(store, RedisStore)
    store.client.close()


def test_redis_store_refuses_a_decoding_client_and_an_empty_prefix() -> None:
    decoding = redis.Redis(decode_responses=True)
    with pytest.raises(ValueError):
        RedisStore(decoding, "p")
    with pytest.raises(ValueError):
        RedisStore(redis.Redis(), "")


def test_sql_store_table_is_on_the_shared_metadata() -> None:
    from idp.db import Base

    table = Base.metadata.tables["store_entries"]
    assert [c.name for c in table.primary_key.columns] == ["namespace", "key"]
