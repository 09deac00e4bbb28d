"""OneCard beside the certified peer, node-oidc-provider 9, on the same work (issue #16).

Both servers are pinned to the same core (``taskset``), one loaded at a time; wrk drives them from the other
core with one script (bench/wrk/checked.lua) that checks every response's status and body, so a fast wrong
answer counts as an error. Runs are interleaved A/B and the medians and their ratio are printed.

    .venv/bin/python -m bench.side_by_side [--seconds 10] [--runs 3] [--postgres] [--server S] [--full-path]

What each side does that the other does not: the peer's memory adapter stores nothing for a JWT access token
(it cannot be introspected or revoked). OneCard's access tokens are stateless JWTs too, and stay
introspectable and revocable on every node: introspection checks the signature and the revoked-jti list in
the shared store (Redis on PostgreSQL deployments), revocation adds the jti there. Both check the client's
secret on every request; OneCard caches the client's registration for 1 s (idp.fastpath.token). The
figures for the table (bench.table) come from ``figures(quick)``.
Needs Debian's wrk and Node.js; the peer is installed from bench/peer/package-lock.json (``npm ci``).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import jwt
import requests

from bench.bench_token import seed
from bench.figures import Figure as TableFigure
from bench.server import SERVERS, free_port, running_server
from idp.serve_cli import DEFAULT_SERVER  # what ``onecard serve`` ships

PEER_DIR = Path(__file__).resolve().parent / "peer"
WRK_SCRIPT = Path(__file__).resolve().parent / "wrk" / "checked.lua"
SERVER_CPU = 0
LOAD_CPU = 1
TOKEN_BODY = "grant_type=client_credentials&scope=realname%3Averify"
_BENCH_LINE = re.compile(r"^BENCH (.*)$", re.MULTILINE)


@dataclass(frozen=True)
class Side:
    name: str
    base_url: str
    client_id: str
    client_secret: str
    discovery_path: str = "/.well-known/openid-configuration"

    @property
    def basic(self) -> str:
        pair = f"{self.client_id}:{self.client_secret}".encode()
        return "Basic " + base64.b64encode(pair).decode()


@dataclass(frozen=True)
class Figure:
    name: str
    method: str
    path: str
    expect: str
    body: str = ""
    authenticated: bool = False
    # Where each side publishes it differs (the JWKS): the URL is read from the side's discovery document.
    discovery_key: str = ""

    def url(self, side: Side) -> str:
        if self.discovery_key:
            document = requests.get(side.base_url + side.discovery_path, timeout=5).json()
            return str(document[self.discovery_key])
        return side.base_url + self.path


FIGURES = (
    Figure("token client_credentials ES256", "POST", "/token", '"access_token"', TOKEN_BODY, True),
    Figure("discovery", "GET", "/.well-known/openid-configuration", '"issuer"'),
    Figure("jwks", "GET", "", '"keys"', discovery_key="jwks_uri"),
)
# Their keys in bench/recorded.json and their labels in the table (bench.figures).
FIGURE_KEYS = {FIGURES[0].name: "token", FIGURES[1].name: "discovery", FIGURES[2].name: "jwks"}
FIGURE_LABELS = {
    FIGURES[0].name: "token endpoint, client_credentials ES256 JWT",
    FIGURES[1].name: "discovery document",
    FIGURES[2].name: "JWKS",
}


@dataclass(frozen=True)
class Result:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


def install_peer() -> None:
    if not (PEER_DIR / "node_modules" / "oidc-provider").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=PEER_DIR, check=True)


@contextmanager
def peer_server(client_id: str, client_secret: str) -> Iterator[Side]:
    install_peer()
    port = free_port()
    process = subprocess.Popen(
        ["taskset", "-c", str(SERVER_CPU), "node", "server.js", str(port), client_id, client_secret],
        cwd=PEER_DIR,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "NODE_ENV": "production"},
    )
    try:
        base_url = f"http://127.0.0.1:{port}"
        _wait_until_up(base_url + "/.well-known/openid-configuration")
        yield Side("node-oidc-provider", base_url, client_id, client_secret)
    finally:
        process.terminate()
        process.wait(20)


def _wait_until_up(url: str) -> None:
    for _ in range(200):
        try:
            if requests.get(url, timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def check_token(side: Side) -> None:
    """One token, verified: ES256, signed by a key of the side's own JWKS (before any load is timed)."""
    answer = requests.post(
        side.base_url + "/token",
        data=TOKEN_BODY,
        headers={"Authorization": side.basic, "Content-Type": "application/x-www-form-urlencoded"},
        timeout=5,
    )
    answer.raise_for_status()
    token = answer.json()["access_token"]
    header = jwt.get_unverified_header(token)
    if header["alg"] != "ES256":
        raise RuntimeError(f"{side.name} signs access tokens with {header['alg']}, not ES256")
    jwks = Figure("jwks", "GET", "", "", discovery_key="jwks_uri")
    key = jwt.PyJWKClient(jwks.url(side)).get_signing_key_from_jwt(token)
    jwt.decode(token, key.key, algorithms=["ES256"], options={"verify_aud": False})


