"""The two-region tests of issue 12 item 4 with real processes: a trust anchor and regions A (Chengdu,
510100) and B (Chongqing, 500000), each a real ``onecard serve`` (tests/support/regions_processes.py), on
SQLite files and on PostgreSQL + Redis.

- A region-B citizen's card logs in at a region-A portal over real HTTP: A sends the browser home (a
  ``region:`` login hint, or A's card pre-check of B's card), B's card page signs with B's card and PIN, B's
  consent, A's callback and consent, the portal's code redeemed at A: A's own id_token, loa:high, A's
  pairwise sub, ``verified_claims`` naming B.
- A region-B e-card code passes region A's gate online (A's verify API) and offline (``sdk.gate`` with the
  regions document of A's ``/api/v1/gate/regions``).
- A region the anchor removes is refused everywhere after the next sync: A's gate online and offline, and a
  new cross-region login to it.
- A rotated federation key at B (published, registered at the anchor, activated) breaks neither.

B's e-card and its codes are made through B's service layer in this process, against B's database and keys
(``tests.support.regions_e2e``), as B's wallet would show them; every check goes through the servers.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import jwt
import pytest
import requests
from sqlalchemy import select

from demo.regions import REGION_B, refresh_region_keys, register_region
from idp.federation.login_model import FederatedSubject
from idp.scopes import ACR_HIGH
from idp.services import Services
from sdk.gate import GateVerifier, KeySetSync, OnlineGateClient, RegionsSync, VenueCredentials
from sdk.oidc import VERIFIED_CLAIMS
from sdk.qr_token import QrTokenError, QrTokenReason
from tests.support.regions_e2e import (
    PortalRequest,
    RegionsBrowser,
    Stop,
    card_of,
    challenge_of,
    deployment_services,
    ensure_ecard,
    fresh_ecard_code,
    log_in_with_card,
    open_card_page,
    portal_request,
    redeem_at_a,
    verified_id_token,
)
from tests.support.regions_processes import (
    HARNESS_SETTINGS,
    RegionsProcesses,
    running_regions_of_class,
)

HINT_B = f"region:{REGION_B.region_code}"
QR_KEYS = "/.well-known/onecard-qr-keys.json"
GATE_REGIONS = "/api/v1/gate/regions"
FAILED_TITLE = "Signing in at your home region did not work"  # idp.federation.login_views, in English
CHAIN_CACHE = int(HARNESS_SETTINGS["ONECARD_FEDERATION_CHAIN_CACHE_SECONDS"])
DIRECTORY_REFRESH = int(HARNESS_SETTINGS["ONECARD_FEDERATION_DIRECTORY_REFRESH_SECONDS"])
STATEMENT_TTL = int(HARNESS_SETTINGS["ONECARD_FEDERATION_STATEMENT_TTL"])
# How long a change at the anchor takes to reach A's server: A's cached chain, then its next directory build.
A_SEES_THE_ANCHOR = CHAIN_CACHE + DIRECTORY_REFRESH + STATEMENT_TTL + 10
RESOLVE_POLL = 4.0  # the anchor answers 30 resolutions a minute to one address


@pytest.fixture(scope="class")
def regions(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegionsProcesses]:
    """The three servers, once per backend class."""
    directory = tmp_path_factory.mktemp(f"regions-e2e-{request.cls.backend}")
    with running_regions_of_class(request, directory) as running:
        yield running


@pytest.fixture(scope="class")
def home(regions: RegionsProcesses) -> Iterator[Services]:
    """Region B's service layer in this process, its citizen's e-card activated."""
    with deployment_services(regions.b.deployment) as svc:
        ensure_ecard(svc, regions.credentials["b"])
        yield svc


# Drivers ---------------------------------------------------------------------------------------------------


def browser_for(regions: RegionsProcesses) -> RegionsBrowser:
    return RegionsBrowser((regions.a.url, regions.b.url))


def venue_of(regions: RegionsProcesses) -> VenueCredentials:
    a = regions.credentials["a"]
    assert a.venue_client_id and a.venue_client_secret
    return VenueCredentials(a.venue_client_id, a.venue_client_secret)


def online_gate(regions: RegionsProcesses) -> OnlineGateClient:
    venue = venue_of(regions)
    return OnlineGateClient(regions.a.url, venue.client_id, venue.client_secret)


def offline_gate(regions: RegionsProcesses, tmp_path: Path) -> tuple[GateVerifier, RegionsSync]:
    """A gate of region A: A's QR keys and region code, and the other regions from A's regions document."""
    sync = RegionsSync(
        regions.a.url + GATE_REGIONS, credentials=venue_of(regions), cache_file=tmp_path / "gate-regions.json"
    )
    keys = KeySetSync(regions.a.url + QR_KEYS, cache_file=tmp_path / "jwks.json")
    return GateVerifier(keys, [regions.credentials["a"].region_code], regions=sync), sync


def b_code(regions: RegionsProcesses, home: Services) -> str:
    return fresh_ecard_code(home, regions.credentials["b"])


def reason_of(verify: Any, code: str) -> QrTokenReason:
    with pytest.raises(QrTokenError) as refused:
        verify(code)
    return refused.value.reason


def start_at_home(regions: RegionsProcesses, browser: RegionsBrowser, request: PortalRequest) -> Stop:
    """The portal's request at A, with a ``region:`` hint: where A sends the browser."""
    return browser.open(request.url)


