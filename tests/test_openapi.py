"""The OpenAPI contract (``/api/openapi.json``) against the application it describes (issue "Run it for
real"): every JSON route the live app serves is in it with the same methods and path parameters, and every
route that is not is listed here with the reason; the document is valid OpenAPI 3.1 with valid JSON Schema
2020-12; requests outside it are refused in the one error shape without echoing what was sent; and real
answers of the happy paths conform to it. ``tests/test_openapi_contract.py`` fuzzes it with schemathesis.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from jsonschema import Draft202012Validator

from idp import dbadmin
from idp.app import create_app
from idp.clients.errors import InvalidClientMetadataError
from idp.clients.service import list_clients
from idp.openapi.contract import path_template
from idp.ratelimit import RateLimiter
from tests.support.live import LiveIdp, running_idp
from tests.support.openapi import ApiCallers, Caller, assert_conforms, basic, set_up_callers
from tests.support.testlogin import install_test_login

OPENAPI = "/api/openapi.json"
PROTOCOL = "an OAuth 2.0 / OpenID Connect endpoint: its RFC and the discovery document describe it"
PAGE = "a page or form post of a browser flow: HTML for a person, not a JSON API"
# Every route of the app that is not in the contract, by endpoint, and why. A new route must be described,
# or listed here: that is the point of the test.
NOT_IN_CONTRACT: dict[str, str] = {
    **dict.fromkeys(
        [
            "oidc.discovery",
            "oidc.jwks",
            "oidc.authorize",
            "oidc.resume",
            "oidc.token",
            "oidc.pushed_authorization_request",
            "oidc.userinfo",
            "oidc.introspect",
            "oidc.revoke",
            "oidc.logout",
        ],
        PROTOCOL,
    ),
    **dict.fromkeys(
        [
            "i18n.choose_language",
            "i18n.choose_display",
            "login.choose",
            "login.consent",
            "cardlogin.start",
            "cardlogin.pin_help",
            "wallet.home",
            "wallet.activate",
            "wallet.suspend",
            "wallet.resume",
            "wallet.history",
            "wallet.sessions",
            "wallet.end_session_view",
            "wallet.signout",
            "wallet.login_card",
            "wallet.callback",
            "wallet_qr.code_page",
            "wallet_qr.disclosures",
            "wallet_devices.signin_page",
            "wallet_devices.signin",
            "wallet_devices.ecard_login",
            "wallet_devices.ecard_login_finish",
            "wallet_devices.devices_page",
            "wallet_devices.add_device",
            "wallet_devices.remove_device_view",
            "wallet_qrlogin.start",
            "wallet_qrlogin.scan_page",
            "wallet_qrlogin.match",
            "wallet_qrlogin.approve",
            "wallet_qrlogin.deny",
            "wallet_stats.scans_page",
            "wallet_catalogue.page",
            "halls_pages.tickets_page",
            "halls_pages.cancel",
            "halls_pages.display",
            "halls_stats.stats_page",
            "halls_kiosk.start_page",
            "halls_kiosk.login",
            "halls_kiosk.welcome",
            "halls_kiosk.menu",
            "halls_kiosk.number",
            "halls_kiosk.lost_page",
            "halls_kiosk.pin_page",
            "halls_kiosk.report_lost",
            "halls_kiosk.end",
        ],
        PAGE,
    ),
    "halls_kiosk.start_terminal_session": "the kiosk device's browser posts its client assertion as a form "
    "and is sent on to the kiosk page (a navigation, not a JSON operation)",
    "halls_kiosk.more_time": "the kiosk page's More time button: an empty 204/410 answer, no JSON body",
    "halls_kiosk.pin_outcome": "the kiosk PIN page's report for the audit trail: a form post, an empty 204",
    "health.healthz": "a liveness probe for the orchestrator, plain JSON with no contract to keep",
    "health.readyz": "a readiness probe for the orchestrator (503 until the database is at head)",
    "metrics.metrics": "Prometheus' text exposition format, for the metrics scraper",
    "static": "static files",
    "wallet_assets.static": "static files",
    "halls_assets.static": "static files",
    "openapi.document": "the contract itself",
    "testlogin.start": "the tests' stand-in login method, installed by the tests only",
    **dict.fromkeys(
        [
            "federated_login.choose_region",
            "federated_login.start",
            "federated_login.callback",
            "federated_login.logout_done",
        ],
        PAGE,
    ),
    "federated_login.backchannel_logout": "OIDC Back-Channel Logout 1.0 §2.5: a home region's logout token "
    "as a form post, answered 200 or 400 as that specification says",
}
_ARGUMENT = re.compile(r"{([^}]+)}")
IMPORT_REPORT = ("importCitizens", "422")


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveIdp]:
    from halls.plugin import init_app as install_halls  # and the halls
    from wallet.plugin import init_app as install_wallet  # tests may use the wallet; idp never does

    with running_idp(
        f"sqlite:///{tmp_path}/idp.sqlite3", plugins=(install_test_login, install_wallet, install_halls)
    ) as server:
        yield server


def document_of(live: LiveIdp) -> dict[str, Any]:
    answer = requests.get(live.base_url + OPENAPI, timeout=10)
    assert answer.status_code == 200, answer.text[:300]
    return answer.json()  # type: ignore[no-any-return]


def test_every_json_route_is_described_and_every_description_is_served(live: LiveIdp) -> None:
    document = document_of(live)
    described = {(path, method.upper()) for path, item in document["paths"].items() for method in item}
    served: set[tuple[str, str]] = set()
    for rule in live.app.url_map.iter_rules():
        methods = (rule.methods or set()) - {"HEAD", "OPTIONS"}
        path = path_template(rule.rule)
        in_contract = {(path, method) for method in methods} & described
        if rule.endpoint in NOT_IN_CONTRACT:
            assert not in_contract, f"{rule.endpoint} is described but listed as not in the contract"
            continue
        assert in_contract == {(path, method) for method in methods}, (
            f"{rule.endpoint} ({rule.rule} {sorted(methods)}) is neither in the contract with every method "
            "nor in NOT_IN_CONTRACT"
        )
        served |= in_contract
        for method in methods:
            operation = document["paths"][path][method.lower()]
            parameters = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert parameters == set(rule.arguments), (rule.rule, method, parameters)
    assert described == served, f"described but not served: {sorted(described - served)}"
    assert set(NOT_IN_CONTRACT) <= {rule.endpoint for rule in live.app.url_map.iter_rules()}, (
        "NOT_IN_CONTRACT names an endpoint that is gone"
    )


def test_the_document_is_valid_openapi_3_1_with_json_schema_2020_12(live: LiveIdp) -> None:
    document = document_of(live)
    assert document["openapi"].startswith("3.1.")
    schemathesis.openapi.from_dict(document).validate()  # the OpenAPI 3.1 meta-schema
    components = document["components"]
    for schema in _schemas(document):
        Draft202012Validator.check_schema(schema)
    for reference in _references(document):
        section, name = reference.removeprefix("#/components/").split("/")
        assert name in components[section], f"{reference} names nothing"
    operation_ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(operation_ids) == len(set(operation_ids))
    for item in document["paths"].values():
        for operation in item.values():
            for status, response in operation["responses"].items():
                # Every error is the one error shape; a failed import's 422 is its report (lines, reasons).
                if status.startswith(("4", "5")) and (operation["operationId"], status) != IMPORT_REPORT:
                    assert response == {"$ref": response["$ref"]}, (operation["operationId"], status)
    for response in components["responses"].values():
        assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert "components/schemas/Error" in document["info"]["description"]


def _schemas(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from document["components"]["schemas"].values()
    for item in document["paths"].values():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                yield parameter["schema"]
            for media in operation.get("requestBody", {}).get("content", {}).values():
                yield media["schema"]
            for response in operation["responses"].values():
                for media in response.get("content", {}).values():
                    yield media["schema"]


def _references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)


def test_the_document_is_public_and_cacheable(live: LiveIdp) -> None:
    answer = requests.get(live.base_url + OPENAPI, timeout=10)
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.headers["Cache-Control"].startswith("public, max-age=")
    assert answer.json() == live.services.api_contract.sealed.document
    again = requests.get(
        live.base_url + OPENAPI, headers={"If-None-Match": answer.headers["ETag"]}, timeout=10
    )
    assert again.status_code == 304 and not again.content
    assert answer.json()["servers"] == [{"url": live.base_url}]


def _call(live: LiveIdp, caller: Caller, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(
        method,
        live.base_url + path,
        headers={**caller.headers, **kwargs.pop("headers", {})},
        cookies=caller.cookies,
        allow_redirects=False,
        timeout=15,
        **kwargs,
    )


@pytest.fixture
def callers(live: LiveIdp) -> ApiCallers:
    return set_up_callers(live)


def test_requests_outside_the_contract_are_refused_naming_the_field_not_the_value(
    live: LiveIdp, callers: ApiCallers
) -> None:
    admin = callers.admin
    secret = "occs_" + "s" * 40

    def refused(answer: requests.Response, error: str, *words: str) -> None:
        assert answer.status_code == 400, answer.text
        body = answer.json()
        assert set(body) == {"error", "error_description"} and body["error"] == error, body
        assert all(word in body["error_description"] for word in words), body
        assert secret not in answer.text and "11010519491231002X" not in answer.text
        assert answer.headers["Cache-Control"] == "no-store"

    refused(
        _call(live, admin, "GET", "/api/v1/admin/citizens?limit=ten"), "invalid_request", "limit", "integer"
    )
    refused(_call(live, admin, "GET", "/api/v1/admin/cards?status=gone"), "invalid_card_status", "status")
    refused(_call(live, admin, "GET", "/api/v1/admin/keys?all=yes"), "invalid_request", "all")
    refused(
        _call(live, admin, "POST", "/api/v1/admin/clients", json={"name": "x", "client_id": secret * 2}),
        "invalid_request",
        "client_id",
        "64",
    )
    refused(
        _call(live, admin, "POST", "/api/v1/admin/clients", json={"name": "x", "client_secret": secret}),
        "invalid_request",
        "unknown field 'client_secret'",
    )
    refused(
        _call(live, admin, "POST", "/api/v1/admin/venues", json={"name": "X", "category": "casino"}),
        "invalid_venue",
        "category",
        "museum",
    )
    refused(
        _call(live, admin, "POST", "/api/v1/admin/keys/rotate", json={"key_set": ["qr"]}),
        "invalid_request",
        "key_set",
    )
    realname = callers.realname
    refused(
        _call(live, realname, "POST", "/api/v1/realname/verify", json={"name": secret, "id_number": 1}),
        "invalid_purpose",
        "purpose",
    )
    refused(
        _call(live, realname, "POST", "/api/v1/realname/verify", json={"purpose": "x", "name": "张三"}),
        "invalid_request",
        "name and id_number",
    )
    refused(
        _call(live, realname, "POST", "/api/v1/realname/verify", json={"purpose": "x", "id_number": 18}),
        "invalid_request",
        "id_number",
    )
    refused(
        _call(live, callers.venue, "POST", "/api/v1/gate/verify", json={"code": "x", "gate_id": "g" * 65}),
        "invalid_request",
        "gate_id",
        "64",
    )
    # Without credentials the view answers first: the contract is not checked for an unknown caller.
    anonymous = _call(live, Caller(), "POST", "/api/v1/realname/verify", json={"junk": secret})
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "unauthorized"
    gate = _call(live, Caller(), "POST", "/api/v1/gate/verify", json=[secret])
    assert gate.status_code == 401 and gate.json()["error"] == "invalid_client"
    # A refused request changed nothing.
    clients = _call(live, admin, "GET", "/api/v1/admin/clients").json()["clients"]
    assert all(client["name"] != "x" for client in clients)


def test_authentication_comes_before_the_contract(live: LiveIdp, callers: ApiCallers) -> None:
    garbage = Caller({"Authorization": "Bearer garbage"})
    wrong_venue = Caller({"Authorization": basic("no-such-venue", "wrong")})
    for caller, method, path, body, status, error in [
        (garbage, "POST", "/api/v1/realname/verify", {"purpose": 5}, 401, "unauthorized"),
        (garbage, "GET", "/api/v1/admin/cards?limit=x", None, 401, "unauthorized"),
        (garbage, "POST", "/api/v1/admin/clients", {"client_secret": "x"}, 401, "unauthorized"),
        # A real token without the operation's scope: 403, not the contract either.
        (callers.realname, "GET", "/api/v1/admin/cards?limit=x", None, 403, "forbidden"),
        (callers.admin, "POST", "/api/v1/realname/verify", {"junk": 1}, 403, "forbidden"),
        (wrong_venue, "POST", "/api/v1/gate/verify", {"code": 1}, 401, "invalid_client"),
        # Authenticated, with the scope: now the contract answers.
        (callers.admin, "GET", "/api/v1/admin/cards?limit=x", None, 400, "invalid_request"),
        (callers.realname, "POST", "/api/v1/realname/verify", {"purpose": "x"}, 400, "invalid_request"),
        (callers.venue, "POST", "/api/v1/gate/verify", {"code": 1}, 400, "invalid_request"),
    ]:
        answer = _call(live, caller, method, path, **({"json": body} if body is not None else {}))
        assert (answer.status_code, answer.json()["error"]) == (status, error), (path, answer.text)


def test_refused_realname_requests_count_toward_its_rate_limit(live: LiveIdp, callers: ApiCallers) -> None:
    svc = live.services
    svc.realname.limiter = RateLimiter(svc.store, "realname", 3, 60)
    for _ in range(3):
        answer = _call(live, callers.realname, "POST", "/api/v1/realname/verify", json={"purpose": 5})
        assert answer.status_code == 400, answer.text
    limited = _call(live, callers.realname, "POST", "/api/v1/realname/verify", json={"purpose": 5})
    assert limited.status_code == 429 and limited.json()["error"] == "rate_limited", limited.text


def test_a_field_with_its_own_refusal_keeps_its_code(live: LiveIdp, callers: ApiCallers) -> None:
    # The body also breaks the root anyOf (neither name and id_number nor code): purpose's code still wins.
    for body in ({"purpose": 5}, {"purpose": None, "code": "x"}, {"name": "x"}):
        answer = _call(live, callers.realname, "POST", "/api/v1/realname/verify", json=body)
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_purpose", (body, answer.text)
        assert "purpose" in answer.json()["error_description"]


def test_a_route_added_after_the_contract_is_sealed_is_served(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'late.sqlite3'}"
    dbadmin.upgrade(url)
    app = create_app(env="test", database_url=url, plugins=[])
    app.add_url_rule("/late", "late", lambda: {"late": True})
    try:
        answer = app.test_client().get("/late")
        assert answer.status_code == 200 and answer.json == {"late": True}
    finally:
        app.extensions["onecard"].database.dispose()


def test_happy_paths_answer_what_the_contract_says(live: LiveIdp, callers: ApiCallers) -> None:
    document = document_of(live)

    def check(caller: Caller, method: str, path: str, status: int, **kwargs: Any) -> requests.Response:
        concrete = _ARGUMENT.sub(lambda m: caller.path_parameters.get(m.group(1), "x"), path)
        answer = _call(live, caller, method, concrete, **kwargs)
        assert answer.status_code == status, (method, concrete, answer.text[:300])
        assert_conforms(document, method, path, answer)
        return answer

    admin, venue, wallet = callers.admin, callers.venue, callers.wallet
    # The browser flows' JSON calls, while their transactions are young.
    check(callers.card_login, "POST", "/login/{tx}/card/challenge", 200, json={})
    check(callers.login_time, "POST", "/login/{tx}/more-time", 200)
    check(callers.card_login, "POST", "/login/{tx}/more-time", 403)
    check(callers.qr_computer, "GET", "/login/{tx}/qr/{channel_id}/status", 200, params={"known": ""})
    check(callers.qr_computer, "POST", "/login/{tx}/qr/{channel_id}/collect", 409, json={})
    check(callers.qr_phone, "POST", "/wallet/qr-login/{channel_id}/options", 200, json={})
    code = check(wallet, "GET", "/wallet/api/code", 200).json()["text"]
    check(wallet, "POST", "/wallet/api/passkeys/registration-options", 200, json={})
    check(wallet, "POST", "/wallet/api/passkeys/authentication-options", 200, json={})
    check(Caller(), "GET", "/wallet/api/code", 401)
    # The gate, the suspended list, statistics, real-name verification.
    check(venue, "POST", "/api/v1/gate/verify", 200, json={"code": code, "gate_id": "north"})
    replayed = check(venue, "POST", "/api/v1/gate/verify", 200, json={"code": code})
    assert replayed.json() == {"verdict": "reject", "reason": "replayed"}
    listed = check(venue, "GET", "/api/v1/gate/suspended-handles", 200)
    check(
        venue, "GET", "/api/v1/gate/suspended-handles", 304, headers={"If-None-Match": listed.headers["ETag"]}
    )
    check(Caller(), "GET", "/api/v1/gate/suspended-handles", 401)
    check(admin, "GET", "/api/v1/admin/stats/scans", 200)
    check(admin, "GET", "/api/v1/admin/stats/scans", 400, params={"from": "2026-13-01"})
    purpose = {"purpose": "Opening a library account"}
    check(
        callers.realname,
        "POST",
        "/api/v1/realname/verify",
        200,
        json={**purpose, "name": "张三", "id_number": "11010519491231002X"},
    )
    check(callers.realname, "POST", "/api/v1/realname/verify", 200, json={**purpose, "code": callers.code})
    check(admin, "POST", "/api/v1/realname/verify", 403, json={**purpose, "code": callers.code})
    # Clients and citizens.
    check(admin, "GET", "/api/v1/admin/clients", 200)
    created = check(
        admin,
        "POST",
        "/api/v1/admin/clients",
        201,
        json={"name": "Tax portal", "redirect_uris": ["https://tax.example.gov.cn/cb"], "scope": "openid"},
    ).json()
    client = Caller(admin.headers, path_parameters={"client_id": created["client_id"]})
    check(client, "GET", "/api/v1/admin/clients/{client_id}", 200)
    check(client, "DELETE", "/api/v1/admin/clients/{client_id}", 204)
    check(client, "GET", "/api/v1/admin/clients/{client_id}", 404)
    check(admin, "GET", "/api/v1/admin/citizens", 200, params={"limit": "1", "offset": "1"})
    csv = {
        "data": "name,id_number\n王五,310115195006061230\n".encode(),
        "headers": {"Content-Type": "text/csv"},
    }
    check(admin, "POST", "/api/v1/admin/citizens/import", 200, params={"dry_run": "true"}, **csv)
    check(admin, "POST", "/api/v1/admin/citizens/import", 422, data=b"nonsense")
    # Cards.
    card = Caller(admin.headers, path_parameters={"reference": callers.spare_card_id, "action": "lost"})
    check(admin, "GET", "/api/v1/admin/cards", 200, params={"status": "active"})
    check(card, "GET", "/api/v1/admin/cards/{reference}", 200)
    check(card, "POST", "/api/v1/admin/cards/{reference}/{action}", 200)
    check(card, "POST", "/api/v1/admin/cards/{reference}/{action}", 409)
    # Venues.
    check(admin, "GET", "/api/v1/admin/venues", 200, params={"include_removed": "1"})
    made = check(
        admin, "POST", "/api/v1/admin/venues", 201, json={"name": "Library", "category": "library"}
    ).json()
    place = Caller(admin.headers, path_parameters={"venue_id": made["venue_id"]})
    check(place, "GET", "/api/v1/admin/venues/{venue_id}", 200)
    check(place, "DELETE", "/api/v1/admin/venues/{venue_id}", 204)
    check(
        admin,
        "POST",
        "/api/v1/admin/venues",
        409,
        json={"name": "Again", "category": "park", "venue_id": callers.venue_id},
    )
    # Keys, last: the spare QR key is activated, retired and removed.
    check(Caller(), "GET", "/.well-known/onecard-qr-keys.json", 200)
    check(admin, "GET", "/api/v1/admin/keys", 200, params={"key_set": "qr", "all": "true"})
    check(admin, "GET", "/api/v1/admin/keys/policy", 200)
    key = Caller(admin.headers, path_parameters={"kid": callers.spare_kid})
    check(key, "GET", "/api/v1/admin/keys/{kid}", 200)
    check(key, "POST", "/api/v1/admin/keys/{kid}/activate", 409, json={"reason": "too soon"})
    check(key, "POST", "/api/v1/admin/keys/{kid}/activate", 200, json={"reason": "drill", "force": True})
    check(key, "POST", "/api/v1/admin/keys/{kid}/retire", 409, json={"reason": "the last active key"})
    check(admin, "POST", "/api/v1/admin/keys/rotate", 201, json={"key_set": "oidc-es256"})
    check(admin, "POST", "/api/v1/admin/keys/tick", 200)
    check(key, "POST", "/api/v1/admin/keys/{kid}/revoke", 400, json={})
    check(key, "POST", "/api/v1/admin/keys/{kid}/revoke", 200, json={"reason": "drill: a suspected leak"})
    check(key, "POST", "/api/v1/admin/keys/{kid}/remove", 409, json={"reason": "gone already"})
    check(Caller(), "GET", "/api/v1/admin/keys", 401)


@pytest.mark.parametrize("field", ["client_id", "scope", "sector_identifier", "backchannel_logout_uri"])
def test_client_text_longer_than_its_column_is_refused_on_every_database(
    live_idp: LiveIdp, field: str
) -> None:
    """Found by the contract run: the admin API took 2000 characters for any text field, PostgreSQL failed
    with a 500 on a longer id than its column holds, SQLite silently kept it. The contract states the
    columns' sizes; the service refuses longer values itself (for the CLI too), changing nothing."""
    long = "https://a.example/" + "x" * 1000 if field == "backchannel_logout_uri" else "x" * 1001
    with pytest.raises(InvalidClientMetadataError, match=field):
        live_idp.register_client(**{"name": "Too long", "kind": "operator", "scope": "admin", field: long})
    with live_idp.services.database.session() as session:
        assert all(len(client.client_id) <= 64 for client in list_clients(session))
