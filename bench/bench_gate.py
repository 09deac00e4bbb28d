"""E-card QR issuance and online gate verification on ONE gunicorn worker (issue 4 bench, DESIGN.md §10).

    .venv/bin/python bench/bench_gate.py [--seconds 10] [--concurrency 8] [--codes 30000]

Prints:
- QR issuance/s on the server path in process (e-card + card lookup, status, key ring, sign, base45), and
  with the SVG rendering the wallet page adds; then ``GET /wallet/api/code`` over HTTP (session cookie,
  e-card lookup, issuance, SVG) on one worker;
- online verifications/s with p50/p99 for ``POST /api/v1/gate/verify`` on one worker: distinct fresh codes
  (every request a full pass: Basic auth, signature, e-card status, global one-time ``add``, scan record),
  then the same code over and over (every request a ``replayed`` verdict).
Offline verification/s is bench/bench_qr.py's. The load generator runs in other processes; every loop is
bounded by time and count.

    .venv/bin/python bench/bench_gate.py --open-loop 500 [--seconds 10] [--postgres] [--server granian]
        [--profile stacks.txt]

runs only issue 16's figure: an open loop (bench/openloop.py) at a fixed offered rate against one worker
pinned to one core, the generator on the other, a fresh code per request, every answer checked to be a
pass; it prints the worker's CPU per verification, and with ``--profile`` py-spy's folded stacks of the
worker. ``figures(quick)`` is what ``bench.table`` calls (bench/README.md, "The gate").
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.figures import Figure
from bench.loadgen import Request, run_load
from bench.openloop import OpenLoopResult, run_open_loop
from bench.server import SERVERS, bench_server, descendants, running_server
from bench.side_by_side import LOAD_CPU, SERVER_CPU, postgres_and_redis
from idp.serve_cli import DEFAULT_SERVER  # what ``onecard serve`` ships

REGION = "420100"


def seed(app: Any) -> dict[str, Any]:
    import datetime as dt
    import secrets

    from idp.cards.model import Card
    from idp.citizens.service import create_citizen
    from idp.db import utc_from_timestamp
    from idp.scopes import ACR_SUBSTANTIAL
    from idp.sessions.service import Authentication, create_session
    from wallet.ecards.service import activate_ecard, get_current_ecard
    from wallet.qr.service import issue_ecard_code, qr_data_url
    from wallet.venues.service import VenueRegistration, create_venue

    svc = app.extensions["onecard"]
    now = svc.now()
    at = utc_from_timestamp(now)
    with svc.database.session() as session:
        citizen = create_citizen(session, svc.pii_cipher(), "张三", "11010519491231002X", now=now)
        card_id = secrets.token_hex(16).upper()
        session.add(
            Card(
                card_id=card_id,
                card_number="B00000001",
                citizen_id=citizen.id,
                region=REGION,
                status="active",
                issuer_kid="bench",
                certificate_serial="01",
                certificate_fingerprint=secrets.token_hex(32),
                issued_on=at.date(),
                expires_on=at.date() + dt.timedelta(days=3650),
                created_at=at,
                updated_at=at,
            )
        )
        session.flush()
        activate_ecard(session, citizen_id=citizen.id, card_id=card_id, now=now)
        venue = create_venue(
            session, VenueRegistration("Bench museum", "museum", ("valid_resident",)), actor="bench", now=now
        )
        _sso, cookie = create_session(
            session, Authentication(citizen.id, ACR_SUBSTANTIAL, ("hwk", "mfa")), ttl=3600, now=now
        )
    figures: dict[str, float] = {}
    with svc.database.session() as session:
        view = get_current_ecard(session, citizen.id)
        for label, render in (("issue_in_process", False), ("issue_and_svg_in_process", True)):
            done, started = 0, time.perf_counter()
            while time.perf_counter() - started < 2 and done < 50_000:
                code = issue_ecard_code(session, keyring=svc.keyring, cipher=None, view=view, now=svc.now())
                if render:
                    qr_data_url(code.text)
                done += 1
            figures[label] = done / (time.perf_counter() - started)
    return {
        "client_id": venue.venue.id,
        "secret": venue.client_secret,
        "cookie": cookie,
        "citizen_id": citizen.id,
        "issuance": figures,
        "database_url": svc.settings.database_url,
    }


def issue_codes(database_url: str, citizen_id: str, count: int) -> list[str]:
    """Fresh codes signed with the server's key (same database, same key ring), made before the load."""
    from idp.app import create_app
    from wallet.ecards.service import get_current_ecard
    from wallet.qr.service import issue_ecard_code

    app = create_app(env="test", database_url=database_url, plugins=[])
    svc = app.extensions["onecard"]
    with svc.database.session() as session:
        view = get_current_ecard(session, citizen_id)
        codes = [
            issue_ecard_code(session, keyring=svc.keyring, cipher=None, view=view, now=svc.now()).text
            for _ in range(count)
        ]
    svc.database.dispose()
    return codes


