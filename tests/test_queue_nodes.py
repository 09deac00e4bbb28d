"""Queue numbers across two real server processes on one PostgreSQL + Redis (issue 13 item 4): citizens scan
their e-card codes at the hall's scanner concurrently, half through each node, and no number is given twice;
one citizen's two codes on two nodes at once give one number; two counters on two nodes calling at once, each
with its own registered device's token (private_key_jwt at /token of its node), never call the same number."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from halls.plugin import init_app as install_halls
from halls.register.service import add_counter, add_service, create_hall, register_counter_device
from tests.support.counter_device import CounterDevice
from tests.support.idnumbers import random_id_numbers
from tests.support.nodes import migrated_deployment, running_nodes
from tests.support.qrlogin import seed_citizen_with_ecard
from wallet.ecards.service import find_current_ecard
from wallet.plugin import init_app as install_wallet
from wallet.qr.service import issue_ecard_code

CITIZENS = 24
NAMES = ("王芳", "李娜", "张伟", "刘洋")


def fresh_code(svc: Any, citizen_id: str) -> str:
    """A real ESSC1 code of the citizen's e-card, signed with the deployment's QR key (as the wallet does)."""
    with svc.database.session() as session:
        view = find_current_ecard(session, citizen_id)
        assert view is not None
        return issue_ecard_code(session, keyring=svc.keyring, cipher=None, view=view, now=svc.now()).text


@pytest.mark.postgres
@pytest.mark.redis
def test_numbers_are_given_once_across_two_nodes(postgres_url: str, redis_url: str, tmp_path: Path) -> None:
    with migrated_deployment(
        postgres_url, redis_url, label="oc-queue-nodes", plugins=[install_wallet, install_halls]
    ) as (svc, prefix):
        numbers = random_id_numbers(CITIZENS + 1, seed=13)
        citizens = [
            seed_citizen_with_ecard(svc, name=NAMES[i % len(NAMES)], id_number=numbers[i][0])
            for i in range(CITIZENS + 1)
        ]
        with svc.database.session() as session:
            created = create_hall(session, name="市民之家", hall_id="civic", actor="test", now=svc.now())
            hall = created.hall
            add_service(
                session, hall, code="card", name="社保卡补换", prefix="A", actor="test", now=svc.now()
            )
            devices = [CounterDevice(), CounterDevice()]
            for code, device in zip(("w1", "w2"), devices, strict=True):
                add_counter(
                    session, hall, code=code, name=code, services=["card"], actor="test", now=svc.now()
                )
                device.client_id = register_counter_device(
                    session, hall, code, jwks=device.jwks, actor="test", now=svc.now()
                ).client_id
            scanner = (created.scanner_client_id, created.scanner_client_secret)
        codes = [fresh_code(svc, c) for c in citizens[:CITIZENS]]
        twice = citizens[CITIZENS]
        twin_codes = [fresh_code(svc, twice), fresh_code(svc, twice)]
        with running_nodes(postgres_url, redis_url, prefix, log_dir=tmp_path) as nodes:
            urls = [node.url for node in nodes]

            def scan(index_and_code: tuple[int, str]) -> requests.Response:
                index, code = index_and_code
                return requests.post(
                    urls[index % 2] + "/api/v1/halls/scan",
                    json={"code": code, "service": "card", "scanner_id": f"door-{index % 2}"},
                    auth=scanner,
                    timeout=30,
                )

            with ThreadPoolExecutor(max_workers=8) as pool:
                answers = list(pool.map(scan, enumerate(codes)))
            assert [a.json()["result"] for a in answers] == ["taken"] * CITIZENS, [a.text for a in answers][
                :3
            ]
            given = sorted(a.json()["ticket"]["number"] for a in answers)
            assert given == [f"A{n:03d}" for n in range(1, CITIZENS + 1)]  # each once, none skipped

            # One citizen, two codes, two nodes, at the same moment: one number, one already_queued.
            with ThreadPoolExecutor(max_workers=2) as pool:
                pair = list(pool.map(scan, enumerate(twin_codes)))
            outcomes = sorted(a.json()["result"] for a in pair)
            assert outcomes == ["already_queued", "taken"], [a.text for a in pair]
            assert len({a.json()["ticket"]["number"] for a in pair}) == 1  # the one number, shown twice

            # Two counters on two nodes calling at once, again and again: never the same number twice.
            # Each device gets its token at its own node; the assertion's audience is the one issuer (node A).
            headers = [device.headers(url, issuer=urls[0]) for device, url in zip(devices, urls, strict=True)]
            other = requests.post(
                f"{urls[1]}/api/v1/halls/civic/counters/w1/call-next", headers=headers[1], timeout=30
            )
            assert other.status_code == 403 and other.json()["error"] == "counter_forbidden"

            def call(counter: int) -> list[str]:
                called: list[str] = []
                base = f"{urls[counter]}/api/v1/halls/civic/counters/w{counter + 1}"
                while True:
                    answer = requests.post(base + "/call-next", headers=headers[counter], timeout=30)
                    if answer.status_code == 204:
                        return called
                    assert answer.status_code == 200, answer.text
                    called.append(answer.json()["number"])
                    finished = requests.post(
                        base + "/finish", json={"status": "served"}, headers=headers[counter], timeout=30
                    )
                    assert finished.status_code == 200, finished.text

            with ThreadPoolExecutor(max_workers=2) as pool:
                first, second = pool.map(call, [0, 1])
            assert not set(first) & set(second)
            assert sorted(first + second) == [f"A{n:03d}" for n in range(1, CITIZENS + 2)]
            board = requests.get(urls[1] + "/api/v1/halls/civic/board", timeout=10).json()
            assert board == {"called": [], "waiting": {}}
