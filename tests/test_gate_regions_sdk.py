"""``sdk.gate`` across regions, as plain code: ``GateVerifier`` with other regions' keys and suspended lists
(a fixed ``TrustedRegions`` and a ``RegionsSync`` over a stub session), the ``untrusted_region`` reason, the
venue's accepted regions, failing closed on an old list, and the strict regions document."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from sdk.gate import (
    GateVerifier,
    IssuingRegion,
    RegionsSync,
    ReplayCache,
    TrustedRegion,
    TrustedRegions,
    home_region_for,
    parse_trusted_regions,
)
from sdk.keys import Key, KeySet, generate_key
from sdk.qr_token import QrTokenError, QrTokenReason, issue_qr_token

NOW = 1_800_000_000.0
OWN = "510100"  # the gate's own region (Chengdu)
PEER = "500000"  # a trusted region (Chongqing)
PEER_ID = "https://cq.onecard.example"
HANDLE = "h2Pq9vXcT4mK8sLw"


def qr_key() -> Key:
    return generate_key("EdDSA")


def public(*keys: Key) -> KeySet:
    return KeySet.of(key.public_only() for key in keys)


def code(key: Key, issuer: str, *, handle: str = HANDLE, now: float = NOW) -> str:
    return issue_qr_token(key=key, issuer=issuer, handle=handle, now=now)


def peer(key: Key, *, suspended: frozenset[str] = frozenset(), updated_at: float = NOW) -> TrustedRegion:
    return TrustedRegion(PEER_ID, "重庆", (PEER,), public(key), suspended, int(updated_at))


def document_of(*regions: TrustedRegion, generated_at: float = NOW) -> dict[str, Any]:
    return {
        "regions": [
            {
                "entity_id": r.entity_id,
                "name": r.name,
                "region_codes": list(r.region_codes),
                "qr_jwks": r.keys.to_jwks(),
                "qr_jwks_updated_at": r.suspended_updated_at,
                "suspended_handles": {"handles": sorted(r.suspended), "updated_at": r.suspended_updated_at},
            }
            for r in regions
        ],
        "generated_at": int(generated_at),
    }


def refused(verify: Callable[[], Any]) -> QrTokenReason:
    with pytest.raises(QrTokenError) as caught:
        verify()
    return caught.value.reason


def test_a_trusted_region_code_passes_and_names_its_region() -> None:
    own, other = qr_key(), qr_key()
    gate = GateVerifier(public(own), [OWN], regions=TrustedRegions((peer(other),), int(NOW)))
    scan = gate.verify(code(other, PEER), NOW)
    assert scan.issuer == PEER and scan.issuing_region == IssuingRegion(PEER_ID, "重庆")
    assert gate.verify(code(own, OWN), NOW).issuing_region is None
    # A district of the region (500112 under 500000) is the region's too.
    assert gate.verify(code(other, "500112"), NOW).issuing_region is not None


def test_one_replay_cache_for_every_region() -> None:
    own, other = qr_key(), qr_key()
    cache = ReplayCache()
    gate = GateVerifier(
        public(own), [OWN], regions=TrustedRegions((peer(other),), int(NOW)), replay_cache=cache
    )
    text = code(other, PEER)
    gate.verify(text, NOW)
    assert refused(lambda: gate.verify(text, NOW + 1)) is QrTokenReason.REPLAYED
    assert len(cache) == 1


def test_a_region_no_trusted_peer_is_home_for_is_untrusted_region() -> None:
    own, other, stranger = qr_key(), qr_key(), qr_key()
    gate = GateVerifier(public(own), [OWN], regions=TrustedRegions((peer(other),), int(NOW)))
    assert refused(lambda: gate.verify(code(stranger, "420100"), NOW)) is QrTokenReason.UNTRUSTED_REGION
    # Without regions configured the gate is what it was: a key it lacks is unknown_key.
    plain = GateVerifier(public(own), [OWN])
    assert refused(lambda: plain.verify(code(stranger, "420100"), NOW)) is QrTokenReason.UNKNOWN_KEY
    # A code of the gate's own region with a key it lacks stays unknown_key.
    assert refused(lambda: gate.verify(code(stranger, OWN), NOW)) is QrTokenReason.UNKNOWN_KEY


def test_a_forged_code_claiming_a_trusted_region_is_refused() -> None:
    own, other, forger = qr_key(), qr_key(), qr_key()
    gate = GateVerifier(public(own), [OWN], regions=TrustedRegions((peer(other),), int(NOW)))
    assert refused(lambda: gate.verify(code(forger, PEER), NOW)) is QrTokenReason.UNKNOWN_KEY
    # The gate's own key signing another region's code proves nothing for that region.
    assert refused(lambda: gate.verify(code(own, PEER), NOW)) is QrTokenReason.WRONG_ISSUER


def test_a_province_region_cannot_vouch_for_the_gates_own_city_districts() -> None:
    """The attack: a trusted province (510000) signs a code naming a district of the gate's own city
    (510104 under 510100). The province is home for 51xxxx only where no more precise region is — and the
    gate's own city is more precise — so the code is the gate's own, whose key it lacks: refused."""
    own, province_key = qr_key(), qr_key()
    province = TrustedRegion(
        "https://sc.onecard.example", "四川", ("510000",), public(province_key), frozenset(), int(NOW)
    )
    gate = GateVerifier(public(own), [OWN], regions=TrustedRegions((province,), int(NOW)))
    assert refused(lambda: gate.verify(code(province_key, "510104"), NOW)) is QrTokenReason.UNKNOWN_KEY
    # Elsewhere in the province it is the province's own code.
    assert gate.verify(code(province_key, "510700"), NOW).issuing_region == province.issuing_region
    # The other way round: at the province's gate, the city's district is the trusted city's.
    city_key = qr_key()
    city = TrustedRegion(
        "https://cd.onecard.example", "成都", (OWN,), public(city_key), frozenset(), int(NOW)
    )
    province_gate = GateVerifier(public(province_key), ["510000"], regions=TrustedRegions((city,), int(NOW)))
    assert province_gate.verify(code(city_key, "510104"), NOW).issuing_region == city.issuing_region


def test_a_gate_set_up_for_one_district_keeps_its_whole_deployment_out_of_a_peers_reach() -> None:
    """A gate of one district (510104) of a city deployment (510100): the regions document names the
    deployment's own codes, so a trusted province (510000) still cannot vouch for the city's other
    districts (510105) — without them the gate would take the province for their home."""
    own, province_key = qr_key(), qr_key()
    province = TrustedRegion(
        "https://sc.onecard.example", "四川", ("510000",), public(province_key), frozenset(), int(NOW)
    )
    unaware = GateVerifier(public(own), ["510104"], regions=TrustedRegions((province,), int(NOW)))
    assert unaware.verify(code(province_key, "510105"), NOW).issuing_region == province.issuing_region
    document = TrustedRegions((province,), int(NOW), home_region_codes=(OWN,))
    gate = GateVerifier(public(own), ["510104"], regions=document)
    assert refused(lambda: gate.verify(code(province_key, "510105"), NOW)) is QrTokenReason.UNKNOWN_KEY
    assert gate.verify(code(province_key, "510700"), NOW).issuing_region == province.issuing_region


def test_the_regions_document_names_its_deployments_own_codes_strictly() -> None:
    base = {"regions": [], "generated_at": int(NOW)}
    assert parse_trusted_regions(base).home_region_codes == ()
    assert parse_trusted_regions({**base, "home_region_codes": [OWN]}).home_region_codes == (OWN,)
    for bad in ("510100", [5101], ["51010"], ["５１０１００"]):
        with pytest.raises(ValueError):
            parse_trusted_regions({**base, "home_region_codes": bad})


def test_the_regions_suspended_list_and_its_age() -> None:
    own, other = qr_key(), qr_key()
    regions = TrustedRegions((peer(other, suspended=frozenset({HANDLE})),), int(NOW))
    gate = GateVerifier(public(own), [OWN], regions=regions, max_list_age=600)
    assert refused(lambda: gate.verify(code(other, PEER), NOW)) is QrTokenReason.REVOKED
    assert gate.verify(code(other, PEER, handle="AnotherHandle01"), NOW).handle == "AnotherHandle01"
    old = TrustedRegions((peer(other, updated_at=NOW - 601),), int(NOW))
    stale = GateVerifier(public(own), [OWN], regions=old, max_list_age=600)
    assert refused(lambda: stale.verify(code(other, PEER), NOW)) is QrTokenReason.REVOCATION_LIST_STALE


def test_the_venues_accepted_regions_apply_to_every_code() -> None:
    own, other = qr_key(), qr_key()
    regions = TrustedRegions((peer(other),), int(NOW))
    only_own = GateVerifier(public(own), [OWN], regions=regions, accepted_regions=[OWN])
    assert refused(lambda: only_own.verify(code(other, PEER), NOW)) is QrTokenReason.WRONG_ISSUER
    assert only_own.verify(code(own, OWN), NOW).issuer == OWN
    only_peer = GateVerifier(public(own), [OWN], regions=regions, accepted_regions=[PEER])
    assert refused(lambda: only_peer.verify(code(own, OWN), NOW)) is QrTokenReason.WRONG_ISSUER
    with pytest.raises(TypeError):
        GateVerifier(public(own), [OWN], accepted_regions=OWN)


def test_home_region_prefers_the_exact_code() -> None:
    province = TrustedRegion("https://p", "p", ("500000",), KeySet(), frozenset(), 0)
    district = TrustedRegion("https://d", "d", ("500112",), KeySet(), frozenset(), 0)
    assert home_region_for("500112", [province, district]) is district
    assert home_region_for("500101", [province, district]) is province
    assert home_region_for("510100", [province, district]) is None


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.pop("generated_at"),
        lambda d: d.update(regions={}),
        lambda d: d["regions"][0].update(region_codes=["5000"]),
        lambda d: d["regions"][0].update(region_codes=[]),
        lambda d: d["regions"][0].update(qr_jwks=None),
        lambda d: d["regions"][0]["suspended_handles"].update(handles=["no spaces"]),
        lambda d: d["regions"][0]["suspended_handles"].update(updated_at=True),
        lambda d: d["regions"][0].pop("entity_id"),
    ],
)
def test_the_regions_document_is_parsed_strictly(change: Callable[[dict[str, Any]], None]) -> None:
    document = document_of(peer(qr_key()))
    assert parse_trusted_regions(json.loads(json.dumps(document))).regions[0].entity_id == PEER_ID
    change(document)
    with pytest.raises(Exception):  # noqa: B017 - ValueError or the key set's InvalidKeyError
        parse_trusted_regions(document)


class StubSession(requests.Session):
    """Answers every GET with ``document`` (an ETag, and 304 for it), counting the requests."""

    def __init__(self, document: dict[str, Any]) -> None:
        super().__init__()
        self.document = document
        self.requests: list[dict[str, str]] = []

    def get(self, url: str | bytes, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.get("headers") or {})
        self.requests.append(headers)
        body = json.dumps(self.document).encode()
        etag = f'"{hash(body) & 0xFFFFFFFF:x}"'
        response = requests.Response()
        response.headers["Cache-Control"] = "private, max-age=60"
        response.headers["ETag"] = etag
        if headers.get("If-None-Match") == etag:
            response.status_code = 304
            body = b""
        else:
            response.status_code = 200

        class Raw:
            def __init__(self, data: bytes) -> None:
                self.data = data

            def read(self, amount: int = -1, **_: Any) -> bytes:
                chunk, self.data = self.data, b""
                return chunk

            def stream(self, amount: int = 65536, **_: Any) -> Any:
                if self.data:
                    yield self.read()

            def close(self) -> None:
                pass

        response.raw = Raw(body)
        return response


class Unreachable(requests.Session):
    def get(self, url: str | bytes, **kwargs: Any) -> requests.Response:
        raise requests.ConnectionError("no network in this test")


def test_regions_sync_caches_revalidates_and_refetches_for_a_new_key(tmp_path: Path) -> None:
    own, old, new = qr_key(), qr_key(), qr_key()
    stub = StubSession(document_of(peer(old)))
    sync = RegionsSync("https://a.example/api/v1/gate/regions", session=stub, cache_file=tmp_path / "r.json")
    gate = GateVerifier(public(own), [OWN], regions=sync)
    assert gate.verify(code(old, PEER), NOW).issuing_region is not None
    assert gate.verify(code(old, PEER, handle="AnotherHandle01"), NOW + 1).handle  # fresh: no request
    assert len(stub.requests) == 1
    sync.refresh(NOW + 2)
    assert stub.requests[-1].get("If-None-Match")  # conditional: answered 304
    # The region rotated its key; the server synced it: the unknown kid makes the gate refetch, once.
    stub.document = document_of(
        TrustedRegion(PEER_ID, "重庆", (PEER,), public(old, new), frozenset(), int(NOW))
    )
    assert gate.verify(code(new, PEER, now=NOW + 3), NOW + 3).issuing_region is not None
    # A restarted gate has the document from its file.
    assert RegionsSync(sync.url, cache_file=tmp_path / "r.json").value == sync.value


def test_regions_sync_refuses_an_older_document_and_fails_closed_without_one() -> None:
    own, other = qr_key(), qr_key()
    stub = StubSession(document_of(peer(other), generated_at=NOW))
    sync = RegionsSync("https://a.example/api/v1/gate/regions", session=stub)
    gate = GateVerifier(public(own), [OWN], regions=sync)
    sync.refresh(NOW)
    stub.document = document_of(generated_at=NOW - 10)  # a replayed answer without the region
    sync.refresh(NOW + 1)
    assert sync.last_error and "older" in sync.last_error
    assert gate.verify(code(other, PEER), NOW + 1).issuing_region is not None
    # Never fetched (the server unreachable): no region can be judged, every foreign code fails closed.
    never = RegionsSync("https://a.example/api/v1/gate/regions", session=Unreachable())
    closed = GateVerifier(public(own), [OWN], regions=never)
    assert refused(lambda: closed.verify(code(other, PEER), NOW)) is QrTokenReason.REVOCATION_LIST_STALE
    assert closed.verify(code(own, OWN), NOW).issuing_region is None  # the gate's own codes are unaffected