def _verify_worker(url: str, authorization: str, codes: list[str], seconds: float, out: Any) -> None:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    latencies: list[float] = []
    verdicts: dict[str, int] = {}
    errors = 0
    deadline = time.perf_counter() + seconds
    headers = {"Authorization": authorization, "Content-Type": "application/json"}
    for code in codes:
        if time.perf_counter() >= deadline:
            break
        body = json.dumps({"code": code, "gate_id": "bench"}).encode()
        started = time.perf_counter()
        try:
            connection.request("POST", parts.path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            errors += 1
            connection.close()
            connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
            continue
        latencies.append(time.perf_counter() - started)
        if response.status != 200:
            errors += 1
            continue
        verdict = json.loads(data)
        key = verdict.get("reason") or verdict["verdict"]
        verdicts[key] = verdicts.get(key, 0) + 1
    out.put((latencies, errors, verdicts))


def run_distinct(
    url: str, authorization: str, codes: list[str], *, concurrency: int, seconds: float
) -> dict[str, Any]:
    queue: Any = mp.Queue()
    shares = [codes[i::concurrency] for i in range(concurrency)]
    workers = [
        mp.Process(target=_verify_worker, args=(url, authorization, share, seconds, queue))
        for share in shares
    ]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=seconds + 60) for _ in workers]
    for worker in workers:
        worker.join(10)
    elapsed = time.perf_counter() - started
    latencies = sorted(lat for part, _e, _v in results for lat in part)
    verdicts: dict[str, int] = {}
    for _l, _e, part in results:
        for key, n in part.items():
            verdicts[key] = verdicts.get(key, 0) + n
    return {
        "requests": len(latencies),
        "errors": sum(e for _l, e, _v in results),
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else 0.0,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000 if latencies else 0.0,
        "verdicts": verdicts,
    }


GATE_RATE = 500  # req/s offered (issue 16)
GATE_P99_MS = 20.0


def _passed(status: int, body: bytes) -> bool:
    """A gate answer is right only if it is a pass: every code sent is fresh and valid."""
    return status == 200 and b'"verdict":"pass"' in body.replace(b" ", b"")


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU of a process so far (Linux /proc), 0 if unknown."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def gate_open_loop(
    *,
    postgres: bool,
    rate: float,
    seconds: float,
    threads: int = 8,
    server: str = DEFAULT_SERVER,
    profile: Path | None = None,
) -> OpenLoopResult:
    """Open loop on ``POST /api/v1/gate/verify``: one worker pinned to SERVER_CPU, the generator on LOAD_CPU,
    a distinct fresh code per request, every answer checked to be a pass. ``profile`` records a py-spy
    flame graph of the worker (``--format raw`` folded stacks) while the load runs."""
    with ExitStack() as stack:
        extra_env = stack.enter_context(postgres_and_redis()) if postgres else {}
        running = stack.enter_context(
            running_server(seed, threads=threads, extra_env=extra_env, cpu=SERVER_CPU, server=server)
        )
        base_url, seeded = running.base_url, running.seeded
        basic = base64.b64encode(f"{seeded['client_id']}:{seeded['secret']}".encode()).decode()
        count = int(rate * seconds) + int(rate)  # + one second of warm-up
        codes = issue_codes(seeded["database_url"], seeded["citizen_id"], count)
        bodies = [json.dumps({"code": c, "gate_id": "bench"}).encode() for c in codes]
        headers = (("Authorization", f"Basic {basic}"), ("Content-Type", "application/json"))
        url = f"{base_url}/api/v1/gate/verify"
        warm = run_open_loop(
            url,
            rate=rate,
            seconds=1,
            method="POST",
            headers=headers,
            bodies=bodies[-int(rate) :],
            check=_passed,
            cpus={LOAD_CPU},
        )
        if warm.errors:
            raise RuntimeError(f"the gate answered wrongly while warming up: {warm.error_samples}")
        spy = None
        pid = (descendants(running.process.pid) or [running.process.pid])[-1]  # the worker
        cpu_before = _cpu_seconds(pid)
        if profile is not None and pid is not None:
            spy = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "-p",
                    str(pid),
                    "-d",
                    str(int(seconds)),
                    "-r",
                    "200",
                    "-f",
                    "raw",
                    "-o",
                    str(profile),
                    "--nonblocking",
                    "--gil",  # only the thread holding the GIL: CPU, not threads waiting for it
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        result = run_open_loop(
            url,
            rate=rate,
            seconds=seconds,
            method="POST",
            headers=headers,
            bodies=bodies[: -int(rate)],
            check=_passed,
            cpus={LOAD_CPU},
        )
        cpu_ms = (_cpu_seconds(pid) - cpu_before) * 1000 / max(1, result.requests)
        if spy is not None:
            spy.wait(seconds + 30)
        print(f"server CPU per verification: {cpu_ms:.2f} ms (worker {pid}, user + system)", file=sys.stderr)
        return result


