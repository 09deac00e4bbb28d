"""Gates across regions (issue 12 item 3): a region-B e-card code at region A's gates, online and offline,
with A's sync of B's QR key set and suspended list through the federation — a suspension, B's removal by
the anchor, a rotated B QR key, the venue's accepted regions, and the federation's own suspended-list
endpoint refusing callers it cannot verify."""

from __future__ import annotations

import datetime as dt
import secrets
from base64 import b64encode
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from flask.testing import FlaskClient
from requests.adapters import BaseAdapter
from sqlalchemy import select

from idp.cards.model import Card, CardStatus
from idp.citizens.service import create_citizen
from idp.db import utc_from_timestamp
from idp.federation.service import remove_subordinate
from idp.federation.transport import HttpAnswer
from idp.keys.actor import KeyActor
from idp.keys.lifecycle import activate, rotate
from idp.keys.service import QR_SIGNING
from idp.services import Services
from sdk.gate import GateVerifier, OnlineGateClient, RegionsSync, VenueCredentials
from sdk.keys import generate_key
from sdk.qr_token import QrTokenError, QrTokenReason, issue_qr_token
from tests.fixtures.services import create_database_or_skip, drop_database
from tests.support.federation import (
    REGION_A_CODE,
    REGION_A_ID,
    REGION_B_CODE,
    REGION_B_ID,
    Region,
    TwoRegions,
    running_two_regions,
)
from wallet.ecards.service import activate_ecard, find_current_ecard
from wallet.plugin import init_app as install_wallet
from wallet.qr.service import issue_ecard_code
from wallet.regions.model import SyncedRegion
from wallet.regions.runtime import REGIONS_EXTENSION, RegionRuntime
from wallet.regions.service import SyncReport, issue_federation_assertion, sync_regions
from wallet.scans.model import ScanRecord
from wallet.venues.service import VenueRegistration, create_venue

SUSPENDED = "/federation/suspended-handles"
REGIONS = "/api/v1/gate/regions"


# --- the harness ------------------------------------------------------------------------------------------


class FlaskAdapter(BaseAdapter):
    """``requests`` through a Flask test client, so the real gate SDK (OnlineGateClient, RegionsSync) talks
    to an in-process deployment."""

    def __init__(self, client: FlaskClient) -> None:
        super().__init__()
        self.client = client

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        parts = urlsplit(request.url or "")
        answer = self.client.open(
            parts.path + (f"?{parts.query}" if parts.query else ""),
            method=request.method or "GET",
            headers=dict(request.headers),
            data=request.body,
        )
        response = requests.Response()
        response.status_code = answer.status_code
        response.headers.update(answer.headers)
        response.raw = _Body(answer.data)
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        pass


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, amount: int = -1, **_kwargs: Any) -> bytes:
        chunk, self.data = (self.data, b"") if amount < 0 else (self.data[:amount], self.data[amount:])
        return chunk

    def stream(self, amount: int = 65536, **_kwargs: Any) -> Iterator[bytes]:
        while self.data:
            yield self.read(amount)

    def close(self) -> None:
        pass


def session_for(region: Region) -> requests.Session:
    http = requests.Session()
    http.mount(region.entity_id, FlaskAdapter(region.client))
    return http


