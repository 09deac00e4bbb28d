"""The kiosk in headless Chromium (issue 13 item 4): the terminal starts with its key, the citizen logs in
through the real card login page with the bridge's PIN dialog (the bridge's real local API server over the
in-process virtual card, as tests/test_card_login_browser.py), takes a number, and the idle limit — with
its "More time" warning — sends the page back to the start with the session ended server-side.

On the real parts too (issue 13 item 4): pcscd with vsmartcard's vpcd reader, the card emulator connected
to it, and the bridge in its kiosk profile reading the card through pyscard. Pulling the card — the emulator
leaving vpcd — sends the page back to the start with nothing of the citizen on it and ends their session on
the server; left alone with the card in, the idle limit does the same.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from halls.register.service import add_service, create_hall
from idp.audit.model import AuditEvent
from idp.sessions.model import SsoSession
from reader_bridge.virtual import VirtualTerminal
from reader_bridge.vpcd import VpcdClient
from tests.bridge.pcsc_env import wait_card
from tests.support.bridge import BridgeClient, running_bridge
from tests.support.browser import type_pin_in_bridge_dialog
from tests.support.cardlogin import PIN, VirtualCard, issue_test_card
from tests.support.fapi import KeyedClient
from tests.support.kiosk import register_test_kiosk
from tests.support.live import LiveIdp

pytestmark = pytest.mark.browser

HALL = "kiosk-hall"
IDLE = 8  # seconds: short, for the test


@pytest.fixture
def idp(live_stack: LiveIdp) -> LiveIdp:
    with live_stack.services.database.session() as session:
        hall = create_hall(
            session, name="江岸区政务服务中心", hall_id=HALL, actor="test", now=live_stack.clock()
        )
        add_service(
            session,
            hall.hall,
            code="pension",
            name="养老保险",
            name_en="Pensions",
            prefix="A",
            actor="test",
            now=live_stack.clock(),
        )
    svc = live_stack.services
    svc.settings = svc.settings.replace(kiosk_idle_seconds=IDLE)
    return live_stack


@pytest.fixture
def card(idp: LiveIdp) -> VirtualCard:
    return issue_test_card(idp)


@pytest.fixture
def bridge(idp: LiveIdp, card: VirtualCard) -> Iterator[BridgeClient]:
    with running_bridge(VirtualTerminal(card.emulator), [idp.base_url]) as client:
        idp.services.settings = idp.services.settings.replace(card_bridge_url=client.url)
        yield client


@pytest.fixture
def page(chromium: Any, idp: LiveIdp) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1080, "height": 1600}, locale="zh-CN")
    # The kiosk device starts its session: its key signs the assertion, its browser gets the cookie.
    device = KeyedClient(idp, kind="kiosk", name="Kiosk 1")
    register_test_kiosk(idp, device, HALL)  # the hall's kiosk, with the device's key
    started = context.request.post(
        f"{idp.base_url}/kiosk/start", form=device.assertion(wall_clock=True), max_redirects=0
    )
    assert started.status == 200, started.text()
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def _log_in(idp: LiveIdp, page: Any, pin: str = PIN) -> None:
    page.goto(f"{idp.base_url}/kiosk")
    assert "请插入社会保障卡" in page.inner_text("main")
    page.click("#kiosk-start")
    page.wait_for_url("**/card")
    page.wait_for_selector("#start", state="visible")
    page.click("#start")
    type_pin_in_bridge_dialog(page, pin)
    page.wait_for_url("**/kiosk/menu")


def _live_sessions(idp: LiveIdp) -> list[SsoSession]:
    with idp.services.database.session() as session:
        return [s for s in session.scalars(select(SsoSession)) if s.ended_at is None]


def test_kiosk_number_then_idle_returns_to_start(idp: LiveIdp, bridge: BridgeClient, page: Any) -> None:
    _log_in(idp, page)
    assert "取号排队" in page.inner_text("main")
    page.get_by_role("button", name="养老保险").click()
    page.wait_for_url("**/kiosk/number")
    number = page.inner_text("#ticket-number")
    assert number.startswith("A")
    assert len(_live_sessions(idp)) == 1
    # The warning comes, "More time" keeps the visit; then, left alone, the page goes back to the start.
    page.wait_for_selector("#more-time", state="visible", timeout=IDLE * 1000)
    page.click("#more-time")
    page.wait_for_selector("#idle-warning", state="hidden")
    page.wait_for_url("**/kiosk", timeout=(IDLE + 5) * 1000)
    assert number not in page.content()
    assert "请插入社会保障卡" in page.inner_text("main")
    assert _live_sessions(idp) == []
    page.go_back()  # history was replaced: nothing of the citizen comes back
    assert number not in page.content()


def test_kiosk_finish_ends_the_session(idp: LiveIdp, bridge: BridgeClient, page: Any) -> None:
    _log_in(idp, page)
    page.click("#finish")
    page.wait_for_url("**/kiosk")
    assert _live_sessions(idp) == []
    page.goto(f"{idp.base_url}/kiosk/menu")
    assert page.url.endswith("/kiosk")


NEW_PIN = "246813"


def _pin_change_outcomes(idp: LiveIdp) -> list[str]:
    with idp.services.database.session() as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "kiosk.pin_change"))
        return [event.details["outcome"] for event in events]


def _change_pin_in_bridge_dialog(page: Any, old: str, new: str) -> None:
    """The bridge's own change-PIN window, opened from the kiosk page: the page never sees the PINs."""
    page.wait_for_selector("#pin-link", state="visible")
    with page.context.expect_page() as opened:
        page.click("#pin-link")
    dialog = opened.value
    dialog.wait_for_load_state()
    dialog.fill("#old_pin", old)
    dialog.fill("#new_pin", new)
    dialog.fill("#new_pin_again", new)
    dialog.click("button[value=submit]")
    dialog.wait_for_load_state()
    dialog.close()


