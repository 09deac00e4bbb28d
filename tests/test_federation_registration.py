"""Automatic registration (OpenID Federation 1.0 §12.1) at the citizen's home region B: region A's OneCard
is a client of B by its entity id alone. B resolves A's trust chain, registers a ``federation`` client from
A's ``openid_relying_party`` metadata, and serves A's signed authorization request, its ``private_key_jwt``
token request, userinfo and back-channel logout (tests/support/federation_rp.py plays region A).

Each guarantee has its attack: no request object, one signed by another key, a redirect URI A did not
publish, a shared secret at the token endpoint, an entity the anchor never registered or removed, an
entity id too long for a client id, metadata without ``automatic``, keys by reference, the ``idcard``
scope. On SQLite, and the whole flow again on PostgreSQL + Redis.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator
from sqlalchemy import select
from werkzeug.test import TestResponse

import idp.oauth.logout
from idp import dbadmin
from idp.audit.model import AuditEvent
from idp.cli import cli
from idp.clients.model import Client
from idp.federation.registration import (
    FEDERATION_CLIENT_KIND,
    FederatedClientRefusedError,
    RegistrationRefusal,
    parse_relying_party_metadata,
    resolve_federated_client,
)
from idp.federation.service import remove_subordinate
from idp.oauth.claims import subject_for
from idp.oauth.logout import LogoutDelivery
from idp.scopes import ACR_HIGH
from idp.sessions.model import SsoSessionClient
from sdk.keys import KeySet, generate_key
from tests.fixtures.services import create_database_or_skip, drop_database
from tests.support.federation import REGION_A_ID, REGION_B_ID, Region, TwoRegions, running_two_regions
from tests.support.federation_rp import (
    JWT_BEARER,
    AuthorizationAttempt,
    TestRelyingParty,
    create_home_citizen,
    follow_login,
    query_of,
    relying_party_metadata,
)
from tests.support.testlogin import install_test_login

CALLBACK = REGION_A_ID + "/federation/login/callback"


@pytest.fixture(autouse=True)
def plain_http_issuers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test regions' issuers are plain http (their test clients), which Authlib refuses unless told."""
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")


@pytest.fixture
def two(tmp_path: Path) -> Iterator[TwoRegions]:
    with running_two_regions(tmp_path, plugins=[install_test_login]) as running:
        yield running


@pytest.fixture(params=["sqlite", pytest.param("postgres-redis", marks=pytest.mark.postgres)])
def two_on_each_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TwoRegions]:
    """The anchor and both regions on SQLite files, and again each on its own PostgreSQL database with
    Redis."""
    if request.param == "sqlite":
        with running_two_regions(tmp_path, plugins=[install_test_login]) as running:
            yield running
        return
    admin_url: str = request.getfixturevalue("postgres_admin_url")
    redis_url: str = request.getfixturevalue("redis_url")
    names = [create_database_or_skip(admin_url) for _ in range(3)]
    try:
        base = admin_url.rsplit("/", 1)[0]
        urls = (f"{base}/{names[0]}", f"{base}/{names[1]}", f"{base}/{names[2]}")
        with running_two_regions(
            tmp_path, urls, redis_url=redis_url, plugins=[install_test_login]
        ) as running:
            yield running
    finally:
        for name in names:
            drop_database(admin_url, name)


@pytest.fixture
def rp(two: TwoRegions, monkeypatch: pytest.MonkeyPatch) -> TestRelyingParty:
    relying_party = TestRelyingParty(two.a, two.b)
    relying_party.publish(monkeypatch)
    return relying_party


def federation_row(region: Region, client_id: str = REGION_A_ID) -> Client | None:
    with region.services.database.session() as session:
        row = session.get(Client, client_id)
        if row is not None:
            session.expunge(row)
        return row


def audit_actions(region: Region) -> list[tuple[str, str]]:
    with region.services.database.session() as session:
        return [(e.action, e.target_id) for e in session.scalars(select(AuditEvent).order_by(AuditEvent.seq))]