def add_ecard(region: Region, *, card_region: str, id_number: str = "11010519491231002X") -> str:
    """A citizen of ``region`` with an active card of ``card_region`` and its e-card; the citizen id."""
    svc = region.services
    now = svc.now()
    at = utc_from_timestamp(now)
    with svc.database.session() as session:
        citizen = create_citizen(session, svc.pii_cipher(), "张三", id_number, now=now)
        card_id = secrets.token_hex(16).upper()
        session.add(
            Card(
                card_id=card_id,
                card_number="R" + secrets.token_hex(4).upper(),
                citizen_id=citizen.id,
                region=card_region,
                status=CardStatus.ACTIVE.value,
                issuer_kid="test-ca",
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
        return str(citizen.id)


def fresh_code(region: Region, citizen_id: str) -> str:
    """A real ESSC1 code of the citizen's e-card, signed with the region's QR key, as its wallet shows it."""
    svc = region.services
    with svc.database.session() as session:
        view = find_current_ecard(session, citizen_id)
        assert view is not None
        return issue_ecard_code(session, keyring=svc.keyring, cipher=None, view=view, now=svc.now()).text


def code_despite_status(region: Region, citizen_id: str) -> str:
    """A code signed by the region's QR key for the e-card whatever its status (a wallet that kept showing
    one, or an attacker with the phone): what gates must refuse from the suspended list."""
    svc = region.services
    with svc.database.session() as session:
        view = find_current_ecard(session, citizen_id)
        assert view is not None
        key = svc.keyring.key_set(QR_SIGNING.name, now=svc.now()).keys[0]
        return issue_qr_token(key=key, issuer=view.region, handle=view.ecard.handle, now=svc.now())


def set_card_status(region: Region, citizen_id: str, status: CardStatus) -> None:
    with region.services.database.session() as session:
        card = session.scalars(select(Card).where(Card.citizen_id == citizen_id)).one()
        card.status = status.value
        card.status_changed_at = utc_from_timestamp(region.services.now())


def add_venue(region: Region, **policy: Any) -> VenueCredentials:
    with region.services.database.session() as session:
        created = create_venue(
            session,
            VenueRegistration(
                "Wuhou Shrine", "museum", policy.pop("claims", ("valid_resident", "region")), **policy
            ),
            actor="test",
            now=region.services.now(),
        )
        return VenueCredentials(created.venue.id, created.client_secret)


def online_client(region: Region, venue: VenueCredentials) -> OnlineGateClient:
    return OnlineGateClient(
        region.entity_id, venue.client_id, venue.client_secret, session=session_for(region)
    )


def regions_sync(region: Region, venue: VenueCredentials, tmp_path: Path) -> RegionsSync:
    return RegionsSync(
        region.entity_id + REGIONS,
        credentials=venue,
        session=session_for(region),
        cache_file=tmp_path / "gate-regions.json",
    )


def offline_gate(region: Region, sync: RegionsSync, **options: Any) -> GateVerifier:
    """A gate of ``region``: its own QR keys, its own region code, and the other regions from ``sync``."""
    svc = region.services
    keys = svc.keyring.key_set(QR_SIGNING.name, now=svc.now())
    return GateVerifier(keys, [REGION_A_CODE], regions=sync, **options)


def sync(region: Region) -> SyncReport:
    with region.services.database.session() as session:
        return sync_regions(session, region.federation, now=region.services.now(), fresh_directory=True)


def synced_rows(region: Region) -> list[str]:
    with region.services.database.session() as session:
        return list(session.scalars(select(SyncedRegion.entity_id)))


def reason_of(verify: Any, code: str) -> QrTokenReason:
    with pytest.raises(QrTokenError) as refused:
        verify(code)
    return refused.value.reason


def runtime_of(region: Region) -> RegionRuntime:
    runtime: RegionRuntime = region.app.extensions[REGIONS_EXTENSION]
    return runtime


@pytest.fixture
def two(tmp_path: Path) -> Iterator[TwoRegions]:
    with running_two_regions(tmp_path, plugins=[install_wallet]) as running:
        yield running


@pytest.fixture(params=["sqlite", pytest.param("postgres-redis", marks=pytest.mark.postgres)])
def two_on_each_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TwoRegions]:
    if request.param == "sqlite":
        with running_two_regions(tmp_path, plugins=[install_wallet]) as running:
            yield running
        return
    admin_url: str = request.getfixturevalue("postgres_admin_url")
    redis_url: str = request.getfixturevalue("redis_url")
    names = [create_database_or_skip(admin_url) for _ in range(3)]
    try:
        base = admin_url.rsplit("/", 1)[0]
        urls = (f"{base}/{names[0]}", f"{base}/{names[1]}", f"{base}/{names[2]}")
        with running_two_regions(tmp_path, urls, redis_url=redis_url, plugins=[install_wallet]) as running:
            yield running
    finally:
        for name in names:
            drop_database(admin_url, name)


# --- the tests ----------------------------------------------------------------------------------------------


def test_a_region_b_code_passes_at_region_a_online_and_offline(
    two_on_each_database: TwoRegions, tmp_path: Path
) -> None:
    two = two_on_each_database
    citizen = add_ecard(two.b, card_region=REGION_B_CODE)
    venue = add_venue(two.a)
    gate = online_client(two.a, venue)
    # No sync yet: the first foreign code makes A sync (the stored copy is missing), then verifies.
    code = fresh_code(two.b, citizen)
    scan = gate.verify(code, gate_id="east")
    assert scan.issuer == REGION_B_CODE
    assert scan.issuing_region is not None
    assert scan.issuing_region.entity_id == REGION_B_ID and scan.issuing_region.name
    assert dict(scan.claims) == {"valid_resident": True, "region": REGION_B_CODE}
    assert synced_rows(two.a) == [REGION_B_ID]
    # One use at A, as for A's own codes.
    assert reason_of(gate.verify, code) is QrTokenReason.REPLAYED
    with two.a.services.database.session() as session:
        rows = session.scalars(select(ScanRecord).order_by(ScanRecord.result)).all()
        assert [(r.result, r.reason, r.ecard_id) for r in rows] == [
            ("pass", None, None),
            ("reject", "replayed", None),
        ]
    # A's own codes keep the fast path and their verdict shape (no issuing_region).
    local = add_ecard(two.a, card_region=REGION_A_CODE, id_number="420106198001010015")
    own = gate.verify(fresh_code(two.a, local))
    assert own.issuer == REGION_A_CODE and own.issuing_region is None
    # Offline: a gate of A fed from A's regions document.
    regions = regions_sync(two.a, venue, tmp_path)
    verifier = offline_gate(two.a, regions)
    now = two.clock()
    offline = verifier.verify(fresh_code(two.b, citizen), now)
    assert offline.issuing_region is not None and offline.issuing_region.entity_id == REGION_B_ID
    assert offline.issuer == REGION_B_CODE
    assert verifier.verify(fresh_code(two.a, local), now).issuing_region is None
    # The document is cached as HTTP says: a second gate restarts from the file without the network.
    regions.refresh(now)
    assert regions.value is not None and [r.entity_id for r in regions.value.regions] == [REGION_B_ID]
    restarted = RegionsSync(
        two.a.entity_id + REGIONS, credentials=venue, cache_file=tmp_path / "gate-regions.json"
    )
    assert restarted.value == regions.value


def test_the_regions_document_is_for_venues_with_etag_and_cache_control(two: TwoRegions) -> None:
    venue = add_venue(two.a)
    sync(two.a)
    assert two.a.client.get(REGIONS).status_code == 401
    basic = {
        "Authorization": "Basic " + b64encode(f"{venue.client_id}:{venue.client_secret}".encode()).decode()
    }
    answer = two.a.client.get(REGIONS, headers=basic)
    assert answer.status_code == 200
    body = answer.get_json()
    (region,) = body["regions"]
    assert region["entity_id"] == REGION_B_ID and region["region_codes"] == [REGION_B_CODE]
    assert region["qr_jwks"]["keys"] and region["suspended_handles"]["handles"] == []
    assert answer.headers["Cache-Control"].startswith("private, max-age=")
    again = two.a.client.get(REGIONS, headers={**basic, "If-None-Match": answer.headers["ETag"]})
    assert again.status_code == 304


def test_a_suspended_region_b_ecard_is_refused_after_the_next_sync(two: TwoRegions, tmp_path: Path) -> None:
    citizen = add_ecard(two.b, card_region=REGION_B_CODE)
    venue = add_venue(two.a)
    gate = online_client(two.a, venue)
    sync(two.a)
    regions = regions_sync(two.a, venue, tmp_path)
    verifier = offline_gate(two.a, regions)
    # Codes shown just before the card was reported lost (each lives 60 s).
    before_sync, online, offline = (fresh_code(two.b, citizen) for _ in range(3))
    set_card_status(two.b, citizen, CardStatus.LOST)
    # A still holds the list of its last sync.
    assert gate.verify(before_sync).issuing_region is not None
    report = sync(two.a)
    assert report.changed == [REGION_B_ID]
    assert reason_of(gate.verify, online) is QrTokenReason.REVOKED
    regions.refresh(two.clock())
    assert reason_of(lambda c: verifier.verify(c, two.clock()), offline) is QrTokenReason.REVOKED
    # Unchanged since: B answers A's conditional request with 304.
    assert sync(two.a).unchanged == [REGION_B_ID]


def test_the_stored_copy_is_synced_again_once_older_than_the_setting(two: TwoRegions) -> None:
    citizen = add_ecard(two.b, card_region=REGION_B_CODE)
    gate = online_client(two.a, add_venue(two.a))
    sync(two.a)
    set_card_status(two.b, citizen, CardStatus.LOST)
    two.clock.advance(runtime_of(two.a).sync_seconds - 20)
    assert gate.verify(code_despite_status(two.b, citizen)).issuing_region is not None  # the copy is young
    two.clock.advance(21)
    # Older than the setting: the next foreign code makes A sync first, and B's suspension is seen.
    assert reason_of(gate.verify, code_despite_status(two.b, citizen)) is QrTokenReason.REVOKED


def test_a_region_the_anchor_removes_is_untrusted_everywhere_after_the_next_sync(
    two: TwoRegions, tmp_path: Path
) -> None:
    citizen = add_ecard(two.b, card_region=REGION_B_CODE)
    venue = add_venue(two.a)
    gate = online_client(two.a, venue)
    sync(two.a)
    regions = regions_sync(two.a, venue, tmp_path)
    verifier = offline_gate(two.a, regions)
    assert verifier.verify(fresh_code(two.b, citizen), two.clock()).issuing_region is not None
    with two.anchor.services.database.session() as session:
        remove_subordinate(session, REGION_B_ID)
    assert sync(two.a).removed == [REGION_B_ID]
    assert synced_rows(two.a) == []
    assert reason_of(gate.verify, fresh_code(two.b, citizen)) is QrTokenReason.UNTRUSTED_REGION
    regions.refresh(two.clock())
    offline = reason_of(lambda c: verifier.verify(c, two.clock()), fresh_code(two.b, citizen))
    assert offline is QrTokenReason.UNTRUSTED_REGION
    with two.a.services.database.session() as session:
        assert session.scalars(select(ScanRecord.reason).where(ScanRecord.result == "reject")).all() == [
            "untrusted_region"
        ]


def test_a_rotated_region_b_qr_key_verifies_after_the_sync(two: TwoRegions, tmp_path: Path) -> None:
    citizen = add_ecard(two.b, card_region=REGION_B_CODE)
    venue = add_venue(two.a)
    gate = online_client(two.a, venue)
    sync(two.a)
    regions = regions_sync(two.a, venue, tmp_path)
    verifier = offline_gate(two.a, regions)
    regions.refresh(two.clock())
    svc: Services = two.b.services
    actor = KeyActor(
        svc.settings, svc.keks, "cli:test", "rotation test", cache_seconds=svc.keyring.cache_seconds
    )
    with svc.database.session() as session:
        new_kid = rotate(session, actor, QR_SIGNING.name, now=two.clock()).kid
    svc.keyring.invalidate()
    sync(two.a)  # the pending key is published: A has it before it signs
    with svc.database.session() as session:
        activate(session, actor, new_kid, now=two.clock(), force=True)
    svc.keyring.invalidate()
    code = fresh_code(two.b, citizen)
    assert gate.verify(code).issuing_region is not None
    # The gate's document predates the key: the unknown kid makes it refetch once, then it verifies.
    assert verifier.verify(fresh_code(two.b, citizen), two.clock()).issuing_region is not None


def test_a_venue_that_accepts_only_its_own_region_refuses_region_b(two: TwoRegions, tmp_path: Path) -> None:
    citizen = add_ecard(two.b, card_region=REGION_B_CODE)
    venue = add_venue(two.a, regions=(REGION_A_CODE,))
    gate = online_client(two.a, venue)
    sync(two.a)
    assert reason_of(gate.verify, fresh_code(two.b, citizen)) is QrTokenReason.WRONG_ISSUER
    regions = regions_sync(two.a, venue, tmp_path)
    verifier = offline_gate(two.a, regions, accepted_regions=[REGION_A_CODE])
    refused = reason_of(lambda c: verifier.verify(c, two.clock()), fresh_code(two.b, citizen))
    assert refused is QrTokenReason.WRONG_ISSUER


def test_an_outdated_region_list_gives_no_verdict_online_and_fails_closed_offline(
    two: TwoRegions, tmp_path: Path
) -> None:
    citizen = add_ecard(two.b, card_region=REGION_B_CODE)
    venue = add_venue(two.a)
    gate = online_client(two.a, venue)
    sync(two.a)
    regions = regions_sync(two.a, venue, tmp_path)
    verifier = offline_gate(two.a, regions)
    regions.refresh(two.clock())
    runtime_of(two.a).sync_seconds = 10 * 86400  # no automatic sync in between
    two.clock.advance(3601)
    code = fresh_code(two.b, citizen)
    with pytest.raises(Exception) as no_verdict:
        gate.verify(code)
    assert getattr(no_verdict.value, "http_status", None) == 503
    # The offline gate's copy (it cannot reach A now) is as old: every B code is refused, not admitted.
    regions.session = requests.Session()  # unreachable: nothing is mounted
    regions.retry_interval = 0
    assert reason_of(lambda c: verifier.verify(c, two.clock()), code) is QrTokenReason.REVOCATION_LIST_STALE
    # The refused code was not used up: after a sync it passes.
    sync(two.a)
    assert gate.verify(code).issuing_region is not None


def test_the_federation_suspended_list_refuses_callers_it_cannot_verify(two: TwoRegions) -> None:
    a = two.a
    key = a.federation.signing_keys(now=two.clock()).signing_key()
    audience = REGION_B_ID + SUSPENDED

    def ask(token: str | None) -> int:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return two.b.client.get(SUSPENDED, headers=headers).status_code

    assert ask(None) == 401
    assert ask("not-a-jwt") == 401
    assert two.b.client.get(SUSPENDED, headers={"Authorization": "Basic eDp5"}).status_code == 401
    stranger = generate_key("ES256")
    assert (
        ask(issue_federation_assertion(stranger, entity_id=REGION_A_ID, audience=audience, now=two.clock()))
        == 401
    )
    unknown = issue_federation_assertion(
        key, entity_id="http://nowhere.onecard.test", audience=audience, now=two.clock()
    )
    assert ask(unknown) == 401
    wrong_audience = issue_federation_assertion(
        key, entity_id=REGION_A_ID, audience=REGION_B_ID, now=two.clock()
    )
    assert ask(wrong_audience) == 401
    expired = issue_federation_assertion(key, entity_id=REGION_A_ID, audience=audience, now=two.clock() - 200)
    assert ask(expired) == 401
    good = issue_federation_assertion(key, entity_id=REGION_A_ID, audience=audience, now=two.clock())
    answer = two.b.client.get(SUSPENDED, headers={"Authorization": f"Bearer {good}"})
    assert answer.status_code == 200 and answer.get_json()["handles"] == []
    assert ask(good) == 401  # its jti is used up
    # A sync whose assertion B refuses stores nothing.
    real_http = a.federation.http

    def without_credentials(method: str, url: str, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", None) or {})
        headers.pop("Authorization", None)
        return real_http(method, url, headers=headers, **kwargs)

    a.federation.http = without_credentials
    report = sync(a)
    assert report.failed.keys() == {REGION_B_ID} and "HTTP 401" in report.failed[REGION_B_ID]
    assert synced_rows(a) == []


def test_a_peer_claiming_the_province_cannot_vouch_for_region_a_districts_online_or_offline(
    two: TwoRegions, tmp_path: Path
) -> None:
    """The attack: B's synced codes cover A's province (510000), and B signs a code naming a district of A's
    city (510104 under A's 510100). A is the more precise home, so B's key vouches for nothing: refused as
    A's own code with an unknown key, at A's verify API and at A's offline gate; elsewhere in the province
    B's code passes."""
    citizen = add_ecard(two.b, card_region=REGION_B_CODE)
    venue = add_venue(two.a)
    gate = online_client(two.a, venue)
    sync(two.a)
    with two.a.services.database.session() as session:
        row = session.get(SyncedRegion, REGION_B_ID)
        assert row is not None
        row.region_codes = [REGION_B_CODE, "510000"]
    svc = two.b.services
    with svc.database.session() as session:
        view = find_current_ecard(session, citizen)
        assert view is not None
        key = svc.keyring.key_set(QR_SIGNING.name, now=svc.now()).keys[0]
        handle = view.ecard.handle

    def signed_by_b(issuer: str) -> str:
        return issue_qr_token(key=key, issuer=issuer, handle=handle, now=two.clock())

    assert reason_of(gate.verify, signed_by_b("510104")) is QrTokenReason.UNKNOWN_KEY
    assert gate.verify(signed_by_b("510700")).issuing_region is not None
    regions = regions_sync(two.a, venue, tmp_path)
    verifier = offline_gate(two.a, regions)
    offline = reason_of(lambda c: verifier.verify(c, two.clock()), signed_by_b("510104"))
    assert offline is QrTokenReason.UNKNOWN_KEY
    assert verifier.verify(signed_by_b("510700"), two.clock()).issuing_region is not None


def test_a_peer_with_an_oversized_etag_still_syncs(two: TwoRegions) -> None:
    """A peer's ETag longer than its column must not fail the flush (and every region's sync with it)."""
    real_http = two.a.federation.http

    def long_etags(method: str, url: str, **kwargs: Any) -> HttpAnswer:
        answer = real_http(method, url, **kwargs)
        return HttpAnswer(answer.status, answer.body, {**answer.headers, "etag": '"' + "x" * 300 + '"'})

    two.a.federation.http = long_etags
    assert sync(two.a).changed == [REGION_B_ID]
    with two.a.services.database.session() as session:
        row = session.get(SyncedRegion, REGION_B_ID)
        assert row is not None and row.qr_jwks_etag is None and row.suspended_etag is None
