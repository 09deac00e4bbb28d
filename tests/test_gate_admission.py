"""The gate at issue 16's load: one store round trip per verification (generation check, the venue's own
rate limit, one-time use) on every store; the venue's rate limit as a setting (admin API, CLI), enforced at
once on every node; the venue cache invalidated across two apps on one database when a venue's limit or
policy changes or it is removed; and the scans' group commit — a failed commit answers no verdict and
leaves no row."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import func, select, text

from idp import dbadmin
from idp.cli import cli
from idp.db import Base, Database
from idp.stores.base import EphemeralStore
from sdk.gate import GateAuthError, OnlineGateClient
from sdk.qr_token import QrTokenReason
from tests.fixtures.services import StoreBackend
from tests.support.wallet import LiveWallet, WalletUser, running_wallet
from wallet.scans.admission import (
    GATE_CTI_NAMESPACE,
    RATE_NAMESPACE,
    StepwiseAdmission,
    create_admission,
)
from wallet.scans.batch import ScanBatch
from wallet.scans.errors import ScanNotRecordedError
from wallet.scans.model import ScanRecord
from wallet.scans.service import GateDecision, scan_row
from wallet.venues.cache import bump_generation, read_generation
from wallet.venues.model import Venue

NOW = 1_767_225_600.0
VERIFY = "/api/v1/gate/verify"


# --- admission: one round trip, on every store ----------------------------------------------------------


@pytest.mark.parametrize("stepwise", [False, True], ids=["one-round-trip", "stepwise"])
def test_admission_counts_uses_once_and_checks_the_generation(
    store_backend: StoreBackend, stepwise: bool
) -> None:
    store: EphemeralStore = store_backend.store
    admission = StepwiseAdmission(store) if stepwise else create_admission(store)
    generation = read_generation(store, now=NOW)

    def admit(cti: str | None, *, limit: int = 3, gen: bytes = generation, at: float = NOW) -> Any:
        return admission.admit(venue_id="vn_a", limit=limit, generation=gen, cti=cti, cti_ttl=30, now=at)

    assert admit("c1").first_use
    replayed = admit("c1")
    assert replayed.allowed and not replayed.first_use and not replayed.stale
    assert admit("c2").first_use
    assert store.get(GATE_CTI_NAMESPACE, "c1", now=NOW) == b"1"  # the store's own format: use_once sees it
    over = admit("c3")  # the fourth in the window
    assert not over.allowed and over.retry_after == 60 and not over.first_use
    assert store.get(GATE_CTI_NAMESPACE, "c3", now=NOW) is None  # refused: the code keeps its one use
    assert admit("c3", at=NOW + 61).first_use  # a new window
    bump_generation(store, now=NOW)
    stale = admit("c4", at=NOW + 62)
    assert stale.stale and not stale.first_use
    assert store.get(GATE_CTI_NAMESPACE, "c4", now=NOW + 62) is None  # nothing used ...
    fresh = read_generation(store, now=NOW + 62)
    assert admit("c4", gen=fresh, at=NOW + 62).first_use  # ... nor counted: 2nd of the window passes
    assert admit(None, gen=fresh, at=NOW + 62).allowed
    assert not admit(None, gen=fresh, at=NOW + 62).allowed
    assert store.incr(RATE_NAMESPACE, "vn_a", window=60, now=NOW + 62) == 5  # the counter RateLimiter reads


# --- the rate limit is a venue setting ------------------------------------------------------------------


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveWallet]:
    with running_wallet(f"sqlite:///{tmp_path}/wallet.sqlite3") as server:
        server.add_card("zhang")
        yield server


@pytest.fixture
def user(live: LiveWallet) -> WalletUser:
    citizen = WalletUser(live, "zhang")
    citizen.set_up()
    return citizen


def _verify(base_url: str, venue: tuple[str, str], code: str) -> requests.Response:
    return requests.post(base_url + VERIFY, json={"code": code}, auth=venue, timeout=10)


def test_venue_rate_is_a_setting_enforced_and_raised_at_once(live: LiveWallet, user: WalletUser) -> None:
    admin = live.service_token_headers(name="Ops")
    url = live.base_url + "/api/v1/admin/venues"
    created = requests.post(
        url, json={"name": "Metro", "category": "transit", "verify_per_minute": 2}, headers=admin, timeout=10
    )
    assert created.status_code == 201 and created.json()["verify_per_minute"] == 2, created.text
    venue = (created.json()["client_id"], created.json()["client_secret"])
    assert all(_verify(live.base_url, venue, user.code()["text"]).status_code == 200 for _ in range(2))
    third = user.code()["text"]
    refused = _verify(live.base_url, venue, third)
    assert refused.status_code == 429 and refused.json()["error"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    with live.services.database.session() as session:  # a refusal is no scan
        assert session.scalar(select(func.count()).select_from(ScanRecord)) == 2
    for bad in (
        {"verify_per_minute": 0},
        {"verify_per_minute": "9"},
        {"verify_per_minute": True},
        {},
        {"x": 1},
    ):
        answer = requests.patch(f"{url}/{venue[0]}", json=bad, headers=admin, timeout=10)
        assert answer.status_code == 400 and answer.json()["error"] in ("invalid_venue", "invalid_request"), (
            bad
        )
    assert (
        requests.patch(f"{url}/nope", json={"verify_per_minute": 5}, headers=admin, timeout=10).status_code
        == 404
    )
    raised = requests.patch(f"{url}/{venue[0]}", json={"verify_per_minute": 5}, headers=admin, timeout=10)
    assert raised.status_code == 200 and raised.json()["verify_per_minute"] == 5
    # The refused code was not used up, and the new limit holds at once (the cache was invalidated).
    assert _verify(live.base_url, venue, third).json()["verdict"] == "pass"


def test_cli_sets_the_rate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    monkeypatch.setenv("ONECARD_DATABASE_URL", url)
    monkeypatch.setenv("ONECARD_ENV", "test")
    dbadmin.upgrade(url)
    runner = CliRunner()
    added = runner.invoke(
        cli, ["venues", "add", "--name", "Metro", "--category", "transit", "--id", "metro-1"]
    )
    assert added.exit_code == 0, added.output
    shown = runner.invoke(cli, ["venues", "show", "metro-1", "--json"])
    assert json.loads(shown.stdout)["verify_per_minute"] == 12_000  # the old built-in figure is the default
    assert runner.invoke(cli, ["venues", "rate", "metro-1", "600000"]).exit_code == 0
    shown = runner.invoke(cli, ["venues", "show", "metro-1", "--json"])
    assert json.loads(shown.stdout)["verify_per_minute"] == 600_000
    refused = runner.invoke(cli, ["venues", "rate", "metro-1", "0"])
    assert (
        refused.exit_code == 1 and "verify_per_minute" in refused.output and "Traceback" not in refused.output
    )


# --- the venue cache across two apps on one database ----------------------------------------------------


def _two_nodes_see_every_venue_change(node_a: LiveWallet, node_b: LiveWallet) -> None:
    node_a.add_card("zhang")
    user = WalletUser(node_a, "zhang")
    user.set_up()
    venue = node_a.add_venue("Museum", "museum", ("valid_resident",), verify_per_minute=1)
    at_b = OnlineGateClient(node_b.base_url, *venue)
    assert at_b.verify(user.code()["text"]).claims == {"valid_resident": True}  # B caches the venue
    assert _verify(node_b.base_url, venue, user.code()["text"]).status_code == 429
    # The limit changes at A: B enforces the new one at its next verification.
    with node_a.services.database.session() as session:
        session.get(Venue, venue[0]).verify_per_minute = 100  # type: ignore[union-attr]
    assert at_b.verify(user.code()["text"]).handle
    # The policy changes at A: B's next pass tells exactly the new claims.
    with node_a.services.database.session() as session:
        session.get(Venue, venue[0]).claims = ["valid_resident", "region"]  # type: ignore[union-attr]
    assert at_b.verify(user.code()["text"]).claims == {"valid_resident": True, "region": "420100"}
    # Removed at A: B refuses its credentials at once, with no verdict and no scan.
    with node_b.services.database.session() as session:
        scans = session.scalar(select(func.count()).select_from(ScanRecord))
    admin = node_a.service_token_headers(name="Ops")
    removed = requests.delete(f"{node_a.base_url}/api/v1/admin/venues/{venue[0]}", headers=admin, timeout=10)
    assert removed.status_code == 204
    with pytest.raises(GateAuthError) as refused:
        at_b.verify(user.code()["text"])
    assert refused.value.http_status == 401
    with node_b.services.database.session() as session:
        assert session.scalar(select(func.count()).select_from(ScanRecord)) == scans


def test_venue_cache_is_invalidated_across_nodes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared.sqlite3"
    with running_wallet(url) as node_a, running_wallet(url, create_schema=False, citizens=False) as node_b:
        _two_nodes_see_every_venue_change(node_a, node_b)


@pytest.mark.postgres
@pytest.mark.redis
def test_venue_cache_is_invalidated_across_nodes_on_postgres_and_redis(
    postgres_url: str, redis_url: str
) -> None:
    prefix = "oc-gate-" + secrets.token_hex(4)
    try:
        with (
            running_wallet(postgres_url, redis_url=redis_url, redis_prefix=prefix) as node_a,
            running_wallet(
                postgres_url, redis_url=redis_url, redis_prefix=prefix, create_schema=False, citizens=False
            ) as node_b,
        ):
            _two_nodes_see_every_venue_change(node_a, node_b)
    finally:
        database = Database(postgres_url)
        Base.metadata.drop_all(database.engine)
        database.dispose()
        client = __import__("redis").Redis.from_url(redis_url)
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)


# --- scans: group commit, never a verdict without its row -----------------------------------------------

_FAIL_SCANS = (
    "CREATE TRIGGER fail_scans BEFORE INSERT ON wallet_scans BEGIN SELECT RAISE(ABORT, 'disk full'); END"
)


def _scan_count(database: Database) -> int:
    with database.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ScanRecord)).scalar_one())


def test_a_failed_batch_commit_answers_no_verdict_and_leaves_no_row(
    live: LiveWallet, user: WalletUser
) -> None:
    venue = live.add_venue("Museum", "museum", ("valid_resident",))
    database = live.services.database
    with database.engine.begin() as conn:
        conn.execute(text(_FAIL_SCANS))  # the database refuses the insert, as a full disk would
    code = user.code()["text"]
    answer = _verify(live.base_url, venue, code)
    assert answer.status_code == 503 and answer.json()["error"] == "temporarily_unavailable"
    assert "verdict" not in answer.json() and answer.headers["Cache-Control"] == "no-store"
    assert _scan_count(database) == 0
    with database.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER fail_scans"))
    # The code's one use went with the failed answer (the store is not the database): a fresh code passes.
    assert OnlineGateClient(live.base_url, *venue).verify(user.code()["text"]).handle
    assert _scan_count(database) == 1


def test_every_waiter_of_a_failed_batch_is_refused_and_a_good_batch_keeps_every_row(live: LiveWallet) -> None:
    venue_id, _secret = live.add_venue("Museum", "museum")
    database = live.services.database
    batch = ScanBatch(database.engine)

    def row() -> dict[str, Any]:
        return scan_row(
            Venue(id=venue_id, category="museum", claims=[], regions=[]),
            GateDecision(QrTokenReason.REPLAYED, None),
            gate_id="g",
            now=NOW,
        )

    def record_all(n: int) -> list[BaseException | None]:
        outcomes: list[BaseException | None] = [None] * n
        start = threading.Barrier(n)

        def one(i: int) -> None:
            start.wait()
            try:
                batch.record(row())
            except ScanNotRecordedError as exc:
                outcomes[i] = exc

        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        return outcomes

    with database.engine.begin() as conn:
        conn.execute(text(_FAIL_SCANS))
    assert all(isinstance(o, ScanNotRecordedError) for o in record_all(8))
    assert _scan_count(database) == 0
    with database.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER fail_scans"))
    assert record_all(8) == [None] * 8
    assert _scan_count(database) == 8


def test_replayed_and_refused_codes_are_recorded_through_the_batch(
    live: LiveWallet, user: WalletUser
) -> None:
    venue = live.add_venue("Museum", "museum", ("valid_resident",))
    gate = OnlineGateClient(live.base_url, *venue)
    code = user.code()["text"]
    assert gate.verify(code).handle
    replayed = _verify(live.base_url, venue, code).json()
    assert replayed == {"verdict": "reject", "reason": "replayed"}
    garbage = _verify(live.base_url, venue, "ESSC1:garbage").json()
    assert garbage["verdict"] == "reject"
    with live.services.database.session() as session:
        results = sorted(session.scalars(select(ScanRecord.result)))
    assert results == ["pass", "reject", "reject"]
