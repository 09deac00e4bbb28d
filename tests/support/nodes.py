"""Two real OneCard server processes on one PostgreSQL + Redis, as a scaled-out deployment runs them
(DESIGN.md §2, §9). Both use node A's URL as issuer — one public name behind a load balancer — so a browser's
cookies and the card's signed origin are the same whichever node answers (or, with ``issuer``, the URL of a
proxy in front of them, tests/support/proxy.py). Stopped by PID."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis
import requests
from flask import Flask

from idp import dbadmin
from idp.app import create_app, initialise_keys
from idp.db import Database
from idp.models import Base
from idp.services import Services
from tests.fixtures.services import delete_redis_keys

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Node:
    url: str
    process: subprocess.Popen[bytes]


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(20)


@contextmanager
def running_nodes(
    database_url: str,
    redis_url: str,
    redis_prefix: str,
    *,
    count: int = 2,
    log_dir: Path | None = None,
    issuer: str | None = None,
) -> Iterator[list[Node]]:
    """``count`` gunicorn processes (one worker each) serving ``idp.wsgi:app``; the database must be
    migrated and its keys created already (so the nodes do not race to create them). The issuer is
    ``issuer`` if given, else the first node's URL."""
    ports = [free_port() for _ in range(count)]
    issuer = issuer or f"http://127.0.0.1:{ports[0]}"
    base_env = {key: value for key, value in os.environ.items() if not key.startswith("ONECARD_")}
    env = {
        **base_env,
        "ONECARD_ENV": "test",
        "ONECARD_ISSUER": issuer,
        "ONECARD_DATABASE_URL": database_url,
        "ONECARD_REDIS_URL": redis_url,
        "ONECARD_REDIS_PREFIX": redis_prefix,
    }
    nodes: list[Node] = []
    try:
        for index, port in enumerate(ports):
            log = open(log_dir / f"node{index}.log", "wb") if log_dir else None  # noqa: SIM115
            try:
                process = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "gunicorn",
                        "-w",
                        "1",
                        "-k",
                        "gthread",
                        "--threads",
                        "4",
                        "-b",
                        f"127.0.0.1:{port}",
                        "--log-level",
                        "warning",
                        "idp.wsgi:app",
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=log or subprocess.DEVNULL,
                    stderr=subprocess.STDOUT,
                )
            finally:
                if log is not None:
                    log.close()  # the child has its own copy
            nodes.append(Node(f"http://127.0.0.1:{port}", process))
        deadline = time.monotonic() + 30
        for node in nodes:
            while True:
                if node.process.poll() is not None:
                    raise RuntimeError(f"node {node.url} exited with {node.process.returncode}")
                try:
                    if requests.get(f"{node.url}/.well-known/openid-configuration", timeout=1).ok:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"node {node.url} did not start")
                time.sleep(0.1)
        yield nodes
    finally:
        for node in nodes:
            _stop(node.process)


@contextmanager
def migrated_deployment(
    postgres_url: str, redis_url: str, *, label: str, plugins: Sequence[Callable[[Flask], None]] = ()
) -> Iterator[tuple[Services, str]]:
    """The shared state of a multi-node deployment: PostgreSQL migrated to head with its first keys, and a
    Redis key prefix of its own. Yields the services of an app to seed it with (its connections are closed
    before the nodes start) and the prefix; empties both afterwards."""
    dbadmin.upgrade(postgres_url)
    prefix = f"{label}-{os.urandom(4).hex()}"
    app: Flask = create_app(
        env="test", database_url=postgres_url, redis_url=redis_url, redis_prefix=prefix, plugins=list(plugins)
    )
    initialise_keys(app)
    svc: Services = app.extensions["onecard"]
    try:
        yield svc, prefix
    finally:
        svc.database.dispose()
        database = Database(postgres_url)
        Base.metadata.drop_all(database.engine)
        with database.engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        database.dispose()
        client = redis.Redis.from_url(redis_url)
        delete_redis_keys(client, prefix)
        client.close()
