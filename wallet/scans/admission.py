"""One store round trip per gate verification (issue 16): the venue cache's generation check, the venue's
rate-limit count and the code's one-time ``cti`` use, together.

``admit`` does, atomically and in this order: (1) compare the venue generation (``wallet.venues.cache``)
with the one the caller's cached venue was loaded under — if it changed, nothing else happens and the
caller reloads the venue and asks again; (2) count the verification in the venue's fixed window of 60 s
(the same window ``idp.ratelimit.RateLimiter`` keeps: it opens at the first attempt); over the venue's
``verify_per_minute`` it stops there, the code's one use left for when the gate may verify again; (3) when a
``cti`` is given (the code passed every other check), add it to the gate's one-time namespace until the code
would be refused as expired anyway — the ``add`` of ``idp.presented_codes.use_once``, with the same keys and
entry format, so either path sees the other's marks.

Redis: one Lua script (Redis runs it without interleaving anything: one round trip, atomic). SQL store
(SQLite file, or the PostgreSQL database): the same statements ``idp.stores.sql`` uses, in one transaction
and one commit; the write comes first so SQLite takes its write lock at once instead of upgrading a read
lock (which fails under contention instead of waiting). Any other ``EphemeralStore``: the same steps as
separate calls.
"""

from __future__ import annotations

import math
import threading
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Final, Protocol

from sqlalchemy import Double, String, bindparam, case, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from idp.db import Base
from idp.observability.metrics import count_rate_limit_refusal, timed_store_operation
from idp.stores.base import EphemeralStore
from idp.stores.sql import KEY_MAX_LENGTH, EphemeralEntry, SqlStore
from idp.stores.timed import TimedStore
from wallet.venues.cache import GENERATION_KEY, GENERATION_NAMESPACE

RATE_NAMESPACE: Final = "gate_verify"
RATE_WINDOW: Final = 60.0
GATE_CTI_NAMESPACE: Final = "gate_cti"


@dataclass(frozen=True)
class Admission:
    stale: bool = False  # the venue generation moved on: nothing was counted or used
    allowed: bool = True  # within the venue's rate limit (this verification is counted)
    retry_after: int = 0  # whole seconds until the window closes, when not allowed
    first_use: bool = False  # the cti was unused and is used now (False when no cti was given)


class GateAdmission(Protocol):
    def admit(
        self,
        *,
        venue_id: str,
        limit: int,
        generation: bytes,
        cti: str | None,
        cti_ttl: float,
        now: float,
    ) -> Admission: ...


def _retry_after(closes_at: float, now: float) -> int:
    return max(1, math.ceil(closes_at - now))  # at least a second: "0" would be retried at once


def _refused(closes_at: float, now: float) -> Admission:
    count_rate_limit_refusal(RATE_NAMESPACE)
    return Admission(allowed=False, retry_after=_retry_after(closes_at, now))


# KEYS = generation, counter[, cti]. ARGV = now, expected generation, limit, new window's expiry (repr),
# counter backstop TTL ms[, packed cti entry, cti backstop TTL ms]. Returns {status, closes_at}: status -1
# stale, 0 over the limit, 1 allowed (cti already used or none asked), 2 allowed and the cti newly used.
# Entries are ``<expires_at>|<value>`` as in idp.stores.redis_store, so its get/incr/add read them.
_ADMIT_SCRIPT: Final = """
local now = tonumber(ARGV[1])
local function live(raw)
  if not raw then return nil end
  local sep = string.find(raw, '|', 1, true)
  local expires = sep and tonumber(string.sub(raw, 1, sep - 1))
  if expires and expires > now then return sep end
  return nil
end
local g = redis.call('GET', KEYS[1])
local gsep = live(g)
local generation = gsep and string.sub(g, gsep + 1) or ''
if generation ~= ARGV[2] then
  return {-1, ''}
end
local current = redis.call('GET', KEYS[2])
local sep = live(current)
local count, closes
if sep then
  count = (tonumber(string.sub(current, sep + 1)) or 0) + 1
  closes = string.sub(current, 1, sep - 1)
  redis.call('SET', KEYS[2], string.sub(current, 1, sep) .. string.format('%d', count), 'KEEPTTL')
else
  count = 1
  closes = ARGV[4]
  redis.call('SET', KEYS[2], ARGV[4] .. '|1', 'PX', ARGV[5])
end
if count > tonumber(ARGV[3]) then
  return {0, closes}
end
if #KEYS < 3 then
  return {1, closes}
end
if live(redis.call('GET', KEYS[3])) then
  return {1, closes}
end
redis.call('SET', KEYS[3], ARGV[6], 'PX', ARGV[7])
return {2, closes}
"""


