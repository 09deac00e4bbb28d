"""Choosing the short-lived state store for a deployment (DESIGN.md §2).

Redis when ``ONECARD_REDIS_URL`` is set (scale-out: every node shares it), otherwise the SQL store, which
needs no other service. The Redis URL is either one server — ``redis://`` or ``rediss://`` (TLS), as
redis-py's ``Redis.from_url`` reads it — or a Sentinel deployment,
``redis+sentinel://[:password@]host1:26379,host2:26379/<service_name>/<db>`` (the full format is in
``idp.stores.redis_url``): the client asks the Sentinels which server is the master of ``service_name`` and
asks again after a failover.

On PostgreSQL the SQL store shares the application database. On SQLite it gets a file of its own: SQLite
admits one writer at a time, and a request whose unit of work holds the main file's write lock would
otherwise wait on itself when it touches the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from idp.config import Settings
from idp.db import Database
from idp.stores.base import EphemeralStore
from idp.stores.redis_url import SentinelUrl, is_sentinel_url, parse_sentinel_url
from idp.stores.sql import EphemeralEntry, SqlStore

if TYPE_CHECKING:
    import redis

# A Sentinel (or master) that is down must not hold a request for the operating system's TCP timeout
# (minutes) before the client tries the next one.
REDIS_CONNECT_TIMEOUT = 5.0


def store_database_url(database_url: str) -> str:
    """The SQLite file beside the main one (``onecard.sqlite3`` → ``onecard.sqlite3-store``)."""
    if database_url.startswith("sqlite:///") and not database_url.endswith(":memory:"):
        return database_url + "-store"
    return database_url


def create_store(settings: Settings, database: Database) -> EphemeralStore:
    if settings.redis_url:
        # Imported here so a SQLite-only deployment never loads the Redis client.
        from idp.stores.redis_store import RedisStore

        return RedisStore(create_redis_client(settings.redis_url), prefix=settings.redis_prefix)
    url = store_database_url(database.url)
    if url == database.url:
        return SqlStore(database)
    own = Database(url)
    # The store's own file holds nothing durable, so it is created here rather than by migrations.
    EphemeralEntry.__table__.create(own.engine, checkfirst=True)  # type: ignore[attr-defined]
    return SqlStore(own)


def create_redis_client(url: str) -> redis.Redis:
    """The Redis client for ``ONECARD_REDIS_URL``: one server (``redis://``, ``rediss://``) or the master of a
    Sentinel service (``redis+sentinel://``)."""
    import redis

    if is_sentinel_url(url):
        return sentinel_master(parse_sentinel_url(url))
    return redis.Redis.from_url(url)


def sentinel_master(target: SentinelUrl) -> redis.Redis:
    """A client of the current master of ``target.service_name``. redis-py's Sentinel connection pool looks
    the master up when it connects and again after a connection fails, so a failover costs the requests in
    flight, not a restart. Only the master: OneCard's one-time operations must never read a replica that lags.
    """
    from redis.sentinel import Sentinel

    sentinel_kwargs: dict[str, object] = {"socket_connect_timeout": REDIS_CONNECT_TIMEOUT}
    if target.sentinel_password:
        sentinel_kwargs["password"] = target.sentinel_password
    sentinel = Sentinel(
        list(target.sentinels),
        sentinel_kwargs=sentinel_kwargs,
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT,
    )
    master: redis.Redis = sentinel.master_for(
        target.service_name, db=target.db, username=target.username, password=target.password
    )
    return master
