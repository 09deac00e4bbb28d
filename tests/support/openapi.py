"""Helpers for the OpenAPI contract's tests: real callers of every described operation on a live server
(an admin and a real-name operator with tokens, a venue's gate, a signed-in wallet, a card login page, a
QR login's computer and phone), and a check that a response is one the contract describes.

``tests/test_openapi.py`` drives the happy paths with them; ``tests/test_openapi_contract.py`` hands them to
schemathesis so that its generated requests get past authentication.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus, urljoin

import requests
from jsonschema import Draft202012Validator

from halls.register.service import add_counter, add_service, create_hall
from idp.ratelimit import RateLimiter
from tests.support.cardlogin import CardBrowser, card_portal
from tests.support.counter_device import CounterDevice
from tests.support.live import REDIRECT, Browser, LiveIdp
from tests.support.wallet import LiveWallet, WalletUser, csrf_of
from wallet.qrlogin.views import COOKIE_PREFIX

JsonObject = dict[str, Any]
_DATA = re.compile(r'data-([a-z-]+)="([^"]*)"')
_EXTEND_CSRF = re.compile(r'data-extend-csrf="([0-9a-f]{64})"')
_MATCH_CODE = re.compile(r'id="match-code"[^>]*>(\d\d)<')


# Conformance -----------------------------------------------------------------------------------------------


def response_definition(document: JsonObject, method: str, path: str, status: int) -> JsonObject | None:
    """The contract's response for ``status`` of an operation (references followed), or None."""
    responses = document["paths"][path][method.lower()]["responses"]
    found = responses.get(str(status))
    if found is not None and "$ref" in found:
        found = document["components"]["responses"][found["$ref"].rsplit("/", 1)[1]]
    return found  # type: ignore[no-any-return]


def conformance_problems(
    document: JsonObject, method: str, path: str, response: requests.Response
) -> list[str]:
    """What is wrong with ``response`` as an answer of ``method path`` by the contract (empty if nothing)."""
    definition = response_definition(document, method, path, response.status_code)
    if definition is None:
        return [f"status {response.status_code} is not documented"]
    content = definition.get("content")
    if not content:
        return [] if not response.content else ["a body where the contract has none"]
    media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
    if media_type not in content:
        return [f"Content-Type {media_type!r}, documented: {sorted(content)}"]
    schema = {**content[media_type]["schema"], "components": document["components"]}
    validator = Draft202012Validator(schema)
    return [
        f"{list(error.absolute_path)}: {error.message}" for error in validator.iter_errors(response.json())
    ]


def assert_conforms(document: JsonObject, method: str, path: str, response: requests.Response) -> None:
    problems = conformance_problems(document, method, path, response)
    assert not problems, (method, path, response.status_code, response.text[:300], problems)


