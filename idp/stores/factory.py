"""Choosing the short-lived state store for a deployment (DESIGN.md §2).

Redis when ``ONECARD_REDIS_URL`` is set (scale-out: every node shares it), otherwise the SQL store, which
needs no other service. On PostgreSQL the store shares the application database. On SQLite it gets a file of
its own: SQLite admits one writer at a time, and a request whose unit of work holds the main file's write
lock would otherwise wait on itself when it touches the store.
"""

from __future__ import annotations

from idp.config import Settings
from idp.db import Database
from idp.stores.base import EphemeralStore
from idp.stores.sql import EphemeralEntry, SqlStore


def store_database_url(database_url: str) -> str:
    """The SQLite file beside the main one (``onecard.sqlite3`` → ``onecard.sqlite3-store``)."""
    if database_url.startswith("sqlite:///") and not database_url.endswith(":memory:"):
        return database_url + "-store"
    return database_url


def create_store(settings: Settings, database: Database) -> EphemeralStore:
    if settings.redis_url:
        # Imported here so a SQLite-only deployment never loads the Redis client.
        import redis

        from idp.stores.redis_store import RedisStore

        return RedisStore(redis.Redis.from_url(settings.redis_url), prefix=settings.redis_prefix)
    url = store_database_url(database.url)
    if url == database.url:
        return SqlStore(database)
    own = Database(url)
    # The store's own file holds nothing durable, so it is created here rather than by migrations.
    EphemeralEntry.__table__.create(own.engine, checkfirst=True)  # type: ignore[attr-defined]
    return SqlStore(own)
