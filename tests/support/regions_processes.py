"""Two regions with real processes: a trust anchor and regions A (Chengdu, 510100) and B (Chongqing,
500000), each a real ``onecard serve`` on a free port of 127.0.0.1 with its own database — SQLite files, or
three fresh PostgreSQL databases and a Redis key prefix each — set up by ``demo.regions`` exactly as the
two-region demo is (the anchor's keys in the trust anchors file, each region registered at the anchor with
the loa:high trust mark type and holding its trust mark, a citizen with a card of its region and a portal
client at each region, a venue at A).

Driving it (``running_regions`` yields a ``RegionsProcesses``)::

    with running_regions(tmp_path) as regions:                       # or postgres_admin_url=, redis_url=
        regions.a.url, regions.b.url, regions.anchor.url             # the entity ids (= issuers)
        regions.credentials["b"].card_file, .card_pin, .citizen_id   # region B's citizen and card
        regions.credentials["a"].portal_client_id, .portal_client_secret, .portal_redirect_uri
        regions.credentials["a"].venue_client_id, .venue_client_secret
        regions.run("anchor", "federation", "remove", regions.b.url) # any `onecard` command at a deployment
        regions.restart("a")                                         # by PID, same port and database
        regions.wait_until(lambda: ..., what="...")                  # poll (real processes: no clock to move)

The servers are stopped by PID when the block ends, also when it fails; the PostgreSQL databases are dropped
and the Redis keys deleted. Short federation settings (``HARNESS_SETTINGS``) make a change at the anchor show
within seconds; ``settings=`` adds or overrides ``ONECARD_*`` for all three.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
import requests

from demo.regions import (
    ANCHOR,
    Deployment,
    OneCardCli,
    RegionCredentials,
    RegionsLayout,
    plan_regions,
    seed_region,
    set_up_federation,
)
from tests.fixtures.services import create_database_or_skip, delete_redis_keys, drop_database
from tests.support.nodes import free_port

# Statements live 12 s (a rotated key may sign 12 + 5 s after it was published: `onecard keys policy`),
# chains are cached 8 s and the region directory rebuilt every 8 s.
HARNESS_SETTINGS: Final = {
    "ONECARD_FEDERATION_STATEMENT_TTL": "12",
    "ONECARD_FEDERATION_CHAIN_CACHE_SECONDS": "8",
    "ONECARD_FEDERATION_DIRECTORY_REFRESH_SECONDS": "8",
}
START_TIMEOUT: Final = 90.0
STOP_TIMEOUT: Final = 20.0


@dataclass
class Served:
    """One deployment and its ``onecard serve`` process."""

    deployment: Deployment
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return self.deployment.entity_id

    @property
    def key(self) -> str:
        return self.deployment.key

    def stop(self) -> None:
        _stop(self.process)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class RegionsProcesses:
    layout: RegionsLayout
    cli: OneCardCli
    anchor: Served
    a: Served
    b: Served
    credentials: Mapping[str, RegionCredentials]  # by region key, "a" and "b"

    def served(self, key: str) -> Served:
        return {ANCHOR: self.anchor, "a": self.a, "b": self.b}[key]

    def run(self, key: str, *args: str, input: str | None = None) -> str:
        """``onecard ARGS`` with the settings of deployment ``key`` (``anchor``, ``a``, ``b``); its stdout.
        A failure raises ``demo.runner.DemoError`` with the command's last error line."""
        return self.cli.run(self.served(key).deployment, *args, input=input)

    def restart(self, key: str) -> None:
        """Stop deployment ``key``'s server by PID and start it again on the same port and database (e.g.
        after rewriting its trust marks or trust anchors file, which a server reads at start-up)."""
        served = self.served(key)
        served.stop()
        served.process = _start(served.deployment, self.cli, served.log_path)
        _wait_ready([served])

    def logs(self) -> str:
        return "\n".join(f"--- {s.key} ---\n{s.log_tail()}" for s in (self.anchor, self.a, self.b))

    def wait_until(
        self, condition: Callable[[], bool], *, what: str, timeout: float = 40.0, interval: float = 1.0
    ) -> float:
        """Poll ``condition`` until it holds; the seconds it took. Fails naming ``what``, with the logs."""
        started = time.monotonic()
        while not condition():
            if time.monotonic() - started > timeout:
                raise AssertionError(f"not within {timeout:.0f} s: {what}\n{self.logs()}")
            time.sleep(interval)
        return time.monotonic() - started


