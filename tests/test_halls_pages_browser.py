"""The halls' pages in Chromium (issue 13 item 2): the wallet's "my queue numbers" page, the hall's display
and the statistics page, in Chinese and English — no serious axe-core finding, no text outside the page's
language, no sideways scrolling on a phone, also in large text — and the ticket page following the number
without a reload."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from halls.plugin import init_app as install_halls
from halls.queue.service import take_number
from halls.register.service import add_counter, add_service, create_hall, get_hall, get_service
from tests.support.counter_device import CounterDevice
from tests.support.pagecheck import axe_findings, outside_catalogue, sideways_scroll
from tests.support.site import new_context
from tests.support.wallet import LiveWallet, WalletUser, running_wallet

PHONE = {"width": 360, "height": 740}
HALL = "市民之家"
# Shown as they are in every language: the hall's and the services' names, the counters', the numbers.
DATA = (HALL, "社保卡补换", "1号窗口", "A001", "A002", "Card replacement")

pytestmark = pytest.mark.browser


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveWallet]:
    with running_wallet(
        f"sqlite:///{tmp_path}/halls.sqlite3", host="localhost", extra_plugins=[install_halls]
    ) as server:
        server.add_card("li")
        with server.services.database.session() as session:
            hall = create_hall(session, name=HALL, hall_id="civic", actor="test", now=server.clock()).hall
            add_service(
                session,
                hall,
                code="card",
                name="社保卡补换",
                name_en="Card replacement",
                prefix="A",
                actor="test",
                now=server.clock(),
            )
            add_counter(
                session, hall, code="w1", name="1号窗口", services=["card"], actor="test", now=server.clock()
            )
        yield server


def take(live: LiveWallet, citizen: str) -> None:
    with live.services.database.session() as session:
        service = get_service(session, get_hall(session, "civic"), "card")
        take_number(session, citizen_id=live.citizens[citizen], service=service, now=live.clock())


def signed_in_context(chromium: Any, live: LiveWallet, lang: str) -> Any:
    """A browser carrying the wallet session of li, logged in with the card (the test login)."""
    user = WalletUser(live, "li")
    user.login_with_card()
    context = new_context(chromium, lang, viewport=PHONE)
    context.add_cookies(
        [
            {"name": cookie.name, "value": cookie.value or "", "url": live.base_url}
            for cookie in user.http.cookies
        ]
    )
    return context


def check_page(page: Any) -> None:
    assert outside_catalogue(page, data=DATA) == []
    assert axe_findings(page) == []
    assert sideways_scroll(page) == 0
    page.click("#display-switch")
    page.wait_for_load_state()
    assert page.evaluate("() => document.documentElement.classList.contains('large-display')")
    assert sideways_scroll(page) == 0
    assert axe_findings(page) == []


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_ticket_page_follows_the_number_without_reload(chromium: Any, live: LiveWallet, lang: str) -> None:
    take(live, "zhang")
    take(live, "li")
    context = signed_in_context(chromium, live, lang)
    try:
        page = context.new_page()
        page.clock.install()
        page.goto(live.base_url + "/wallet/halls")
        ticket = page.locator(".ticket")
        assert "A002" in ticket.inner_text()
        assert ("前面还有1个号" if lang == "zh-CN" else "Numbers before yours: 1.") in ticket.inner_text()
        check_page(page)
        page.goto(live.base_url + "/wallet/halls")
        # The counter calls A001, then (served) A002: the page says so after its next refresh, no reload.
        counter, headers = counter_w1(live)
        assert requests.post(counter + "/call-next", headers=headers, timeout=10).json()["number"] == "A001"
        requests.post(counter + "/finish", json={"status": "served"}, headers=headers, timeout=10)
        assert requests.post(counter + "/call-next", headers=headers, timeout=10).json()["number"] == "A002"
        page.evaluate("() => { window.__notReloaded = true; }")
        page.clock.run_for(16_000)
        called = "请到1号窗口" if lang == "zh-CN" else "please go to 1号窗口"
        page.wait_for_function(
            "(text) => document.querySelector('#tickets').innerText.includes(text)", arg=called
        )
        assert page.evaluate("() => window.__notReloaded === true")
        assert page.get_attribute("#tickets", "aria-live") == "polite"
    finally:
        context.close()


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_hall_display_passes_the_page_checks(chromium: Any, live: LiveWallet, lang: str) -> None:
    take(live, "li")
    counter, headers = counter_w1(live)
    requests.post(counter + "/call-next", headers=headers, timeout=10)
    context = new_context(chromium, lang, viewport=PHONE)
    try:
        page = context.new_page()
        page.goto(live.base_url + "/halls/civic/display")
        assert page.get_attribute("html", "lang") == ("zh-CN" if lang == "zh-CN" else "en")
        assert page.locator(".board-number").all_inner_texts() == ["A001"]
        check_page(page)
    finally:
        context.close()


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_statistics_page_passes_the_page_checks(chromium: Any, live: LiveWallet, lang: str) -> None:
    take(live, "li")
    counter, device = counter_w1(live)
    requests.post(counter + "/call-next", headers=device, timeout=10)
    requests.post(counter + "/finish", json={"status": "served"}, headers=device, timeout=10)
    headers = live.service_token_headers(name="Hall staff")
    context = new_context(chromium, lang, extra_http_headers=headers)  # the admin page takes the token
    try:
        page = context.new_page()
        page.goto(live.base_url + "/api/v1/admin/halls/civic/stats/page")
        assert page.locator("svg.chart").count() == 2 and page.locator("table").count() == 2
        assert outside_catalogue(page, data=(*DATA, "0.0")) == []
        assert axe_findings(page) == []
    finally:
        context.close()


def counter_w1(live: LiveWallet) -> tuple[str, dict[str, str]]:
    """Counter w1's API and the headers of its registered device (counters are keyed devices)."""
    device = CounterDevice()
    device.register(live.base_url, live.service_token_headers(name="Hall staff"), "civic", "w1")
    return live.base_url + "/api/v1/halls/civic/counters/w1", device.headers(live.base_url)
