"""A card challenge issued by one server process is answered at another, once (DESIGN.md §2, §8), on
PostgreSQL + Redis; skipped when they are unreachable, failed under CI=true (tests/fixtures/services.py)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session

from idp.cardlogin.challenge import origin_of
from idp.cards.issuance import issue_card
from idp.citizens.service import create_citizen
from idp.clients.service import ClientRegistration, create_client
from tests.support.cardlogin import PIN, VirtualCard
from tests.support.nodes import Node, migrated_deployment, running_nodes

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
REDIRECT = "https://portal.example.gov.cn/callback"


@pytest.fixture
def deployment(postgres_url: str, redis_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    with migrated_deployment(postgres_url, redis_url, label="oc-nodes") as (svc, prefix):
        with svc.database.session() as session:
            citizen = create_citizen(session, svc.pii_cipher(), "张三", "11010519491231002X", now=svc.now())
            card = issue_card(session, svc.keks, citizen_id=citizen.id, actor="test", now=svc.now(), pin=PIN)
            client, secret = create_client(
                session,
                ClientRegistration(name="Portal", redirect_uris=(REDIRECT,), scope="openid"),
                now=svc.now(),
            )
            seeded = {"card": VirtualCard(card.card_file), "client_id": client.client_id, "secret": secret}
        svc.database.dispose()  # the nodes hold their own connections
        with running_nodes(postgres_url, redis_url, prefix, log_dir=tmp_path) as nodes:
            yield {**seeded, "nodes": nodes}


def test_challenge_from_node_a_answered_at_node_b_once(deployment: dict[str, Any]) -> None:
    node_a, node_b = deployment["nodes"]
    assert isinstance(node_a, Node) and node_a.process.pid != node_b.process.pid
    portal = OAuth2Session(
        deployment["client_id"],
        deployment["secret"],
        scope="openid",
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
    )
    url, _ = portal.create_authorization_url(
        f"{node_a.url}/authorize", code_verifier=secrets.token_urlsafe(48)
    )
    http = requests.Session()
    response = http.get(url, allow_redirects=False, timeout=10)
    assert response.status_code in (302, 303), response.text
    login = urljoin(node_a.url, response.headers["Location"])
    tx = login.rstrip("/").rsplit("/", 1)[1]
    page = http.get(f"{node_a.url}/login/{tx}/card", timeout=10)
    csrf = re.search(r'data-csrf="([^"]+)"', page.text)
    assert csrf
    headers = {"X-CSRF-Token": csrf.group(1)}
    challenge = http.post(f"{node_a.url}/login/{tx}/card/challenge", json={}, headers=headers, timeout=10)
    assert challenge.status_code == 200
    value = challenge.json()["challenge"]
    token = deployment["card"].sign(origin_of(node_a.url), value)

    answered = http.post(
        f"{node_b.url}/login/{tx}/card/verify",
        json={"challenge": value, "token": token},
        headers=headers,
        timeout=10,
    )
    assert answered.status_code == 200, answered.text
    assert answered.json()["redirect_to"].startswith("/")
    again = http.post(
        f"{node_a.url}/login/{tx}/card/verify",
        json={"challenge": value, "token": token},
        headers=headers,
        timeout=10,
    )
    assert again.status_code == 400 and again.json()["error"] == "challenge_invalid"
    # The login node B completed carries on at node A (consent page or the portal).
    resumed = http.get(urljoin(node_a.url, answered.json()["redirect_to"]), allow_redirects=False, timeout=10)
    assert resumed.status_code in (302, 303)
