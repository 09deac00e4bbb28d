"""OpenID Federation 1.0 between three OneCard deployments in one process (tests/support/federation.py): a
province (trust anchor), a city (intermediate) and a district (leaf), each a whole application on its own
database, reached through its own endpoints.

The chain is resolved from the district through the city to the province (§10), and each guarantee has
its attack: a forged signature at every step, a replayed expired statement, a loop in authority_hints,
a path longer than ``max_path_length``, metadata that breaks a policy, trust marks from an untrusted issuer,
expired or for another entity, an anchor key rotation, a removed subordinate, and malformed queries.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import jwt
import pytest
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from idp.audit.model import AuditEvent
from idp.config import ConfigError, Settings
from idp.federation.chain import TrustChain, http_fetcher
from idp.federation.config import FederationConfig
from idp.federation.context import RESOLVES_PER_MINUTE
from idp.federation.errors import (
    EntityUnreachableError,
    InvalidSubordinateError,
    PathTooLongError,
    PolicyConflictError,
    PolicyViolationError,
    StatementExpiredError,
    StatementSignatureError,
    TrustChainLoopError,
    TrustMarkExpiredError,
    TrustMarkSignatureError,
    TrustMarkSubjectError,
    UnknownTrustAnchorError,
    UntrustedTrustMarkIssuerError,
)
from idp.federation.model import Subordinate
from idp.federation.service import held_trust_marks, issue_subordinate_trust_mark
from idp.federation.statements import (
    ENTITY_STATEMENT_CONTENT_TYPE,
    RESOLVE_RESPONSE_CONTENT_TYPE,
    parse_entity_statement,
    verify_entity_statement,
)
from idp.federation.transport import Destinations, requests_http
from idp.federation.trust_marks import issue_trust_mark, verify_trust_mark
from idp.keys.actor import KeyActor
from idp.keys.lifecycle import activate, remove, rotate
from idp.keys.policy import policy_for
from idp.keys.service import FEDERATION_KEYS
from idp.scopes import ACR_HIGH
from sdk.keys import KeySet, generate_key
from tests.fixtures.services import create_database_or_skip, drop_database
from tests.support.federation import (
    ANCHOR_ID,
    INTERMEDIATE_ID,
    LEAF_ID,
    Federation,
    Region,
    intercept,
    resign,
    running_federation,
)

WELL_KNOWN = "/.well-known/openid-federation"
LOA_HIGH = "https://onecard.example/trust-marks/loa-high"
OP = "openid_provider"


@pytest.fixture
def federation(tmp_path: Path) -> Iterator[Federation]:
    with running_federation(tmp_path) as running:
        yield running


@pytest.fixture(params=["sqlite", pytest.param("postgres-redis", marks=pytest.mark.postgres)])
def federation_on_each_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Federation]:
    """The three deployments on SQLite files, and again each on its own PostgreSQL database with Redis."""
    if request.param == "sqlite":
        with running_federation(tmp_path) as running:
            yield running
        return
    admin_url: str = request.getfixturevalue("postgres_admin_url")
    redis_url: str = request.getfixturevalue("redis_url")
    names = [create_database_or_skip(admin_url) for _ in range(3)]
    try:
        base = admin_url.rsplit("/", 1)[0]
        urls = (f"{base}/{names[0]}", f"{base}/{names[1]}", f"{base}/{names[2]}")
        with running_federation(tmp_path, urls, redis_url=redis_url) as running:
            yield running
    finally:
        for name in names:
            drop_database(admin_url, name)


def body_of(answer: TestResponse) -> Any:
    body = answer.get_json()
    assert body is not None, answer.data
    return body


def resolve(federation: Federation, subject: str = LEAF_ID, *, at: Region | None = None) -> TrustChain:
    region = at or federation.leaf
    return region.federation.resolver.resolve(subject, ANCHOR_ID, now=federation.clock())


def signing_key(region: Region) -> Any:
    return region.federation.signing_keys(now=region.services.now()).signing_key()


def reconfigure(region: Region, **changes: Any) -> None:
    """Change a deployment's federation settings as a restart with other settings would."""
    context = region.federation
    context.config = dataclasses.replace(context.config, **changes)
    context.resolver.clear()


# Entity configurations and the chain ---------------------------------------------------------------


