"""The lean path (idp.fastpath): it answers plain client_credentials token requests, discovery and the JWKS
exactly as the Flask path does, hands every other request (refusals included) to the Flask path, records
the same request log line and metrics, and sees client and key changes made on another node.

Each test runs two apps on one database (and one Redis on PostgreSQL): ``lean``, and ``full`` with the lean
path off — two nodes, one of them answering everything through Flask and Authlib.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from prometheus_client import REGISTRY
from sqlalchemy import text, update

from idp.bearer_secrets import hash_bearer_secret
from idp.clients.model import Client
from idp.clients.service import ClientRegistration, create_client, remove_client
from idp.fastpath.token import CLIENT_CACHE_SECONDS
from idp.fastpath.wsgi import LeanPath
from idp.keys.model import KeyState
from idp.keys.service import KEY_RING_CACHE_SECONDS, OIDC_ES256, create_key
from idp.observability.web import REQUEST_LOGGER
from idp.services import Services
from tests.support.lean import BACKENDS, app_for, lean_and_full
from tests.support.live import ShiftClock

FORM = "application/x-www-form-urlencoded"
VOLATILE = {"X-Request-ID", "Date"}


@dataclass
class Nodes:
    lean: Flask
    full: Flask
    clock: ShiftClock

    @property
    def lean_path(self) -> LeanPath:
        wsgi = self.lean.wsgi_app
        assert isinstance(wsgi, LeanPath)
        return wsgi

    def register(self, **kwargs: Any) -> tuple[str, str]:
        kwargs.setdefault("name", "Operator")
        kwargs.setdefault("kind", "operator")
        kwargs.setdefault("scope", "realname:verify")
        svc: Services = self.full.extensions["onecard"]
        with svc.database.session() as session:
            client, secret = create_client(session, ClientRegistration(**kwargs), now=self.clock())
            return client.client_id, secret or ""


@pytest.fixture(params=BACKENDS)
def nodes(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Nodes]:
    clock = ShiftClock()
    with lean_and_full(request, tmp_path, clock) as (lean, full):
        yield Nodes(lean, full, clock)


def basic(client_id: str, secret: str) -> dict[str, str]:
    pair = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": "Basic " + pair}


def token_request(app: Flask, body: str, headers: dict[str, str] | None = None) -> Any:
    return app.test_client().post("/token", data=body, headers={"Content-Type": FORM, **(headers or {})})


def stable_headers(response: Any) -> list[tuple[str, str]]:
    return [(name, value) for name, value in response.headers.items() if name not in VOLATILE]


def introspect(app: Flask, token: str, client_id: str, secret: str) -> dict[str, Any]:
    answer = app.test_client().post("/introspect", data={"token": token}, headers=basic(client_id, secret))
    assert answer.status_code == 200, answer.data
    return answer.get_json()  # type: ignore[no-any-return]


def test_a_token_from_the_lean_path_is_the_full_paths(nodes: Nodes) -> None:
    client_id, secret = nodes.register()
    body = "grant_type=client_credentials&scope=realname%3Averify"
    served = nodes.lean_path.served
    lean = token_request(nodes.lean, body, basic(client_id, secret))
    assert nodes.lean_path.served == served + 1  # the lean path answered, Flask did not
    full = token_request(nodes.full, body, basic(client_id, secret))
    assert lean.status_code == full.status_code == 200
    assert stable_headers(lean) == stable_headers(full)
    assert list(lean.get_json()) == list(full.get_json())  # the same members, in the same order
    assert {k: v for k, v in lean.get_json().items() if k != "access_token"} == {
        k: v for k, v in full.get_json().items() if k != "access_token"
    }
    # client_secret_post, and no scope (all the client's service scopes)
    post_id, post_secret = nodes.register(token_endpoint_auth_method="client_secret_post")
    post = token_request(
        nodes.lean, f"grant_type=client_credentials&client_id={post_id}&client_secret={post_secret}"
    )
    assert post.status_code == 200 and post.get_json()["scope"] == "realname:verify"
    assert nodes.lean_path.served == served + 2


def test_its_tokens_introspect_and_revoke_on_the_other_node(nodes: Nodes) -> None:
    client_id, secret = nodes.register()
    token = token_request(nodes.lean, "grant_type=client_credentials", basic(client_id, secret)).get_json()[
        "access_token"
    ]
    seen = introspect(nodes.full, token, client_id, secret)
    assert seen["active"] is True and seen["client_id"] == client_id and seen["scope"] == "realname:verify"
    revoked = nodes.full.test_client().post(
        "/revoke", data={"token": token}, headers=basic(client_id, secret)
    )
    assert revoked.status_code == 200
    assert introspect(nodes.lean, token, client_id, secret) == {"active": False}


REFUSED = {
    "wrong secret": ("grant_type=client_credentials", "wrong"),
    "unknown client": ("grant_type=client_credentials", "unknown"),
    "scope not registered": ("grant_type=client_credentials&scope=admin", ""),
    "not a service scope": ("grant_type=client_credentials&scope=openid", ""),
    "duplicate parameter": ("grant_type=client_credentials&scope=realname%3Averify&scope=admin", ""),
    "empty scope": ("grant_type=client_credentials&scope=", ""),
    "unknown grant type": ("grant_type=password&username=a&password=b", ""),
    "no grant type": ("scope=realname%3Averify", ""),
    "credentials twice": ("grant_type=client_credentials&client_id={id}&client_secret={secret}", ""),
    "a NUL": ("grant_type=client_credentials&scope=realname%00", ""),
}

# Authlib takes the header's credentials, the first scope, and no scope for an empty one.
UNREAD = {"credentials twice", "duplicate parameter", "empty scope"}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refusals_and_unread_requests_get_the_full_paths_answer(nodes: Nodes, case: str) -> None:
    client_id, secret = nodes.register()
    body, change = REFUSED[case]
    body = body.format(id=client_id, secret=secret)
    credentials = basic(
        "oc_nobody" if change == "unknown" else client_id, "occs_wrong" if change == "wrong" else secret
    )
    served = nodes.lean_path.served
    lean = token_request(nodes.lean, body, credentials)
    full = token_request(nodes.full, body, credentials)
    assert nodes.lean_path.served == served  # Flask answered
    assert lean.status_code == full.status_code
    if case in UNREAD:  # the lean path does not read these; Authlib grants them
        assert lean.status_code == 200 and list(lean.get_json()) == list(full.get_json())
        assert lean.get_json()["scope"] == full.get_json()["scope"]
        return
    assert 400 <= lean.status_code < 500
    assert lean.get_json() == full.get_json()
    assert stable_headers(lean) == stable_headers(full)


@pytest.mark.parametrize(
    "registration",
    [
        {"kind": "portal", "scope": "openid profile", "redirect_uris": ("https://portal.example/cb",)},
        {"dpop_bound_access_tokens": True},
        {"token_endpoint_auth_method": "client_secret_post"},
    ],
)
def test_clients_the_lean_path_does_not_serve(nodes: Nodes, registration: dict[str, Any]) -> None:
    """No client_credentials grant, a DPoP-bound client, a client registered for the other method: the
    full path decides (unauthorized_client, invalid_dpop_proof, invalid_client)."""
    client_id, secret = nodes.register(**registration)
    served = nodes.lean_path.served
    lean = token_request(nodes.lean, "grant_type=client_credentials", basic(client_id, secret))
    full = token_request(nodes.full, "grant_type=client_credentials", basic(client_id, secret))
    assert nodes.lean_path.served == served
    assert lean.status_code == full.status_code and lean.status_code >= 400
    assert lean.get_json() == full.get_json()


def test_a_dpop_proof_goes_to_the_full_path(nodes: Nodes) -> None:
    client_id, secret = nodes.register()
    served = nodes.lean_path.served
    answer = token_request(
        nodes.lean, "grant_type=client_credentials", {**basic(client_id, secret), "DPoP": "not.a.proof"}
    )
    assert nodes.lean_path.served == served
    assert answer.status_code == 400 and answer.get_json()["error"] == "invalid_dpop_proof"


def test_a_removed_client_is_refused_on_every_node_within_the_cache_time(nodes: Nodes) -> None:
    client_id, secret = nodes.register()
    assert (
        token_request(nodes.lean, "grant_type=client_credentials", basic(client_id, secret)).status_code
        == 200
    )
    svc: Services = nodes.full.extensions["onecard"]
    with svc.database.session() as session:
        remove_client(session, client_id)
    nodes.clock.advance(CLIENT_CACHE_SECONDS)
    answer = token_request(nodes.lean, "grant_type=client_credentials", basic(client_id, secret))
    assert answer.status_code == 401 and answer.get_json()["error"] == "invalid_client"
    assert "WWW-Authenticate" in answer.headers


def test_a_new_secret_works_at_once_and_the_old_one_ends_within_the_cache_time(nodes: Nodes) -> None:
    client_id, old = nodes.register()
    assert (
        token_request(nodes.lean, "grant_type=client_credentials", basic(client_id, old)).status_code == 200
    )
    new = "occs_" + secrets.token_urlsafe(32)
    svc: Services = nodes.full.extensions["onecard"]
    with svc.database.session() as session:
        session.execute(
            update(Client)
            .where(Client.client_id == client_id)
            .values(client_secret_hash=hash_bearer_secret(new))
        )
    # The cached hash does not match the new secret: the full path reads the row and accepts it.
    assert (
        token_request(nodes.lean, "grant_type=client_credentials", basic(client_id, new)).status_code == 200
    )
    nodes.clock.advance(CLIENT_CACHE_SECONDS)
    served = nodes.lean_path.served
    assert (
        token_request(nodes.lean, "grant_type=client_credentials", basic(client_id, old)).status_code == 401
    )
    assert (
        token_request(nodes.lean, "grant_type=client_credentials", basic(client_id, new)).status_code == 200
    )
    assert nodes.lean_path.served == served + 1  # the new secret is on the lean path again


def test_a_client_bound_to_dpop_later_is_refused_a_bearer_token_within_the_cache_time(nodes: Nodes) -> None:
    client_id, secret = nodes.register()
    assert (
        token_request(nodes.lean, "grant_type=client_credentials", basic(client_id, secret)).status_code
        == 200
    )
    svc: Services = nodes.full.extensions["onecard"]
    with svc.database.session() as session:
        session.execute(
            update(Client).where(Client.client_id == client_id).values(dpop_bound_access_tokens=True)
        )
    nodes.clock.advance(CLIENT_CACHE_SECONDS)
    answer = token_request(nodes.lean, "grant_type=client_credentials", basic(client_id, secret))
    assert answer.status_code == 400 and answer.get_json()["error"] == "invalid_dpop_proof"


@pytest.mark.parametrize(
    "path", ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server", "/jwks.json"]
)
def test_published_documents_are_the_full_paths_with_etag_and_304(nodes: Nodes, path: str) -> None:
    served = nodes.lean_path.served
    lean = nodes.lean.test_client().get(path)
    full = nodes.full.test_client().get(path)
    assert nodes.lean_path.served == served + 1
    assert lean.status_code == full.status_code == 200
    assert lean.data == full.data and stable_headers(lean) == stable_headers(full)
    etag = lean.headers["ETag"]
    for conditional in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = nodes.lean.test_client().get(path, headers={"If-None-Match": conditional})
        reference = nodes.full.test_client().get(path, headers={"If-None-Match": conditional})
        assert again.status_code == reference.status_code == 304, conditional
        assert again.data == b"" and stable_headers(again) == stable_headers(reference)
    changed = nodes.lean.test_client().get(path, headers={"If-None-Match": '"other"'})
    assert changed.status_code == 200 and changed.data == full.data


def test_the_jwks_shows_a_key_created_on_another_node_within_the_key_ring_time(nodes: Nodes) -> None:
    before = nodes.lean.test_client().get("/jwks.json")
    svc: Services = nodes.full.extensions["onecard"]
    with svc.database.session() as session:
        record = create_key(session, svc.keks, OIDC_ES256, state=KeyState.PENDING, now=nodes.clock())
        kid = record.kid
    nodes.clock.advance(KEY_RING_CACHE_SECONDS)
    after = nodes.lean.test_client().get("/jwks.json", headers={"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200 and after.headers["ETag"] != before.headers["ETag"]
    assert kid in {key["kid"] for key in after.get_json()["keys"]}
    assert after.data == nodes.full.test_client().get("/jwks.json").data


def test_the_lean_path_logs_and_counts_as_flask_does(nodes: Nodes, caplog: pytest.LogCaptureFixture) -> None:
    client_id, secret = nodes.register()
    labels = {"grant_type": "client_credentials", "result": "success"}
    before = REGISTRY.get_sample_value("onecard_token_grants_total", labels) or 0.0
    request_labels = {"endpoint": "oidc.token", "method": "POST", "status": "200"}
    requests_before = REGISTRY.get_sample_value("onecard_http_requests_total", request_labels) or 0.0
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    answer = token_request(
        nodes.lean, "grant_type=client_credentials", {**basic(client_id, secret), "X-Request-ID": "abc-1"}
    )
    assert answer.headers["X-Request-ID"] == "abc-1"
    assert REGISTRY.get_sample_value("onecard_token_grants_total", labels) == before + 1
    assert REGISTRY.get_sample_value("onecard_http_requests_total", request_labels) == requests_before + 1
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == REQUEST_LOGGER]
    line = next(item for item in lines if item["request_id"] == "abc-1")
    assert line["route"] == "/token" and line["endpoint"] == "oidc.token" and line["status"] == 200
    assert line["client_id"] == client_id and line["method"] == "POST"


def test_the_lean_path_can_be_turned_off(tmp_path: Any) -> None:
    app = app_for(f"sqlite:///{tmp_path}/off.sqlite3", ShiftClock(), lean_path=False)
    assert not isinstance(app.wsgi_app, LeanPath)


# A review of the lean path (issue #16): requests it answered where the full path refuses or fails.

PLAIN = "grant_type=client_credentials"


def test_plain_http_to_a_host_that_is_not_loopback_is_refused_as_authlib_refuses_it(nodes: Nodes) -> None:
    """Authlib's OAuth2Request refuses http to any host but loopback (insecure_transport): a worker reached
    without TLS, or a proxy that says X-Forwarded-Proto: http, gets no token and no secret is taken."""
    client_id, secret = nodes.register()
    served = nodes.lean_path.served
    answers = [
        app.test_client().post(
            "/token",
            data=PLAIN,
            headers={"Content-Type": FORM, **basic(client_id, secret)},
            base_url="http://idp.example.gov.cn",
        )
        for app in (nodes.lean, nodes.full)
    ]
    assert nodes.lean_path.served == served
    assert answers[0].status_code == answers[1].status_code == 400
    assert answers[0].get_json() == answers[1].get_json()
    assert answers[0].get_json()["error"] == "insecure_transport"
    secure = nodes.lean.test_client().post(
        "/token",
        data=PLAIN,
        headers={"Content-Type": FORM, **basic(client_id, secret)},
        base_url="https://idp.example.gov.cn",
    )
    assert secure.status_code == 200 and nodes.lean_path.served == served + 1


@pytest.mark.parametrize("length", ["²", "0" * 5000, "100"], ids=["superscript", "5000 digits", "too long"])
def test_a_content_length_that_is_not_the_bodys_gets_the_full_paths_answer(nodes: Nodes, length: str) -> None:
    """A superscript digit passes str.isdigit and fails int(), 5,000 digits exceed int()'s limit (both were
    an exception before Flask), and a body shorter than its Content-Length is Werkzeug's 400, not a token."""
    client_id, secret = nodes.register()
    served = nodes.lean_path.served
    answers = [
        app.test_client().post(
            "/token",
            data=PLAIN,
            headers={"Content-Type": FORM, **basic(client_id, secret)},
            environ_overrides={"CONTENT_LENGTH": length},
        )
        for app in (nodes.lean, nodes.full)
    ]
    assert nodes.lean_path.served == served
    assert answers[0].status_code == answers[1].status_code == 400
    assert answers[0].get_json() == answers[1].get_json()


