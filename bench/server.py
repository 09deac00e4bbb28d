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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent


SERVERS = ("gunicorn", "gunicorn-sync", "granian")


def server_command(server: str, *, port: int, threads: int) -> list[str]:
    """One worker process of ``server`` serving idp.wsgi:app on 127.0.0.1:``port``."""
    if server == "granian":
        return [
            sys.executable, "-m", "granian", "--interface", "wsgi", "--workers", "1",
            "--blocking-threads", str(threads), "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "warning", "--no-ws", "idp.wsgi:app",
        ]  # fmt: skip
    worker = ["-k", "sync"] if server == "gunicorn-sync" else ["-k", "gthread", "--threads", str(threads)]
    return [
        sys.executable, "-m", "gunicorn", "-w", "1", *worker, "-b", f"127.0.0.1:{port}",
        "--log-level", "warning", "idp.wsgi:app",
    ]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Running:
    base_url: str
    seeded: dict[str, Any]
    process: subprocess.Popen[bytes]

    def worker_rss_mib(self) -> float:
        """Resident memory of the worker (the server's one child process; the process itself if none)."""
        pids = descendants(self.process.pid) or [self.process.pid]
        return max(_rss_kib(pid) for pid in pids) / 1024


def descendants(pid: int) -> list[int]:
    """Every descendant: ``taskset`` execs the server, which forks (gunicorn) or spawns (granian) workers."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            found += [child, *descendants(child)]
    return found


def _rss_kib(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@contextmanager
def bench_server(
    seed: Callable[[Any], dict[str, Any]] | None = None,
    *,
    threads: int = 8,
    extra_env: dict[str, str] | None = None,
    cpu: int | None = None,
    server: str = "gunicorn",
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yields (base URL, whatever ``seed(app)`` returned); ``cpu`` pins the server to that core; ``server``
    is one of ``SERVERS``."""
    with running_server(seed, threads=threads, extra_env=extra_env, cpu=cpu, server=server) as running:
        yield running.base_url, running.seeded


@contextmanager
def running_server(
    seed: Callable[[Any], dict[str, Any]] | None = None,
    *,
    threads: int = 8,
    extra_env: dict[str, str] | None = None,
    cpu: int | None = None,
    server: str = "gunicorn",
) -> Iterator[Running]:
    """``bench_server``, yielding the process too (for its worker's memory)."""
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
        [*pinned, *server_command(server, port=port, threads=threads)], cwd=ROOT, env=env
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
        yield Running(base_url, seeded, process)
    finally:
        process.terminate()
        process.wait(20)
