"""The kiosk on real parts (issue 13 item 4): headless Chromium, pcscd with vsmartcard's vpcd reader, the
card emulator connected to it, and the bridge's own local API server in its kiosk profile reading the card
through pyscard. The citizen logs in with card + PIN (the bridge's PIN dialog); pulling the card — the
emulator leaving vpcd — sends the page back to the start with nothing of them on it and ends their session
on the server; left alone with the card in, the idle limit does the same.

The IdP, the hall and the kiosk device's start come from tests/test_kiosk_browser.py (same fixtures).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from reader_bridge.vpcd import VpcdClient
from tests.bridge.pcsc_env import wait_card
from tests.support.bridge import BridgeClient, running_bridge
from tests.support.cardlogin import VirtualCard, issue_test_card
from tests.support.live import LiveIdp
from tests.test_kiosk_browser import IDLE, _live_sessions, _log_in, idp, page

pytestmark = [pytest.mark.browser, pytest.mark.pcsc]

__all__ = ["idp", "page"]  # fixtures shared with tests/test_kiosk_browser.py

START_TEXT = "请插入社会保障卡"


@pytest.fixture
def bridge(idp: LiveIdp, slot: tuple[str, int]) -> Iterator[BridgeClient]:
    from reader_bridge.transport import PcscTerminal

    reader, _port = slot
    terminal = PcscTerminal(dev_mode=True, reader_names=[reader])
    with running_bridge(terminal, [idp.base_url], kiosk=True) as client:
        idp.services.settings = idp.services.settings.replace(card_bridge_url=client.url)
        yield client


@pytest.fixture
def card_in_reader(idp: LiveIdp, slot: tuple[str, int]) -> Iterator[VpcdClient]:
    """The citizen's card in the vpcd reader; the test may pull it (``stop()``) itself."""
    reader, port = slot
    card: VirtualCard = issue_test_card(idp)
    vpcd = VpcdClient(card.emulator, port=port)
    vpcd.start()
    try:
        wait_card(reader, True)
        yield vpcd
    finally:
        vpcd.stop()
        wait_card(reader, False)


def _assert_back_at_start(idp: LiveIdp, page: Any, *gone: str) -> None:
    assert START_TEXT in page.inner_text("main")
    content = page.content()
    for text in gone:
        assert text not in content
    assert page.query_selector("#ecard-status") is None and page.query_selector("#ticket-number") is None
    assert _live_sessions(idp) == []


def test_pulling_the_card_ends_the_visit(
    idp: LiveIdp, slot: tuple[str, int], bridge: BridgeClient, card_in_reader: VpcdClient, page: Any
) -> None:
    reader, _port = slot
    # Far beyond the waits below: only the pulled card, not the idle limit, can end this visit.
    idp.services.settings = idp.services.settings.replace(kiosk_idle_seconds=300)
    _log_in(idp, page)
    status = page.inner_text("#ecard-status")
    page.get_by_role("button", name="养老保险").click()
    page.wait_for_url("**/kiosk/number")
    number = page.inner_text("#ticket-number")
    assert len(_live_sessions(idp)) == 1
    time.sleep(1)  # the card watch is waiting on the bridge; a card still in keeps the visit
    assert page.url.endswith("/kiosk/number") and len(_live_sessions(idp)) == 1
    card_in_reader.stop()  # the card is pulled
    wait_card(reader, False)
    page.wait_for_url("**/kiosk", timeout=10_000)
    page.wait_for_selector("#kiosk-start")
    _assert_back_at_start(idp, page, number, status)
    page.go_back()  # nothing of the citizen comes back through history either
    assert number not in page.content()


def test_idle_limit_with_the_card_left_in(
    idp: LiveIdp, bridge: BridgeClient, card_in_reader: VpcdClient, page: Any
) -> None:
    _log_in(idp, page)
    status = page.inner_text("#ecard-status")
    page.wait_for_selector("#more-time", state="visible", timeout=IDLE * 1000)
    assert len(_live_sessions(idp)) == 1
    page.wait_for_url("**/kiosk", timeout=(IDLE + 5) * 1000)
    page.wait_for_selector("#kiosk-start")
    _assert_back_at_start(idp, page, status)
