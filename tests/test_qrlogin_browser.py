"""QR scan-to-login in two real browsers (issue 5 item 1, "How it is checked"): headless Debian Chromium,
a desktop context on a portal's login page and a phone context with the wallet and a DevTools virtual
authenticator (its passkey bound first, as in test_wallet_browser.py). The desktop's QR code is decoded from a
screenshot with zxing-cpp to get the URL the phone opens. Delivery through another server node is checked
over HTTP against two server processes in test_qrlogin.py."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from idp.scopes import ACR_HIGH
from tests.support.qrimage import decode_qr
from tests.support.qrlogin import CHALLENGE
from tests.support.wallet import LiveWallet, running_wallet

pytestmark = pytest.mark.browser

SHOTS = os.environ.get("ONECARD_TEST_SCREENSHOT_DIR")


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveWallet]:
    with running_wallet(f"sqlite:///{tmp_path}/qr-browser.sqlite3", host="localhost") as server:
        server.services.settings = server.services.settings.replace(qr_login_poll_seconds=3)
        server.add_card("zhang")
        yield server


@pytest.fixture
def phone(chromium: Any, live: LiveWallet) -> Iterator[Any]:
    """Zhang's phone: a phone-sized context with a virtual platform authenticator, the e-card activated and
    the passkey bound (then signed out: approving needs only the passkey)."""
    # English pages: the assertions read English (Chinese is the default: tests/test_i18n_browser.py).
    context = chromium.new_context(
        viewport={"width": 412, "height": 915}, device_scale_factor=2, locale="en-US"
    )
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
            }
        },
    )
    base = live.base_url
    page.goto(f"{base}/wallet/login-card")
    link = page.locator('a[href^="/test-login/"]').first.get_attribute("href")
    page.goto(f"{base}{link}?citizen={live.citizens['zhang']}&acr={ACR_HIGH}")
    page.wait_for_url(re.compile(r".*/wallet/$"))
    page.click("#activate-1")
    page.wait_for_selector("#ecard-status")
    page.goto(f"{base}/wallet/devices")
    page.fill("#device-name", "Zhang's phone")
    page.click("#passkey-register")
    page.wait_for_selector("text=Zhang's phone", timeout=10_000)
    page.goto(f"{base}/wallet/")
    page.click("text=Sign out")
    page.wait_for_url(re.compile(r".*/wallet/signin$"))
    try:
        yield page
    finally:
        context.close()


class _Portal(BaseHTTPRequestHandler):
    """The portal's callback, so the desktop has somewhere to land (the code is not redeemed here)."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<h1>Portal</h1>")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def redirect_uri() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Portal)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_port}/cb"
    finally:
        server.shutdown()
        server.server_close()


def _landed(redirect_uri: str) -> re.Pattern[str]:
    return re.compile("^" + re.escape(redirect_uri) + r"\?code=")


def _desktop(chromium: Any) -> Any:
    return chromium.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")


@pytest.fixture
def desktop(chromium: Any) -> Iterator[Any]:
    context = _desktop(chromium)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def client_id(live: LiveWallet, redirect_uri: str) -> str:
    client_id, _ = live.register_client(
        name="Provincial Tax Portal", redirect_uris=(redirect_uri,), scope="openid profile", first_party=True
    )
    return client_id


def _authorize_url(live: LiveWallet, client_id: str, redirect_uri: str) -> str:
    return (
        f"{live.base_url}/authorize?response_type=code&client_id={client_id}&redirect_uri={redirect_uri}"
        f"&scope=openid%20profile&state=s1&nonce=n1&code_challenge={CHALLENGE}&code_challenge_method=S256"
    )


def _open_qr(
    live: LiveWallet, desktop: Any, client_id: str, redirect_uri: str, shot: str | None = None
) -> str:
    """The desktop goes to the portal's login, picks the QR method; returns the URL decoded from the code."""
    desktop.goto(_authorize_url(live, client_id, redirect_uri))
    desktop.click("#start-qr")
    desktop.wait_for_selector("#qr-login[data-state=waiting]")
    png = desktop.screenshot(full_page=True)
    if shot and SHOTS:
        Path(SHOTS, shot).write_bytes(png)
    return decode_qr(png)


def _state(page: Any, state: str, timeout: float = 10_000) -> None:
    page.wait_for_selector(f"#qr-login[data-state={state}]", timeout=timeout)


