"""Bad input is refused once, at the request boundary, in the endpoint's own error format — never a 500, on
SQLite and on PostgreSQL — and a request that fails changes nothing (issue #9, items 4 and 5)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import func, select

from idp.citizens.model import Citizen
from idp.citizens.service import create_citizen
from idp.services import Services
from idp.web import db_session
from tests.support.live import LiveIdp, running_idp
from tests.support.testlogin import install_test_login

NUL_ID = "oc_a\x00b"
LONG_ID = "oc_" + "x" * 100


@pytest.fixture
def idp(live_stack: LiveIdp) -> LiveIdp:
    return live_stack


def basic(client_id: str, secret: str = "occs_x") -> dict[str, str]:
    raw = f"{client_id}:{secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def admin_token(idp: LiveIdp) -> str:
    client_id, secret = idp.register_client(name="Operator", kind="operator", scope="admin")
    response = requests.post(
        f"{idp.base_url}/token",
        auth=(client_id, secret or ""),
        data={"grant_type": "client_credentials", "scope": "admin"},
        timeout=5,
    )
    return str(response.json()["access_token"])


def assert_json_refusal(response: requests.Response) -> None:
    assert 400 <= response.status_code < 500, (
        response.request.url,
        response.status_code,
        response.text[:300],
    )
    assert response.headers["Content-Type"].startswith("application/json"), response.text[:200]
    assert response.json()["error"] in {"invalid_request", "invalid_client", "not_found", "unauthorized"}


@pytest.mark.parametrize("bad_id", [NUL_ID, LONG_ID, "oc_\x1bx"], ids=["nul", "long", "escape"])
@pytest.mark.parametrize("path", ["/token", "/introspect", "/revoke", "/api/v1/gate/verify"])
def test_a_bad_client_id_is_an_oauth_error_not_a_500(idp: LiveIdp, path: str, bad_id: str) -> None:
    data = {"grant_type": "client_credentials", "token": "x", "code": "ESSC1:X"}
    if "\ud800" not in bad_id:  # a header cannot carry a surrogate at all
        assert_json_refusal(
            requests.post(f"{idp.base_url}{path}", data=data, headers=basic(bad_id), timeout=5)
        )
    posted = {**data, "client_id": bad_id, "client_secret": "occs_x"}
    assert_json_refusal(requests.post(f"{idp.base_url}{path}", data=posted, timeout=5))


@pytest.mark.parametrize("raw", [b"\xff\xfe:x", b"\xff", b"a:\xff", b"oc_x%00y:z", b"oc_x:%00", b"%ff%fe:x"])
@pytest.mark.parametrize("path", ["/token", "/introspect", "/revoke", "/api/v1/gate/verify"])
def test_basic_credentials_that_are_not_utf8_or_hide_a_nul(idp: LiveIdp, path: str, raw: bytes) -> None:
    headers = {"Authorization": "Basic " + base64.b64encode(raw).decode()}
    data = {"grant_type": "client_credentials", "token": "x"}
    assert_json_refusal(requests.post(f"{idp.base_url}{path}", data=data, headers=headers, timeout=5))


@pytest.mark.parametrize(
    ("path", "bad_id"),
    [("/authorize", NUL_ID), ("/authorize", LONG_ID), ("/logout", NUL_ID), ("/logout", "oc_\x7f\x01")],
)
def test_a_bad_client_id_on_a_page_gets_an_error_page(idp: LiveIdp, path: str, bad_id: str) -> None:
    params = {
        "client_id": bad_id,
        "response_type": "code",
        "redirect_uri": "https://portal.example.gov.cn/cb",
    }
    as_browser = requests.get(
        f"{idp.base_url}{path}",
        params=params,
        headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"},
        allow_redirects=False,
        timeout=5,
    )
    assert as_browser.status_code == 400 and "Location" not in as_browser.headers
    assert as_browser.headers["Content-Type"].startswith("text/html")
    as_program = requests.get(f"{idp.base_url}{path}", params=params, allow_redirects=False, timeout=5)
    assert 400 <= as_program.status_code < 500 and "Location" not in as_program.headers


def test_nul_in_a_path_is_refused(idp: LiveIdp) -> None:
    token = admin_token(idp)
    for path in ["/login/a%00b", "/consent/a%00b", "/authorize/resume/a%00b", "/wallet/qr-login/a%00b"]:
        response = requests.get(f"{idp.base_url}{path}", allow_redirects=False, timeout=5)
        assert 400 <= response.status_code < 500, (path, response.status_code)
    for path in ["/api/v1/admin/clients/a%00b", "/api/v1/admin/cards/a%00b", "/api/v1/admin/venues/a%00b"]:
        response = requests.get(
            f"{idp.base_url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=5
        )
        assert_json_refusal(response)
    long_id = requests.get(
        f"{idp.base_url}/api/v1/admin/clients/{LONG_ID}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert long_id.status_code == 404


@pytest.mark.parametrize("value", ["99999999999999999999999", "²", "1_0", " 1", "-1e3", "0x10"])
@pytest.mark.parametrize("path", ["/api/v1/admin/citizens", "/api/v1/admin/cards"])
def test_paging_beyond_bigint_or_not_a_plain_integer(idp: LiveIdp, path: str, value: str) -> None:
    token = admin_token(idp)
    for name in ("offset", "limit"):
        response = requests.get(
            f"{idp.base_url}{path}",
            params={name: value},
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        assert response.status_code in (200, 400), (name, value, response.status_code, response.text[:200])
        if response.status_code == 400:
            assert response.json()["error"] == "invalid_request"
    huge = requests.get(
        f"{idp.base_url}{path}",
        params={"offset": str(2**63 + 10)},
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert huge.status_code in (200, 400)


def deep_json(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    "path",
    ["/api/v1/admin/clients", "/api/v1/admin/venues", "/api/v1/gate/verify", "/api/v1/realname/verify"],
)
def test_json_nested_twenty_thousand_deep(idp: LiveIdp, path: str) -> None:
    token = admin_token(idp)
    for body in (deep_json(20_000), b'{"a":' * 20_000 + b"1" + b"}" * 20_000, b'{"name": "\\ud800"}'):
        response = requests.post(
            f"{idp.base_url}{path}",
            data=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            timeout=10,
        )
        assert response.status_code in (400, 401, 403), (path, response.status_code, response.text[:200])


@pytest.mark.parametrize("name", ["\ud800 portal", "a\x00b", "tab\x07bell"])
def test_a_name_with_a_lone_surrogate_or_nul_is_refused_and_nothing_is_stored(
    idp: LiveIdp, name: str
) -> None:
    token = admin_token(idp)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    before = requests.get(f"{idp.base_url}/api/v1/admin/clients", headers=headers, timeout=5).json()
    # json.dumps escapes both as \\ud800 and \\u0000: valid JSON whose decoded text no field can hold.
    body = json.dumps({"name": name, "redirect_uris": ["https://portal.example.gov.cn/cb"]})
    response = requests.post(
        f"{idp.base_url}/api/v1/admin/clients", data=body.encode(), headers=headers, timeout=5
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_request", response.text
    after = requests.get(f"{idp.base_url}/api/v1/admin/clients", headers=headers, timeout=5).json()
    assert after == before


# --- item 5: a request that fails changes nothing -------------------------------------------------------


def install_crashing_view(app: Flask) -> None:
    """A view that writes a citizen and then fails, as a bug in any view would."""

    @app.post("/test-crash")
    def crash() -> Any:
        svc: Services = app.extensions["onecard"]
        create_citizen(db_session(), svc.pii_cipher(), "王五", "110105194912310038", now=svc.now())
        db_session().flush()
        raise RuntimeError("a bug after a write")


@pytest.fixture
def crashing_idp(tmp_path: Any) -> Iterator[LiveIdp]:
    with running_idp(
        f"sqlite:///{tmp_path}/idp.sqlite3", plugins=(install_test_login, install_crashing_view)
    ) as live:
        yield live


def citizens(idp: LiveIdp) -> int:
    with idp.services.database.session() as session:
        return int(session.scalar(select(func.count()).select_from(Citizen)) or 0)


def test_a_request_that_crashes_after_writing_commits_nothing(crashing_idp: LiveIdp) -> None:
    before = citizens(crashing_idp)
    response = requests.post(f"{crashing_idp.base_url}/test-crash", timeout=5)
    assert response.status_code == 500 and response.json()["error"] == "server_error"
    assert "Traceback" not in response.text and "王五" not in response.text
    assert citizens(crashing_idp) == before