def sent_home(regions: RegionsProcesses, stop: Stop) -> bool:
    return stop.url.startswith(f"{regions.b.url}/login/") and stop.status == 200


def b_is_reachable_from_a(regions: RegionsProcesses) -> bool:
    """A's server (its directory as it is now) sends a hinted login to B."""
    browser = browser_for(regions)
    try:
        request = portal_request(regions.a.url, regions.credentials["a"], login_hint=HINT_B)
        return sent_home(regions, start_at_home(regions, browser, request))
    finally:
        browser.close()


def finish_at_home(regions: RegionsProcesses, browser: RegionsBrowser, at_b: Stop) -> Stop:
    """At B's login chooser: B's card and PIN, then B's consent, A's callback and A's consent, to the
    portal's redirect URI."""
    b = regions.credentials["b"]
    verified = log_in_with_card(browser, at_b.url, card_of(b), b.card_pin)
    onward = browser.open(browser_url(regions.b.url, verified.json()["redirect_to"]))
    done = browser.through_consent(onward)
    assert done.response is None, (done.url, done.response is not None and done.text[:400])
    return done


def browser_url(base: str, location: str) -> str:
    return urljoin(base + "/", location)


def assert_a_token_for_a_b_citizen(
    regions: RegionsProcesses, browser: RegionsBrowser, request: PortalRequest, final_url: str
) -> dict[str, Any]:
    """The portal's code at A: A's id_token (loa:high, A's pairwise sub, not B's) and userinfo naming B."""
    a = regions.credentials["a"]
    tokens = redeem_at_a(regions.a.url, a, request, final_url)
    claims = verified_id_token(regions.a.url, tokens["id_token"], audience=a.portal_client_id)
    assert claims["nonce"] == request.nonce and claims["acr"] == ACR_HIGH
    assert browser.visited(f"{regions.b.url}/login/"), "the citizen logged in at home"
    with deployment_services(regions.a.deployment) as svc, svc.database.session() as session:
        subjects = session.scalars(
            select(FederatedSubject).where(FederatedSubject.home_entity_id == regions.b.url)
        ).all()
    assert len(subjects) == 1
    assert claims["sub"] not in {subjects[0].home_subject, regions.credentials["b"].citizen_id}
    info_answer = browser.http(regions.a.url).get(
        f"{regions.a.url}/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=15
    )
    assert info_answer.status_code == 200, info_answer.text
    info = info_answer.json()
    assert info["sub"] == claims["sub"]
    for released in (info, claims):
        if VERIFIED_CLAIMS not in released:
            continue
        verification = released[VERIFIED_CLAIMS]["verification"]
        assert verification["verification_process"] == regions.b.url
        assert verification["assurance_level"] == "high"
        verifier = verification["evidence"][0]["verifier"]
        assert verifier["organization"] == REGION_B.organization_name and verifier["txn"]
    assert VERIFIED_CLAIMS in info, info.keys()
    assert info["name"] == REGION_B.citizen_name
    assert REGION_B.citizen_id_number not in json.dumps(info)
    return claims


