"""Concurrent reuse of one refresh token across two server processes on PostgreSQL + Redis never deadlocks
(issue #9, item 6): of 20 parallel refreshes exactly one succeeds, none answers 5xx, and the family is
revoked — 20 rounds, 400 requests."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from idp.citizens.service import create_citizen
from idp.clients.service import ClientRegistration, create_client
from idp.grants.service import create_grant, issue_refresh_token
from idp.scopes import ACR_HIGH
from tests.support.nodes import migrated_deployment, running_nodes

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
ROUNDS = 20
PARALLEL = 20


@pytest.fixture
def deployment(postgres_url: str, redis_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    with migrated_deployment(postgres_url, redis_url, label="oc-refresh") as (svc, prefix):
        with svc.database.session() as session:
            citizen = create_citizen(session, svc.pii_cipher(), "张三", "11010519491231002X", now=svc.now())
            client, secret = create_client(
                session,
                ClientRegistration(
                    name="Portal", redirect_uris=("https://p.example.gov.cn/cb",), scope="openid"
                ),
                now=svc.now(),
            )
            tokens = []
            for _ in range(ROUNDS):
                grant = create_grant(
                    session,
                    client_id=client.client_id,
                    citizen_id=citizen.id,
                    sid=None,
                    scope="openid",
                    claims=None,
                    acr=ACR_HIGH,
                    amr=("sc", "pin", "mfa"),
                    auth_time=svc.now(),
                    now=svc.now(),
                )
                tokens.append(issue_refresh_token(session, grant.id, ttl=3600, now=svc.now()))
            seeded = {"client": (client.client_id, secret), "tokens": tokens}
        svc.database.dispose()  # the nodes hold their own connections
        with running_nodes(postgres_url, redis_url, prefix, log_dir=tmp_path) as nodes:
            yield {**seeded, "nodes": nodes, "logs": tmp_path}


def test_parallel_reuse_of_one_refresh_token_across_two_nodes(deployment: dict[str, Any]) -> None:
    nodes = deployment["nodes"]
    auth = deployment["client"]
    statuses: Counter[int] = Counter()

    def refresh(args: tuple[int, str]) -> requests.Response:
        index, token = args
        node = nodes[index % len(nodes)]
        return requests.post(
            f"{node.url}/token",
            auth=auth,
            data={"grant_type": "refresh_token", "refresh_token": token},
            timeout=30,
        )

    winners_per_round = []
    with ThreadPoolExecutor(PARALLEL) as pool:
        for token in deployment["tokens"]:
            answers = list(pool.map(refresh, [(index, token) for index in range(PARALLEL)]))
            statuses.update(answer.status_code for answer in answers)
            winners = [answer.json() for answer in answers if answer.status_code == 200]
            winners_per_round.append(len(winners))
            losers = [answer.json()["error"] for answer in answers if answer.status_code != 200]
            assert set(losers) <= {"invalid_grant"}, losers
            # The token was presented again after it was used: the whole family is revoked, the winner's
            # new refresh token included.
            for winner in winners:
                again = refresh((0, winner["refresh_token"]))
                assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    logs = "".join(path.read_text(errors="replace") for path in Path(deployment["logs"]).glob("node*.log"))
    print(f"\n{ROUNDS * PARALLEL} refreshes: {dict(statuses)}; successes per round: {winners_per_round}")
    assert not [status for status in statuses if status >= 500], logs[-3000:]
    assert winners_per_round == [1] * ROUNDS
    assert "deadlock" not in logs.lower()
