"""The wallet in a real browser (issue 4, "How it is checked"): headless Debian Chromium with the DevTools
virtual authenticator binds a passkey, signs in with it, opens the code page; the code is decoded from a
screenshot with zxing-cpp and verified offline (``sdk.gate``) and online (``POST /api/v1/gate/verify``):
it passes once, then is refused as replayed."""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from PIL import Image

from idp.scopes import ACR_HIGH
from sdk.gate import GateVerifier, OnlineGateClient
from sdk.keys import KeySet
from sdk.qr_token import QrTokenError, QrTokenReason, parse_qr_token
from tests.support.qrimage import decode_qr
from tests.support.wallet import REGION, LiveWallet, running_wallet

pytestmark = pytest.mark.browser


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveWallet]:
    with running_wallet(f"sqlite:///{tmp_path}/wallet.sqlite3", host="localhost") as server:
        server.add_card("zhang")
        yield server


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    # A phone-sized screen: the wallet is mobile-first.
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
    try:
        yield page
    finally:
        context.close()


def test_bind_sign_in_show_scan(live: LiveWallet, page: Any, tmp_path: Path) -> None:
    base = live.base_url
    # Log in with the card (the test login stands in for card + PIN) to activate and bind.
    page.goto(f"{base}/wallet/login-card")
    link = page.locator('a[href^="/test-login/"]').first.get_attribute("href")
    page.goto(f"{base}{link}?citizen={live.citizens['zhang']}&acr={ACR_HIGH}")
    page.wait_for_url(re.compile(r".*/wallet/$"))
    page.click("#activate-1")
    page.wait_for_selector("#ecard-status")
    assert "Ready to use" in page.inner_text("#ecard-status")

    page.goto(f"{base}/wallet/devices")
    page.fill("#device-name", "Pixel test")
    page.click("#passkey-register")
    page.wait_for_selector("text=Pixel test", timeout=10_000)

    # Sign out, then in again with the passkey alone: loa:substantial.
    page.goto(f"{base}/wallet/")
    page.click("text=Sign out")
    page.wait_for_url(re.compile(r".*/wallet/signin$"))
    page.click("#passkey-signin")
    page.wait_for_url(re.compile(r".*/wallet/$"), timeout=10_000)
    assert "Ready to use" in page.inner_text("#ecard-status")

    page.goto(f"{base}/wallet/code")
    page.wait_for_selector("#qr")
    page.wait_for_function("document.getElementById('countdown').textContent.startsWith('New code in')")
    png = page.screenshot(full_page=True)
    shot = tmp_path / "wallet-code.png"
    shot.write_bytes(png)
    if os.environ.get("ONECARD_TEST_SCREENSHOT"):
        Path(os.environ["ONECARD_TEST_SCREENSHOT"]).write_bytes(png)
    text = decode_qr(png)
    parsed = parse_qr_token(text)
    assert parsed.issuer == REGION and parsed.expires_at - parsed.issued_at == 60

    keys = KeySet.from_jwks(live.app.test_client().get("/.well-known/onecard-qr-keys.json").get_json())
    gate = GateVerifier(keys, [REGION])
    assert gate.verify(text, live.clock()).handle == parsed.handle
    venue_id, secret = live.add_venue("Provincial Museum", "museum", ("valid_resident", "age_over_60"))
    online = OnlineGateClient(base, venue_id, secret)
    scan = online.verify(text, gate_id="east")
    assert dict(scan.claims) == {"valid_resident": True, "age_over_60": True}
    for verify in (lambda: online.verify(text), lambda: gate.verify(text, live.clock())):
        with pytest.raises(QrTokenError) as replay:
            verify()
        assert replay.value.reason is QrTokenReason.REPLAYED

    # The page refreshes the code by itself every 30 s: move the server's clock and wait for a new image.
    first_src = page.get_attribute("#qr", "src")
    live.clock.advance(31)
    page.evaluate("document.getElementById('qr').dataset.refreshAt = '0'")
    # (Polled from here: the page's CSP forbids the string evaluation wait_for_function would use.)
    for _ in range(50):
        if page.get_attribute("#qr", "src") != first_src:
            break
        page.wait_for_timeout(200)
    assert page.get_attribute("#qr", "src") != first_src
    assert page.inner_text("#code-status") == "A new code is shown."
    fresh = decode_qr(page.screenshot(full_page=True))
    assert fresh != text and online.verify(fresh).handle == parsed.handle

    # History shows the scans.
    page.goto(f"{base}/wallet/history")
    assert "Provincial Museum" in page.inner_text("main")


def test_garbage_images_are_not_codes(tmp_path: Path) -> None:
    """Images without a code, or with a QR code that is not ESSC1, give no verdict-worthy text."""
    blank = io.BytesIO()
    Image.new("RGB", (300, 300), "white").save(blank, format="PNG")
    assert zxingcpp.read_barcodes(Image.open(io.BytesIO(blank.getvalue()))) == []
    import qrcode

    other = io.BytesIO()
    qrcode.make("https://example.com/not-a-card").save(other)
    text = zxingcpp.read_barcodes(Image.open(io.BytesIO(other.getvalue())))[0].text
    with pytest.raises(QrTokenError) as refused:
        parse_qr_token(text)
    assert refused.value.reason is QrTokenReason.MALFORMED