def test_every_deployment_publishes_a_self_signed_entity_configuration(federation: Federation) -> None:
    for region, hints in (
        (federation.anchor, ()),
        (federation.intermediate, (ANCHOR_ID,)),
        (federation.leaf, (INTERMEDIATE_ID,)),
    ):
        answer = region.client.get(WELL_KNOWN)
        assert answer.status_code == 200
        assert answer.content_type == ENTITY_STATEMENT_CONTENT_TYPE
        statement = parse_entity_statement(answer.data)
        verify_entity_statement(
            statement,
            keys=statement.jwks,
            now=federation.clock(),
            expected_issuer=region.entity_id,
            expected_subject=region.entity_id,
        )
        assert statement.authority_hints == hints
        assert statement.metadata[OP]["issuer"] == region.entity_id  # the OP's issuer is its entity id
        assert statement.jwks.to_jwks() == region.jwks()  # the federation key set, not the OIDC one
        assert statement.expires_at - statement.issued_at == region.federation.config.statement_ttl
    leaf = parse_entity_statement(federation.leaf.client.get(WELL_KNOWN).data)
    assert "federation_fetch_endpoint" not in leaf.metadata["federation_entity"]  # a leaf has no subordinates
    anchor = parse_entity_statement(federation.anchor.client.get(WELL_KNOWN).data)
    assert anchor.federation_endpoint("federation_fetch_endpoint") == ANCHOR_ID + "/federation/fetch"
    assert anchor.trust_mark_issuers == {LOA_HIGH: (ANCHOR_ID,)}


def test_the_chain_resolves_from_the_district_through_the_city_to_the_province(
    federation_on_each_database: Federation,
) -> None:
    federation = federation_on_each_database
    federation.anchor.register(
        federation.intermediate,
        jwks=federation.intermediate.jwks(),
        metadata_policy={
            OP: {
                "acr_values_supported": {"subset_of": [ACR_HIGH]},
                "contacts": {"add": ["sec@province.test"]},
            }
        },
        constraints={"max_path_length": 1},
    )
    federation.intermediate.register(
        federation.leaf, metadata_policy={OP: {"contacts": {"add": ["sec@city.test"]}}}
    )
    chain = resolve(federation)
    assert chain.path == (LEAF_ID, INTERMEDIATE_ID, ANCHOR_ID)
    assert [(s.issuer, s.subject) for s in chain.statements] == [
        (LEAF_ID, LEAF_ID),
        (INTERMEDIATE_ID, LEAF_ID),
        (ANCHOR_ID, INTERMEDIATE_ID),
        (ANCHOR_ID, ANCHOR_ID),
    ]
    assert chain.expires_at == min(s.expires_at for s in chain.statements)
    # Both policies, merged top-down and applied to the district's own openid_provider metadata.
    assert chain.metadata[OP]["acr_values_supported"] == [ACR_HIGH]
    assert chain.metadata[OP]["contacts"] == ["sec@province.test", "sec@city.test"]
    assert chain.metadata[OP]["issuer"] == LEAF_ID
    # The province resolves it too, through its resolve endpoint (§8.3), signed by its federation key.
    answer = federation.anchor.client.get(
        "/federation/resolve", query_string={"sub": LEAF_ID, "trust_anchor": ANCHOR_ID, "entity_type": OP}
    )
    assert answer.status_code == 200, answer.data
    assert answer.content_type == RESOLVE_RESPONSE_CONTENT_TYPE
    assert jwt.get_unverified_header(answer.text)["typ"] == "resolve-response+jwt"
    key = federation.anchor.public_keys().get(jwt.get_unverified_header(answer.text)["kid"])
    response = jwt.decode(
        answer.text,
        key.public_key,  # type: ignore[arg-type]
        algorithms=[key.alg],
        options={"verify_exp": False, "verify_iat": False},
    )
    assert (response["iss"], response["sub"]) == (ANCHOR_ID, LEAF_ID)
    assert len(response["trust_chain"]) == 4
    assert set(response["metadata"]) == {OP}
    assert response["metadata"][OP]["contacts"] == ["sec@province.test", "sec@city.test"]


def test_the_resolve_endpoint_is_rate_limited_per_caller(federation: Federation) -> None:
    """/federation/resolve fetches on the caller's behalf: one address gets RESOLVES_PER_MINUTE a minute,
    then 429 before anything more is fetched."""
    federation.anchor.register(federation.intermediate, jwks=federation.intermediate.jwks())
    federation.intermediate.register(federation.leaf)
    query = {"sub": LEAF_ID, "trust_anchor": ANCHOR_ID}
    for _ in range(RESOLVES_PER_MINUTE):
        assert federation.anchor.client.get("/federation/resolve", query_string=query).status_code == 200
    refused = federation.anchor.client.get("/federation/resolve", query_string=query)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1