def log_in_with_hint(regions: RegionsProcesses) -> dict[str, Any]:
    browser = browser_for(regions)
    try:
        request = portal_request(regions.a.url, regions.credentials["a"], login_hint=HINT_B)
        at_b = start_at_home(regions, browser, request)
        assert sent_home(regions, at_b), (at_b.url, at_b.response is not None and at_b.text[:300])
        return assert_a_token_for_a_b_citizen(
            regions, browser, request, finish_at_home(regions, browser, at_b).url
        )
    finally:
        browser.close()


def passes_online(regions: RegionsProcesses, home: Services) -> None:
    with closing(online_gate(regions)) as gate:
        scan = gate.verify(b_code(regions, home), gate_id="east")
    assert scan.issuer == REGION_B.region_code
    assert scan.issuing_region is not None and scan.issuing_region.entity_id == regions.b.url


def wait_until_b_is_back(regions: RegionsProcesses) -> None:
    regions.wait_until(
        lambda: b_is_reachable_from_a(regions), what="A sends a hinted login to B", timeout=A_SEES_THE_ANCHOR
    )


# The tests -------------------------------------------------------------------------------------------------


class TwoRegionsEndToEnd:
    """The tests, once per backend (the subclasses below)."""

    backend = ""

    def test_a_region_b_card_logs_in_at_a_region_a_portal_by_the_region_hint(
        self, regions: RegionsProcesses
    ) -> None:
        first = log_in_with_hint(regions)
        assert first["amr"] and first["sid"]

    def test_a_region_b_card_at_region_a_card_page_is_sent_home_before_the_pin(
        self, regions: RegionsProcesses
    ) -> None:
        browser = browser_for(regions)
        try:
            request = portal_request(regions.a.url, regions.credentials["a"])
            chooser = browser.open(request.url)
            assert chooser.url.startswith(f"{regions.a.url}/login/") and chooser.status == 200
            page = open_card_page(browser, chooser.url)
            challenge = challenge_of(browser, page)
            card = card_of(regions.credentials["b"])
            answer = browser.post_json(
                page.precheck_url,
                {"challenge": challenge, "card_certificate": card.certificate_b64},
                csrf=page.csrf,
            )
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["usable"] is False and body["home_region"] == {"name": REGION_B.organization_name}
            at_b = browser.open(browser_url(regions.a.url, body["redirect_to"]))
            assert sent_home(regions, at_b), at_b.url
            final = finish_at_home(regions, browser, at_b)
            assert_a_token_for_a_b_citizen(regions, browser, request, final.url)
        finally:
            browser.close()

    def test_a_region_b_code_passes_a_region_a_gate_online_and_offline(
        self, regions: RegionsProcesses, home: Services, tmp_path: Path
    ) -> None:
        with closing(online_gate(regions)) as gate:
            code = b_code(regions, home)
            scan = gate.verify(code, gate_id="east")
            assert scan.issuer == REGION_B.region_code
            assert scan.issuing_region is not None
            assert scan.issuing_region.entity_id == regions.b.url
            assert scan.issuing_region.name == REGION_B.organization_name
            assert reason_of(gate.verify, code) is QrTokenReason.REPLAYED  # one use, as A's own codes
        verifier, sync = offline_gate(regions, tmp_path)
        offline = verifier.verify(b_code(regions, home), time.time())
        assert offline.issuer == REGION_B.region_code
        assert offline.issuing_region is not None and offline.issuing_region.entity_id == regions.b.url
        assert sync.value is not None
        assert [r.entity_id for r in sync.value.regions] == [regions.b.url]

    def test_a_region_the_anchor_removes_is_refused_everywhere_after_the_next_sync(
        self, regions: RegionsProcesses, home: Services, tmp_path: Path
    ) -> None:
        wait_until_b_is_back(regions)
        passes_online(regions, home)
        verifier, sync = offline_gate(regions, tmp_path)
        assert verifier.verify(b_code(regions, home), time.time()).issuing_region is not None
        regions.run("anchor", "federation", "remove", regions.b.url)
        try:
            # A's server drops B at its next directory build: a hinted login is refused with a clear page.
            regions.wait_until(
                lambda: not b_is_reachable_from_a(regions),
                what="A refuses a hinted login to the removed region B",
                timeout=A_SEES_THE_ANCHOR,
            )
            browser = browser_for(regions)
            try:
                request = portal_request(regions.a.url, regions.credentials["a"], login_hint=HINT_B)
                refused = browser.open(request.url)
                assert refused.url.startswith(f"{regions.a.url}/login/"), refused.url
                assert refused.status == 400 and FAILED_TITLE in refused.text
                assert not browser.visited(regions.b.url)
                # Nor does A's list of regions offer it (a login without the hint).
                chooser = browser.open(portal_request(regions.a.url, regions.credentials["a"]).url)
                assert chooser.status == 200 and 'id="start-region"' in chooser.text
                listing = browser.open(chooser.url.rstrip("/") + "/region")
                assert listing.status == 200 and f'id="region-{REGION_B.region_code}"' not in listing.text
            finally:
                browser.close()
            # A's next regions sync: B's keys and list are gone, its codes untrusted online and offline.
            report = json.loads(regions.run("a", "venues", "regions", "sync", "--json"))
            assert regions.b.url in json.dumps(report)
            with closing(online_gate(regions)) as gate:
                assert reason_of(gate.verify, b_code(regions, home)) is QrTokenReason.UNTRUSTED_REGION
            sync.refresh(time.time())
            refused_offline = reason_of(lambda c: verifier.verify(c, time.time()), b_code(regions, home))
            assert refused_offline is QrTokenReason.UNTRUSTED_REGION
        finally:
            # Registered again (B still holds its trust mark), so the other tests find B trusted in any order.
            register_region(regions.cli, regions.layout, regions.b.deployment)
        wait_until_b_is_back(regions)
        regions.run("a", "venues", "regions", "sync")
        passes_online(regions, home)

    def test_a_rotated_federation_key_at_region_b_causes_no_failure(
        self, regions: RegionsProcesses, home: Services, tmp_path: Path
    ) -> None:
        wait_until_b_is_back(regions)
        regions.run("b", "keys", "rotate", "federation", "--reason", "two-region e2e test")
        listed = json.loads(regions.run("b", "keys", "list", "--set", "federation", "--json"))
        (pending,) = [key for key in listed if key["state"] == "pending"]
        new_kid = str(pending["kid"])
        refresh_region_keys(regions.cli, regions.layout, regions.b.deployment)  # old and new at the anchor
        # Activated once its pre-publication period is over (as `onecard keys` allows without --force);
        # meanwhile B's codes keep passing at A's gate.
        not_before = dt.datetime.fromisoformat(pending["next"]["not_before"]).timestamp()
        while time.time() < not_before + 0.5:
            passes_online(regions, home)
            time.sleep(min(2.0, max(not_before + 0.5 - time.time(), 0.1)))
        regions.run("b", "keys", "activate", new_kid, "--reason", "two-region e2e test")

        def b_signs_with_the_new_key() -> bool:
            token = requests.get(f"{regions.b.url}/.well-known/openid-federation", timeout=10).text
            return str(jwt.get_unverified_header(token)["kid"]) == new_kid

        regions.wait_until(b_signs_with_the_new_key, what="B signs with its new federation key")
        # Until A's server has rebuilt its directory on B's new chain, and after: the gate and the login work.
        switched = time.monotonic()
        while time.monotonic() - switched < CHAIN_CACHE + DIRECTORY_REFRESH + 2:
            passes_online(regions, home)
            time.sleep(2.0)
        log_in_with_hint(regions)
        verifier, _sync = offline_gate(regions, tmp_path)
        assert verifier.verify(b_code(regions, home), time.time()).issuing_region is not None


class TestOnSqlite(TwoRegionsEndToEnd):
    backend = "sqlite"


class TestOnPostgresAndRedis(TwoRegionsEndToEnd):
    backend = "postgres"
