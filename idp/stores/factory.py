"""Choosing the short-lived state store for a deployment (DESIGN.md §2).

Redis when ``ONECARD_REDIS_URL`` is set (scale-out: every node shares it), otherwise the SQL store on the
application database, which needs no other service.
"""

from __future__ import annotations

from idp.config import Settings
from idp.db import Database
from idp.stores.base import EphemeralStore
from idp.stores.sql import SqlStore

REDIS_KEY_PREFIX = "onecard"


def create_store(settings: Settings, database: Database) -> EphemeralStore:
    if settings.redis_url:
        # Imported here so a SQLite-only deployment never loads the Redis client.
        import redis

        from idp.stores.redis_store import RedisStore

        return RedisStore(redis.Redis.from_url(settings.redis_url), prefix=REDIS_KEY_PREFIX)
    return SqlStore(database)