def test_resolved_chains_are_cached_until_cleared_or_expired(federation: Federation) -> None:
    resolve(federation)
    fetched = len(federation.fetcher.fetched)
    resolve(federation)
    assert len(federation.fetcher.fetched) == fetched  # from the cache
    federation.clock.now += federation.leaf.federation.config.chain_cache_seconds
    resolve(federation)
    assert len(federation.fetcher.fetched) == 2 * fetched  # the cache's limit passed
    federation.leaf.federation.resolver.clear()
    resolve(federation)
    assert len(federation.fetcher.fetched) == 3 * fetched


# Attacks on signatures and lifetimes -------------------------------------------------------------------


STEPS = {
    "district configuration": LEAF_ID + WELL_KNOWN,
    "city's statement about the district": INTERMEDIATE_ID + "/federation/fetch",
    "city configuration": INTERMEDIATE_ID + WELL_KNOWN,
    "province's statement about the city": ANCHOR_ID + "/federation/fetch",
    "province configuration": ANCHOR_ID + WELL_KNOWN,
}


@pytest.mark.parametrize("step", list(STEPS))
def test_a_forged_signature_at_any_step_breaks_the_chain(federation: Federation, step: str) -> None:
    forger = generate_key("ES256")
    interceptor = intercept(federation)
    interceptor.rules.append((STEPS[step], lambda body: resign(body, forger)))
    with pytest.raises(StatementSignatureError):
        resolve(federation)


def test_a_key_the_superior_does_not_vouch_for_is_refused(federation: Federation) -> None:
    """The district signs its configuration with a new key, and lists it: self-consistent, but the city's
    statement names other keys (§10.2)."""
    rogue = generate_key("ES256")

    def with_rogue_key(claims: dict[str, Any]) -> None:
        claims["jwks"] = {"keys": [rogue.public_jwk()]}

    interceptor = intercept(federation)
    interceptor.rules.append(
        (LEAF_ID + WELL_KNOWN, lambda body: resign(body, rogue, kid=rogue.kid, change=with_rogue_key))
    )
    with pytest.raises(StatementSignatureError):
        resolve(federation)


def test_the_province_is_trusted_by_the_configured_keys_not_by_its_own_configuration(
    federation: Federation,
) -> None:
    """A man in the middle replaces the province's configuration with one signed by his key and listing it:
    self-signed and consistent, but not by the keys the district was configured with."""
    impostor = generate_key("ES256")

    def with_impostor(claims: dict[str, Any]) -> None:
        claims["jwks"] = {"keys": [impostor.public_jwk()]}

    interceptor = intercept(federation)
    interceptor.rules.append(
        (ANCHOR_ID + WELL_KNOWN, lambda body: resign(body, impostor, kid=impostor.kid, change=with_impostor))
    )
    with pytest.raises(StatementSignatureError):
        resolve(federation)


def test_a_replayed_expired_statement_breaks_the_chain(federation: Federation) -> None:
    old = federation.fetcher(f"{INTERMEDIATE_ID}/federation/fetch?sub={LEAF_ID}")
    federation.clock.now += federation.intermediate.federation.config.statement_ttl
    interceptor = intercept(federation)
    interceptor.rules.append((INTERMEDIATE_ID + "/federation/fetch", lambda _body: old))
    with pytest.raises(StatementExpiredError):
        resolve(federation)


def test_a_statement_issued_in_the_future_is_refused(federation: Federation) -> None:
    def later(claims: dict[str, Any]) -> None:
        claims["iat"] += 3600
        claims["exp"] += 3600

    interceptor = intercept(federation)
    interceptor.rules.append(
        (
            INTERMEDIATE_ID + "/federation/fetch",
            lambda body: resign(body, signing_key(federation.intermediate), change=later),
        )
    )
    with pytest.raises(StatementExpiredError):
        resolve(federation)


# Attacks on the path ---------------------------------------------------------------------------------


def test_a_loop_in_authority_hints_is_refused(federation: Federation) -> None:
    reconfigure(federation.intermediate, authority_hints=(LEAF_ID,))
    with pytest.raises(TrustChainLoopError):
        resolve(federation)


