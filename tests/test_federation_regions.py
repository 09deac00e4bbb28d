"""The region directory: other regions as the federation vouches for them, rebuilt afresh, so a region the
anchor removes is trusted no longer after the next rebuild."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from idp.federation.regions import QR_JWKS_URI, REGION_CODES, PeerRegion
from idp.federation.service import remove_subordinate
from tests.support.federation import (
    ANCHOR_ID,
    REGION_A_CODE,
    REGION_A_ID,
    REGION_B_CODE,
    REGION_B_ID,
    TwoRegions,
    running_two_regions,
)


@pytest.fixture
def two(tmp_path: Path) -> Iterator[TwoRegions]:
    with running_two_regions(tmp_path, federation_directory_refresh_seconds=60) as running:
        yield running


def peers(two: TwoRegions, at: str = "a") -> tuple[PeerRegion, ...]:
    region = two.a if at == "a" else two.b
    return region.federation.directory.regions(now=two.clock())


def test_each_region_finds_the_other_with_its_codes_endpoints_and_trust_mark(two: TwoRegions) -> None:
    (b,) = peers(two, "a")
    assert (b.entity_id, b.anchor, b.region_codes) == (REGION_B_ID, ANCHOR_ID, (REGION_B_CODE,))
    assert b.endpoint(QR_JWKS_URI) == REGION_B_ID + "/.well-known/onecard-qr-keys.json"
    assert b.endpoint("authorization_endpoint") == REGION_B_ID + "/authorize"
    assert two.a.federation.config.loa_high_trust_mark in b.trust_mark_types
    (a,) = peers(two, "b")
    assert a.entity_id == REGION_A_ID and a.provider[REGION_CODES] == [REGION_A_CODE]


def test_a_card_region_code_finds_its_home_region_by_prefecture_or_province(two: TwoRegions) -> None:
    directory = two.a.federation.directory
    now = two.clock()
    assert directory.for_region_code("500000", now=now).entity_id == REGION_B_ID  # type: ignore[union-attr]
    assert directory.for_region_code("500112", now=now).entity_id == REGION_B_ID  # type: ignore[union-attr]
    assert directory.for_region_code("510100", now=now) is None  # its own region is not a peer
    assert directory.for_region_code("420100", now=now) is None
    assert directory.for_region_code("50011", now=now) is None
    assert directory.for_region_code("5001１２", now=now) is None  # full-width digits


def test_a_region_the_anchor_removes_is_dropped_at_the_next_rebuild(two: TwoRegions) -> None:
    assert [r.entity_id for r in peers(two)] == [REGION_B_ID]
    with two.anchor.services.database.session() as session:
        remove_subordinate(session, REGION_B_ID)
    assert [r.entity_id for r in peers(two)] == [REGION_B_ID]  # until the directory is rebuilt
    two.clock.advance(61)
    assert peers(two) == ()


def test_the_entity_configuration_publishes_the_region_codes(two: TwoRegions) -> None:
    chain = two.b.federation.resolver.resolve(REGION_A_ID, ANCHOR_ID, now=two.clock())
    provider = chain.metadata["openid_provider"]
    assert provider[REGION_CODES] == [REGION_A_CODE]
    assert provider["onecard_federation_suspended_handles_endpoint"].startswith(REGION_A_ID + "/federation/")
