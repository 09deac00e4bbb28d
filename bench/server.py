"""Start a OneCard server for a benchmark: a fresh SQLite database with its schema and keys, and gunicorn
with ONE worker (gthread), so figures are per worker. Used as a context manager; stops the server by PID."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def bench_server(
    seed: Callable[[Any], dict[str, Any]] | None = None,
    *,
    threads: int = 8,
    extra_env: dict[str, str] | None = None,
    cpu: int | None = None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yields (base URL, whatever ``seed(app)`` returned); ``cpu`` pins the server to that core."""
    from idp.app import create_app, initialise_keys
    from idp.dbadmin import upgrade

    workdir = Path(tempfile.mkdtemp(prefix="onecard-bench-"))
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "ONECARD_ENV": "test",
        "ONECARD_ISSUER": base_url,
        "ONECARD_DATABASE_URL": f"sqlite:///{workdir}/bench.sqlite3",
        **(extra_env or {}),
    }
    settings_env = {k: v for k, v in env.items() if k.startswith("ONECARD_")}
    from idp.config import load_settings

    settings = load_settings(settings_env)
    upgrade(settings.database_url)
    app = create_app(settings, plugins=[])
    initialise_keys(app)
    seeded = seed(app) if seed else {}
    app.extensions["onecard"].database.dispose()
    pinned = ["taskset", "-c", str(cpu)] if cpu is not None else []
    process = subprocess.Popen(
        [
            *pinned,
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            "1",
            "-k",
            "gthread",
            "--threads",
            str(threads),
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "idp.wsgi:app",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        for _ in range(200):
            try:
                if requests.get(f"{base_url}/.well-known/openid-configuration", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        else:
            raise RuntimeError("the bench server did not start")
        yield base_url, seeded
    finally:
        process.terminate()
        process.wait(20)