def test_a_path_longer_than_max_path_length_is_refused(federation: Federation) -> None:
    """The province allows no intermediate below the city: the district's chain has the city in it."""
    federation.anchor.register(federation.intermediate, constraints={"max_path_length": 0})
    with pytest.raises(PathTooLongError):
        resolve(federation)
    # The city itself, with no intermediate between it and the province, still resolves.
    assert resolve(federation, INTERMEDIATE_ID).path == (INTERMEDIATE_ID, ANCHOR_ID)


def test_the_resolver_s_own_depth_limit_holds(federation: Federation) -> None:
    federation.leaf.federation.resolver.max_depth = 1
    with pytest.raises(PathTooLongError):
        resolve(federation)


def test_allowed_entity_types_drop_what_a_superior_does_not_allow(federation: Federation) -> None:
    federation.intermediate.register(
        federation.leaf, constraints={"allowed_entity_types": ["openid_relying_party"]}
    )
    # The district's openid_provider is dropped; its openid_relying_party (cross-region login) is allowed.
    assert set(resolve(federation).metadata) == {"federation_entity", "openid_relying_party"}


# Attacks on metadata -----------------------------------------------------------------------------------


def test_a_district_whose_metadata_breaks_the_policy_has_no_chain(federation: Federation) -> None:
    federation.anchor.register(
        federation.intermediate,
        metadata_policy={
            OP: {"token_endpoint_auth_methods_supported": {"superset_of": ["self_signed_tls_client_auth"]}}
        },
    )
    with pytest.raises(PolicyViolationError):
        resolve(federation)


def test_conflicting_policies_of_the_province_and_the_city_break_the_chain(federation: Federation) -> None:
    federation.anchor.register(
        federation.intermediate, metadata_policy={OP: {"subject_types_supported": {"value": ["pairwise"]}}}
    )
    federation.intermediate.register(
        federation.leaf, metadata_policy={OP: {"subject_types_supported": {"value": ["public"]}}}
    )
    with pytest.raises(PolicyConflictError):
        resolve(federation)


# Trust marks -----------------------------------------------------------------------------------------


def _loa_mark(issuer: Region, subject: str, *, now: float, lifetime: int = 86400, key: Any = None) -> str:
    return issue_trust_mark(
        key=key or signing_key(issuer),
        issuer=issuer.entity_id,
        subject=subject,
        trust_mark_type=LOA_HIGH,
        now=now,
        lifetime=lifetime,
    )


def _present(federation: Federation, region: Region, *marks: str) -> None:
    """``region`` publishes ``marks`` in its entity configuration, signed with its own key (a deployment
    presenting whatever marks it likes)."""

    def with_marks(claims: dict[str, Any]) -> None:
        claims["trust_marks"] = [{"trust_mark_type": LOA_HIGH, "trust_mark": mark} for mark in marks]

    interceptor = intercept(federation)
    interceptor.rules.append(
        (region.entity_id + WELL_KNOWN, lambda body: resign(body, signing_key(region), change=with_marks))
    )


def test_a_loa_high_trust_mark_from_the_province_counts(federation: Federation) -> None:
    federation.anchor.register(federation.intermediate, trust_mark_types=[LOA_HIGH])
    with federation.anchor.services.database.session() as session:
        mark = issue_subordinate_trust_mark(
            session,
            federation.anchor.federation.config,
            INTERMEDIATE_ID,
            LOA_HIGH,
            key=signing_key(federation.anchor),
            now=federation.clock(),
        )
    # The city holds it (ONECARD_FEDERATION_TRUST_MARKS_FILE) and publishes it.
    reconfigure(federation.intermediate, trust_marks=(mark,))
    chain = resolve(federation, INTERMEDIATE_ID)
    assert chain.has_trust_mark(LOA_HIGH)
    assert chain.rejected_trust_marks == ()


def test_the_province_issues_only_the_trust_marks_a_registration_allows(federation: Federation) -> None:
    with federation.anchor.services.database.session() as session, pytest.raises(InvalidSubordinateError):
        issue_subordinate_trust_mark(
            session,
            federation.anchor.federation.config,
            INTERMEDIATE_ID,
            LOA_HIGH,
            key=signing_key(federation.anchor),
            now=federation.clock(),
        )


