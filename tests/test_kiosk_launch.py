"""The bridge launches its kiosk (issue 13): ``onecard-bridge serve --kiosk ORIGIN --kiosk-credentials FILE``
serves ``GET /kiosk``, a self-submitting form with a fresh client assertion for ``ORIGIN/kiosk/start``.

Over real HTTP against a live IdP (SQLite, and PostgreSQL + Redis): the form's assertion starts the terminal
(so the credentials file holds what Authlib's check needs) and only once; the page is refused to any
request with an ``Origin`` or from another site. In Chromium: opening the bridge's ``/kiosk`` lands on the
kiosk start page of the registered hall — the SameSite=Strict terminal cookie survives the cross-site start.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from halls.register.service import create_hall, register_kiosk
from reader_bridge.cli import build_parser, kiosk_launch
from reader_bridge.kiosk import (
    InvalidKioskCredentialsError,
    KioskCredentials,
    KioskLaunch,
    load_kiosk_credentials,
    parse_kiosk_credentials,
)
from reader_bridge.virtual import VirtualTerminal
from sdk.keys import generate_key
from tests.support.bridge import BridgeClient, running_bridge
from tests.support.cardlogin import issue_test_card
from tests.support.live import LiveIdp

HALL = "launch-hall"


@pytest.fixture
def launch(live_stack: LiveIdp) -> Iterator[tuple[LiveIdp, BridgeClient]]:
    idp = live_stack
    key = generate_key("ES256")
    with idp.services.database.session() as session:
        created = create_hall(session, name="硚口区政务服务中心", hall_id=HALL, actor="test", now=idp.clock())
        kiosk = register_kiosk(
            session,
            created.hall,
            name="自助机1",
            jwks={"keys": [key.public_jwk()]},
            issuer=idp.base_url,
            actor="test",
            now=idp.clock(),
        )
        client_id = kiosk.client_id
    credentials = KioskCredentials(client_id=client_id, issuer=idp.base_url, key=key)
    card = issue_test_card(idp)
    with running_bridge(
        VirtualTerminal(card.emulator), [idp.base_url], kiosk_launch=KioskLaunch(idp.base_url, credentials)
    ) as bridge:
        yield idp, bridge


def _form(page: str) -> tuple[str, dict[str, str]]:
    action = re.search(r'<form id="start" method="post" action="([^"]+)"', page)
    assert action, page
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]+)">', page))
    return html.unescape(action.group(1)), {k: html.unescape(v) for k, v in fields.items()}


def test_the_launch_page_starts_the_terminal_once(launch: tuple[LiveIdp, BridgeClient]) -> None:
    idp, bridge = launch
    answer = requests.get(f"{bridge.url}/kiosk", headers={"Sec-Fetch-Site": "none"}, timeout=10)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/html")
    policy = answer.headers["Content-Security-Policy"]
    assert f"form-action {idp.base_url}" in policy and "script-src 'sha256-" in policy
    assert "frame-ancestors 'none'" in policy and answer.headers["Cache-Control"] == "no-store"
    assert "<noscript><button" in answer.text
    action, fields = _form(answer.text)
    assert action == f"{idp.base_url}/kiosk/start" and "hall_id" not in fields
    browser = requests.Session()
    started = browser.post(action, data=fields, allow_redirects=False, timeout=10)
    assert started.status_code == 200 and "ockiosk" in started.cookies
    assert "硚口区政务服务中心" in browser.get(f"{idp.base_url}/kiosk", timeout=10).text
    replayed = requests.post(action, data=fields, allow_redirects=False, timeout=10)
    assert replayed.status_code == 401 and "ockiosk" not in replayed.cookies
    # Each launch is a new assertion.
    again = requests.get(f"{bridge.url}/kiosk", timeout=10)
    assert _form(again.text)[1]["client_assertion"] != fields["client_assertion"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "same-origin"},
        {"Origin": "http://127.0.0.1", "Sec-Fetch-Site": "none"},
    ],
)
def test_the_launch_page_is_for_a_top_level_navigation_only(
    launch: tuple[LiveIdp, BridgeClient], headers: dict[str, str]
) -> None:
    _idp, bridge = launch
    answer = requests.get(f"{bridge.url}/kiosk", headers=headers, timeout=10)
    assert answer.status_code == 403 and answer.json()["error"] == "origin_not_allowed"
    assert "client_assertion" not in answer.text


def _credentials(key_pem: str, **change: Any) -> dict[str, Any]:
    return {
        "client_id": "kio_1",
        "kid": "k1",
        "private_key_pem": key_pem,
        "issuer": "https://login.example",
    } | change


def test_credentials_files_and_options(tmp_path: Path) -> None:
    pem = generate_key("ES256").private_pem().decode()
    parsed = parse_kiosk_credentials(_credentials(pem))
    assert parsed.client_id == "kio_1" and parsed.key.kid == "k1" and parsed.key.can_sign
    assert "PRIVATE" not in repr(parsed)
    bad_documents: list[Any] = [
        _credentials(pem, client_id=""),
        _credentials("not a key"),
        _credentials(pem, issuer=None),
        [],
    ]
    for bad in bad_documents:
        with pytest.raises(InvalidKioskCredentialsError):
            parse_kiosk_credentials(bad)
    path = tmp_path / "kiosk.json"
    path.write_text(json.dumps(_credentials(pem)))
    assert load_kiosk_credentials(path).client_id == "kio_1"
    args = build_parser().parse_args(["serve", "--kiosk-credentials", str(path)])
    with pytest.raises(ValueError):
        kiosk_launch(args, frozenset())  # only in the kiosk profile
    args = build_parser().parse_args(
        ["serve", "--kiosk", "https://login.example", "--kiosk-credentials", str(path)]
    )
    launch = kiosk_launch(args, frozenset({"https://login.example"}))
    assert launch is not None and launch.start_url == "https://login.example/kiosk/start"
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(InvalidKioskCredentialsError):
        load_kiosk_credentials(tmp_path / "broken.json")


@pytest.mark.browser
def test_opening_the_bridge_kiosk_page_lands_on_the_kiosk_start(
    chromium: Any, launch: tuple[LiveIdp, BridgeClient]
) -> None:
    idp, bridge = launch
    context = chromium.new_context(locale="zh-CN")
    try:
        page = context.new_page()
        page.goto(f"{bridge.url}/kiosk")
        page.wait_for_url(f"{idp.base_url}/kiosk")
        page.wait_for_selector("#kiosk-start")
        assert "硚口区政务服务中心" in page.inner_text("main")
        assert "请插入社会保障卡" in page.inner_text("main")
    finally:
        context.close()