def test_scan_to_login_end_to_end(
    live: LiveWallet, phone: Any, desktop: Any, client_id: str, redirect_uri: str
) -> None:
    url = _open_qr(live, desktop, client_id, redirect_uri, "qrlogin-computer.png")
    assert re.fullmatch(re.escape(live.base_url) + r"/wallet/qr-login/[A-Za-z0-9_-]{32}", url)
    code = desktop.inner_text("#match-code").strip()
    assert re.fullmatch(r"\d\d", code)

    phone.goto(url)
    _state(desktop, "scanned")
    assert code in desktop.inner_text("#qr-status")
    assert phone.inner_text("#req-client") == "Provincial Tax Portal"
    assert "Your name, gender and date of birth" in phone.inner_text("#req-claims")
    assert "127.0.0.1" in phone.inner_text("#req-place")
    assert "Chrome" in phone.inner_text("#req-browser")
    assert phone.locator(".match-choice").count() == 3
    assert not desktop.is_visible("#qr-restart")
    if SHOTS:
        Path(SHOTS, "qrlogin-phone-match.png").write_bytes(phone.screenshot(full_page=True))
    phone.click(f"#choice-{code}")
    phone.wait_for_selector("#qr-approve-button")
    if SHOTS:
        Path(SHOTS, "qrlogin-phone.png").write_bytes(phone.screenshot(full_page=True))
    phone.click("#qr-approve-button")
    phone.wait_for_selector("#qr-result[data-outcome=approved]", timeout=10_000)

    desktop.wait_for_url(_landed(redirect_uri), timeout=15_000)
    assert "state=s1" in desktop.url
    # The desktop now has an SSO session: a second portal asking loa:substantial needs no new login.
    cookies = {c["name"] for c in desktop.context.cookies()}
    assert "ocss" in cookies and not any(name.startswith("ocqr-") for name in cookies)


def test_wrong_match_code_is_refused(
    live: LiveWallet, phone: Any, desktop: Any, client_id: str, redirect_uri: str
) -> None:
    url = _open_qr(live, desktop, client_id, redirect_uri)
    code = desktop.inner_text("#match-code").strip()
    phone.goto(url)
    wrong = next(
        value
        for value in phone.locator(".match-choice").evaluate_all("els => els.map(e => e.value)")
        if value != code
    )
    phone.click(f"#choice-{wrong}")
    phone.wait_for_selector("#qr-result[data-outcome=wrong_match_code]")
    if SHOTS:
        Path(SHOTS, "qrlogin-phone-wrong.png").write_bytes(phone.screenshot(full_page=True))
    _state(desktop, "denied")
    assert desktop.is_visible("#qr-restart")
    # The same channel cannot be approved any more.
    phone.goto(url)
    phone.wait_for_selector("#qr-result[data-outcome=channel_closed]")


def test_denied_request(
    live: LiveWallet, phone: Any, desktop: Any, client_id: str, redirect_uri: str
) -> None:
    url = _open_qr(live, desktop, client_id, redirect_uri)
    phone.goto(url)
    phone.click("#qr-deny")
    phone.wait_for_selector("#qr-result[data-outcome=denied]")
    _state(desktop, "denied")
    assert "refused" in desktop.inner_text("#qr-status")
    # "Show a new code" opens a fresh channel.
    desktop.click("#qr-restart")
    _state(desktop, "waiting")


def test_expired_channel(
    live: LiveWallet, phone: Any, desktop: Any, client_id: str, redirect_uri: str
) -> None:
    url = _open_qr(live, desktop, client_id, redirect_uri)
    live.clock.advance(121)
    _state(desktop, "expired")
    assert desktop.is_visible("#qr-restart")
    phone.goto(url)
    phone.wait_for_selector("#qr-result[data-outcome=channel_expired]")


def test_collect_from_another_browser_is_refused(
    chromium: Any, live: LiveWallet, phone: Any, desktop: Any, client_id: str, redirect_uri: str
) -> None:
    url = _open_qr(live, desktop, client_id, redirect_uri)
    code = desktop.inner_text("#match-code").strip()
    collect_url = live.base_url + desktop.get_attribute("#qr-login", "data-collect-url")
    csrf = desktop.get_attribute("#qr-login", "data-csrf")
    # Another browser (it has seen the QR and even the page's CSRF token) tries to collect.
    other = _desktop(chromium)
    try:
        other_page = other.new_page()
        other_page.goto(
            _authorize_url(live, client_id, redirect_uri)
        )  # its own login transaction, its own cookies
        phone.goto(url)
        phone.click(f"#choice-{code}")
        phone.click("#qr-approve-button")
        phone.wait_for_selector("#qr-result[data-outcome=approved]", timeout=10_000)
        # (The desktop's page collects by itself at once; race it with the stranger first.)
        stolen = other.request.post(
            collect_url, data="{}", headers={"Content-Type": "application/json", "X-CSRF-Token": csrf}
        )
        assert stolen.status == 400 and stolen.json()["error"] == "login_expired"
    finally:
        other.close()
    desktop.wait_for_url(_landed(redirect_uri), timeout=15_000)
