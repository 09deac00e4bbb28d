"""Pushed authorization requests (RFC 9126, issue 15 item 1), attacked: the PAR endpoint authenticates the
client as /token does and validates the whole request before answering; the request_uri it hands out works
once, for a short time, only for the client that pushed it, across nodes (the store's atomic take), and
carries every parameter (the front channel's are ignored). Required per client and server-wide, and
advertised as such. On SQLite and on PostgreSQL + Redis."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import requests

from idp.config import ConfigError, load_settings
from tests.support.fapi import REQUEST_URI_PREFIX, KeyedClient, authorize, discovery, error_at_redirect
from tests.support.live import REDIRECT, Browser, LiveIdp, query_of


@pytest.fixture
def idp(live_idp: LiveIdp) -> LiveIdp:
    return live_idp


def exchange(client: KeyedClient, code: str) -> requests.Response:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, **client.assertion()}
    form["code_verifier"] = client.verifier
    return requests.post(f"{client.idp.base_url}/token", data=form, timeout=10)


def refused(response: requests.Response, error: str, status: int = 400) -> None:
    """An RFC 9126 §2.3 error: JSON to the client, never a redirect, never cached."""
    assert response.status_code == status, response.text
    assert response.json()["error"] == error, response.text
    assert "Location" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"


def test_a_pushed_request_logs_in_and_issues_a_code(idp: LiveIdp) -> None:
    client = KeyedClient(idp)
    params = client.authorization_params(scope="openid profile")
    response = client.push(params)
    assert response.status_code == 201, response.text
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"request_uri", "expires_in"}
    assert body["request_uri"].startswith(REQUEST_URI_PREFIX) and 0 < body["expires_in"] <= 60
    answer = client.code(client.authorize_url(body["request_uri"]))
    assert answer["iss"] == idp.base_url and answer["state"] == params["state"]
    token = exchange(client, answer["code"])
    assert token.status_code == 200, token.text
    assert token.json()["scope"] == "openid profile"


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_clients_with_secrets_push_as_they_authenticate_at_the_token_endpoint(
    idp: LiveIdp, method: str
) -> None:
    keyed = KeyedClient(idp)  # for its authorization parameters only
    client_id, secret = idp.register_client(
        redirect_uris=(REDIRECT,), scope="openid", token_endpoint_auth_method=method
    )
    assert secret
    params = keyed.authorization_params(client_id=client_id)
    url = f"{idp.base_url}/par"
    if method == "client_secret_basic":
        right = requests.post(url, data=params, auth=(client_id, secret), timeout=10)
        wrong = requests.post(url, data=params, auth=(client_id, secret + "x"), timeout=10)
        other_method = requests.post(url, data={**params, "client_secret": secret}, timeout=10)
    else:
        right = requests.post(url, data={**params, "client_secret": secret}, timeout=10)
        wrong = requests.post(url, data={**params, "client_secret": secret + "x"}, timeout=10)
        other_method = requests.post(url, data=params, auth=(client_id, secret), timeout=10)
    assert right.status_code == 201, right.text
    for response in (wrong, other_method):
        assert response.status_code in (400, 401) and response.json()["error"] == "invalid_client"


def test_an_unauthenticated_push_is_refused(idp: LiveIdp) -> None:
    client = KeyedClient(idp)
    other = KeyedClient(idp)
    params = client.authorization_params()
    signed_by_other = {**client.assertion(), "client_assertion": other.sign(client.assertion_claims())}
    for auth in ({}, signed_by_other, {**client.assertion(), "client_assertion": "x.y.z"}):
        response = client.push(params, auth=auth)
        assert response.status_code in (400, 401) and response.json()["error"] == "invalid_client", auth


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"redirect_uri": "https://evil.example.com/cb"}, "invalid_request"),
        ({"scope": "openid admin"}, "invalid_scope"),
        ({"prompt": "shout"}, "invalid_request"),
        ({"claims": "{"}, "invalid_request"),
        ({"response_mode": "fragment"}, "invalid_request"),
        ({"request_uri": REQUEST_URI_PREFIX + "abc"}, "invalid_request"),  # RFC 9126 §2.1
        ({"client_id": "oc_someone_else"}, "invalid_request"),  # not the authenticated client
    ],
)
def test_the_whole_request_is_validated_when_pushed(
    idp: LiveIdp, change: dict[str, str | None], error: str
) -> None:
    client = KeyedClient(idp)
    refused(client.push(client.authorization_params(**change)), error)


def test_a_parameter_pushed_twice_is_refused(idp: LiveIdp) -> None:
    client = KeyedClient(idp)
    params = client.authorization_params()
    form = [*params.items(), ("scope", "openid profile"), *client.assertion().items()]
    refused(requests.post(f"{idp.base_url}/par", data=form, timeout=10), "invalid_request")


def test_a_request_uri_works_once(idp: LiveIdp) -> None:
    client = KeyedClient(idp)
    request_uri, _params = client.pushed_request_uri()
    assert client.code(client.authorize_url(request_uri))["code"]
    again = error_at_redirect(authorize(idp, {"client_id": client.client_id, "request_uri": request_uri}))
    assert again["error"] == "invalid_request_uri" and again["iss"] == idp.base_url


def test_a_request_uri_expires(idp: LiveIdp) -> None:
    client = KeyedClient(idp)
    request_uri, _params = client.pushed_request_uri()
    idp.clock.advance(61)
    answer = error_at_redirect(authorize(idp, {"client_id": client.client_id, "request_uri": request_uri}))
    assert answer["error"] == "invalid_request_uri"


def test_a_request_uri_is_bound_to_its_client_and_not_burnt_by_another(idp: LiveIdp) -> None:
    owner = KeyedClient(idp)
    thief = KeyedClient(idp)
    request_uri, params = owner.pushed_request_uri()
    stolen = error_at_redirect(authorize(idp, {"client_id": thief.client_id, "request_uri": request_uri}))
    assert stolen["error"] == "invalid_request_uri"
    without_client = authorize(idp, {"request_uri": request_uri})
    assert without_client.status_code == 400 and "Location" not in without_client.headers
    answer = owner.code(owner.authorize_url(request_uri))
    assert answer["code"] and answer["state"] == params["state"]


@pytest.mark.parametrize(
    "request_uri",
    [
        REQUEST_URI_PREFIX,
        REQUEST_URI_PREFIX + "x" * 200,
        REQUEST_URI_PREFIX + "../../etc",
        "",
        "urn:other:abc",
    ],
)
def test_malformed_request_uris_are_refused(idp: LiveIdp, request_uri: str) -> None:
    client = KeyedClient(idp)
    answer = error_at_redirect(authorize(idp, {"client_id": client.client_id, "request_uri": request_uri}))
    assert answer["error"] in ("invalid_request_uri", "request_uri_not_supported")


def test_only_the_pushed_parameters_count(idp: LiveIdp) -> None:
    client = KeyedClient(idp, redirect_uris=(REDIRECT, "https://portal.example.gov.cn/other"))
    request_uri, params = client.pushed_request_uri(scope="openid")
    url = client.authorize_url(
        request_uri,
        redirect_uri="https://portal.example.gov.cn/other",
        scope="openid profile",
        state="front-channel",
        code_challenge_method="plain",
    )
    browser = Browser(idp)
    final = browser.authorize(url, citizen="zhang")
    assert final.startswith(REDIRECT + "?")
    answer = query_of(final)
    assert answer["state"] == params["state"]
    token = exchange(client, answer["code"])
    assert token.status_code == 200 and token.json()["scope"] == "openid"


def test_one_request_uri_is_redeemed_once_under_concurrent_use(idp: LiveIdp) -> None:
    client = KeyedClient(idp)
    request_uri, _params = client.pushed_request_uri()
    results: list[requests.Response] = []

    def redeem() -> None:
        results.append(authorize(idp, {"client_id": client.client_id, "request_uri": request_uri}))

    threads = [threading.Thread(target=redeem) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    to_login = [r for r in results if r.headers.get("Location", "").startswith("/login/")]
    refusals = [
        r for r in results if query_of(r.headers.get("Location", "")).get("error") == "invalid_request_uri"
    ]
    assert len(results) == 8 and len(to_login) == 1 and len(refusals) == 7


def test_a_client_registered_for_par_must_push(idp: LiveIdp) -> None:
    client = KeyedClient(idp, require_pushed_authorization_requests=True)
    params = client.authorization_params()
    answer = error_at_redirect(authorize(idp, params))
    assert answer["error"] == "invalid_request" and answer["state"] == params["state"]
    assert answer["iss"] == idp.base_url
    request_uri, _params = client.pushed_request_uri()
    assert client.code(client.authorize_url(request_uri))["code"]
    # Other clients are not held to it, and discovery says so.
    assert discovery(idp)["require_pushed_authorization_requests"] is False
    other = KeyedClient(idp)
    plain = authorize(idp, other.authorization_params())
    assert plain.status_code == 303 and plain.headers["Location"].startswith("/login/")


def test_the_server_wide_setting_requires_par_of_every_client_and_is_advertised(idp: LiveIdp) -> None:
    settings = idp.services.settings
    idp.services.settings = settings.replace(require_par=True)
    try:
        doc = discovery(idp)
        assert doc["require_pushed_authorization_requests"] is True
        client = KeyedClient(idp)
        answer = error_at_redirect(authorize(idp, client.authorization_params()))
        assert answer["error"] == "invalid_request"
        request_uri, _params = client.pushed_request_uri()
        assert client.code(client.authorize_url(request_uri))["code"]
    finally:
        idp.services.settings = settings


def test_discovery_advertises_the_par_endpoint_it_serves(idp: LiveIdp) -> None:
    doc: dict[str, Any] = discovery(idp)
    assert doc["pushed_authorization_request_endpoint"] == f"{idp.base_url}/par"
    assert doc["require_pushed_authorization_requests"] is False
    # request_uri only as PAR hands it out: a URI elsewhere is not fetched.
    assert doc["request_uri_parameter_supported"] is False
    client = KeyedClient(idp)
    elsewhere = {"client_id": client.client_id, "request_uri": "https://portal.example.gov.cn/req.jwt"}
    assert error_at_redirect(authorize(idp, elsewhere))["error"] == "request_uri_not_supported"
    assert requests.get(doc["pushed_authorization_request_endpoint"], timeout=10).status_code == 405


def test_the_par_settings_are_read_and_checked() -> None:
    settings = load_settings({"ONECARD_REQUIRE_PAR": "true", "ONECARD_PAR_REQUEST_TTL": "90"})
    assert settings.require_par is True and settings.par_request_ttl == 90
    for ttl in ("0", "601", "-1"):
        with pytest.raises(ConfigError, match="PAR_REQUEST_TTL"):
            load_settings({"ONECARD_PAR_REQUEST_TTL": ttl})