def test_kiosk_change_pin_then_the_new_pin_logs_in(
    idp: LiveIdp, card: VirtualCard, bridge: BridgeClient, page: Any
) -> None:
    _log_in(idp, page)
    page.click("#change-pin")
    page.wait_for_url("**/kiosk/pin")
    page.click("#start")  # shown once the page found the terminal's bridge
    _change_pin_in_bridge_dialog(page, PIN, NEW_PIN)
    page.wait_for_selector("#status:has-text('密码已修改')")
    assert PIN not in page.content() and NEW_PIN not in page.content()
    assert card.card_file.pin == NEW_PIN  # the old PIN no longer verifies on the card
    # The page reported the outcome: the audit trail has it, as the terminal's report.
    deadline = time.monotonic() + 10
    while not _pin_change_outcomes(idp) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _pin_change_outcomes(idp) == ["changed"]
    page.click("#finish")
    page.wait_for_url("**/kiosk")
    _log_in(idp, page, NEW_PIN)
    assert "取号排队" in page.inner_text("main")


def test_kiosk_change_pin_wrong_old_pin_says_tries_left(
    idp: LiveIdp, card: VirtualCard, bridge: BridgeClient, page: Any
) -> None:
    _log_in(idp, page)
    page.goto(f"{idp.base_url}/kiosk/pin")
    page.click("#start")
    _change_pin_in_bridge_dialog(page, "000000", NEW_PIN)
    page.wait_for_selector("#alert:has-text('密码错误')")
    tries = card.card_file.tries_left
    assert f"您还可以输入{tries}次" in page.inner_text("#alert")
    assert card.card_file.pin == PIN


START_TEXT = "请插入社会保障卡"


@pytest.fixture
def pcsc_bridge(idp: LiveIdp, slot: tuple[str, int]) -> Iterator[BridgeClient]:
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


@pytest.mark.pcsc
def test_pulling_the_card_ends_the_visit(
    idp: LiveIdp, slot: tuple[str, int], pcsc_bridge: BridgeClient, card_in_reader: VpcdClient, page: Any
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


@pytest.mark.pcsc
def test_idle_limit_with_the_card_left_in(
    idp: LiveIdp, pcsc_bridge: BridgeClient, card_in_reader: VpcdClient, page: Any
) -> None:
    _log_in(idp, page)
    status = page.inner_text("#ecard-status")
    page.wait_for_selector("#more-time", state="visible", timeout=IDLE * 1000)
    assert len(_live_sessions(idp)) == 1
    page.wait_for_url("**/kiosk", timeout=(IDLE + 5) * 1000)
    page.wait_for_selector("#kiosk-start")
    _assert_back_at_start(idp, page, status)
