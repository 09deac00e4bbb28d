"""The whole citizen-facing site for the browser tests of issue #14: OneCard with the wallet on
``localhost``, a card in the register and in the real bridge (virtual card, own PIN window), a venue, and
the example portal — plus browser contexts in a language, and the card login walked by the mouse.

Loaded as a pytest plugin from ``tests/conftest.py`` (the ``site`` fixture)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reader_bridge.virtual import VirtualTerminal
from tests.support.bridge import BridgeClient, running_bridge
from tests.support.cardlogin import PIN, VirtualCard, issue_test_card
from tests.support.portal import running_portal
from tests.support.wallet import LiveWallet, running_wallet

PORTAL_NAME = "一卡通示例门户"
VENUE_NAME = "省博物馆"
# Playwright's locale sets the browser's language (Accept-Language, navigator.language).
LOCALES = {"zh-CN": "zh-CN", "en": "en-US"}


@dataclass
class Site:
    live: LiveWallet
    card: VirtualCard
    bridge: BridgeClient
    portal: str
    venue: tuple[str, str]  # the venue's gate credentials (client id, secret)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with running_wallet(f"sqlite:///{tmp_path}/site.sqlite3", host="localhost") as live:
        card = issue_test_card(live)
        venue = live.add_venue(VENUE_NAME, "museum", ("valid_resident",))
        with running_bridge(VirtualTerminal(card.emulator), [live.base_url]) as bridge:
            live.services.settings = live.services.settings.replace(card_bridge_url=bridge.url)
            with running_portal(live, PORTAL_NAME) as portal:
                yield Site(live, card, bridge, portal, venue)


def new_context(chromium: Any, lang: str, **options: Any) -> Any:
    """A browser preferring ``lang`` (``zh-CN`` or ``en``). ``bypass_csp``: axe-core is injected as a script,
    which the pages' ``script-src 'self'`` refuses — in tests only."""
    options.setdefault("viewport", {"width": 1000, "height": 1000})
    return chromium.new_context(locale=LOCALES[lang], bypass_csp=True, **options)


def add_authenticator(context: Any, page: Any, *, verified: bool = True) -> None:
    """A DevTools virtual platform authenticator (a phone's passkey store)."""
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
                "isUserVerified": verified,
            }
        },
    )


def open_pin_window(page: Any) -> Any:
    """The bridge's PIN window, opened from the card login page's link."""
    with page.context.expect_page() as opened:
        page.click("#pin-link")
    dialog = opened.value
    dialog.wait_for_load_state()
    return dialog


def type_pin(dialog: Any, pin: str = PIN) -> None:
    dialog.fill("#pin", pin)
    dialog.click("button[value=submit]")
    dialog.wait_for_load_state()
    dialog.close()