class RedisAdmission:
    def __init__(self, store: Any) -> None:  # an idp.stores.redis_store.RedisStore
        # Imported here, as idp.stores.factory does, so a SQLite-only deployment never loads the Redis client.
        from idp.stores.redis_store import DEFAULT_EXPIRY_MARGIN

        self._store = store
        self._script = store.client.register_script(_ADMIT_SCRIPT)
        self._margin = DEFAULT_EXPIRY_MARGIN

    def _backstop_ms(self, ttl: float) -> int:
        """Redis's own TTL for an entry, a margin beyond its expiry (as idp.stores.redis_store sets it)."""
        return int((math.ceil(max(ttl, 0.0)) + self._margin) * 1000)

    def admit(
        self, *, venue_id: str, limit: int, generation: bytes, cti: str | None, cti_ttl: float, now: float
    ) -> Admission:
        store = self._store
        keys = [
            store.redis_key(GENERATION_NAMESPACE, GENERATION_KEY),
            store.redis_key(RATE_NAMESPACE, venue_id),
        ]
        args: list[Any] = [
            repr(now),
            generation,
            limit,
            repr(now + RATE_WINDOW),
            self._backstop_ms(RATE_WINDOW),
        ]
        if cti is not None:
            keys.append(store.redis_key(GATE_CTI_NAMESPACE, cti))
            args += [repr(now + cti_ttl).encode() + b"|1", self._backstop_ms(cti_ttl)]
        with timed_store_operation(backend="redis", operation="gate_admit"):
            status, closes = self._script(keys=keys, args=args)
        status = int(status)
        if status < 0:
            return Admission(stale=True, allowed=False)
        if status == 0:
            return _refused(float(closes), now)
        return Admission(first_use=status == 2)


_TABLE: Final = Base.metadata.tables[EphemeralEntry.__tablename__]


class _Prepared:
    """A statement compiled once for the engine's dialect and run as its SQL text: building and compiling
    an upsert with SQLAlchemy's expression API on every verification cost more than running it."""

    def __init__(self, statement: Any, engine: Engine) -> None:
        compiled = statement.compile(dialect=engine.dialect)
        self.sql: str = compiled.string
        self._positions: tuple[str, ...] | None = compiled.positiontup  # None for a named paramstyle
        self._fixed: dict[str, Any] = {
            name: param.value for name, param in compiled.binds.items() if param.value is not None
        }

    def run(self, conn: Connection, **values: Any) -> Any:
        merged = {**self._fixed, **values}
        params = tuple(merged[n] for n in self._positions) if self._positions is not None else merged
        return conn.exec_driver_sql(self.sql, params)


