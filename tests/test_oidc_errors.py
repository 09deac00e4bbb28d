"""Refused requests answer the right OAuth error, never redirect where they must not, and change nothing
(issue #2: negative cases)."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

from tests.support.live import REDIRECT, Browser, LiveIdp, portal, query_of

pytestmark = pytest.mark.filterwarnings("error")


def authorized_code(idp: LiveIdp, client: OAuth2Session, browser: Browser) -> tuple[str, str]:
    verifier = generate_token(48)
    url, _ = client.create_authorization_url(f"{idp.base_url}/authorize", code_verifier=verifier)
    final = browser.authorize(url, citizen="zhang")
    return query_of(final)["code"], verifier


def exchange(
    idp: LiveIdp, client: OAuth2Session, code: str, verifier: str | None, **extra: str
) -> requests.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, **extra}
    if verifier is not None:
        data["code_verifier"] = verifier
    return requests.post(
        f"{idp.base_url}/token", data=data, auth=(client.client_id, client.client_secret), timeout=5
    )


@pytest.mark.parametrize(
    "redirect_uri", ["https://evil.example.com/cb", REDIRECT + "/", REDIRECT + "?x=1", ""]
)
def test_unregistered_redirect_uri_is_never_followed(idp: LiveIdp, redirect_uri: str) -> None:
    client = portal(idp)
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "scope": "openid",
        "code_challenge": "x" * 43,
        "code_challenge_method": "S256",
    }
    if redirect_uri:
        params["redirect_uri"] = redirect_uri
    two = portal(idp, redirect_uris=(REDIRECT, "https://portal.example.gov.cn/other"))
    for client_id in (client.client_id, two.client_id):
        params["client_id"] = client_id
        if not redirect_uri and client_id == client.client_id:
            continue  # a single registered URI may be implied
        response = requests.get(
            f"{idp.base_url}/authorize",
            params=params,
            headers={"Accept-Language": "en"},
            allow_redirects=False,
            timeout=5,
        )
        assert response.status_code == 400 and "Location" not in response.headers
        assert "not valid" in response.text


def test_unknown_client_gets_an_error_page_not_a_redirect(idp: LiveIdp) -> None:
    response = requests.get(
        f"{idp.base_url}/authorize",
        params={"response_type": "code", "client_id": "nobody", "redirect_uri": REDIRECT},
        allow_redirects=False,
        timeout=5,
    )
    assert response.status_code == 400 and "Location" not in response.headers


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"code_challenge": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"scope": "openid admin"}, "invalid_scope"),
        ({"prompt": "none login"}, "invalid_request"),
        ({"max_age": "soon"}, "invalid_request"),
        ({"claims": "{not json"}, "invalid_request"),
    ],
)
def test_bad_authorization_requests_redirect_with_an_error(
    idp: LiveIdp, change: dict[str, Any], error: str
) -> None:
    client = portal(idp)
    params: dict[str, Any] = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid",
        "state": "st",
        "code_challenge": "a" * 43,
        "code_challenge_method": "S256",
    }
    params.update(change)
    params = {k: v for k, v in params.items() if v is not None}
    response = requests.get(f"{idp.base_url}/authorize", params=params, allow_redirects=False, timeout=5)
    assert response.status_code == 302, response.text
    answer = query_of(response.headers["Location"])
    assert response.headers["Location"].startswith(REDIRECT)
    assert answer["error"] == error and answer["state"] == "st"


def test_wrong_or_missing_verifier_is_refused_and_leaves_the_code_usable(idp: LiveIdp) -> None:
    client = portal(idp)
    code, verifier = authorized_code(idp, client, Browser(idp))
    missing = exchange(idp, client, code, None)
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    wrong = exchange(idp, client, code, generate_token(48))
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    wrong_redirect = exchange(idp, client, code, verifier, redirect_uri="https://portal.example.gov.cn/x")
    assert wrong_redirect.json()["error"] == "invalid_grant"
    assert exchange(idp, client, code, verifier).status_code == 200  # nothing was changed by the refusals


def test_code_reuse_is_refused_and_revokes_the_first_tokens(idp: LiveIdp) -> None:
    client = portal(idp)
    code, verifier = authorized_code(idp, client, Browser(idp))
    first = exchange(idp, client, code, verifier).json()
    assert (
        requests.get(
            f"{idp.base_url}/userinfo",
            headers={"Authorization": f"Bearer {first['access_token']}"},
            timeout=5,
        ).status_code
        == 200
    )
    second = exchange(idp, client, code, verifier)
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    assert (
        requests.get(
            f"{idp.base_url}/userinfo",
            headers={"Authorization": f"Bearer {first['access_token']}"},
            timeout=5,
        ).status_code
        == 401
    )
    refresh = requests.post(
        f"{idp.base_url}/token",
        auth=(client.client_id, client.client_secret),
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        timeout=5,
    )
    assert refresh.json()["error"] == "invalid_grant"


def test_code_of_another_client_is_refused(idp: LiveIdp) -> None:
    client = portal(idp)
    thief = portal(idp)
    code, verifier = authorized_code(idp, client, Browser(idp))
    assert exchange(idp, thief, code, verifier).json()["error"] == "invalid_grant"
    assert exchange(idp, client, code, verifier).status_code == 200


def test_expired_code_is_refused(idp: LiveIdp) -> None:
    client = portal(idp)
    code, verifier = authorized_code(idp, client, Browser(idp))
    idp.clock.advance(idp.services.settings.authorization_code_ttl + 1)
    assert exchange(idp, client, code, verifier).json()["error"] == "invalid_grant"


def test_bad_client_authentication(idp: LiveIdp) -> None:
    client = portal(idp)
    code, verifier = authorized_code(idp, client, Browser(idp))
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    for auth in [(client.client_id, "occs_wrong"), ("nobody", "x"), None]:
        response = requests.post(f"{idp.base_url}/token", data=data, auth=auth, timeout=5)
        assert response.status_code in (400, 401) and response.json()["error"] == "invalid_client"
    # The registered method only: this client uses Basic, so a secret in the form is refused.
    posted = requests.post(
        f"{idp.base_url}/token",
        timeout=5,
        data={**data, "client_id": client.client_id, "client_secret": client.client_secret},
    )
    assert posted.json()["error"] == "invalid_client"
    assert exchange(idp, client, code, verifier).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"grant_type": "password", "username": "a", "password": "b"},
        {"grant_type": "authorization_code"},
        {"grant_type": "refresh_token"},
        {"grant_type": "refresh_token", "refresh_token": "ocrt_" + "x" * 43},
        {"grant_type": "client_credentials", "scope": "admin"},
        {},
    ],
)
def test_malformed_token_requests(idp: LiveIdp, body: dict[str, str]) -> None:
    client = portal(idp)
    response = requests.post(
        f"{idp.base_url}/token", data=body, auth=(client.client_id, client.client_secret), timeout=5
    )
    assert 400 <= response.status_code < 500
    assert response.json()["error"] in {
        "unsupported_grant_type",
        "invalid_request",
        "invalid_grant",
        "unauthorized_client",
        "invalid_scope",
    }


@pytest.mark.parametrize(
    "path", ["/token", "/introspect", "/revoke", "/userinfo", "/logout", "/api/v1/admin/clients"]
)
def test_garbage_bodies_never_cause_a_server_error(idp: LiveIdp, path: str) -> None:
    for headers, body in [
        ({"Content-Type": "application/json"}, b"{not json"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, b"%%%&&&==\xff\xfe"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, b"token=" + b"A" * 200_000),
        ({"Content-Type": "text/plain"}, b"\x00\x01\x02"),
    ]:
        response = requests.post(f"{idp.base_url}{path}", data=body, headers=headers, timeout=10)
        assert response.status_code < 500, (path, response.status_code, response.text[:200])


def test_oversized_and_odd_query_strings(idp: LiveIdp) -> None:
    client = portal(idp)
    for params in [
        {"client_id": "x" * 5000},
        {"client_id": client.client_id, "redirect_uri": "\x00"},
        {"client_id": client.client_id, "state": "s" * 100_000},
    ]:
        response = requests.get(f"{idp.base_url}/authorize", params=params, allow_redirects=False, timeout=10)
        assert response.status_code < 500


def test_tokens_are_refused_at_userinfo_when_tampered(idp: LiveIdp) -> None:
    client = portal(idp)
    code, verifier = authorized_code(idp, client, Browser(idp))
    token = exchange(idp, client, code, verifier).json()["access_token"]
    header, payload, signature = token.split(".")
    tampered = ".".join(
        [header, payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1], signature]
    )
    for bad in [tampered, "x.y.z", "", "Bearer"]:
        response = requests.get(
            f"{idp.base_url}/userinfo", headers={"Authorization": f"Bearer {bad}"}, timeout=5
        )
        assert response.status_code == 401


def test_client_credentials_only_for_registered_service_scopes(idp: LiveIdp) -> None:
    client_id, secret = idp.register_client(name="Operator", kind="operator", scope="realname:verify")
    for scope in ("admin", "realname:verify admin", "gate:verify", "openid"):
        response = requests.post(
            f"{idp.base_url}/token",
            auth=(client_id, secret or ""),
            data={"grant_type": "client_credentials", "scope": scope},
            timeout=5,
        )
        assert response.status_code == 400 and response.json()["error"] == "invalid_scope", scope
    default = requests.post(
        f"{idp.base_url}/token",
        auth=(client_id, secret or ""),
        data={"grant_type": "client_credentials"},
        timeout=5,
    )
    assert default.json()["scope"] == "realname:verify"