def _database_url(admin_url: str, name: str) -> str:
    scheme, sep, rest = admin_url.partition("://")
    parts = urlsplit(scheme.split("+", 1)[0] + sep + rest)  # libpq's form, as tests.fixtures.services uses
    return urlunsplit(parts._replace(path="/" + name))


def _start(deployment: Deployment, cli: OneCardCli, log_path: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-c", "from idp.cli import main; main()", "serve",
        "--host", "127.0.0.1", "--port", str(deployment.port), "--workers", "1", "--threads", "4",
    ]  # fmt: skip
    env = deployment.env(cli.base_env)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with log_path.open("wb") as log:
        return subprocess.Popen(
            command,
            cwd=deployment.directory,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a kill at the end reaches its workers too
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's PID (it stops its workers), SIGKILL to its process group if it hangs."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(STOP_TIMEOUT)


def _wait_ready(served: list[Served]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    waiting = list(served)
    while waiting:
        for one in list(waiting):
            if one.process.poll() is not None:
                raise RuntimeError(f"onecard serve at {one.url} exited:\n{one.log_tail()}")
            try:
                if requests.get(f"{one.url}/readyz", timeout=2).status_code == 200:
                    waiting.remove(one)
            except requests.RequestException:
                pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"not ready in {START_TIMEOUT:.0f} s: {', '.join(w.url for w in waiting)}")
        if waiting:
            time.sleep(0.2)


@contextmanager
def running_regions(
    directory: Path,
    *,
    postgres_admin_url: str | None = None,
    redis_url: str | None = None,
    settings: Mapping[str, str] | None = None,
    per_deployment: Mapping[str, Mapping[str, str]] | None = None,
) -> Iterator[RegionsProcesses]:
    """The anchor and regions A and B as real servers; on SQLite files under ``directory``, or with
    ``postgres_admin_url`` (and ``redis_url``) on three new PostgreSQL databases and three Redis prefixes.
    ``settings``: ``ONECARD_*`` for all three; ``per_deployment``: by key (``anchor``, ``a``, ``b``)."""
    keys = (ANCHOR, "a", "b")
    with ExitStack() as stack:
        database_urls: dict[str, str] = {}
        overrides: dict[str, dict[str, str]] = {
            key: dict((per_deployment or {}).get(key, {})) for key in keys
        }
        if postgres_admin_url is not None:
            for key in keys:
                name = create_database_or_skip(postgres_admin_url)
                stack.callback(drop_database, postgres_admin_url, name)
                database_urls[key] = _database_url(postgres_admin_url, name)
        if redis_url is not None:
            client = redis.Redis.from_url(redis_url)
            stack.callback(client.close)
            for key in keys:
                prefix = (
                    overrides[key].get("ONECARD_REDIS_PREFIX")
                    or f"onecard-test-regions-{key}-{secrets.token_hex(4)}"
                )
                overrides[key] = {
                    **overrides[key],
                    "ONECARD_REDIS_URL": redis_url,
                    "ONECARD_REDIS_PREFIX": prefix,
                }
                stack.callback(delete_redis_keys, client, prefix)
        layout = plan_regions(
            directory,
            ports={key: free_port() for key in keys},
            database_urls=database_urls,
            settings={**HARNESS_SETTINGS, **(settings or {})},
            per_deployment=overrides,
            env_name="test",
        )
        cli = OneCardCli(dict(os.environ), cwd=layout.directory)
        set_up_federation(cli, layout)
        credentials = {
            region.key: seed_region(
                cli, region, portal_url=f"http://127.0.0.1:{free_port()}", venue=region.key == "a"
            )
            for region in layout.regions
        }
        served: list[Served] = []
        for deployment in layout.deployments:
            log_path = deployment.log_file("serve")
            one = Served(deployment, _start(deployment, cli, log_path), log_path)
            stack.callback(one.stop)  # by PID (the current one, after a restart), whatever happens from here
            served.append(one)
        _wait_ready(served)
        yield RegionsProcesses(layout, cli, served[0], served[1], served[2], credentials)


@contextmanager
def running_regions_of_class(request: pytest.FixtureRequest, directory: Path) -> Iterator[RegionsProcesses]:
    """``running_regions`` on the backend the requesting test class names (``backend = "sqlite"`` or
    ``"postgres"``: then on the suite's PostgreSQL and Redis)."""
    if request.cls.backend == "postgres":
        admin_url = request.getfixturevalue("postgres_admin_url")
        redis_url = request.getfixturevalue("redis_url")
        with running_regions(directory, postgres_admin_url=admin_url, redis_url=redis_url) as running:
            yield running
    else:
        with running_regions(directory) as running:
            yield running