def code_for(rp: TestRelyingParty, citizen_id: str, attempt: AuthorizationAttempt | None = None) -> str:
    """A's browser through B's login and consent; returns the code B sends to A's callback."""
    attempt = attempt or rp.attempt()
    answer = follow_login(rp.op, rp.authorization_url(attempt), citizen_id=citizen_id)
    assert answer.status_code in (302, 303), answer.get_data(as_text=True)[:300]
    location = answer.headers["Location"]
    assert location.startswith(CALLBACK + "?"), location
    query = query_of(location)
    assert query["state"] == attempt.state and query["iss"] == REGION_B_ID  # RFC 9207
    return query["code"]


def refused_page(answer: TestResponse, code: str = "invalid_client") -> None:
    """An error page at B, sent nowhere (an unknown client's redirect URI is never trusted)."""
    assert answer.status_code == 400 and "Location" not in answer.headers, answer.headers
    assert code in answer.get_data(as_text=True)


def error_at_callback(answer: TestResponse) -> dict[str, str]:
    assert answer.status_code in (302, 303), answer.get_data(as_text=True)[:300]
    location = answer.headers["Location"]
    assert location.startswith(CALLBACK + "?"), location
    query = query_of(location)
    assert "code" not in query
    return query


# The whole flow -----------------------------------------------------------------------------------------


def test_region_a_logs_a_citizen_of_region_b_in_with_no_registration_by_staff(
    two_on_each_database: TwoRegions, monkeypatch: pytest.MonkeyPatch
) -> None:
    two = two_on_each_database
    rp = TestRelyingParty(two.a, two.b)
    rp.publish(monkeypatch)
    citizen_id = create_home_citizen(two.b)
    assert federation_row(two.b) is None

    attempt = rp.attempt()
    login_page = follow_login(two.b, rp.authorization_url(attempt), citizen_id=None)
    assert login_page.status_code == 200 and login_page.request.path.startswith("/login/")
    assert "Region A OneCard" in login_page.get_data(as_text=True)  # the name A's metadata gives

    row = federation_row(two.b)
    assert row is not None
    assert (row.kind, row.name, row.client_secret_hash) == (FEDERATION_CLIENT_KIND, "Region A OneCard", None)
    assert row.jwks == {"keys": [rp.key.public_jwk()]}
    assert row.redirect_uris == [CALLBACK]
    assert row.post_logout_redirect_uris == [REGION_A_ID + "/federation/logout/done"]
    assert row.backchannel_logout_uri == REGION_A_ID + "/federation/backchannel-logout"
    assert (row.token_endpoint_auth_method, row.require_signed_request_object) == ("private_key_jwt", True)
    assert (row.grant_types, row.scope) == (["authorization_code"], "openid profile realname")
    assert (row.subject_type, row.sector, row.id_token_signed_response_alg) == (
        "pairwise",
        REGION_A_ID,
        "ES256",
    )
    assert not (row.id_number_allowed or row.first_party or row.fapi2_security_profile)
    chain = two.b.federation.resolver.resolve_any(REGION_A_ID, now=two.clock())
    expected_expiry = min(chain.expires_at, two.clock() + two.b.federation.config.chain_cache_seconds)
    assert row.federation_expires_at is not None
    assert row.federation_expires_at.timestamp() == expected_expiry
    assert ("client.federation.register", REGION_A_ID) in audit_actions(two.b)

    code = code_for(rp, citizen_id, attempt)
    token = rp.exchange(code, attempt)
    assert token.status_code == 200, token.data
    body = token.get_json()
    assert body["scope"] == "openid profile realname" and "refresh_token" not in body
    claims = rp.verify_id_token(body["id_token"], attempt)
    assert claims["sub"] == subject_for(row, citizen_id, salt=two.b.services.settings.issuer)
    assert claims["sub"] != citizen_id and claims["acr"] == ACR_HIGH and claims["sid"]
    assert "id_number" not in claims
    userinfo = two.b.client.get("/userinfo", headers={"Authorization": "Bearer " + body["access_token"]})
    assert userinfo.status_code == 200 and userinfo.get_json()["sub"] == claims["sub"]
    with two.b.services.database.session() as session:
        participants = session.scalars(
            select(SsoSessionClient.client_id).where(SsoSessionClient.sid == claims["sid"])
        )
        assert list(participants) == [REGION_A_ID]  # B's logout will tell A


