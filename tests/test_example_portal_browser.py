"""The example portal driven in headless Chromium, with card login on the real PC/SC stack (issue #5, "How it
is checked": log in by card, SSO into a second portal without re-login, step-up, logout reaching both portals
by back-channel).

Real parts: pcscd + vsmartcard's vpcd + the card emulator on a card file written by ``onecard cards issue``;
the reader bridge's local API server with pyscard (``PcscTerminal``), its allow-list holding the IdP's
origin; the PIN typed into the bridge's own PIN dialog, a page of the bridge's origin; two example portals
(``examples/portal``), each its own registered client with a back-channel logout endpoint. The e-card login
that precedes the step-up is the tests' stand-in login at ``urn:onecard:loa:substantial`` (the passkey
ceremony itself is tests/test_wallet_browser.py's). Screenshots go to $ONECARD_TEST_ARTIFACTS or
/tmp/onecard-artifacts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from idp.scopes import ACR_HIGH, ACR_SUBSTANTIAL
from tests.support.bridge import BridgeClient, running_bridge
from tests.support.browser import ARTIFACTS, type_pin_in_bridge_dialog
from tests.support.cardlogin import PIN, emulator, issue
from tests.support.live import LiveIdp
from tests.support.portal import running_portal

pytestmark = [pytest.mark.pcsc, pytest.mark.browser]


@pytest.fixture
def idp(migrated_idp: LiveIdp) -> LiveIdp:
    return migrated_idp


@pytest.fixture
def card_in_reader(idp: LiveIdp, tmp_path: Path, slot: tuple[str, int]) -> Iterator[Path]:
    from tests.bridge.pcsc_env import inserted

    path = issue(idp, tmp_path)  # `onecard cards issue --pin 123456`
    reader, port = slot
    with inserted(emulator(path), reader, port):
        yield path


@pytest.fixture
def bridge(idp: LiveIdp, slot: tuple[str, int], card_in_reader: Path) -> Iterator[BridgeClient]:
    from reader_bridge.transport import PcscTerminal

    reader, _port = slot
    with running_bridge(PcscTerminal(dev_mode=True, reader_names=[reader]), [idp.base_url]) as client:
        idp.services.settings = idp.services.settings.replace(card_bridge_url=client.url)
        yield client


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    # English pages: the assertions read English (Chinese is the default: tests/test_i18n_browser.py).
    context = chromium.new_context(viewport={"width": 1000, "height": 900}, locale="en-US")
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"portal-{name}.png"), full_page=True)


def home_of(portal: str) -> re.Pattern[str]:
    """The portal's home page (after logout OneCard appends the ``state`` it was given)."""
    return re.compile(rf"{re.escape(portal)}/(\?.*)?$")


def allow_consent(page: Any, portal: str) -> None:
    """Consent once per portal; then the portal's page, past its callback."""
    page.wait_for_url(re.compile(rf"({re.escape(portal)}/$)|(.*/consent/.*)"))
    if "/consent/" in page.url:
        page.click("#allow")
    page.wait_for_url(f"{portal}/")


def log_in_with_card(page: Any, idp: LiveIdp, portal: str, button: str) -> None:
    """Click ``button`` on the portal, choose the card at OneCard, type the PIN into the bridge's dialog."""
    page.click(button)
    page.wait_for_url(re.compile(rf"{re.escape(idp.base_url)}/login/.*"))
    if not page.url.endswith("/card"):
        page.click("#start-card")
        page.wait_for_url("**/card")
    page.wait_for_selector("#start", state="visible")
    page.click("#start")
    page.wait_for_selector("#tries", state="visible")
    assert page.locator("input[type=password]").count() == 0  # the PIN is never typed into the IdP page
    type_pin_in_bridge_dialog(page, PIN)
    allow_consent(page, portal)


def logged_in_as(page: Any) -> tuple[str, str]:
    """(name, acr) shown on a portal's page."""
    page.wait_for_selector("#claims")
    return page.inner_text("#claim-name"), page.inner_text("#claim-acr")


def test_card_login_sso_step_up_and_logout_everywhere(idp: LiveIdp, bridge: BridgeClient, page: Any) -> None:
    with running_portal(idp, "Tax office") as tax, running_portal(idp, "Pension office") as pension:
        # 1. Log in to the tax portal with the card: real PC/SC, PIN in the bridge's dialog.
        page.goto(f"{tax}/")
        assert page.is_visible("#login-card") and page.is_visible("#login-ecard")
        log_in_with_card(page, idp, tax, "#login-card")
        assert logged_in_as(page) == ("张三", ACR_HIGH)
        assert "11010519491231002X" in page.inner_text("#claims")  # the full number: the client may see it
        assert "high assurance" in page.inner_text("#claim-verified")
        assert not page.is_visible("#step-up")  # card login is the top level: nothing to step up to
        shot(page, "card-login")

        # 2. SSO: the pension portal asks for the card too and gets the citizen without a login page.
        page.goto(f"{pension}/")
        seen: list[str] = []
        page.on("framenavigated", lambda frame: seen.append(frame.url))
        page.click("#login-card")
        allow_consent(page, pension)
        assert not [url for url in seen if "/login/" in url], seen
        assert logged_in_as(page) == ("张三", ACR_HIGH)
        shot(page, "sso")

        # 3. Log out everywhere from the pension portal: the IdP tells the tax portal by back-channel.
        page.click("#logout")
        page.wait_for_url(home_of(pension))
        page.wait_for_selector("#login-card")
        page.goto(f"{tax}/")
        page.wait_for_selector("#login-card")  # the tax portal's own session is over too
        assert not page.is_visible("#claims")

        # 4. Step-up: e-card login (loa:substantial) at the tax portal, then "Confirm with my card".
        page.click("#login-ecard")
        page.wait_for_url(re.compile(rf"{re.escape(idp.base_url)}/login/.*"))
        assert page.is_visible("#start-card")  # the card is offered as well as the e-card
        link = page.get_attribute("#start-test-substantial", "href")
        assert link
        page.goto(f"{idp.base_url}{link}?citizen={idp.citizens['zhang']}&acr={ACR_SUBSTANTIAL}")
        allow_consent(page, tax)
        assert logged_in_as(page) == ("张三", ACR_SUBSTANTIAL)
        assert page.is_visible("#step-up")
        shot(page, "before-step-up")
        log_in_with_card(page, idp, tax, "#step-up")  # the IdP asks for the card: no silent downgrade
        assert logged_in_as(page) == ("张三", ACR_HIGH)
        assert not page.is_visible("#step-up")
        shot(page, "after-step-up")

        # 5. And once more "log out everywhere", from the tax portal this time, with both portals in.
        page.goto(f"{pension}/")
        page.click("#login-card")
        allow_consent(page, pension)
        assert logged_in_as(page)[1] == ACR_HIGH
        page.goto(f"{tax}/")
        page.click("#logout")
        page.wait_for_url(home_of(tax))
        page.wait_for_selector("#login-card")
        page.goto(f"{pension}/")
        page.wait_for_selector("#login-card")
        shot(page, "logged-out")
