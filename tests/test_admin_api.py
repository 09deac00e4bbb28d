"""The admin JSON API: only client_credentials tokens with the ``admin`` scope get in; client registration
and citizen import work through it and are audited (issue #2, item 9)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from idp.audit.model import AuditEvent
from tests.support.live import LiveIdp

CSV_OK = "name,id_number\n王五,310115195006061230\n赵六,440301199003070027\n".encode()


def token_for(idp: LiveIdp, scope: str) -> str:
    client_id, secret = idp.register_client(name="Staff console", kind="operator", scope=scope)
    response = requests.post(
        f"{idp.base_url}/token",
        auth=(client_id, secret or ""),
        data={"grant_type": "client_credentials", "scope": scope},
        timeout=5,
    )
    return str(response.json()["access_token"])


def test_admin_api_needs_an_admin_token(idp: LiveIdp) -> None:
    url = f"{idp.base_url}/api/v1/admin/clients"
    assert requests.get(url, timeout=5).status_code == 401
    assert requests.get(url, headers={"Authorization": "Bearer nope"}, timeout=5).status_code == 401
    other = token_for(idp, "realname:verify")
    forbidden = requests.get(url, headers={"Authorization": f"Bearer {other}"}, timeout=5)
    assert forbidden.status_code == 403 and forbidden.json()["error"] == "forbidden"


def test_register_show_list_and_remove_a_client(idp: LiveIdp) -> None:
    headers = {"Authorization": f"Bearer {token_for(idp, 'admin')}"}
    created = requests.post(
        f"{idp.base_url}/api/v1/admin/clients",
        headers=headers,
        timeout=5,
        json={
            "name": "Social insurance portal",
            "redirect_uris": ["https://si.example.gov.cn/cb"],
            "scope": "openid profile realname",
            "backchannel_logout_uri": "https://si.example.gov.cn/bcl",
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["client_secret"].startswith("occs_") and body["subject_type"] == "pairwise"
    client_id = body["client_id"]
    shown = requests.get(
        f"{idp.base_url}/api/v1/admin/clients/{client_id}", headers=headers, timeout=5
    ).json()
    assert "client_secret" not in shown and shown["grant_types"] == ["authorization_code", "refresh_token"]
    listed = requests.get(f"{idp.base_url}/api/v1/admin/clients", headers=headers, timeout=5).json()
    assert client_id in [c["client_id"] for c in listed["clients"]]
    assert (
        requests.delete(
            f"{idp.base_url}/api/v1/admin/clients/{client_id}", headers=headers, timeout=5
        ).status_code
        == 204
    )
    missing = requests.get(f"{idp.base_url}/api/v1/admin/clients/{client_id}", headers=headers, timeout=5)
    assert missing.status_code == 404
    with idp.services.database.session() as session:
        actions = [e.action for e in session.query(AuditEvent).order_by(AuditEvent.seq)]
    assert actions[-2:] == ["client.create", "client.remove"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "redirect_uris": ["http://evil.example/cb"], "scope": "openid"}, "https"),
        ({"name": "x", "redirect_uris": "https://a.example/cb", "scope": "openid"}, "list"),
        ({"name": "x", "redirect_uris": ["https://a.example/cb"], "scope": "openid email"}, "unknown scopes"),
        ({"name": "x", "scope": "openid", "surprise": 1}, "unknown field"),
        ({"redirect_uris": ["https://a.example/cb"]}, "name"),
        (
            {
                "name": "x",
                "scope": "openid",
                "token_endpoint_auth_method": "private_key_jwt",
                "redirect_uris": ["https://a.example/cb"],
                "jwks": {"keys": [{"kty": "RSA"}]},
            },
            "jwks",
        ),
    ],
)
def test_bad_registrations_are_refused_and_change_nothing(
    idp: LiveIdp, body: dict[str, Any], field: str
) -> None:
    headers = {"Authorization": f"Bearer {token_for(idp, 'admin')}"}
    before = requests.get(f"{idp.base_url}/api/v1/admin/clients", headers=headers, timeout=5).json()
    response = requests.post(f"{idp.base_url}/api/v1/admin/clients", headers=headers, json=body, timeout=5)
    assert response.status_code == 400, response.text
    assert field in response.json()["error_description"]
    after = requests.get(f"{idp.base_url}/api/v1/admin/clients", headers=headers, timeout=5).json()
    assert after == before


def test_citizen_import_all_or_nothing_and_masked_listing(idp: LiveIdp) -> None:
    headers = {"Authorization": f"Bearer {token_for(idp, 'admin')}"}
    bad = CSV_OK + "钱七,310115195006061231\n".encode()  # wrong check digit on line 4
    refused = requests.post(
        f"{idp.base_url}/api/v1/admin/citizens/import", headers=headers, data=bad, timeout=10
    )
    assert refused.status_code == 422
    report = refused.json()
    assert report["imported"] == 0 and report["problems"][0]["line"] == 4
    assert "3101" not in refused.text.replace("310115195006061230", "")  # no ID numbers echoed back
    listed = requests.get(f"{idp.base_url}/api/v1/admin/citizens", headers=headers, timeout=5).json()
    assert listed["total"] == 2  # only the register the test started with
    ok = requests.post(
        f"{idp.base_url}/api/v1/admin/citizens/import",
        headers=headers,
        data="name,id_number\n王五,310115195006061230\n".encode(),
        timeout=10,
    )
    assert ok.status_code == 200 and ok.json()["imported"] == 1
    listed = requests.get(f"{idp.base_url}/api/v1/admin/citizens", headers=headers, timeout=5).json()
    assert listed["total"] == 3
    assert all("*" in c["id_number"] for c in listed["citizens"])
    paged = requests.get(f"{idp.base_url}/api/v1/admin/citizens?limit=abc", headers=headers, timeout=5)
    assert paged.status_code == 400


def test_citizen_import_without_a_header_row_names_no_one(idp: LiveIdp) -> None:
    headers = {"Authorization": f"Bearer {token_for(idp, 'admin')}"}
    headerless = "王五,310115195006061230\n赵六,440301199003070027\n".encode()
    refused = requests.post(
        f"{idp.base_url}/api/v1/admin/citizens/import", headers=headers, data=headerless, timeout=10
    )
    assert refused.status_code == 422
    report = refused.json()
    # Decoded, so that a name escaped as \\uXXXX in the JSON would still be found.
    shown = json.dumps(report, ensure_ascii=False)
    for fragment in ("王五", "赵六", "310115195006061230", "31011519500606", "440301199003070027"):
        assert fragment not in shown and fragment not in refused.text
    assert report["imported"] == 0
    assert [(p["line"], p["reason"]) for p in report["problems"]] == [(1, "bad_header")]
    assert "header row is probably missing" in report["problems"][0]["detail"]


@pytest.mark.parametrize("path", ["/api/v1/admin/clients", "/api/v1/admin/keys", "/api/v1/admin/citizens"])
def test_401s_say_how_to_authenticate(idp: LiveIdp, path: str) -> None:
    """RFC 6750 §3: a 401 names the scheme (Bearer) and realm; OneCard's JSON error shape otherwise."""
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic eDp5"}):
        response = requests.get(f"{idp.base_url}{path}", headers=headers, timeout=5)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="onecard"'
        assert response.json()["error"] == "unauthorized"


def test_realname_401_says_how_to_authenticate(idp: LiveIdp) -> None:
    response = requests.post(f"{idp.base_url}/api/v1/realname/verify", json={"purpose": "x"}, timeout=5)
    assert response.status_code == 401 and response.headers["WWW-Authenticate"] == 'Bearer realm="onecard"'