def test_a_registration_is_made_once_and_a_second_login_reuses_it(
    two: TwoRegions, rp: TestRelyingParty
) -> None:
    citizen_id = create_home_citizen(two.b)
    for _ in range(2):
        attempt = rp.attempt()
        assert rp.exchange(code_for(rp, citizen_id, attempt), attempt).status_code == 200
    assert [a for a in audit_actions(two.b) if a[0].startswith("client.federation")] == [
        ("client.federation.register", REGION_A_ID)
    ]


def test_the_registration_can_start_at_the_par_endpoint(two: TwoRegions, rp: TestRelyingParty) -> None:
    citizen_id = create_home_citizen(two.b)
    attempt = rp.attempt()
    pushed = two.b.client.post(
        "/par",
        data={
            "client_id": rp.client_id,
            "request": rp.request_object(attempt.params),
            **rp.client_assertion(),
        },
    )
    assert pushed.status_code == 201, pushed.data
    assert federation_row(two.b) is not None
    url = "/authorize?" + urlencode(
        {"client_id": rp.client_id, "request_uri": pushed.get_json()["request_uri"]}
    )
    answer = follow_login(two.b, url, citizen_id=citizen_id)
    code = query_of(answer.headers["Location"])["code"]
    assert rp.exchange(code, attempt).status_code == 200
    # A pushed request without a request object is refused: the client must sign its requests.
    plain = two.b.client.post("/par", data={**rp.attempt().params, **rp.client_assertion()})
    assert plain.status_code == 400 and plain.get_json()["error"] == "invalid_request"


def test_back_channel_logout_reaches_region_a(
    two: TwoRegions, rp: TestRelyingParty, monkeypatch: pytest.MonkeyPatch
) -> None:
    """B's own logout delivery (idp.oauth.logout) sends A a logout token for the session A took part in."""
    delivered: list[LogoutDelivery] = []

    def deliver(deliveries: list[LogoutDelivery], *, timeout: float) -> list[Any]:
        delivered.extend(deliveries)
        return []

    monkeypatch.setattr(idp.oauth.logout, "deliver_logout_tokens", deliver)
    citizen_id = create_home_citizen(two.b)
    attempt = rp.attempt()
    id_token = rp.exchange(code_for(rp, citizen_id, attempt), attempt).get_json()["id_token"]
    claims = rp.verify_id_token(id_token, attempt)
    done = REGION_A_ID + "/federation/logout/done"
    answer = two.b.client.get(
        "/logout", query_string={"id_token_hint": id_token, "post_logout_redirect_uri": done}
    )
    assert answer.status_code == 303 and answer.headers["Location"] == done
    (delivery,) = delivered
    assert (delivery.client_id, delivery.uri) == (REGION_A_ID, REGION_A_ID + "/federation/backchannel-logout")
    logout = jwt.decode(delivery.logout_token, options={"verify_signature": False})
    assert (logout["aud"], logout["sub"], logout["sid"]) == (REGION_A_ID, claims["sub"], claims["sid"])
    assert jwt.get_unverified_header(delivery.logout_token)["alg"] == "ES256"


# Attacks on the authorization request -------------------------------------------------------------------


def test_a_plain_authorization_request_is_refused(two: TwoRegions, rp: TestRelyingParty) -> None:
    citizen_id = create_home_citizen(two.b)
    url = "/authorize?" + urlencode(rp.attempt().params)
    error = error_at_callback(follow_login(two.b, url, citizen_id=citizen_id))
    assert error["error"] == "invalid_request"
    assert federation_row(two.b) is None


def test_a_request_object_signed_by_another_key_is_refused(two: TwoRegions, rp: TestRelyingParty) -> None:
    citizen_id = create_home_citizen(two.b)
    url = rp.authorization_url(rp.attempt(), key=generate_key("ES256"))
    error = error_at_callback(follow_login(two.b, url, citizen_id=citizen_id))
    assert error["error"] == "invalid_request_object"
    # Another key under the published key's kid is no better.
    forged = rp.authorization_url(rp.attempt(), key=generate_key("ES256"), kid=rp.key.kid)
    assert (
        error_at_callback(follow_login(two.b, forged, citizen_id=citizen_id))["error"]
        == "invalid_request_object"
    )
    # A refused request registers nothing: the registration is written once a request has been validated.
    assert federation_row(two.b) is None
    assert not [action for action in audit_actions(two.b) if action[0].startswith("client.federation")]