@pytest.mark.parametrize(
    ("case", "rejected"),
    [
        ("self-issued", UntrustedTrustMarkIssuerError),
        ("for another entity", TrustMarkSubjectError),
        ("expired", TrustMarkExpiredError),
        ("forged", TrustMarkSignatureError),
    ],
)
def test_a_bad_trust_mark_is_left_out(federation: Federation, case: str, rejected: type[Exception]) -> None:
    now = federation.clock()
    mark = {
        "self-issued": lambda: _loa_mark(federation.intermediate, INTERMEDIATE_ID, now=now),
        "for another entity": lambda: _loa_mark(federation.anchor, LEAF_ID, now=now),
        "expired": lambda: _loa_mark(federation.anchor, INTERMEDIATE_ID, now=now - 7200, lifetime=3600),
        "forged": lambda: _loa_mark(
            federation.anchor,
            INTERMEDIATE_ID,
            now=now,
            key=dataclasses.replace(generate_key("ES256"), kid=signing_key(federation.anchor).kid),
        ),
    }[case]()
    _present(federation, federation.intermediate, mark)
    chain = resolve(federation, INTERMEDIATE_ID)  # the chain holds; the mark does not count
    assert not chain.has_trust_mark(LOA_HIGH)
    assert chain.rejected_trust_marks == ((LOA_HIGH, rejected.__name__),)


def test_a_deployment_publishes_only_its_own_current_trust_marks(federation: Federation) -> None:
    now = federation.clock()
    own = _loa_mark(federation.anchor, INTERMEDIATE_ID, now=now)
    other = _loa_mark(federation.anchor, LEAF_ID, now=now)
    expiring = _loa_mark(federation.anchor, INTERMEDIATE_ID, now=now, lifetime=60)
    config = dataclasses.replace(
        federation.intermediate.federation.config, trust_marks=(own, other, expiring)
    )
    assert [m.token for m in held_trust_marks(config, now=now)] == [own, expiring]
    assert [m.token for m in held_trust_marks(config, now=now + 60)] == [own]


def test_verify_trust_mark_checks_the_type_asked_for(federation: Federation) -> None:
    mark = _loa_mark(federation.anchor, INTERMEDIATE_ID, now=federation.clock())
    with pytest.raises(TrustMarkSubjectError):
        verify_trust_mark(
            mark,
            expected_subject=INTERMEDIATE_ID,
            trust_mark_issuers={LOA_HIGH: (ANCHOR_ID,)},
            issuer_keys=lambda _issuer: federation.anchor.public_keys(),
            now=federation.clock(),
            expected_type="https://onecard.example/trust-marks/other",
        )


# The province's key rotation ---------------------------------------------------------------------------


def _actor(region: Region) -> KeyActor:
    svc = region.services
    return KeyActor(
        svc.settings, svc.keks, "cli:test", "rotation test", cache_seconds=svc.keyring.cache_seconds
    )


def test_a_province_key_rotation_keeps_chains_valid_in_its_grace_and_not_after(
    federation: Federation,
) -> None:
    anchor = federation.anchor
    old_kid = signing_key(anchor).kid
    policy = policy_for(anchor.services.settings, FEDERATION_KEYS.name)
    # The province publishes its next key; the cities' operators add it to their trust anchor files.
    with anchor.services.database.session() as session:
        new_kid = rotate(session, _actor(anchor), FEDERATION_KEYS.name, now=federation.clock()).kid
    anchor.services.keyring.invalidate()
    federation.trust_anchor_keys(anchor.public_keys())
    old_statement = federation.fetcher(f"{ANCHOR_ID}/federation/fetch?sub={INTERMEDIATE_ID}")
    old_configuration = federation.fetcher(ANCHOR_ID + WELL_KNOWN)
    assert resolve(federation).statements[-1].kid == old_kid

    # A district that did not take the new key fails once the province signs with it.
    stale = dataclasses.replace(
        anchor.public_keys(), keys=tuple(k for k in anchor.public_keys() if k.kid == old_kid)
    )
    federation.clock.now += policy.prepublication
    with anchor.services.database.session() as session:
        activate(session, _actor(anchor), new_kid, now=federation.clock())
    anchor.services.keyring.invalidate()
    assert signing_key(anchor).kid == new_kid
    federation.leaf.federation.resolver.clear()
    assert resolve(federation).statements[-1].kid == new_kid  # new statements, the configured new key

    # In its grace the retired key still verifies what it signed (a resolver holding the old statements).
    interceptor = intercept(federation)
    interceptor.rules += [
        (ANCHOR_ID + "/federation/fetch", lambda _body: old_statement),
        (ANCHOR_ID + WELL_KNOWN, lambda _body: old_configuration),
    ]
    federation.clock.now -= policy.prepublication - 60  # still inside the old statements' lifetime
    assert resolve(federation).statements[-1].kid == old_kid
    # After the grace: the old key removed, the trust anchor files updated — the old chain fails.
    with anchor.services.database.session() as session:
        remove(session, _actor(anchor), old_kid, now=federation.clock(), force=True)
    anchor.services.keyring.invalidate()
    federation.trust_anchor_keys(anchor.public_keys())
    with pytest.raises(StatementSignatureError):
        resolve(federation)
    # And the district that never took the new key fails against the new statements.
    interceptor.rules.clear()
    federation.trust_anchor_keys(stale)
    with pytest.raises(StatementSignatureError):
        resolve(federation)


