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
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.loadgen import Request, run_load
from bench.server import bench_server

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--codes", type=int, default=30_000, help="distinct codes made for the pass run")
    args = parser.parse_args()
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