def test_a_request_object_of_another_client_or_audience_is_refused(
    two: TwoRegions, rp: TestRelyingParty
) -> None:
    citizen_id = create_home_citizen(two.b)
    for change in (
        lambda claims: claims.update(aud=REGION_A_ID),
        lambda claims: claims.update(iss="http://other.onecard.test"),
        lambda claims: claims.update(exp=claims["iat"] + 7200),
    ):
        url = rp.authorization_url(rp.attempt(), change=change)
        assert (
            error_at_callback(follow_login(two.b, url, citizen_id=citizen_id))["error"]
            == "invalid_request_object"
        )


def test_a_redirect_uri_region_a_did_not_publish_is_refused(two: TwoRegions, rp: TestRelyingParty) -> None:
    citizen_id = create_home_citizen(two.b)
    attempt = rp.attempt(redirect_uri="http://evil.example/callback")
    refused_page(follow_login(two.b, rp.authorization_url(attempt), citizen_id=citizen_id), "invalid_request")
    assert federation_row(two.b) is None


def test_the_idcard_scope_is_never_granted(
    two: TwoRegions, rp: TestRelyingParty, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert rp.metadata is not None
    rp.metadata["scope"] = "openid profile realname idcard offline_access"
    citizen_id = create_home_citizen(two.b)
    attempt = rp.attempt(scope="openid idcard")
    error = error_at_callback(follow_login(two.b, rp.authorization_url(attempt), citizen_id=citizen_id))
    assert error["error"] == "invalid_scope"
    assert federation_row(two.b) is None  # a refused request registers nothing
    code_for(rp, citizen_id)
    row = federation_row(two.b)
    assert row is not None and row.scope == "openid profile realname"


# Attacks on the token request ---------------------------------------------------------------------------


def test_only_a_client_assertion_by_the_published_key_redeems_the_code(
    two: TwoRegions, rp: TestRelyingParty
) -> None:
    citizen_id = create_home_citizen(two.b)
    attempt = rp.attempt()
    code = code_for(rp, citizen_id, attempt)
    basic = "Basic " + base64.b64encode(f"{rp.client_id}:guess".encode()).decode()
    refusals = [
        rp.exchange(code, attempt, client_id=rp.client_id, client_secret="guess"),
        rp.op.client.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": attempt.redirect_uri,
                "code_verifier": attempt.verifier,
            },
            headers={"Authorization": basic},
        ),
        rp.exchange(code, attempt, **rp.client_assertion(key=generate_key("ES256"))),
        rp.exchange(code, attempt, **rp.client_assertion(audience=REGION_A_ID + "/token")),
    ]
    for refused in refusals:
        assert refused.status_code in (400, 401) and refused.get_json()["error"] == "invalid_client", (
            refused.data
        )
    # None of them spent the code; the assertion by the published key, for B's issuer itself, redeems it.
    assert rp.exchange(code, attempt, **rp.client_assertion(audience=REGION_B_ID)).status_code == 200


def test_a_client_assertion_expired_at_the_servers_clock_or_replayed_is_refused(
    two: TwoRegions, rp: TestRelyingParty
) -> None:
    citizen_id = create_home_citizen(two.b)
    attempt = rp.attempt()
    code = code_for(rp, citizen_id, attempt)
    stale = rp.client_assertion(audience=REGION_B_ID, issued_at=int(two.b.services.now()) - 3600)
    refused = rp.exchange(code, attempt, **stale)
    assert refused.status_code in (400, 401) and refused.get_json()["error"] == "invalid_client"
    assertion = rp.client_assertion(audience=REGION_B_ID)
    assert rp.exchange(code, attempt, **assertion).status_code == 200
    second = rp.attempt()
    replayed = rp.exchange(code_for(rp, citizen_id, second), second, **assertion)
    assert replayed.status_code in (400, 401) and replayed.get_json()["error"] == "invalid_client"


# The federation vouches, or nothing is registered ------------------------------------------------------