def test_the_federation_key_set_s_waiting_periods_derive_from_the_statement_lifetime(
    federation: Federation,
) -> None:
    settings = federation.anchor.services.settings
    policy = policy_for(settings, FEDERATION_KEYS.name)
    assert policy.published
    assert policy.prepublication >= settings.federation_statement_ttl
    assert policy.retention >= max(settings.federation_statement_ttl, settings.federation_trust_mark_ttl)
    assert policy.rotation_interval == 0  # each rotation is registered with the superiors first


# Endpoints: removed subordinates and bad input ----------------------------------------------------------


def test_a_removed_subordinate_is_not_found_and_its_chain_breaks(
    federation_on_each_database: Federation,
) -> None:
    federation = federation_on_each_database
    city = federation.intermediate
    headers = city.admin_headers()
    listed = body_of(city.client.get("/api/v1/admin/federation/subordinates", headers=headers))[
        "subordinates"
    ]
    assert [row["entity_id"] for row in listed] == [LEAF_ID]
    assert body_of(city.client.get("/federation/list")) == [LEAF_ID]
    answer = city.client.delete(f"/api/v1/admin/federation/subordinates/{listed[0]['id']}", headers=headers)
    assert answer.status_code == 204
    answer = city.client.get("/federation/fetch", query_string={"sub": LEAF_ID})
    assert (answer.status_code, body_of(answer)["error"]) == (404, "not_found")
    assert body_of(city.client.get("/federation/list")) == []
    with pytest.raises(EntityUnreachableError):
        resolve(federation)


@pytest.mark.parametrize(
    ("path", "query", "status", "error"),
    [
        ("/federation/fetch", {}, 400, "invalid_request"),
        ("/federation/fetch", {"sub": "not a url"}, 400, "invalid_request"),
        ("/federation/fetch", {"sub": "http://x.test/?q=1"}, 400, "invalid_request"),
        ("/federation/fetch", {"sub": [LEAF_ID, LEAF_ID]}, 400, "invalid_request"),
        ("/federation/fetch", {"sub": "http://unknown.test"}, 404, "not_found"),
        ("/federation/list", {"entity_type": OP}, 400, "unsupported_parameter"),
        ("/federation/resolve", {"sub": LEAF_ID}, 400, "invalid_request"),
        (
            "/federation/resolve",
            {"sub": LEAF_ID, "trust_anchor": "http://other.test"},
            404,
            "invalid_trust_anchor",
        ),
        (
            "/federation/resolve",
            {"sub": "http://unknown.test", "trust_anchor": ANCHOR_ID},
            400,
            "invalid_trust_chain",
        ),
    ],
)
def test_bad_queries_get_the_spec_s_error_json(
    federation: Federation, path: str, query: dict[str, Any], status: int, error: str
) -> None:
    answer = federation.anchor.client.get(path, query_string=query)
    assert answer.status_code == status, answer.data
    assert answer.content_type == "application/json"
    assert body_of(answer)["error"] == error
    assert set(body_of(answer)) == {"error", "error_description"}


@pytest.mark.parametrize(
    "path",
    [
        "/federation/fetch?sub=http://x.test",
        "/federation/list",
        f"/federation/resolve?sub={LEAF_ID}&trust_anchor={ANCHOR_ID}",
    ],
)
def test_a_leaf_serves_no_authority_endpoints(federation: Federation, path: str) -> None:
    answer = federation.leaf.client.get(path)
    assert (answer.status_code, body_of(answer)["error"]) == (404, "not_found")