def test_a_chunked_body_is_read_by_the_full_path_whatever_its_content_length_says(nodes: Nodes) -> None:
    """With Transfer-Encoding the server frames the body and Content-Length is not its length (RFC 9112
    §6.3): the lean path read only the announced bytes and granted a scope the body does not ask for."""
    client_id, secret = nodes.register()
    body = f"{PLAIN}&scope=admin".encode()
    served = nodes.lean_path.served
    answers = [
        app.test_client().post(
            "/token",
            input_stream=io.BytesIO(body),
            headers={"Content-Type": FORM, "Transfer-Encoding": "chunked", **basic(client_id, secret)},
            environ_overrides={"CONTENT_LENGTH": str(len(PLAIN)), "wsgi.input_terminated": True},
        )
        for app in (nodes.lean, nodes.full)
    ]
    assert nodes.lean_path.served == served
    assert answers[0].status_code == answers[1].status_code == 400
    assert answers[0].get_json()["error"] == answers[1].get_json()["error"] == "invalid_scope"


def test_a_failure_on_the_lean_path_gets_flasks_500(nodes: Nodes) -> None:
    """The database failing under the lean path: the JSON 500 with its request id and headers that Flask's
    error handler gives, not the WSGI server's bare error page."""
    client_id, secret = nodes.register()
    engine = nodes.full.extensions["onecard"].database.engine
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE oauth_clients RENAME TO oauth_clients_away"))
    try:
        answers = [
            token_request(app, PLAIN, {**basic(client_id, secret), "X-Request-ID": f"down-{n}"})
            for n, app in enumerate((nodes.lean, nodes.full))
        ]
    finally:
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE oauth_clients_away RENAME TO oauth_clients"))
    lean, full = answers
    assert lean.status_code == full.status_code == 500
    assert lean.get_json() == full.get_json() and lean.get_json()["error"] == "server_error"
    assert lean.headers["X-Request-ID"] == "down-0"
    assert stable_headers(lean) == stable_headers(full)


def test_if_match_on_a_published_document_is_answered_as_the_flask_view_answers(nodes: Nodes) -> None:
    """Werkzeug's make_conditional answers a failed If-Match with 412; the lean path said 304 (not
    modified) to a client that holds no copy."""
    for path in ("/jwks.json", "/.well-known/openid-configuration"):
        for condition in ({"If-Match": '"other"'}, {"If-Match": '"other"', "If-None-Match": "*"}):
            lean = nodes.lean.test_client().get(path, headers=condition)
            full = nodes.full.test_client().get(path, headers=condition)
            assert lean.status_code == full.status_code == 412, (path, condition)
            assert lean.data == full.data