# Callers ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """What one kind of caller sends: headers (credentials, CSRF), cookies, and the real ids of the browser
    flow it is in (path parameters of its operations)."""

    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)
    path_parameters: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ApiCallers:
    admin: Caller
    admin_client_id: str  # the admin's own client: never a target of a destructive call
    realname: Caller
    venue: Caller
    venue_id: str  # the gate's venue: never a target of a destructive call
    counter: Caller  # the registered device of counter w1 of the hall "contract" (a hall:counter token)
    wallet: Caller  # zhang, signed in at loa:high with an activated e-card
    card_login: Caller  # a card login page inside a live login transaction
    login_time: Caller  # the same page's "More time" button
    qr_computer: Caller  # the computer's QR login page: its channel, secret cookie and CSRF token
    qr_phone: Caller  # the phone that opened that channel and picked the number
    # Objects the admin may change or remove: made for that, so nothing else depends on them.
    spare_client_id: str
    spare_venue_id: str
    spare_card_id: str
    spare_kid: str  # a pending key of the QR key set
    code: str  # a fresh e-card code of zhang's


def token_for(live: LiveIdp, scope: str) -> tuple[str, str]:
    """(client id, access token) of a new operator client with ``scope``."""
    client_id, secret = live.register_client(name=f"Operator ({scope})", kind="operator", scope=scope)
    answer = requests.post(
        f"{live.base_url}/token",
        auth=(client_id, secret or ""),
        data={"grant_type": "client_credentials", "scope": scope},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return client_id, str(answer.json()["access_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(client_id: str, secret: str) -> str:
    """client_secret_basic (RFC 6749 §2.3.1): each part form-encoded, then base64."""
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


def _cookies(http: requests.Session) -> dict[str, str]:
    return {cookie.name: cookie.value or "" for cookie in http.cookies}


def _qr_login(live: LiveIdp) -> tuple[Caller, Caller]:
    """A QR login up to the phone's passkey: the computer showing the code, the phone having picked its
    number (so the phone's options call can succeed)."""
    client_id, _ = live.register_client(name="QR portal", redirect_uris=(REDIRECT,), scope="openid profile")
    computer = Browser(live)
    login_url = computer.authorize(
        f"{live.base_url}/authorize?response_type=code&client_id={client_id}&redirect_uri={REDIRECT}"
        "&scope=openid&state=s&nonce=n&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        "&code_challenge_method=S256"
    )
    tx = login_url.rstrip("/").rsplit("/", 1)[1]
    page = computer.http.get(f"{live.base_url}/login/{tx}/qr", timeout=10)
    assert page.status_code == 200, page.text[:300]
    data = dict(_DATA.findall(page.text))
    channel_url = data["channel-url"]
    channel_id = channel_url.rstrip("/").rsplit("/", 1)[1]
    # The channel's secret cookie is scoped to the transaction's path; send it along explicitly.
    computer_cookies = _cookies(computer.http)
    assert any(name.startswith(COOKIE_PREFIX) for name in computer_cookies)
    phone = requests.Session()
    scanned = phone.get(urljoin(live.base_url, channel_url), timeout=10)
    assert scanned.status_code == 200, scanned.text[:300]
    phone_csrf = csrf_of(scanned.text)
    match_code = _MATCH_CODE.search(page.text)
    assert match_code
    picked = phone.post(
        urljoin(live.base_url, channel_url) + "/match",
        data={"csrf": phone_csrf, "code": match_code.group(1)},
        allow_redirects=False,
        timeout=10,
    )
    assert picked.status_code == 303, picked.text[:300]
    return (
        Caller(
            {"X-CSRF-Token": data["csrf"]},
            computer_cookies,
            {"tx": tx, "channel_id": channel_id},
        ),
        Caller({"X-CSRF-Token": phone_csrf}, _cookies(phone), {"channel_id": channel_id}),
    )


def _counter_device(live: LiveIdp, admin_token: str) -> dict[str, str]:
    """A hall with a service and a counter, the counter's device registered through the admin API: its
    ``hall:counter`` Bearer headers."""
    with live.services.database.session() as session:
        hall = create_hall(
            session, name="Contract hall", hall_id="contract", actor="test", now=live.clock()
        ).hall
        add_service(session, hall, code="card", name="社保卡补换", prefix="A", actor="test", now=live.clock())
        add_counter(
            session, hall, code="w1", name="1号窗口", services=["card"], actor="test", now=live.clock()
        )
    device = CounterDevice()
    device.register(live.base_url, bearer(admin_token), "contract", "w1")
    return device.headers(live.base_url)


def set_up_callers(live: LiveIdp) -> ApiCallers:
    """Every caller the contract describes, with real credentials, on a live server with the wallet."""
    wallet_live = LiveWallet(live.base_url, live.app, live.clock, live.citizens)
    admin_client_id, admin_token = token_for(live, "admin")
    _realname_client, realname_token = token_for(live, "realname:verify")
    # Real-name checks are rate-limited per client (10 a minute by default); the tests make many.
    svc = live.services
    svc.realname.limiter = RateLimiter(svc.store, "realname", 100_000, 60)
    # Long polls answer within a second (the default is 20 s: a test would wait that long per poll).
    svc.settings = svc.settings.replace(qr_login_poll_seconds=1)
    venue_id, venue_secret = wallet_live.add_venue("Museum", "museum", ("valid_resident", "age_over_60"))
    spare_venue_id, _ = wallet_live.add_venue("Spare park", "park")
    spare_client_id, _ = live.register_client(name="Spare portal", redirect_uris=(REDIRECT,), scope="openid")
    wallet_live.add_card("zhang")
    spare_card_id = wallet_live.add_card("li")
    user = WalletUser(wallet_live, "zhang")
    user.login_with_card()
    assert user.activate().status_code == 303
    devices = user.http.get(user.url("/wallet/devices"), timeout=10)
    code = user.code()["text"]
    rotated = requests.post(
        f"{live.base_url}/api/v1/admin/keys/rotate",
        json={"key_set": "qr", "reason": "a spare key for the contract tests"},
        headers=bearer(admin_token),
        timeout=10,
    )
    assert rotated.status_code == 201, rotated.text
    card_browser = CardBrowser(live)
    card_page = card_browser.open(
        card_portal(live).create_authorization_url(
            f"{live.base_url}/authorize", code_verifier="v" * 48, nonce="n"
        )[0]
    )
    extend_csrf = _EXTEND_CSRF.search(card_browser.http.get(card_page.url, timeout=10).text)
    assert extend_csrf, "the card login page has no time-limit notice"
    qr_computer, qr_phone = _qr_login(live)
    return ApiCallers(
        counter=Caller(_counter_device(live, admin_token)),
        admin=Caller(bearer(admin_token)),
        admin_client_id=admin_client_id,
        realname=Caller(bearer(realname_token)),
        venue=Caller({"Authorization": basic(venue_id, venue_secret)}),
        venue_id=venue_id,
        wallet=Caller({"X-CSRF-Token": csrf_of(devices.text)}, _cookies(user.http)),
        card_login=Caller(
            {"X-CSRF-Token": card_page.csrf}, _cookies(card_browser.http), {"tx": card_page.tx}
        ),
        login_time=Caller(
            {"X-CSRF-Token": extend_csrf.group(1)}, _cookies(card_browser.http), {"tx": card_page.tx}
        ),
        qr_computer=qr_computer,
        qr_phone=qr_phone,
        spare_client_id=spare_client_id,
        spare_venue_id=spare_venue_id,
        spare_card_id=spare_card_id,
        spare_kid=rotated.json()["changes"][0]["kid"],
        code=code,
    )