# The admin API ---------------------------------------------------------------------------------------


def _rows(region: Region) -> tuple[int, int]:
    with region.services.database.session() as session:
        return (
            session.scalar(select(func.count()).select_from(Subordinate)) or 0,
            session.scalar(select(func.count()).select_from(AuditEvent)) or 0,
        )


def test_staff_register_subordinates_through_the_admin_api(federation_on_each_database: Federation) -> None:
    federation = federation_on_each_database
    province = federation.anchor
    headers = province.admin_headers()
    city_b = "http://city-b.onecard.test"
    jwks = KeySet.of([generate_key("ES256").public_only()]).to_jwks()
    body: dict[str, Any] = {
        "entity_id": city_b,
        "jwks": jwks,
        "metadata_policy": {OP: {"acr_values_supported": {"subset_of": [ACR_HIGH]}}},
        "constraints": {"max_path_length": 0},
        "trust_mark_types": [LOA_HIGH],
    }
    answer = province.client.post("/api/v1/admin/federation/subordinates", json=body, headers=headers)
    assert answer.status_code == 201, answer.data
    created = body_of(answer)
    assert created["id"].startswith("fs_") and created["entity_id"] == city_b
    shown = province.client.get(f"/api/v1/admin/federation/subordinates/{created['id']}", headers=headers)
    assert body_of(shown) == created
    with province.services.database.session() as session:
        event = session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
        assert event is not None
        assert (event.action, event.target_id) == ("federation.subordinate.create", created["id"])
        assert event.actor.startswith("client:")
    statement = parse_entity_statement(
        province.client.get("/federation/fetch", query_string={"sub": city_b}).data
    )
    assert statement.constraints == {"max_path_length": 0}
    assert statement.metadata_policy == body["metadata_policy"]

    # Refused registrations change no row and record nothing.
    before = _rows(province)
    refused = [
        ({**body}, 409, "subordinate_exists"),
        (
            {
                **body,
                "entity_id": "http://c.test",
                "metadata_policy": {OP: {"x": {"add": ["a"], "one_of": ["a"]}}},
            },
            400,
            "invalid_subordinate",
        ),
        (
            {
                **body,
                "entity_id": "http://c.test",
                "jwks": {"keys": [{**jwks["keys"][0], "d": "AAAA"}]},
            },
            400,
            "invalid_subordinate",
        ),
        ({**body, "entity_id": "http://c.test", "jwks": {"keys": []}}, 400, "invalid_subordinate"),
        ({**body, "entity_id": "ftp://c.test"}, 400, "invalid_subordinate"),
        (
            {**body, "entity_id": "http://c.test", "constraints": {"naming_constraints": {}}},
            400,
            "invalid_request",
        ),
        ({**body, "entity_id": ANCHOR_ID}, 400, "invalid_subordinate"),
    ]
    for request_body, status, error in refused:
        answer = province.client.post(
            "/api/v1/admin/federation/subordinates", json=request_body, headers=headers
        )
        assert (answer.status_code, body_of(answer)["error"]) == (status, error), request_body
    assert _rows(province) == before
    assert province.client.post("/api/v1/admin/federation/subordinates", json=body).status_code == 401
    # A leaf registers nobody.
    leaf = federation.leaf
    answer = leaf.client.post(
        "/api/v1/admin/federation/subordinates", json=body, headers=leaf.admin_headers()
    )
    assert (answer.status_code, body_of(answer)["error"]) == (404, "not_found")


# The HTTP fetcher --------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []  # every path asked for, by any test's server

    def do_GET(self) -> None:
        self.seen.append(self.path)
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/statement")
            self.end_headers()
            return
        body = b"x" * (100 if self.path == "/statement" else 100_000)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_the_http_fetcher_refuses_plain_http_redirects_and_large_answers(http_server: str) -> None:
    relaxed = http_fetcher(DEVELOPMENT, max_bytes=1000)
    assert relaxed(http_server + "/statement") == b"x" * 100
    with pytest.raises(EntityUnreachableError):
        http_fetcher(Destinations(require_https=True, check_addresses=False))(http_server + "/statement")
    with pytest.raises(EntityUnreachableError):
        relaxed(http_server + "/redirect")  # not followed
    with pytest.raises(EntityUnreachableError):
        relaxed(http_server + "/large")
    with pytest.raises(EntityUnreachableError):
        relaxed("file:///etc/passwd")
    with pytest.raises(EntityUnreachableError):
        http_fetcher(DEVELOPMENT, timeout=0.5)("http://127.0.0.1:1/x")