def figures(quick: bool) -> list[Figure]:
    """Issue 16's gate figures: the open loop at 500 req/s offered on SQLite and on PostgreSQL + Redis, and
    the offline verifier against raw Ed25519 (bench.bench_qr)."""
    from bench.bench_qr import figures as offline_figures

    seconds = 3.0 if quick else 15.0
    out = []
    for postgres, key, name in ((False, "sqlite", "SQLite"), (True, "pg_redis", "PostgreSQL + Redis")):
        result = gate_open_loop(postgres=postgres, rate=GATE_RATE, seconds=seconds)
        met = result.errors == 0 and result.p99_ms <= GATE_P99_MS
        out.append(
            Figure(
                key=f"gate.open_loop.{key}.p99",
                label=f"online gate verify, open loop {GATE_RATE} req/s offered, one worker, {name}",
                value=result.p99_ms,
                unit="ms p99",
                better="lower",
                target=f"p99 <= {GATE_P99_MS:g} ms, zero errors",
                met=met,
                note=(
                    f"achieved {result.achieved_rps:.0f}/s, errors {result.errors}, "
                    f"p50 {result.p50_ms:.1f} ms, max {result.max_ms:.1f} ms, "
                    f"generator send lag p99 {result.schedule_lag_ms:.1f} ms"
                ),
            )
        )
    return out + offline_figures(quick)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--codes", type=int, default=30_000, help="distinct codes made for the pass run")
    parser.add_argument(
        "--open-loop",
        type=float,
        default=None,
        metavar="RATE",
        help="only the open loop at RATE req/s offered (server pinned, load on the other core)",
    )
    parser.add_argument("--postgres", action="store_true", help="the open loop on PostgreSQL + Redis")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy folded stacks of the open loop")
    parser.add_argument("--server", choices=SERVERS, default=DEFAULT_SERVER, help="the WSGI server")
    args = parser.parse_args()
    if args.open_loop is not None:
        result = gate_open_loop(
            postgres=args.postgres,
            rate=args.open_loop,
            seconds=args.seconds,
            server=args.server,
            profile=args.profile,
        )
        print(result.line())
        print(json.dumps(asdict(result)))
        return
    with bench_server(seed) as (base_url, seeded):
        basic = base64.b64encode(f"{seeded['client_id']}:{seeded['secret']}".encode()).decode()
        authorization = f"Basic {basic}"
        verify_url = f"{base_url}/api/v1/gate/verify"
        codes = issue_codes(seeded["database_url"], seeded["citizen_id"], args.codes)
        figures: dict[str, Any] = {
            "verify_distinct_codes": run_distinct(
                verify_url, authorization, codes, concurrency=args.concurrency, seconds=args.seconds
            ),
            "verify_replayed_code": run_load(
                Request(
                    "POST",
                    verify_url,
                    json.dumps({"code": codes[0]}).encode(),
                    (("Authorization", authorization), ("Content-Type", "application/json")),
                ),
                concurrency=args.concurrency,
                seconds=args.seconds / 2,
            ),
            "wallet_api_code": run_load(
                Request("GET", f"{base_url}/wallet/api/code", b"", (("Cookie", f"ocss={seeded['cookie']}"),)),
                concurrency=args.concurrency,
                seconds=args.seconds / 2,
            ),
        }
    print("QR issuance in process (one core):")
    for name, rate in seeded["issuance"].items():
        print(f"  {name:28s} {rate:8.0f} /s")
    print("one gunicorn worker (gthread), SQLite, load from", args.concurrency, "client processes")
    for name, result in figures.items():
        extra = f"  verdicts {result['verdicts']}" if "verdicts" in result else ""
        print(
            f"  {name:28s} {result['rps']:8.0f} req/s  p50 {result['p50_ms']:6.1f} ms  "
            f"p99 {result['p99_ms']:6.1f} ms  errors {result['errors']}{extra}"
        )
    print(json.dumps({"issuance": seeded["issuance"], **figures}))


if __name__ == "__main__":
    main()