def run_wrk(side: Side, figure: Figure, *, seconds: float, connections: int) -> Result:
    env = {
        **os.environ,
        "BENCH_METHOD": figure.method,
        "BENCH_BODY": figure.body,
        "BENCH_AUTHORIZATION": side.basic if figure.authenticated else "",
        "BENCH_EXPECT": figure.expect,
    }
    command = [
        "taskset", "-c", str(LOAD_CPU), "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
        "-s", str(WRK_SCRIPT), figure.url(side),
    ]  # fmt: skip
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    match = _BENCH_LINE.search(output)
    if match is None:
        raise RuntimeError(f"wrk printed no figures: {output}")
    values = dict(item.split("=") for item in match.group(1).split())
    count = int(values["requests"])
    return Result(
        requests_per_second=count / float(values["seconds"]),
        p50_ms=float(values["p50_ms"]),
        p99_ms=float(values["p99_ms"]),
        errors=int(values["wrong"]) + int(values["transport_errors"]),
    )


@contextmanager
def postgres_and_redis() -> Iterator[dict[str, str]]:
    """A throwaway PostgreSQL database and Redis key prefix on this machine's servers."""
    import psycopg

    name = f"onecard_bench_{secrets.token_hex(4)}"
    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    try:
        yield {
            "ONECARD_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}",
            "ONECARD_REDIS_URL": "redis://127.0.0.1:6379/0",
            "ONECARD_REDIS_PREFIX": name,
        }
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@dataclass(frozen=True)
class Measurement:
    """Medians of interleaved runs, per figure name and side, and the OneCard worker's memory after them."""

    database: str
    server: str
    results: dict[tuple[str, str], list[Result]]
    rss_mib: float
    peer: bool  # False: the peer was not run (no Node.js here), OneCard's figures stand alone

    def median(self, figure: str, side: str) -> float | None:
        runs = self.results.get((figure, side))
        return statistics.median(r.requests_per_second for r in runs) if runs else None

    def errors(self, figure: str) -> int:
        return sum(r.errors for (name, _side), runs in self.results.items() if name == figure for r in runs)


def measure(
    *,
    postgres: bool,
    seconds: float,
    runs: int,
    connections: int = 16,
    threads: int = 8,
    server: str = DEFAULT_SERVER,
    with_peer: bool = True,
    figures: tuple[Figure, ...] = FIGURES,
    lean_path: bool = True,
) -> Measurement:
    """OneCard (and the peer, unless ``with_peer`` is False) under wrk, A/B then B/A; ``lean_path`` False
    measures the full path (Flask + Authlib) on the same requests."""
    with ExitStack() as stack:
        extra_env = stack.enter_context(postgres_and_redis()) if postgres else {}
        if not lean_path:
            extra_env = {**extra_env, "ONECARD_LEAN_PATH": "false"}
        running = stack.enter_context(
            running_server(seed, threads=threads, extra_env=extra_env, cpu=SERVER_CPU, server=server)
        )
        client = running.seeded
        sides = [Side("OneCard", running.base_url, client["client_id"], client["secret"])]
        if with_peer:
            sides.insert(0, stack.enter_context(peer_server("bench-portal", secrets.token_urlsafe(24))))
        for side in sides:
            check_token(side)
        results: dict[tuple[str, str], list[Result]] = {}
        for run in range(runs):
            # A/B then B/A: neither side always runs on the warmer machine.
            order = sides if run % 2 == 0 else sides[::-1]
            for figure in figures:
                for side in order:
                    result = run_wrk(side, figure, seconds=seconds, connections=connections)
                    results.setdefault((figure.name, side.name), []).append(result)
        rss = running.worker_rss_mib()
    database = "PostgreSQL + Redis" if postgres else "SQLite"
    return Measurement(database, server, results, rss, with_peer)