PRODUCTION = Destinations(require_https=True, check_addresses=True)
DEVELOPMENT = Destinations(require_https=False, check_addresses=False)


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/.well-known/openid-federation",
        "https://localhost/x",
        "https://10.1.2.3/x",
        "https://192.168.0.1/x",
        "https://169.254.169.254/latest/meta-data",  # a cloud's metadata service
        "https://[::1]/x",
        "https://[fd00::1]/x",
        "https://[fec0::1]/x",
        "https://[::ffff:127.0.0.1]/x",
        "https://[64:ff9b::a9fe:a9fe]/x",  # NAT64 of 169.254.169.254
        "https://[2002:7f00:1::]/x",  # 6to4 of 127.0.0.1
        "https://100.64.0.1/x",
        "https://0.0.0.0/x",
        "https://224.0.0.1/x",
        "https://no-such-host.invalid/x",
    ],
)
def test_production_calls_go_to_no_address_of_this_network(url: str) -> None:
    """Anyone can name an entity id (a client_id at /authorize): in production the federation fetches
    nothing from loopback, private, link-local or other non-public addresses."""
    with pytest.raises(EntityUnreachableError):
        PRODUCTION.check(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8443\\@8.8.8.8/x",  # urlsplit reads 8.8.8.8, urllib3 connects to 127.0.0.1
        "http://user@127.0.0.1/x",
        "http://xn--strae-oqa.example\u00df/x",
        "http://stra\u00dfe.example/x",  # IDNA 2003 and 2008 read it differently
        "http://a.example/x y",
        "http://a.example/\x00",
        "http:///x",
    ],
)
def test_urls_that_could_be_read_two_ways_are_refused_everywhere(url: str) -> None:
    with pytest.raises(EntityUnreachableError):
        DEVELOPMENT.check(url)


def test_hosts_the_operator_names_are_reachable(http_server: str) -> None:
    named = Destinations(require_https=False, check_addresses=True, private_hosts=frozenset({"127.0.0.1"}))
    named.check(http_server + "/statement")
    with pytest.raises(EntityUnreachableError):
        named.check("http://192.168.0.1/x")
    # The statement fetcher and the other calls check before connecting: the server here is never asked.
    requests_seen = len(_Handler.seen)
    production_http = Destinations(require_https=False, check_addresses=True)
    port = http_server.rsplit(":", 1)[1]
    for call in (
        lambda: http_fetcher(production_http)(http_server + "/statement"),
        lambda: requests_http(production_http)("GET", http_server + "/statement"),
        lambda: http_fetcher(DEVELOPMENT)(f"http://127.0.0.1:{port}\\@8.8.8.8/statement"),
    ):
        with pytest.raises(EntityUnreachableError):
            call()
    assert len(_Handler.seen) == requests_seen
    assert http_fetcher(named)(http_server + "/statement") == b"x" * 100


def test_a_production_deployment_reads_its_private_hosts() -> None:
    settings = Settings(
        env="production", issuer="https://a.example", federation_private_hosts="Chengdu.gov.example, b.gov"
    )
    destinations = FederationConfig.from_settings(settings).destinations
    assert destinations == Destinations(True, True, frozenset({"chengdu.gov.example", "b.gov"}))
    development = FederationConfig.from_settings(Settings(issuer="http://a.test")).destinations
    assert development == Destinations(False, False, frozenset())
    with pytest.raises(ConfigError, match="PRIVATE_HOSTS"):
        FederationConfig.from_settings(
            Settings(env="production", issuer="https://a.example", federation_private_hosts="10.0.0.0/8")
        )


def test_an_unknown_trust_anchor_is_refused_before_anything_is_fetched(federation: Federation) -> None:
    with pytest.raises(UnknownTrustAnchorError):
        federation.leaf.federation.resolver.resolve(LEAF_ID, "http://other.test", now=federation.clock())
    assert federation.fetcher.fetched == []


def test_the_trust_anchors_file_is_read_at_start_up(federation: Federation) -> None:
    anchors = json.loads(federation.anchors_file.read_text())
    configured = federation.leaf.federation.config.anchors[ANCHOR_ID].keys
    assert configured.to_jwks() == anchors[ANCHOR_ID]