def test_an_entity_the_anchor_never_registered_is_refused_and_nothing_is_written(
    two: TwoRegions, rp: TestRelyingParty
) -> None:
    with two.anchor.services.database.session() as session:
        remove_subordinate(session, REGION_A_ID)
    citizen_id = create_home_citizen(two.b)
    refused_page(follow_login(two.b, rp.authorization_url(rp.attempt()), citizen_id=citizen_id))
    assert federation_row(two.b) is None
    token = rp.exchange("some-code", rp.attempt())
    assert token.status_code == 400 and token.get_json()["error"] == "invalid_client"
    assert "trust chain" in token.get_json()["error_description"]
    assert federation_row(two.b) is None


def test_an_entity_the_anchor_removes_is_refused_once_its_registration_expires(
    two: TwoRegions, rp: TestRelyingParty
) -> None:
    citizen_id = create_home_citizen(two.b)
    code_for(rp, citizen_id)
    row = federation_row(two.b)
    assert row is not None and row.federation_expires_at is not None
    with two.anchor.services.database.session() as session:
        remove_subordinate(session, REGION_A_ID)
    code_for(rp, citizen_id)  # the registration holds until it expires (at most the chain cache's time)
    two.clock.advance(row.federation_expires_at.timestamp() - two.clock() + 1)
    refused_page(follow_login(two.b, rp.authorization_url(rp.attempt()), citizen_id=citizen_id))
    assert federation_row(two.b) is None
    assert ("client.federation.remove", REGION_A_ID) in audit_actions(two.b)


def test_a_registration_whose_metadata_no_longer_fits_is_removed_when_it_expires(
    two: TwoRegions, rp: TestRelyingParty
) -> None:
    citizen_id = create_home_citizen(two.b)
    code_for(rp, citizen_id)
    row = federation_row(two.b)
    assert row is not None and row.federation_expires_at is not None and rp.metadata is not None
    rp.metadata["client_registration_types"] = ["explicit"]
    two.clock.advance(row.federation_expires_at.timestamp() - two.clock() + 1)
    token = rp.exchange("some-code", rp.attempt())  # the token endpoint re-resolves too
    assert token.status_code == 400 and token.get_json()["error"] == "invalid_client"
    assert federation_row(two.b) is None
    with two.b.services.database.session() as session:
        removal = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "client.federation.remove")
        ).one()
        assert removal.details == {"reason": RegistrationRefusal.NOT_AUTOMATIC.value}


def test_an_expired_registration_is_renewed_with_the_metadata_as_it_stands(
    two: TwoRegions, rp: TestRelyingParty
) -> None:
    citizen_id = create_home_citizen(two.b)
    code_for(rp, citizen_id)
    new_key = generate_key("ES256")
    assert rp.metadata is not None
    rp.metadata["jwks"] = KeySet.of([rp.key.public_only(), new_key.public_only()]).to_jwks()
    old = federation_row(two.b)
    assert old is not None and old.federation_expires_at is not None
    two.clock.advance(old.federation_expires_at.timestamp() - two.clock() + 1)
    rp.key = new_key  # A signs with its new key from now on
    attempt = rp.attempt()
    assert rp.exchange(code_for(rp, citizen_id, attempt), attempt).status_code == 200
    renewed = federation_row(two.b)
    assert renewed is not None and renewed.federation_expires_at is not None
    assert renewed.federation_expires_at > old.federation_expires_at and len(renewed.jwks["keys"]) == 2  # type: ignore[index]
    assert renewed.created_at == old.created_at
    assert ("client.federation.update", REGION_A_ID) in audit_actions(two.b)


def test_a_refused_token_request_renews_no_registration(two: TwoRegions, rp: TestRelyingParty) -> None:
    citizen_id = create_home_citizen(two.b)
    code_for(rp, citizen_id)
    old = federation_row(two.b)
    assert old is not None and old.federation_expires_at is not None
    two.clock.advance(old.federation_expires_at.timestamp() - two.clock() + 1)
    before = audit_actions(two.b)
    token = rp.exchange("no-such-code", rp.attempt())  # a valid client assertion, a code that is none
    assert token.status_code == 400 and token.get_json()["error"] == "invalid_grant"
    still = federation_row(two.b)
    assert still is not None and still.federation_expires_at == old.federation_expires_at
    assert audit_actions(two.b) == before


