"""A digest of every durable row, for tests that assert a refused request changed nothing (the fuzzer, the
OpenAPI contract run)."""

from __future__ import annotations

import hashlib

from sqlalchemy import select

from idp.db import Base
from idp.stores.sql import EphemeralEntry
from tests.support.live import LiveIdp


def durable_rows(idp: LiveIdp) -> str:
    """A digest of every durable row (the short-lived store's rows are not durable state)."""
    digest = hashlib.sha256()
    with idp.services.database.session() as session:
        for table in Base.metadata.sorted_tables:
            if table.name == EphemeralEntry.__tablename__:
                continue
            for row in session.execute(select(table).order_by(*table.primary_key.columns)):
                digest.update(repr(tuple(row)).encode())
    return digest.hexdigest()
