"""Real-name verifications per second on ONE gunicorn worker (issue #5 bench).

``POST /api/v1/realname/verify`` with a client_credentials bearer token (ES256 JWT, verified per request):
name + ID number against a register of ``--citizens`` people — blind-index lookup, AES-GCM decryption of the
name, NFC comparison, and one hash-chained audit event appended per verification. The per-client rate limit
is lifted for the run (``ONECARD_RATE_LIMIT_PER_MINUTE``). The load generator runs in other processes.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import requests

from bench.loadgen import Request, run_load
from bench.server import bench_server

NAME, ID_NUMBER = "张三", "11010519491231002X"


def seed_with(citizens: int) -> Any:
    def seed(app: Any) -> dict[str, Any]:
        from idp.citizens.idnumber import check_character
        from idp.citizens.service import create_citizen
        from idp.clients.service import ClientRegistration, create_client

        svc = app.extensions["onecard"]
        with svc.database.session() as session:
            cipher = svc.pii_cipher()
            create_citizen(session, cipher, NAME, ID_NUMBER, now=svc.now())
            for index in range(citizens - 1):
                first17 = f"420106198001{index % 28 + 1:02d}{index % 1000:03d}"
                number = first17 + check_character(first17)
                if number != ID_NUMBER:
                    try:
                        create_citizen(session, cipher, f"市民{index}", number, now=svc.now())
                    except Exception:  # noqa: S112 - a duplicate number from the pattern; skip it
                        continue
            client, secret = create_client(
                session,
                ClientRegistration(name="Bench operator", kind="operator", scope="realname:verify"),
                now=svc.now(),
            )
            return {"client_id": client.client_id, "secret": secret}

    return seed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--citizens", type=int, default=1000)
    args = parser.parse_args()
    env = {"ONECARD_RATE_LIMIT_PER_MINUTE": str(10**9), "ONECARD_ACCESS_TOKEN_TTL": "3600"}
    with bench_server(seed_with(args.citizens), extra_env=env) as (base_url, client):
        token = requests.post(
            f"{base_url}/token",
            data={"grant_type": "client_credentials", "scope": "realname:verify"},
            auth=(client["client_id"], client["secret"]),
            timeout=10,
        ).json()["access_token"]
        headers = (("Authorization", f"Bearer {token}"), ("Content-Type", "application/json"))

        def verify(body: dict[str, str]) -> Request:
            return Request("POST", f"{base_url}/api/v1/realname/verify", json.dumps(body).encode(), headers)

        match = verify({"purpose": "bench", "name": NAME, "id_number": ID_NUMBER})
        no_match = verify({"purpose": "bench", "name": "李四", "id_number": ID_NUMBER})
        bad_checksum = verify({"purpose": "bench", "name": NAME, "id_number": ID_NUMBER[:17] + "0"})
        bad_checksum = Request(bad_checksum.method, bad_checksum.url, bad_checksum.body, headers, expect=400)
        figures = {
            "realname_match": run_load(match, concurrency=args.concurrency, seconds=args.seconds),
            "realname_no_match": run_load(no_match, concurrency=args.concurrency, seconds=args.seconds / 2),
            "realname_bad_checksum": run_load(
                bad_checksum, concurrency=args.concurrency, seconds=args.seconds / 2
            ),
        }
    print(f"one gunicorn worker (gthread), {args.citizens} citizens, load from {args.concurrency} processes")
    for name, result in figures.items():
        print(
            f"{name:24s} {result['rps']:8.0f} req/s  p50 {result['p50_ms']:6.1f} ms  "
            f"p99 {result['p99_ms']:6.1f} ms  errors {result['errors']}"
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