def test_metadata_without_automatic_registration_is_refused(two: TwoRegions, rp: TestRelyingParty) -> None:
    assert rp.metadata is not None
    rp.metadata["client_registration_types"] = ["explicit"]
    citizen_id = create_home_citizen(two.b)
    refused_page(follow_login(two.b, rp.authorization_url(rp.attempt()), citizen_id=citizen_id))
    assert federation_row(two.b) is None
    token = rp.exchange("some-code", rp.attempt())
    assert (
        token.get_json()["error"] == "invalid_client" and "automatic" in token.get_json()["error_description"]
    )


def test_an_entity_without_relying_party_metadata_is_refused(two: TwoRegions, rp: TestRelyingParty) -> None:
    rp.metadata = {}
    refused_page(follow_login(two.b, rp.authorization_url(rp.attempt()), citizen_id=None))
    assert federation_row(two.b) is None


def refusal_at_b(two: TwoRegions, client_id: str) -> RegistrationRefusal:
    svc = two.b.services
    with svc.database.session() as session, pytest.raises(FederatedClientRefusedError) as refused:
        resolve_federated_client(
            session,
            client_id,
            federation=svc.federation,
            database=svc.database,
            now=svc.now(),
            client_address="192.0.2.1",
        )
    assert refused.value.error == "invalid_client"
    return refused.value.reason


def test_an_entity_id_longer_than_a_client_id_is_refused(two: TwoRegions, rp: TestRelyingParty) -> None:
    long_id = REGION_A_ID + "/" + "x" * (64 - len(REGION_A_ID))
    assert len(long_id) == 65
    assert refusal_at_b(two, long_id) is RegistrationRefusal.ENTITY_ID_TOO_LONG
    query = {"client_id": long_id, "response_type": "code", "scope": "openid", "request": "x"}
    refused_page(two.b.client.get("/authorize?" + urlencode(query)))
    claims = {
        "iss": long_id,
        "sub": long_id,
        "aud": REGION_B_ID + "/token",
        "exp": int(two.clock()) + 60,
        "jti": "j",
    }
    assertion = jwt.encode(claims, rp.key.private_key, algorithm="ES256")  # type: ignore[arg-type]
    token = rp.exchange(
        "some-code", rp.attempt(), client_assertion_type=JWT_BEARER, client_assertion=assertion
    )
    assert token.get_json()["error"] == "invalid_client" and "64" in token.get_json()["error_description"]


def test_this_provider_does_not_register_itself(two: TwoRegions) -> None:
    assert refusal_at_b(two, REGION_B_ID) is RegistrationRefusal.OWN_ENTITY


def test_unregistered_entities_are_rate_limited_before_anything_is_fetched(two: TwoRegions) -> None:
    federation = two.b.federation
    fetches: list[str] = []
    inner = federation.resolver.fetch

    def counting(url: str) -> bytes:
        fetches.append(url)
        return inner(url)

    federation.resolver.fetch = counting
    for _ in range(federation.resolve_limiter.limit):
        assert refusal_at_b(two, "http://nowhere.onecard.test") is RegistrationRefusal.NO_TRUST_CHAIN
    assert len(fetches) == federation.resolve_limiter.limit
    assert refusal_at_b(two, "http://nowhere.onecard.test") is RegistrationRefusal.RATE_LIMITED
    assert len(fetches) == federation.resolve_limiter.limit


def test_a_plain_unknown_client_id_is_no_registration(two: TwoRegions) -> None:
    svc = two.b.services
    fetched = list(two.fetcher.fetched)
    with svc.database.session() as session:
        found = resolve_federated_client(
            session,
            "oc_unknown",
            federation=svc.federation,
            database=svc.database,
            now=svc.now(),
            client_address="192.0.2.1",
        )
    assert found is None and two.fetcher.fetched == fetched


# Admin surfaces --------------------------------------------------------------------------------------


def test_the_admin_api_lists_federation_clients_as_its_contract_says(
    two: TwoRegions, rp: TestRelyingParty
) -> None:
    follow_login(two.b, rp.authorization_url(rp.attempt()), citizen_id=None)
    answer = two.b.client.get("/api/v1/admin/clients", headers=two.b.admin_headers())
    assert answer.status_code == 200
    (listed,) = [c for c in answer.get_json()["clients"] if c["client_id"] == REGION_A_ID]
    assert listed["kind"] == FEDERATION_CLIENT_KIND
    document = two.b.client.get("/api/openapi.json").get_json()
    schema = document["paths"]["/api/v1/admin/clients"]["get"]["responses"]["200"]
    if "$ref" in schema:
        schema = document["components"]["responses"][schema["$ref"].rsplit("/", 1)[1]]
    validator = Draft202012Validator(
        {**schema["content"]["application/json"]["schema"], "components": document["components"]}
    )
    assert [error.message for error in validator.iter_errors(answer.get_json())] == []


