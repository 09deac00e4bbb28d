"""Full card logins per second against ONE gunicorn worker (issue #3 bench; DESIGN.md §10).

One login = GET /authorize → card page (CSRF) → POST challenge → the card signs (bridge side simulated
in-process: the bridge's card protocol over VirtualTerminal + the emulator, ECDSA P-256) → POST verify (the
server's real checks: challenge take, chain to the region CA, validity, signature, register status, audit
event, SSO session) → /resume → code → POST /token (PKCE, ID token signed). First-party client: no consent
page. Load from threads in this process; the signing time is reported separately. APDU round trips per login
over the real virtual reader are in bench/bench_apdu.py.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import threading
import time
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

from bench.server import bench_server

REDIRECT = "https://portal.example.gov.cn/callback"
PIN = "123456"


def seed(app: Any, *, cards: int) -> dict[str, Any]:
    from idp.cards.issuance import issue_card
    from idp.citizens.idnumber import check_character
    from idp.citizens.service import create_citizen
    from idp.clients.service import ClientRegistration, create_client
    from sdk.card_file import dump_card_file

    svc = app.extensions["onecard"]
    files = []
    with svc.database.session() as session:
        client, secret = create_client(
            session,
            ClientRegistration(
                name="Bench portal", redirect_uris=(REDIRECT,), scope="openid", first_party=True
            ),
            now=svc.now(),
        )
        for index in range(cards):
            first17 = f"42010619800101{index:03d}"
            citizen = create_citizen(
                session, svc.pii_cipher(), f"测试{index}", first17 + check_character(first17), now=svc.now()
            )
            issued = issue_card(
                session,
                svc.keks,
                citizen_id=citizen.id,
                actor="bench",
                now=svc.now(),
                pin=PIN,
                pii=svc.pii_cipher(),
            )
            files.append(dump_card_file(issued.card_file).decode())
    return {"client_id": client.client_id, "secret": secret, "cards": files}


class Worker(threading.Thread):
    def __init__(self, base_url: str, seeded: dict[str, Any], card_json: str, stop_at: float) -> None:
        super().__init__(daemon=True)
        from sdk.card_file import parse_card_file
        from tests.support.cardlogin import VirtualCard

        self.base_url = base_url
        self.seeded = seeded
        self.card = VirtualCard(parse_card_file(card_json.encode()))
        self.stop_at = stop_at
        self.latencies: list[float] = []
        self.sign_times: list[float] = []
        self.errors = 0

    def login(self) -> None:
        base = self.base_url
        http = requests.Session()
        portal = OAuth2Session(
            self.seeded["client_id"],
            self.seeded["secret"],
            scope="openid",
            redirect_uri=REDIRECT,
            code_challenge_method="S256",
        )
        verifier = generate_token(48)
        url, _ = portal.create_authorization_url(
            f"{base}/authorize", code_verifier=verifier, nonce=generate_token(8)
        )
        response = http.get(url, allow_redirects=False, timeout=30)
        tx = urljoin(base, response.headers["Location"]).rstrip("/").rsplit("/", 1)[1]
        page = http.get(f"{base}/login/{tx}/card", timeout=30).text
        match = re.search(r'data-csrf="([^"]+)"', page)
        assert match
        headers = {"X-CSRF-Token": match.group(1)}
        challenge = http.post(
            f"{base}/login/{tx}/card/challenge", json={}, headers=headers, timeout=30
        ).json()
        started = time.perf_counter()
        token = self.card.sign(base, challenge["challenge"], PIN)
        self.sign_times.append(time.perf_counter() - started)
        verified = http.post(
            f"{base}/login/{tx}/card/verify",
            json={"challenge": challenge["challenge"], "token": token},
            headers=headers,
            timeout=30,
        )
        verified.raise_for_status()
        location = urljoin(base, verified.json()["redirect_to"])
        for _ in range(5):
            response = http.get(location, allow_redirects=False, timeout=30)
            location = urljoin(base, response.headers["Location"])
            if not location.startswith(base):
                break
        code = parse_qs(urlsplit(location).query)["code"][0]
        tokens = requests.post(
            f"{base}/token",
            auth=(self.seeded["client_id"], self.seeded["secret"]),
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT,
                "code_verifier": verifier,
            },
            timeout=30,
        )
        tokens.raise_for_status()
        assert "id_token" in tokens.json()

    def run(self) -> None:
        while time.monotonic() < self.stop_at:
            started = time.perf_counter()
            try:
                self.login()
            except Exception:  # counted, not fatal: the figure is about throughput
                self.errors += 1
                continue
            self.latencies.append(time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    with bench_server(lambda app: seed(app, cards=args.concurrency)) as (base_url, seeded):
        # One warm-up login (key ring, trust list, connection pools).
        Worker(base_url, seeded, seeded["cards"][0], 0).login()
        started = time.monotonic()
        workers = [Worker(base_url, seeded, card, started + args.seconds) for card in seeded["cards"]]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed = time.monotonic() - started
    latencies = sorted(x for w in workers for x in w.latencies)
    signs = [x for w in workers for x in w.sign_times]
    figures = {
        "card_logins": len(latencies),
        "logins_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 1) if latencies else None,
        "p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1) if latencies else None,
        "client_sign_ms_p50": round(1000 * statistics.median(signs), 2) if signs else None,
        "errors": sum(w.errors for w in workers),
        "http_requests_per_login": 7,
    }
    print(f"one gunicorn worker (gthread, SQLite), {args.concurrency} concurrent browsers, {elapsed:.1f}s")
    print(
        f"full card logins: {figures['logins_per_s']}/s  "
        f"p50 {figures['p50_ms']} ms  p99 {figures['p99_ms']} ms  "
        f"(bridge-side signing {figures['client_sign_ms_p50']} ms p50, errors {figures['errors']})"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
