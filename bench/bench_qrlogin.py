"""QR scan-to-login round trips per second on ONE gunicorn worker (issue 5 bench, DESIGN.md §6, §10).

    .venv/bin/python bench/bench_qrlogin.py [--seconds 10] [--concurrency 1,4,8]

One round trip is everything a real scan-to-login costs the server, over HTTP:

    desktop  GET  /authorize                     → login transaction (303)
    desktop  GET  /login/<tx>/qr                 → channel + QR page (SVG of the channel URL, cookie)
    phone    GET  /wallet/qr-login/<channel>     → scanned (claims the channel)
    phone    POST …/match                        → the right number
    phone    POST …/options                      → a WebAuthn ceremony pinned on the channel
    phone    POST …/approve                      → ES256 assertion verified (py_webauthn), e-card checked,
                                                    decision written once, audit event
    desktop  GET  /login/<tx>/qr/<c>/status      → "approved" (the long-poll answers at once)
    desktop  POST …/collect                      → decision taken once, SSO session created
    desktop  GET  /authorize/resume/<tx>         → 302 to the portal with the authorization code

The passkey is a software authenticator (tests/support/wallet.SoftAuthenticator), one per client process,
each bound to its own citizen so concurrent assertions never race on one sign counter. The load runs in other
processes; every loop is bounded by time. SQLite store and database (the embedded default).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.server import bench_server

REDIRECT = "http://127.0.0.1:9/cb"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
_DATA = re.compile(r'data-([a-z-]+)="([^"]*)"')
_CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')
_CODE = re.compile(r'id="match-code"[^>]*>(\d\d)<')


def id_number(serial: int) -> str:
    """A valid GB 11643 number (check digit computed) for bench citizen ``serial``."""
    body = f"42010619800101{serial % 1000:03d}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]


def seed(app: Any, citizens: int = 32) -> dict[str, Any]:
    from cryptography.hazmat.primitives import serialization

    from idp.clients.service import ClientRegistration, create_client
    from tests.support.qrlogin import bind_soft_passkey, seed_citizen_with_ecard
    from tests.support.wallet import SoftAuthenticator

    svc = app.extensions["onecard"]
    issuer = svc.settings.issuer
    phones = []
    for index in range(citizens):
        citizen_id = seed_citizen_with_ecard(svc, name=f"测试{index}", id_number=id_number(index + 1))
        authenticator = SoftAuthenticator(rp_id="127.0.0.1", origin=issuer)
        bind_soft_passkey(svc, citizen_id, authenticator, issuer)
        key = authenticator.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        phones.append((key, authenticator.credential_id, authenticator.user_handle))
    with svc.database.session() as session:
        client, _secret = create_client(
            session,
            ClientRegistration(
                name="Bench portal", redirect_uris=(REDIRECT,), scope="openid", first_party=True
            ),
            now=svc.now(),
        )
        client_id = client.client_id
    return {"client_id": client_id, "phones": phones}


def round_trip(base: str, client_id: str, authenticator: Any) -> None:
    import requests

    desktop, phone = requests.Session(), requests.Session()
    start = desktop.get(
        f"{base}/authorize?response_type=code&client_id={client_id}&redirect_uri={REDIRECT}&scope=openid"
        f"&state=s&nonce=n&code_challenge={CHALLENGE}&code_challenge_method=S256",
        allow_redirects=False,
        timeout=30,
    )
    tx = start.headers["Location"].rstrip("/").rsplit("/", 1)[1]
    page = desktop.get(f"{base}/login/{tx}/qr", timeout=30)
    data = dict(_DATA.findall(page.text))
    code_match = _CODE.search(page.text)
    assert page.status_code == 200 and code_match, page.text[:200]
    channel = data["channel-url"]
    scanned = phone.get(channel, timeout=30)
    csrf_match = _CSRF.search(scanned.text)
    assert csrf_match, scanned.text[:200]
    csrf = csrf_match.group(1)
    matched = phone.post(
        channel + "/match",
        data={"csrf": csrf, "code": code_match.group(1)},
        allow_redirects=False,
        timeout=30,
    )
    assert matched.status_code == 303
    options = phone.post(channel + "/options", json={}, headers={"X-CSRF-Token": csrf}, timeout=30).json()
    approved = phone.post(
        channel + "/approve",
        data={
            "csrf": csrf,
            "ceremony": options["ceremony"],
            "credential": authenticator.get(options["options"]),
        },
        timeout=30,
    )
    assert 'data-outcome="approved"' in approved.text, approved.text[:300]
    state = desktop.get(urljoin(base, data["status-url"]), params={"known": "scanned"}, timeout=30).json()
    assert state["state"] == "approved", state
    collected = desktop.post(
        urljoin(base, data["collect-url"]), json={}, headers={"X-CSRF-Token": data["csrf"]}, timeout=30
    )
    assert collected.status_code == 200, collected.text
    final = desktop.get(urljoin(base, collected.json()["redirect_to"]), allow_redirects=False, timeout=30)
    assert final.headers["Location"].startswith(REDIRECT + "?code="), final.headers.get("Location")


def _worker(args: tuple[str, str, Any, float, Any]) -> list[float]:
    from cryptography.hazmat.primitives import serialization

    from tests.support.wallet import SoftAuthenticator

    base, client_id, phone, seconds, barrier = args
    key, credential_id, user_handle = phone
    authenticator = SoftAuthenticator(
        rp_id="127.0.0.1",
        origin=base,
        key=serialization.load_pem_private_key(key, None),  # type: ignore[arg-type]
        credential_id=credential_id,
        user_handle=user_handle,
        sign_count=int(time.time()),  # above whatever an earlier run left on the device
    )
    round_trip(base, client_id, authenticator)  # warm-up, not counted
    barrier.wait()
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        began = time.perf_counter()
        round_trip(base, client_id, authenticator)
        latencies.append(time.perf_counter() - began)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", default="1,4,8", help="comma-separated client process counts")
    args = parser.parse_args()
    levels = [int(level) for level in args.concurrency.split(",")]
    with bench_server(lambda app: seed(app, citizens=max(levels) * len(levels)), threads=8) as (base, seeded):
        print(
            f"QR scan-to-login on one gunicorn worker (gthread, 8 threads), SQLite; {args.seconds:.0f} s each"
        )
        print(f"{'clients':>8} {'logins/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'count':>7}")
        phones = list(seeded["phones"])
        ctx = mp.get_context("spawn")
        for level in levels:
            mine, phones = phones[:level], phones[level:]
            with ctx.Manager() as manager:
                barrier = manager.Barrier(level)
                with ctx.Pool(level) as pool:
                    results = pool.map(
                        _worker,
                        [(base, seeded["client_id"], phone, args.seconds, barrier) for phone in mine],
                    )
            latencies = sorted(value for result in results for value in result)
            count = len(latencies)
            p99 = latencies[min(count - 1, int(count * 0.99))] if count else 0.0
            print(
                f"{level:>8} {count / args.seconds:>10.1f} "
                f"{statistics.median(latencies) * 1000 if count else 0:>8.1f} {p99 * 1000:>8.1f} {count:>7}"
            )
        print("(9 HTTP requests per round trip; one ES256 verification, one audit event, one SSO session.)")


if __name__ == "__main__":
    main()
