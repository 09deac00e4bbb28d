"""Token endpoint and discovery/JWKS throughput on ONE gunicorn worker (issue #2 bench).

client_credentials with client_secret_basic, JWT (ES256) access tokens; the load generator runs in other
processes. Reference: Keycloak's sizing guide, 120 client-credentials grants/s per vCPU.
"""

from __future__ import annotations

import argparse
import base64
import json
from typing import Any

from bench.loadgen import Request, run_load
from bench.server import bench_server


def seed(app: Any) -> dict[str, Any]:
    from idp.clients.service import ClientRegistration, create_client

    svc = app.extensions["onecard"]
    with svc.database.session() as session:
        client, secret = create_client(
            session,
            ClientRegistration(name="Bench operator", kind="operator", scope="realname:verify"),
            now=svc.now(),
        )
        return {"client_id": client.client_id, "secret": secret}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with bench_server(seed) as (base_url, client):
        basic = base64.b64encode(f"{client['client_id']}:{client['secret']}".encode()).decode()
        token = Request(
            "POST",
            f"{base_url}/token",
            b"grant_type=client_credentials&scope=realname%3Averify",
            (("Authorization", f"Basic {basic}"), ("Content-Type", "application/x-www-form-urlencoded")),
        )
        figures = {
            "token_client_credentials": run_load(token, concurrency=args.concurrency, seconds=args.seconds),
            "discovery": run_load(
                Request("GET", f"{base_url}/.well-known/openid-configuration"),
                concurrency=args.concurrency,
                seconds=args.seconds / 2,
            ),
            "jwks": run_load(
                Request("GET", f"{base_url}/jwks.json"),
                concurrency=args.concurrency,
                seconds=args.seconds / 2,
            ),
        }
    print("one gunicorn worker (gthread), load from", args.concurrency, "client processes")
    for name, result in figures.items():
        print(
            f"{name:28s} {result['rps']:8.0f} req/s  p50 {result['p50_ms']:6.1f} ms  "
            f"p99 {result['p99_ms']:6.1f} ms  errors {result['errors']}"
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
