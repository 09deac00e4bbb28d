"""The SQL implementation of ``EphemeralStore`` (DESIGN.md §2): short-lived state in one table.

This is the embedded default (SQLite) and also works on PostgreSQL. Every operation is one statement in its
own short transaction, and the one-time operations are single conditional statements the database makes
atomic on its own — ``DELETE … RETURNING`` for ``take`` and ``INSERT … ON CONFLICT DO UPDATE … WHERE`` for
``add`` and ``incr`` — so no node ever reads a row and then decides to write it. Needs SQLite ≥ 3.35
(``RETURNING``) or PostgreSQL ≥ 9.5.

Expiry is stored as POSIX seconds (a double) rather than a datetime: every comparison is against the
caller's ``now``, which is already a float, and the purge index stays a plain numeric one.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

from sqlalchemy import Double, Integer, LargeBinary, String, case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base, Database

NAMESPACE_MAX_LENGTH = 64
KEY_MAX_LENGTH = 255


class EphemeralEntry(Base):
    """One short-lived entry; alive while the caller's ``now < expires_at``."""

    __tablename__ = "store_entries"

    namespace: Mapped[str] = mapped_column(String(NAMESPACE_MAX_LENGTH), primary_key=True)
    key: Mapped[str] = mapped_column(String(KEY_MAX_LENGTH), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    expires_at: Mapped[float] = mapped_column(Double, nullable=False, index=True)
    # Rate-limit counters keep their count here so ``incr`` can do the arithmetic inside the upsert; entries
    # written by ``put``/``add`` leave it at 0 and counters have an empty ``value``.
    counter: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")


def _encodes(text: str) -> bool:
    """False for lone surrogates (JSON can carry them; the database cannot store them)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _column_key(key: str) -> str:
    """The key as stored: itself, or a digest when it would not fit the column or PostgreSQL's text type.

    Keys may come from outside (an assertion's ``jti``), and an over-long one, or one with a NUL or a lone
    surrogate (which JSON can carry), must not turn into a database error. A short key equal to some other
    key's digest form would share its entry; crafting one means knowing that other key already, and
    namespaces keep different uses apart.
    """
    if len(key) <= KEY_MAX_LENGTH and "\x00" not in key and _encodes(key):
        return key
    return "sha256/" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


# The Core table: every statement here is Core, and the metadata types it as a Table (``__table__`` is only
# a FromClause to the type checker).
_TABLE = Base.metadata.tables[EphemeralEntry.__tablename__]


class SqlStore:
    """``EphemeralStore`` on an SQLAlchemy database; independent of Flask and of any request session."""

    backend: ClassVar[str] = "sql"  # the store metrics' label (idp.stores.timed)

    def __init__(self, database: Database) -> None:
        dialect = database.engine.dialect.name
        if dialect == "sqlite":
            self._insert: Any = sqlite.insert
        elif dialect == "postgresql":
            self._insert = postgresql.insert
        else:
            raise ValueError(f"SqlStore supports SQLite and PostgreSQL, not {dialect}")
        self._engine = database.engine

    @property
    def engine(self) -> Engine:
        """The store's engine, for a caller that runs several of these statements in one transaction
        (wallet.scans.admission: the gate's rate count and one-time use in one commit)."""
        return self._engine

    def put(self, namespace: str, key: str, value: bytes, *, ttl: float, now: float) -> None:
        stmt = self._insert(_TABLE).values(
            namespace=namespace, key=_column_key(key), value=value, expires_at=now + ttl, counter=0
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[_TABLE.c.namespace, _TABLE.c.key],
            set_={"value": stmt.excluded.value, "expires_at": stmt.excluded.expires_at, "counter": 0},
        )
        with self._engine.begin() as conn:
            conn.execute(stmt)

    def add(self, namespace: str, key: str, value: bytes, *, ttl: float, now: float) -> bool:
        # One statement: insert, or overwrite a row that is already dead by the caller's clock. On PostgreSQL
        # the conflicting row is locked and the WHERE re-checked against its latest version, so of two racing
        # adds the second sees the first one's live row and returns nothing; SQLite runs writers one at a
        # time. A separate "delete expired, then insert" would need two statements and still lose to a
        # concurrent take/put between them.
        stmt = self._insert(_TABLE).values(
            namespace=namespace, key=_column_key(key), value=value, expires_at=now + ttl, counter=0
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[_TABLE.c.namespace, _TABLE.c.key],
            set_={"value": stmt.excluded.value, "expires_at": stmt.excluded.expires_at, "counter": 0},
            where=_TABLE.c.expires_at <= now,
        ).returning(_TABLE.c.key)
        with self._engine.begin() as conn:
            return conn.execute(stmt).first() is not None

    def get(self, namespace: str, key: str, *, now: float) -> bytes | None:
        stmt = select(_TABLE.c.value).where(
            _TABLE.c.namespace == namespace, _TABLE.c.key == _column_key(key), _TABLE.c.expires_at > now
        )
        with self._engine.connect() as conn:
            value: bytes | None = conn.execute(stmt).scalar_one_or_none()
        return value

    def get_with_expiry(self, namespace: str, key: str, *, now: float) -> tuple[bytes, float] | None:
        stmt = select(_TABLE.c.value, _TABLE.c.expires_at).where(
            _TABLE.c.namespace == namespace, _TABLE.c.key == _column_key(key), _TABLE.c.expires_at > now
        )
        with self._engine.connect() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else (row.value, row.expires_at)

    def touch(self, namespace: str, key: str, *, ttl: float, now: float) -> bool:
        # One UPDATE of the expiry alone: a row a take deleted is not there to update (PostgreSQL re-checks
        # the WHERE on the row's latest version after waiting for a concurrent writer), and the value a
        # concurrent put wrote stays.
        stmt = (
            update(_TABLE)
            .where(
                _TABLE.c.namespace == namespace, _TABLE.c.key == _column_key(key), _TABLE.c.expires_at > now
            )
            .values(expires_at=now + ttl)
        )
        with self._engine.begin() as conn:
            return conn.execute(stmt).rowcount == 1

    def replace(self, namespace: str, key: str, value: bytes, *, now: float) -> bool:
        # As touch: one UPDATE of a live row, so a row a take deleted stays deleted.
        stmt = (
            update(_TABLE)
            .where(
                _TABLE.c.namespace == namespace, _TABLE.c.key == _column_key(key), _TABLE.c.expires_at > now
            )
            .values(value=value)
        )
        with self._engine.begin() as conn:
            return conn.execute(stmt).rowcount == 1

    def take(self, namespace: str, key: str, *, now: float) -> bytes | None:
        # The row is deleted whether or not it is still alive (a dead one is garbage anyway); only the
        # statement that actually deleted it sees it in RETURNING, which is what makes take one-time.
        stmt = (
            delete(_TABLE)
            .where(_TABLE.c.namespace == namespace, _TABLE.c.key == _column_key(key))
            .returning(_TABLE.c.value, _TABLE.c.expires_at)
        )
        with self._engine.begin() as conn:
            row = conn.execute(stmt).first()
        if row is None or row.expires_at <= now:
            return None
        value: bytes = row.value
        return value

    def delete(self, namespace: str, key: str) -> None:
        stmt = delete(_TABLE).where(_TABLE.c.namespace == namespace, _TABLE.c.key == _column_key(key))
        with self._engine.begin() as conn:
            conn.execute(stmt)

    def incr(self, namespace: str, key: str, *, window: float, now: float) -> int:
        # SET expressions all see the row as it was before the update, so both CASEs test the old expiry:
        # a dead window restarts at 1 with a fresh expiry, a live one counts on and keeps its expiry.
        dead = _TABLE.c.expires_at <= now
        stmt = self._insert(_TABLE).values(
            namespace=namespace, key=_column_key(key), value=b"", expires_at=now + window, counter=1
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[_TABLE.c.namespace, _TABLE.c.key],
            set_={
                "value": b"",
                "counter": case((dead, 1), else_=_TABLE.c.counter + 1),
                "expires_at": case((dead, stmt.excluded.expires_at), else_=_TABLE.c.expires_at),
            },
        ).returning(_TABLE.c.counter)
        with self._engine.begin() as conn:
            count: int = conn.execute(stmt).scalar_one()
        return count

    def purge_expired(self, *, now: float) -> int:
        stmt = delete(_TABLE).where(_TABLE.c.expires_at <= now)
        with self._engine.begin() as conn:
            return conn.execute(stmt).rowcount