class SqlAdmission:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        sqlite_file = engine.dialect.name == "sqlite"
        insert: Any = sqlite.insert if sqlite_file else postgresql.insert
        # SQLite has one writer at a time, and a thread that finds the file locked sleeps in SQLite's busy
        # handler (1, 2, 5, 10 … 100 ms steps): this process's threads take turns on a lock instead, which
        # hands over in microseconds. PostgreSQL locks rows, not the database: no lock here.
        self._turn: AbstractContextManager[Any] = threading.Lock() if sqlite_file else nullcontext()
        # idp.stores.sql's incr and add, as statements with parameters.
        t = _TABLE.c
        dead = t.expires_at <= bindparam("now", type_=Double())
        incr = insert(_TABLE).values(
            namespace=RATE_NAMESPACE,
            key=bindparam("key", type_=String()),
            value=b"",
            expires_at=bindparam("expires", type_=Double()),
            counter=1,
        )
        incr = incr.on_conflict_do_update(
            index_elements=[t.namespace, t.key],
            set_={
                "value": b"",
                "counter": case((dead, 1), else_=t.counter + 1),
                "expires_at": case((dead, incr.excluded.expires_at), else_=t.expires_at),
            },
        ).returning(t.counter, t.expires_at)
        add = insert(_TABLE).values(
            namespace=GATE_CTI_NAMESPACE,
            key=bindparam("key", type_=String()),
            value=b"1",
            expires_at=bindparam("expires", type_=Double()),
            counter=0,
        )
        add = add.on_conflict_do_update(
            index_elements=[t.namespace, t.key],
            set_={"value": add.excluded.value, "expires_at": add.excluded.expires_at, "counter": 0},
            where=dead,
        ).returning(t.key)
        generation = select(t.value).where(
            t.namespace == GENERATION_NAMESPACE,
            t.key == GENERATION_KEY,
            t.expires_at > bindparam("now", type_=Double()),
        )
        self._incr = _Prepared(incr, engine)
        self._add = _Prepared(add, engine)
        self._generation = _Prepared(generation, engine)

    def admit(
        self, *, venue_id: str, limit: int, generation: bytes, cti: str | None, cti_ttl: float, now: float
    ) -> Admission:
        with (
            timed_store_operation(backend="sql", operation="gate_admit"),
            self._turn,
            self._engine.connect() as conn,
            conn.begin() as transaction,
        ):
            count, closes_at = self._incr.run(conn, key=venue_id, now=now, expires=now + RATE_WINDOW).one()
            if bytes(self._generation.run(conn, now=now).scalar_one_or_none() or b"") != generation:
                transaction.rollback()  # not counted: the caller asks again with a fresh venue
                return Admission(stale=True, allowed=False)
            if count > limit:
                transaction.commit()
                return _refused(closes_at, now)
            if cti is None:
                transaction.commit()
                return Admission()
            first_use = self._add.run(conn, key=cti, now=now, expires=now + cti_ttl).first() is not None
            transaction.commit()
        return Admission(first_use=first_use)


class StepwiseAdmission:
    """Any other store: the same three steps as separate calls (not one atomic step, but each is)."""

    def __init__(self, store: EphemeralStore) -> None:
        self._store = store

    def admit(
        self, *, venue_id: str, limit: int, generation: bytes, cti: str | None, cti_ttl: float, now: float
    ) -> Admission:
        store = self._store
        if (store.get(GENERATION_NAMESPACE, GENERATION_KEY, now=now) or b"") != generation:
            return Admission(stale=True, allowed=False)
        if store.incr(RATE_NAMESPACE, venue_id, window=RATE_WINDOW, now=now) > limit:
            return _refused(now + RATE_WINDOW, now)
        if cti is None:
            return Admission()
        return Admission(first_use=store.add(GATE_CTI_NAMESPACE, cti, b"1", ttl=cti_ttl, now=now))


def _plain_key(key: str) -> bool:
    """Keys the SQL store keeps as they are (idp.stores.sql._column_key leaves them alone)."""
    return len(key) <= KEY_MAX_LENGTH and "\x00" not in key and key.isprintable()


class _SqlOrStepwise:
    """SqlAdmission for keys the SQL store stores verbatim (every venue id and cti we issue); the stepwise
    path, which goes through the store's own key mapping, for anything else."""

    def __init__(self, store: EphemeralStore, engine: Engine) -> None:
        self._sql = SqlAdmission(engine)
        self._stepwise = StepwiseAdmission(store)

    def admit(
        self, *, venue_id: str, limit: int, generation: bytes, cti: str | None, cti_ttl: float, now: float
    ) -> Admission:
        plain = _plain_key(venue_id) and (cti is None or _plain_key(cti))
        path: GateAdmission = self._sql if plain else self._stepwise
        return path.admit(
            venue_id=venue_id, limit=limit, generation=generation, cti=cti, cti_ttl=cti_ttl, now=now
        )


def create_admission(store: EphemeralStore) -> GateAdmission:
    """The one-round-trip admission for the store the app runs on."""
    inner = store.inner if isinstance(store, TimedStore) else store
    if isinstance(inner, SqlStore):
        return _SqlOrStepwise(store, inner.engine)
    if getattr(inner, "backend", None) == "redis":
        return RedisAdmission(inner)
    return StepwiseAdmission(store)