def figures(quick: bool, *, postgres: bool = False) -> list[TableFigure]:
    """The table's rows (bench.table): token on SQLite (and on PostgreSQL + Redis with ``postgres``),
    discovery and JWKS, each beside the peer where Node.js is here; the worker's memory after each load."""
    seconds, runs = (2.0, 1) if quick else (10.0, 3)
    with_peer = shutil.which("node") is not None and shutil.which("npm") is not None
    rows: list[TableFigure] = []
    measurements = [measure(postgres=False, seconds=seconds, runs=runs, with_peer=with_peer)]
    if postgres:
        measurements.append(
            measure(postgres=True, seconds=seconds, runs=runs, with_peer=with_peer, figures=FIGURES[:1])
        )
    note = "the peer's memory adapter keeps no JWT access token; OneCard's can be introspected and revoked"
    for measurement in measurements:
        backend = "postgres" if "PostgreSQL" in measurement.database else "sqlite"
        for figure in FIGURES:
            ours = measurement.median(figure.name, "OneCard")
            if ours is None:
                continue
            peer = measurement.median(figure.name, "node-oidc-provider")
            key = FIGURE_KEYS[figure.name] + (f".{backend}" if figure.name == FIGURES[0].name else "")
            label = FIGURE_LABELS[figure.name] + (
                f", {measurement.database}" if figure.name == FIGURES[0].name else ""
            )
            errors = measurement.errors(figure.name)
            rows.append(
                TableFigure(
                    key=key,
                    label=label,
                    value=ours,
                    unit="req/s",
                    peer=peer,
                    target=">= 1.0 x node-oidc-provider",
                    met=None if peer is None else (ours >= peer and errors == 0),
                    note=f"{measurement.server}, one worker; errors {errors}"
                    + (f"; {note}" if figure.name == FIGURES[0].name else ""),
                )
            )
        rows.append(
            TableFigure(
                key=f"rss.side_by_side.{backend}",
                label=f"OneCard worker RSS after the token, discovery and JWKS load, {measurement.database}",
                value=measurement.rss_mib,
                unit="MiB",
                better="lower",
                note="reported",
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--postgres", action="store_true", help="OneCard on PostgreSQL + Redis")
    parser.add_argument("--threads", type=int, default=8, help="OneCard's threads (gthread, granian)")
    parser.add_argument("--server", choices=SERVERS, default=DEFAULT_SERVER, help="OneCard's WSGI server")
    parser.add_argument(
        "--full-path", action="store_true", help="OneCard without its lean path (idp.fastpath)"
    )
    args = parser.parse_args()
    for tool in ("wrk", "node", "npm", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"side_by_side needs {tool} (Debian: apt-get install wrk nodejs npm util-linux)")
    measurement = measure(
        postgres=args.postgres,
        seconds=args.seconds,
        runs=args.runs,
        connections=args.connections,
        threads=args.threads,
        server=args.server,
        lean_path=not args.full_path,
    )
    path = "full path" if args.full_path else "lean path"
    print(
        f"server pinned to CPU {SERVER_CPU}, wrk (1 thread, {args.connections} connections) "
        f"on CPU {LOAD_CPU}; OneCard: one {args.server} worker, {path}, {measurement.database}; "
        f"medians of {args.runs} interleaved runs; worker RSS after the load {measurement.rss_mib:.1f} MiB"
    )
    print(
        f"{'figure':34s} {'peer req/s':>11s} {'OneCard req/s':>14s} {'ratio':>6s}  p99 peer / OneCard  errors"
    )
    summary: dict[str, dict[str, float]] = {}
    for figure in FIGURES:
        peer_runs = measurement.results[(figure.name, "node-oidc-provider")]
        ours = measurement.results[(figure.name, "OneCard")]
        peer_rps = statistics.median(r.requests_per_second for r in peer_runs)
        our_rps = statistics.median(r.requests_per_second for r in ours)
        peer_p99 = statistics.median(r.p99_ms for r in peer_runs)
        our_p99 = statistics.median(r.p99_ms for r in ours)
        print(
            f"{figure.name:34s} {peer_rps:11.0f} {our_rps:14.0f} {our_rps / peer_rps:6.2f}  "
            f"{peer_p99:6.1f} / {our_p99:6.1f} ms    {measurement.errors(figure.name)}"
        )
        summary[figure.name] = {"peer_rps": peer_rps, "onecard_rps": our_rps, "ratio": our_rps / peer_rps}
    print(json.dumps({"database": measurement.database, "server": args.server, "figures": summary}))


if __name__ == "__main__":
    main()
