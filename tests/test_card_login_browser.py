"""Card login in headless Chromium through the real login page (issue #3 "How it is checked").

The page (static/card-login.js) finds the bridge, gets the challenge, starts the bridge's authenticate
operation, follows its events; the PIN is typed into the bridge's own PIN dialog — a page of the bridge's
origin that the test opens from the link the login page shows — never into the IdP page. The bridge runs
its real local API server with the in-process virtual card (no pcscd needed here; the PC/SC path is
tests/test_card_login_pcsc.py). Screenshots go to $ONECARD_TEST_ARTIFACTS or /tmp/onecard-artifacts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

from idp.scopes import ACR_HIGH
from reader_bridge.virtual import VirtualTerminal
from tests.support.bridge import BridgeClient, running_bridge
from tests.support.browser import ARTIFACTS, type_pin_in_bridge_dialog
from tests.support.cardlogin import PIN, VirtualCard, issue_test_card
from tests.support.live import REDIRECT, LiveIdp, query_of

pytestmark = pytest.mark.browser


@pytest.fixture
def card(idp: LiveIdp) -> VirtualCard:
    return issue_test_card(idp)


@pytest.fixture
def bridge(idp: LiveIdp, card: VirtualCard) -> Iterator[BridgeClient]:
    with running_bridge(VirtualTerminal(card.emulator), [idp.base_url]) as client:
        idp.services.settings = idp.services.settings.replace(card_bridge_url=client.url)
        yield client


@pytest.fixture
def page(chromium: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    # English pages: the assertions read English (Chinese is the default: tests/test_i18n_browser.py).
    context = chromium.new_context(viewport={"width": 1000, "height": 1100}, locale="en-US")
    # The portal's callback is not a real site: answer it here, so the code lands in the URL.
    context.route("https://portal.example.gov.cn/**", lambda route: route.fulfill(status=200, body="portal"))
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def _start(idp: LiveIdp, page: Any) -> tuple[OAuth2Session, str, str]:
    client_id, secret = idp.register_client(redirect_uris=(REDIRECT,), scope="openid profile")
    client = OAuth2Session(
        client_id, secret, scope="openid profile", redirect_uri=REDIRECT, code_challenge_method="S256"
    )
    verifier, nonce = generate_token(48), generate_token(16)
    url, _ = client.create_authorization_url(f"{idp.base_url}/authorize", code_verifier=verifier, nonce=nonce)
    page.goto(url)
    page.click("#start-card")
    page.wait_for_url("**/card")
    return client, verifier, nonce


def test_card_login_in_chromium(idp: LiveIdp, bridge: BridgeClient, page: Any) -> None:
    client, verifier, nonce = _start(idp, page)
    page.wait_for_selector("#start", state="visible")
    assert "Ready" in page.inner_text("#status")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "card-login-ready.png"), full_page=True)
    page.click("#start")
    page.wait_for_selector("#tries", state="visible")
    assert "3 tries left" in page.inner_text("#tries")
    assert "OneCard window" in page.inner_text("#status")
    assert page.get_attribute("#step-pin", "aria-current") == "step"
    page.screenshot(path=str(ARTIFACTS / "card-login-enter-pin.png"), full_page=True)
    assert page.locator("input[type=password]").count() == 0  # no PIN field on the IdP page
    type_pin_in_bridge_dialog(page, PIN)
    page.wait_for_selector("#allow")  # consent, after the login
    page.click("#allow")
    page.wait_for_url("https://portal.example.gov.cn/**")
    final = page.url
    assert query_of(final)["iss"] == idp.base_url
    token = client.fetch_token(f"{idp.base_url}/token", authorization_response=final, code_verifier=verifier)
    import jwt

    claims = jwt.decode(token["id_token"], options={"verify_signature": False})
    assert claims["acr"] == ACR_HIGH and claims["amr"] == ["sc", "pin", "mfa"] and claims["nonce"] == nonce


def test_wrong_pin_and_tries_left_are_shown(idp: LiveIdp, bridge: BridgeClient, page: Any) -> None:
    _start(idp, page)
    page.wait_for_selector("#start", state="visible")
    page.click("#start")
    type_pin_in_bridge_dialog(page, "000000")
    page.wait_for_selector("#alert", state="visible")
    assert "2 tries left" in page.inner_text("#alert")
    page.wait_for_function("document.querySelector('#tries').textContent.includes('2 tries left')")
    page.screenshot(path=str(ARTIFACTS / "card-login-wrong-pin.png"), full_page=True)
    type_pin_in_bridge_dialog(page, PIN)
    page.wait_for_selector("#allow")


# Every text the page puts into its status box, from the mutation records: even a text replaced again in
# the same task (two events from one poll) is caught, not just what is left on screen.
_RECORD_TEXTS = """() => {
  window.shownTexts = [];
  new MutationObserver((records) => {
    for (const record of records) {
      for (const node of record.addedNodes) { window.shownTexts.push(node.textContent); }
      if (record.type === 'characterData') { window.shownTexts.push(record.target.data); }
    }
  }).observe(document.querySelector('.status-box'), {subtree: true, childList: true, characterData: true});
}"""


def _bridge_status(bridge: BridgeClient) -> dict[str, Any]:
    status, body = bridge.request("GET", "/v1/status")
    assert status == 200
    return dict(body)


def test_a_card_that_cannot_log_in_here_is_told_before_the_pin(
    idp: LiveIdp, card: VirtualCard, bridge: BridgeClient, page: Any
) -> None:
    from idp.cards.model import CardStatus
    from idp.cards.service import change_status, get_card

    with idp.services.database.session() as session:
        change_status(
            session, get_card(session, card.card_id), CardStatus.LOST, actor="test", now=idp.clock()
        )
    _start(idp, page)
    page.wait_for_selector("#start", state="visible")
    page.evaluate(_RECORD_TEXTS)
    page.click("#start")
    page.wait_for_selector("#alert", state="visible")
    assert "cannot be used to log in here" in page.inner_text("#alert")
    assert "lost" not in page.inner_text("#alert")  # the pre-check gives no reason
    assert page.evaluate("document.activeElement.id") == "alert"
    assert page.is_visible("#other-way") and page.is_visible("#retry")
    assert not page.is_visible("#pin-window")
    assert not any("tries left" in text or "PIN" in text for text in page.evaluate("window.shownTexts"))
    assert card.card_file.tries_left == 3
    page.wait_for_function("!document.querySelector('#cancel') || document.querySelector('#cancel').hidden")
    assert _bridge_status(bridge)["busy"] is False  # the page cancelled the paused operation
    page.screenshot(path=str(ARTIFACTS / "card-login-not-usable.png"), full_page=True)


def test_the_last_wrong_pin_shows_only_the_blocked_message(idp: LiveIdp, page: Any) -> None:
    card = issue_test_card(idp)
    last_try = VirtualCard(card.card_file.with_pin_state(pin=PIN, tries_left=1))
    with running_bridge(VirtualTerminal(last_try.emulator), [idp.base_url]) as bridge:
        idp.services.settings = idp.services.settings.replace(card_bridge_url=bridge.url)
        _start(idp, page)
        page.wait_for_selector("#start", state="visible")
        page.evaluate(_RECORD_TEXTS)
        page.click("#start")
        page.wait_for_selector("#tries", state="visible")
        assert "1 try left" in page.inner_text("#tries")
        type_pin_in_bridge_dialog(page, "000000")
        page.wait_for_function("document.querySelector('#alert').textContent.includes('service counter')")
        page.wait_for_selector("#other-way", state="visible")
    alert = page.inner_text("#alert")
    assert "blocked" in alert and "ID card" in alert
    shown = page.evaluate("window.shownTexts")
    assert not [text for text in shown if "0 tries" in text or "0 try" in text], shown
    assert not page.is_visible("#tries") and not page.is_visible("#retry")  # trying again cannot help
    assert last_try.card_file.tries_left == 0
    page.screenshot(path=str(ARTIFACTS / "card-login-blocked.png"), full_page=True)


def test_a_refused_signature_gets_a_next_step(idp: LiveIdp, card: VirtualCard, page: Any) -> None:
    """The IdP refuses the card's signature: here because the page was reached as localhost while the IdP
    is 127.0.0.1, so the card signs another origin than the IdP expects (a proxy set up wrongly)."""
    elsewhere = idp.base_url.replace("127.0.0.1", "localhost")
    with running_bridge(VirtualTerminal(card.emulator), [idp.base_url, elsewhere]) as bridge:
        idp.services.settings = idp.services.settings.replace(card_bridge_url=bridge.url)
        client_id, _secret = idp.register_client(redirect_uris=(REDIRECT,), scope="openid")
        client = OAuth2Session(client_id, scope="openid", redirect_uri=REDIRECT, code_challenge_method="S256")
        url, _ = client.create_authorization_url(
            f"{elsewhere}/authorize", code_verifier=generate_token(48), nonce=generate_token(16)
        )
        page.goto(url)
        page.click("#start-card")
        page.wait_for_selector("#start", state="visible")
        page.click("#start")
        type_pin_in_bridge_dialog(page, PIN)
        page.wait_for_selector("#retry", state="visible")
    assert "Try again" in page.inner_text("#alert") and "card reader" in page.inner_text("#alert")
    assert page.is_visible("#other-way") and page.evaluate("document.activeElement.id") == "alert"
    assert "/login/" in (page.get_attribute("#other-way", "href") or "")  # the login method chooser


def test_leaving_the_page_during_pin_entry_frees_the_bridge(
    idp: LiveIdp, bridge: BridgeClient, page: Any
) -> None:
    _start(idp, page)
    page.wait_for_selector("#start", state="visible")
    page.click("#start")
    page.wait_for_selector("#pin-link", state="visible")
    assert _bridge_status(bridge)["busy"] is True
    page.goto(f"{idp.base_url}/card/pin")  # the citizen goes elsewhere mid-PIN: pagehide cancels
    page.wait_for_selector("#start", state="visible", timeout=5000)  # the next page can start at once
    assert _bridge_status(bridge)["busy"] is False
    _start(idp, page)
    page.wait_for_selector("#start", state="visible", timeout=5000)
    page.click("#start")
    type_pin_in_bridge_dialog(page, PIN)
    page.wait_for_selector("#allow")


def test_the_cancel_button_ends_the_operation(idp: LiveIdp, bridge: BridgeClient, page: Any) -> None:
    _start(idp, page)
    page.wait_for_selector("#start", state="visible")
    page.click("#start")
    page.wait_for_selector("#pin-link", state="visible")
    page.click("#cancel")
    page.wait_for_selector("#start", state="visible", timeout=5000)
    assert not page.is_visible("#pin-window") and not page.is_visible("#alert")
    assert _bridge_status(bridge)["busy"] is False


def test_bridge_not_running_explains_what_to_do(idp: LiveIdp, page: Any) -> None:
    idp.services.settings = idp.services.settings.replace(
        card_bridge_url="http://127.0.0.1:9"
    )  # nothing listens there
    _start(idp, page)
    page.wait_for_selector("#no-bridge", state="visible")
    assert "onecard-bridge serve" in page.inner_text("#no-bridge")
    assert page.is_visible("#retry")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "card-login-no-bridge.png"), full_page=True)
