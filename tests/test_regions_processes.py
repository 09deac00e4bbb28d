"""Two regions with real processes (issue 12 item 4): a trust anchor and regions A (Chengdu) and B
(Chongqing), each a real ``onecard serve`` on its own database, set up by ``demo.regions`` as the two-region
demo is (tests/support/regions_processes.py). On SQLite files and on PostgreSQL + Redis.

What region A trusts is checked the two ways a deployment has: over HTTP, as A would — the anchor's signed
``/federation/resolve`` answer verified with the anchor keys of A's trust anchors file, beside the entity
configurations and the anchor's ``fetch`` and ``list`` — and with A's own ``onecard federation regions``,
which builds A's region directory with A's settings, every chain resolved afresh over HTTP (what A's server
has at its next directory rebuild). A rotated federation key at B, registered at the anchor before it signs,
never breaks B's chain; a region the anchor removes is refused once the anchor's cached chain expires.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from click.testing import CliRunner

from demo.regions import REGION_A, REGION_B, refresh_region_keys, register_region, trust_mark_type
from idp.cli import cli
from sdk.keys import KeySet
from tests.support.regions_processes import (
    HARNESS_SETTINGS,
    RegionsProcesses,
    running_regions_of_class,
)

ENTITY_STATEMENT = "application/entity-statement+jwt"
RESOLVE_RESPONSE = "application/resolve-response+jwt"
CHAIN_CACHE = int(HARNESS_SETTINGS["ONECARD_FEDERATION_CHAIN_CACHE_SECONDS"])
STATEMENT_TTL = int(HARNESS_SETTINGS["ONECARD_FEDERATION_STATEMENT_TTL"])
# The anchor answers 30 resolutions a minute to one address: the tests poll it this often at most.
RESOLVE_POLL = 4.0


@pytest.fixture(scope="class")
def regions(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegionsProcesses]:
    """The three servers, once per backend class (class scope: random test order keeps a class together, so
    one set of servers runs at a time)."""
    directory = tmp_path_factory.mktemp(f"regions-{request.cls.backend}")
    with running_regions_of_class(request, directory) as running:
        yield running


def _verified(token: str, keys: KeySet, *, typ: str) -> dict[str, Any]:
    header = jwt.get_unverified_header(token)
    assert header["typ"] == typ
    key = keys.get(header["kid"])
    public_key: Any = key.public_key  # an EC key here; pyjwt's hint names fewer key types than sdk.keys
    claims: dict[str, Any] = jwt.decode(
        token, public_key, algorithms=[key.alg], options={"verify_aud": False}
    )
    return claims


def entity_configuration(url: str) -> tuple[dict[str, Any], str]:
    """The deployment's entity configuration, verified with a key it lists itself; and its signing kid."""
    answer = requests.get(f"{url}/.well-known/openid-federation", timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith(ENTITY_STATEMENT)
    unverified = jwt.decode(answer.text, options={"verify_signature": False})
    claims = _verified(answer.text, KeySet.from_jwks(unverified["jwks"]), typ="entity-statement+jwt")
    assert claims["iss"] == claims["sub"] == url
    return claims, str(jwt.get_unverified_header(answer.text)["kid"])


def anchor_keys_of_a(regions: RegionsProcesses) -> KeySet:
    """What A trusts the anchor by: its trust anchors file, never the anchor's own configuration."""
    document = json.loads(regions.layout.trust_anchors_file.read_text())
    return KeySet.from_jwks(document[regions.anchor.url])


def resolve_at_anchor(regions: RegionsProcesses, subject: str) -> requests.Response:
    query = {"sub": subject, "trust_anchor": regions.anchor.url}
    return requests.get(f"{regions.anchor.url}/federation/resolve", params=query, timeout=15)


def verified_resolution(regions: RegionsProcesses, subject: str, spec_code: str) -> dict[str, Any]:
    """The anchor's resolve answer about ``subject``, checked as region A checks it."""
    answer = resolve_at_anchor(regions, subject)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith(RESOLVE_RESPONSE)
    claims = _verified(answer.text, anchor_keys_of_a(regions), typ="resolve-response+jwt")
    assert (claims["iss"], claims["sub"]) == (regions.anchor.url, subject)
    assert claims["exp"] > time.time()
    assert claims["metadata"]["openid_provider"]["onecard_region_codes"] == [spec_code]
    assert trust_mark_type(regions.b.deployment) in {
        mark["trust_mark_type"] for mark in claims["trust_marks"]
    }
    # The chain: the subject's configuration, the anchor's statement about it, the anchor's configuration.
    chain = [jwt.decode(token, options={"verify_signature": False}) for token in claims["trust_chain"]]
    assert [(s["iss"], s["sub"]) for s in chain] == [
        (subject, subject),
        (regions.anchor.url, subject),
        (regions.anchor.url, regions.anchor.url),
    ]
    return claims


def directory_of_a(regions: RegionsProcesses) -> dict[str, dict[str, Any]]:
    """Region A's directory, built by A's own command with A's settings (every chain resolved afresh)."""
    listed = json.loads(regions.run("a", "federation", "regions", "--json"))
    return {region["entity_id"]: region for region in listed}


def b_is_trusted_by_a(regions: RegionsProcesses) -> None:
    verified_resolution(regions, regions.b.url, REGION_B.region_code)
    b = directory_of_a(regions)[regions.b.url]
    assert b["region_codes"] == [REGION_B.region_code]
    assert b["anchor"] == regions.anchor.url
    assert trust_mark_type(regions.b.deployment) in b["trust_mark_types"]


def _pending_federation_key(regions: RegionsProcesses) -> dict[str, Any]:
    listed = json.loads(regions.run("b", "keys", "list", "--set", "federation", "--json"))
    (pending,) = [key for key in listed if key["state"] == "pending"]
    described: dict[str, Any] = pending
    return described


class TwoRegions:
    """The tests, run once per backend by the subclasses below."""

    backend = ""

    def test_region_a_resolves_region_b_through_the_anchor_over_http(self, regions: RegionsProcesses) -> None:
        anchor, _kid = entity_configuration(regions.anchor.url)
        loa_high = trust_mark_type(regions.a.deployment)
        assert anchor["trust_mark_issuers"][loa_high] == [regions.anchor.url]
        for served, spec in ((regions.a, REGION_A), (regions.b, REGION_B)):
            configuration, _kid = entity_configuration(served.url)
            assert configuration["authority_hints"] == [regions.anchor.url]
            assert configuration["metadata"]["openid_provider"]["onecard_region_codes"] == [spec.region_code]
            assert configuration["metadata"]["openid_provider"]["issuer"] == served.url
            marks = [
                jwt.decode(m["trust_mark"], options={"verify_signature": False})
                for m in configuration["trust_marks"]
            ]
            assert [(m["iss"], m["sub"]) for m in marks] == [(regions.anchor.url, served.url)]
        listed = requests.get(f"{regions.anchor.url}/federation/list", timeout=10).json()
        assert sorted(listed) == sorted([regions.a.url, regions.b.url])
        fetched = requests.get(
            f"{regions.anchor.url}/federation/fetch", params={"sub": regions.b.url}, timeout=10
        )
        statement = _verified(fetched.text, anchor_keys_of_a(regions), typ="entity-statement+jwt")
        _b, b_kid = entity_configuration(regions.b.url)
        assert b_kid in {jwk["kid"] for jwk in statement["jwks"]["keys"]}  # the anchor vouches for B's key
        b_is_trusted_by_a(regions)
        # B trusts A the same way: its own directory lists A alone.
        listed_by_b = json.loads(regions.run("b", "federation", "regions", "--json"))
        assert [(r["entity_id"], r["region_codes"]) for r in listed_by_b] == [
            (regions.a.url, [REGION_A.region_code])
        ]

    def test_a_rotated_federation_key_at_region_b_causes_no_failure(self, regions: RegionsProcesses) -> None:
        _b, old_kid = entity_configuration(regions.b.url)
        b_is_trusted_by_a(regions)  # before

        regions.run("b", "keys", "rotate", "federation", "--reason", "two-region test")
        pending = _pending_federation_key(regions)
        new_kid = str(pending["kid"])

        def b_publishes_the_new_key() -> bool:
            configuration, kid = entity_configuration(regions.b.url)
            assert kid == old_kid  # published, not signing yet
            return new_kid in {jwk["kid"] for jwk in configuration["jwks"]["keys"]}

        regions.wait_until(b_publishes_the_new_key, what="B publishes its pending federation key")
        b_is_trusted_by_a(regions)  # during: published at B, not yet registered at the anchor

        refresh_region_keys(regions.cli, regions.layout, regions.b.deployment)  # B's keys to the anchor again
        b_is_trusted_by_a(regions)  # during: registered at the anchor, the old key still signing

        # Activated once its pre-publication period is over, without --force: as `onecard keys` allows.
        not_before = dt.datetime.fromisoformat(pending["next"]["not_before"]).timestamp()
        while time.time() < not_before + 0.5:
            verified_resolution(regions, regions.b.url, REGION_B.region_code)
            time.sleep(min(RESOLVE_POLL, max(not_before + 0.5 - time.time(), 0.1)))
        regions.run("b", "keys", "activate", new_kid, "--reason", "two-region test")

        def the_chain_has_b_signing_with_the_new_key() -> bool:
            # Never fails meanwhile; the anchor's cached chain may hold the old signature a while.
            chain = verified_resolution(regions, regions.b.url, REGION_B.region_code)["trust_chain"]
            return str(jwt.get_unverified_header(chain[0])["kid"]) == new_kid

        regions.wait_until(
            the_chain_has_b_signing_with_the_new_key,
            what="the anchor resolves B signing with its new key",
            timeout=CHAIN_CACHE + 30,
            interval=RESOLVE_POLL,
        )
        assert entity_configuration(regions.b.url)[1] == new_kid
        b_is_trusted_by_a(regions)  # after

    def test_a_region_the_anchor_removes_is_refused_once_the_cached_chain_expires(
        self,
        regions: RegionsProcesses,
    ) -> None:
        b_is_trusted_by_a(regions)
        regions.run("anchor", "federation", "remove", regions.b.url)
        removed_at = time.monotonic()
        try:
            # At the anchor at once: no statement about B, B not listed.
            fetched = requests.get(
                f"{regions.anchor.url}/federation/fetch", params={"sub": regions.b.url}, timeout=10
            )
            assert (fetched.status_code, fetched.json()["error"]) == (404, "not_found")
            assert requests.get(f"{regions.anchor.url}/federation/list", timeout=10).json() == [regions.a.url]
            # Region A's next directory leaves B out.
            assert regions.b.url not in directory_of_a(regions)
            # The anchor's resolver refuses B once its cached chain expires (the chain cache, at most).
            regions.wait_until(
                lambda: resolve_at_anchor(regions, regions.b.url).status_code != 200,
                what="the anchor refuses to resolve B",
                timeout=CHAIN_CACHE + STATEMENT_TTL + 10,
                interval=RESOLVE_POLL,
            )
            assert time.monotonic() - removed_at <= CHAIN_CACHE + RESOLVE_POLL + 10
            refused = resolve_at_anchor(regions, regions.b.url)
            assert refused.json()["error"] == "invalid_trust_chain", refused.text
            verified_resolution(regions, regions.a.url, REGION_A.region_code)  # A itself is still trusted
        finally:
            # Registered again (B still holds its trust mark), so the other tests find B trusted in any order.
            register_region(regions.cli, regions.layout, regions.b.deployment)
        assert regions.b.url in directory_of_a(regions)

    def test_a_restarted_region_holds_its_trust_mark_and_is_trusted_again(
        self, regions: RegionsProcesses
    ) -> None:
        old_pid = regions.b.process.pid
        regions.restart("b")  # what a region does after a new trust mark is written to its file
        assert regions.b.process.pid != old_pid
        configuration, _kid = entity_configuration(regions.b.url)
        assert [m["trust_mark_type"] for m in configuration["trust_marks"]] == [
            trust_mark_type(regions.b.deployment)
        ]
        b_is_trusted_by_a(regions)


class TestOnSqlite(TwoRegions):
    backend = "sqlite"


class TestOnPostgresAndRedis(TwoRegions):
    backend = "postgres"


def test_the_two_region_demo_runs_on_its_own_ports() -> None:
    runner = CliRunner()
    refused = runner.invoke(cli, ["demo", "run", "--regions", "2", "--idp-port", "9000"])
    assert refused.exit_code == 2 and "--idp-port" in refused.output
    assert runner.invoke(cli, ["demo", "run", "--regions", "3"]).exit_code == 2


def test_the_demo_layout_puts_the_regions_on_separate_hosts(tmp_path: Path) -> None:
    from demo.regions import demo_layout

    layout = demo_layout(tmp_path)
    a, b = layout.region("a"), layout.region("b")
    # Cookies are per host: the two regions' login cookies share names, so they must not share a host.
    assert (a.entity_id, b.entity_id) == ("http://127.0.0.1:8101", "http://localhost:8102")
    assert (
        a.settings["ONECARD_FEDERATION_AUTHORITY_HINTS"] == layout.anchor.entity_id == "http://127.0.0.1:8100"
    )
    assert {d.database_url for d in layout.deployments} == {
        f"sqlite:///{tmp_path.resolve()}/regions/{key}/onecard.sqlite3" for key in ("anchor", "a", "b")
    }
    assert a.settings["ONECARD_CARD_BRIDGE_URL"] != b.settings["ONECARD_CARD_BRIDGE_URL"]