def test_onecard_clients_list_shows_federation_clients(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    anchor, a, b = (f"sqlite:///{tmp_path}/{name}.sqlite3" for name in ("anchor", "ra", "rb"))
    urls = (anchor, a, b)
    dbadmin.upgrade(urls[2])  # region B on a migrated database: the column comes from the migration
    with running_two_regions(tmp_path, urls, plugins=[install_test_login]) as two:
        rp = TestRelyingParty(two.a, two.b)
        rp.publish(monkeypatch)
        follow_login(two.b, rp.authorization_url(rp.attempt()), citizen_id=None)
        assert federation_row(two.b) is not None
    for key in list(os.environ):
        if key.startswith("ONECARD_") and not key.startswith("ONECARD_TEST_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("ONECARD_DATABASE_URL", urls[2])
    monkeypatch.setenv("ONECARD_ENV", "test")
    listed = CliRunner().invoke(cli, ["clients", "list"], catch_exceptions=False)
    assert listed.exit_code == 0 and REGION_A_ID in listed.output and "federation" in listed.output
    shown = CliRunner().invoke(cli, ["clients", "show", REGION_A_ID, "--json"], catch_exceptions=False)
    assert json.loads(shown.output)["kind"] == FEDERATION_CLIENT_KIND


# The metadata, as data ---------------------------------------------------------------------------------

KEY = generate_key("ES256")
GOOD: dict[str, Any] = relying_party_metadata("https://region-a.example.gov.cn", KEY)


def variant(**changes: Any) -> dict[str, Any]:
    """GOOD with some parameters changed (None: removed)."""
    rp = {**GOOD, **changes}
    return {"openid_relying_party": {k: v for k, v in rp.items() if v is not None}}


def test_the_protocol_metadata_is_registered_as_it_says() -> None:
    parsed = parse_relying_party_metadata(
        {"openid_relying_party": GOOD}, entity_id="https://a", allow_http=False
    )
    assert parsed.redirect_uris == ("https://region-a.example.gov.cn/federation/login/callback",)
    assert parsed.jwks == {"keys": [KEY.public_jwk()]}
    assert (parsed.scope, parsed.id_token_signed_response_alg) == ("openid profile realname", "ES256")


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ({}, RegistrationRefusal.NOT_A_RELYING_PARTY),
        ({"openid_relying_party": "x"}, RegistrationRefusal.NOT_A_RELYING_PARTY),
        (variant(client_registration_types=["explicit"]), RegistrationRefusal.NOT_AUTOMATIC),
        (variant(client_registration_types=None), RegistrationRefusal.INVALID_METADATA),
        (variant(client_registration_types="automatic"), RegistrationRefusal.INVALID_METADATA),
        (variant(jwks=None, jwks_uri="https://a/jwks"), RegistrationRefusal.KEYS_NOT_INLINE),
        (variant(jwks=None, signed_jwks_uri="https://a/jwks"), RegistrationRefusal.KEYS_NOT_INLINE),
        (variant(jwks=None), RegistrationRefusal.INVALID_METADATA),
        (variant(jwks_uri="https://a/jwks"), RegistrationRefusal.INVALID_METADATA),
        (variant(jwks={"keys": [{**KEY.public_jwk(), "d": "AAAA"}]}), RegistrationRefusal.INVALID_METADATA),
        (variant(jwks={"keys": [{"kty": "oct", "k": "AAAA"}]}), RegistrationRefusal.INVALID_METADATA),
        (variant(jwks={"keys": [{**KEY.public_jwk(), "use": "enc"}]}), RegistrationRefusal.INVALID_METADATA),
        (variant(jwks={"keys": [generate_key("EdDSA").public_jwk()]}), RegistrationRefusal.INVALID_METADATA),
        (
            variant(jwks={"keys": [{"kty": "EC", "crv": "P-256", "x": "!"}]}),
            RegistrationRefusal.INVALID_METADATA,
        ),
        (variant(jwks="keys"), RegistrationRefusal.INVALID_METADATA),
        (variant(jwks={"keys": []}), RegistrationRefusal.INVALID_METADATA),
        (variant(token_endpoint_auth_method="client_secret_basic"), RegistrationRefusal.INVALID_METADATA),
        (variant(token_endpoint_auth_method=None), RegistrationRefusal.INVALID_METADATA),
        (variant(request_object_signing_alg="none"), RegistrationRefusal.INVALID_METADATA),
        (variant(token_endpoint_auth_signing_alg="HS256"), RegistrationRefusal.INVALID_METADATA),
        (variant(grant_types=["authorization_code", "refresh_token"]), RegistrationRefusal.INVALID_METADATA),
        (variant(grant_types=["implicit"]), RegistrationRefusal.INVALID_METADATA),
        (variant(response_types=["code", "id_token"]), RegistrationRefusal.INVALID_METADATA),
        (variant(redirect_uris=None), RegistrationRefusal.INVALID_METADATA),
        (variant(redirect_uris=[]), RegistrationRefusal.INVALID_METADATA),
        (variant(redirect_uris="https://a/cb"), RegistrationRefusal.INVALID_METADATA),
        (variant(redirect_uris=["http://region-a.example.gov.cn/cb"]), RegistrationRefusal.INVALID_METADATA),
        (variant(redirect_uris=["https://a/cb#x"]), RegistrationRefusal.INVALID_METADATA),
        (variant(redirect_uris=["/relative"]), RegistrationRefusal.INVALID_METADATA),
        (variant(redirect_uris=["https://a:port/cb"]), RegistrationRefusal.INVALID_METADATA),
        (variant(redirect_uris=["https://a/\u00e9"]), RegistrationRefusal.INVALID_METADATA),
        (variant(redirect_uris=["https://a/" + "x" * 2000]), RegistrationRefusal.INVALID_METADATA),
        (variant(redirect_uris=[f"https://a/{i}" for i in range(11)]), RegistrationRefusal.INVALID_METADATA),
        (variant(backchannel_logout_uri="javascript:alert(1)"), RegistrationRefusal.INVALID_METADATA),
        (variant(backchannel_logout_uri="https://a/" + "x" * 1000), RegistrationRefusal.INVALID_METADATA),
        (variant(post_logout_redirect_uris=["ftp://a/done"]), RegistrationRefusal.INVALID_METADATA),
        (variant(scope="profile realname"), RegistrationRefusal.INVALID_METADATA),
        (variant(scope=["openid"]), RegistrationRefusal.INVALID_METADATA),
        (variant(client_name=7), RegistrationRefusal.INVALID_METADATA),
        (variant(client_name="a\x00b"), RegistrationRefusal.INVALID_METADATA),
    ],
)
def test_metadata_that_does_not_fit_is_refused_with_its_reason(
    metadata: dict[str, Any], reason: RegistrationRefusal
) -> None:
    with pytest.raises(FederatedClientRefusedError) as refused:
        parse_relying_party_metadata(metadata, entity_id="https://a", allow_http=False)
    assert refused.value.reason is reason and refused.value.error == "invalid_client"
    assert refused.value.description.startswith("Automatic registration refused: ")


def test_defaults_and_narrowing() -> None:
    parsed = parse_relying_party_metadata(
        variant(
            scope="openid idcard offline_access realname",
            id_token_signed_response_alg="PS512",
            client_name=None,
            grant_types=None,
            response_types=None,
            backchannel_logout_uri=None,
            post_logout_redirect_uris=None,
        )
        | {"federation_entity": {"organization_name": "某市一卡通"}},
        entity_id="https://a",
        allow_http=False,
    )
    assert (parsed.scope, parsed.id_token_signed_response_alg, parsed.name) == (
        "openid realname",
        "ES256",
        "某市一卡通",
    )
    assert (parsed.backchannel_logout_uri, parsed.post_logout_redirect_uris) == (None, ())
    http = parse_relying_party_metadata(
        variant(redirect_uris=["http://region-a.onecard.test/cb"]), entity_id="http://a", allow_http=True
    )
    assert http.redirect_uris == ("http://region-a.onecard.test/cb",) and http.name == "Region A OneCard"
