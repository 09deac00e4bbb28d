"""Two apps on one database (and one Redis on PostgreSQL) for the lean path's tests (idp.fastpath): ``lean``,
and ``full`` with the lean path off — two nodes, one of them answering everything through Flask."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from flask import Flask

from idp.app import create_app, initialise_keys
from idp.db import Base
from tests.support.live import ShiftClock

ISSUER = "http://idp.test"
BACKENDS = ["sqlite", "postgres-redis"]  # the fixtures' params


@contextmanager
def lean_and_full(
    request: pytest.FixtureRequest, tmp_path: Any, clock: ShiftClock
) -> Iterator[tuple[Flask, Flask]]:
    """(lean, full) on the backend ``request.param`` names; tables and Redis keys removed afterwards."""
    extra: dict[str, Any] = {}
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/idp.sqlite3"
    else:
        url = request.getfixturevalue("postgres_url")
        extra = {"redis_url": request.getfixturevalue("redis_url"), "redis_prefix": secrets.token_hex(6)}
    lean = app_for(url, clock, **extra)
    full = app_for(url, clock, lean_path=False, **extra)
    Base.metadata.create_all(lean.extensions["onecard"].database.engine)
    initialise_keys(lean)
    try:
        yield lean, full
    finally:
        for app in (lean, full):
            app.extensions["onecard"].database.dispose()
        Base.metadata.drop_all(full.extensions["onecard"].database.engine)
        full.extensions["onecard"].database.dispose()
        if extra:
            client = redis.Redis.from_url(extra["redis_url"])
            for key in client.scan_iter(f"{extra['redis_prefix']}:*"):
                client.delete(key)
            client.close()


def app_for(url: str, clock: ShiftClock, **overrides: Any) -> Flask:
    # Every installed plug-in (the wallet, the halls), as `onecard serve` runs them.
    return create_app(env="test", issuer=ISSUER, database_url=url, clock=clock, **overrides)
