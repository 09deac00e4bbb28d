"""Benchmark: ``EphemeralStore`` add and take throughput per backend (DESIGN.md §10).

Runs a fixed number of operations on each backend it can reach — SQL on a temporary SQLite file, SQL on a
temporary PostgreSQL database, Redis under a temporary key prefix — first on one thread, then spread over
several threads (as several request workers would be), and prints operations per second. Everything it
creates is removed at the end.

    .venv/bin/python bench/bench_stores.py [--ops 5000] [--threads 8]

PostgreSQL: ``ONECARD_BENCH_DATABASE_URL`` (an admin URL; default the local server's ``postgres``
database). Redis: ``ONECARD_BENCH_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
from psycopg import sql

from idp.db import Base, Database
from idp.stores.base import EphemeralStore
from idp.stores.redis_store import RedisStore
from idp.stores.sql import SqlStore

NOW = 1_700_000_000.0
VALUE = secrets.token_bytes(64)  # about the size of a serialised challenge or code record


@contextlib.contextmanager
def sqlite_store() -> Iterator[EphemeralStore]:
    with tempfile.TemporaryDirectory() as tmp:
        database = Database(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}")
        Base.metadata.create_all(database.engine)
        try:
            yield SqlStore(database)
        finally:
            database.dispose()


@contextlib.contextmanager
def postgres_store() -> Iterator[EphemeralStore]:
    admin_url = os.environ.get("ONECARD_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    admin_url = admin_url.replace("postgresql+psycopg://", "postgresql://", 1)
    name = f"onecard_bench_{secrets.token_hex(6)}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    database = Database(urlunsplit(urlsplit(admin_url)._replace(path="/" + name)))
    try:
        Base.metadata.create_all(database.engine)
        yield SqlStore(database)
    finally:
        database.dispose()
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextlib.contextmanager
def redis_store() -> Iterator[EphemeralStore]:
    url = os.environ.get("ONECARD_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    client = redis.Redis.from_url(url, socket_connect_timeout=3, max_connections=64)
    client.ping()
    prefix = f"onecard-bench-{secrets.token_hex(6)}"
    try:
        yield RedisStore(client, prefix)
    finally:
        keys = list(client.scan_iter(match=prefix + ":*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
        client.close()


BACKENDS: dict[str, Callable[[], contextlib.AbstractContextManager[EphemeralStore]]] = {
    "sql-sqlite": sqlite_store,
    "sql-postgres": postgres_store,
    "redis": redis_store,
}


def timed(ops: int, threads: int, op: Callable[[int], object]) -> float:
    """Run ``op(0) … op(ops-1)`` over ``threads`` threads; operations per second."""
    start = time.perf_counter()
    if threads == 1:
        for i in range(ops):
            op(i)
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            # Chunks keep the executor's own bookkeeping out of the figure.
            chunks = [range(t, ops, threads) for t in range(threads)]
            list(pool.map(lambda chunk: [op(i) for i in chunk], chunks))
    return ops / (time.perf_counter() - start)


def bench(store: EphemeralStore, ops: int, threads: int, run: str) -> dict[str, float]:
    ns = f"bench-{run}"
    # add: each a fresh one-time marker (a QR cti); take: consume each (a challenge or code).
    add = timed(ops, threads, lambda i: store.add(ns, f"k{i}", VALUE, ttl=60, now=NOW))
    take = timed(ops, threads, lambda i: store.take(ns, f"k{i}", now=NOW + 1))
    return {"add/s": add, "take/s": take}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--ops", type=int, default=5000, help="operations per measurement")
    parser.add_argument("--threads", type=int, default=8, help="threads for the concurrent run")
    args = parser.parse_args(argv)

    print(f"{args.ops} operations per measurement, 64-byte values, Python {sys.version.split()[0]}")
    print(f"{'backend':<14}{'threads':>8}{'add/s':>12}{'take/s':>12}")
    for name, open_store in BACKENDS.items():
        try:
            with open_store() as store:
                for threads in (1, args.threads):
                    figures = bench(store, args.ops, threads, run=f"t{threads}")
                    print(f"{name:<14}{threads:>8}{figures['add/s']:>12,.0f}{figures['take/s']:>12,.0f}")
        except (psycopg.OperationalError, redis.ConnectionError) as exc:
            print(f"{name:<14}  unavailable: {exc}".splitlines()[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
