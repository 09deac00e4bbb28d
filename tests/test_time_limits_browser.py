"""Time limits a slow reader can beat (issue #14 item 4, WCAG 2.2.1), in headless Chromium.

The page's clock is Playwright's (``page.clock``): the tests move it on instead of waiting. Each limit warns
before it ends, in words, in a live region; offers more time (or a new code) without starting over; and
at the end says so and leaves the focus on what to do next — nothing expires silently:

- the login transaction (10 minutes): "More time" extends it on the server; at the end "Start again" makes
  a new login for the same portal request, and the page's other links lead there too, not to a dead end;
- the scan-to-login code (2 minutes): the countdown, "Show a new code" offered early, the focus at the end;
- the bridge's PIN window: the login page counts its time down, and "More time" in the window restarts it.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.support.live import REDIRECT
from tests.support.site import Site, new_context, open_pin_window

pytestmark = pytest.mark.browser

CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


@pytest.fixture
def authorize_url(site: Site) -> str:
    client_id, _ = site.live.register_client(
        name="税务门户", redirect_uris=(REDIRECT,), scope="openid profile"
    )
    return (
        f"{site.live.base_url}/authorize?response_type=code&client_id={client_id}&redirect_uri={REDIRECT}"
        f"&scope=openid%20profile&state=s1&code_challenge={CHALLENGE}&code_challenge_method=S256"
    )


def _focused(page: Any) -> str:
    return str(page.evaluate("() => document.activeElement ? document.activeElement.id : ''"))


def test_the_login_warns_gives_more_time_and_starts_again(
    chromium: Any, site: Site, authorize_url: str
) -> None:
    context = new_context(chromium, "zh-CN")
    page = context.new_page()
    try:
        page.clock.install()
        page.goto(authorize_url)
        page.click("#start-card")
        page.wait_for_url("**/card")
        page.wait_for_selector("#start", state="visible")
        assert page.is_hidden("#login-time")  # nothing to say while there is time
        tx = page.url.split("/login/")[1].split("/")[0]
        page.clock.fast_forward("08:05")  # 10-minute transaction: under 2 minutes left, the warning
        page.wait_for_selector("#login-time", state="visible")
        assert page.get_attribute("#login-time-text", "role") == "alert"
        assert page.inner_text("#login-time-text") == "这次登录还剩2分钟结束。需要更多时间，请按“延长时间”。"
        page.click("#login-more-time")  # the server gives the transaction its full time again
        page.wait_for_function(
            "() => document.activeElement && document.activeElement.id === 'login-time-text'"
        )
        assert page.inner_text("#login-time-text") == "好的，时间已延长。"
        transaction = site.live.services.store.get("login_tx", tx, now=site.live.clock())
        assert transaction is not None
        page.clock.fast_forward("10:30")  # past the new end
        page.wait_for_selector("#login-restart", state="visible")
        assert page.inner_text("#login-time-text").startswith("用时较长，这次登录已结束。请按“重新开始”")
        assert _focused(page) == "login-time-text"
        assert page.is_hidden("#start") and page.is_hidden("#retry")  # nothing that can no longer work
        restart = page.get_attribute("#login-restart", "href")
        assert restart and restart.startswith("/authorize?") and "state=s1" in restart
        assert page.get_attribute("#choose-other", "href") == restart  # no dead end either
        page.click("#login-restart")
        page.wait_for_url(re.compile(r".*/login/[^/]+$"))
        assert tx not in page.url and page.get_attribute("html", "lang") == "zh-CN"
        assert page.is_visible("#start-card")  # a new login for the same request, without the portal
    finally:
        context.close()


def test_the_scan_code_counts_down_and_offers_a_new_one(
    chromium: Any, site: Site, authorize_url: str
) -> None:
    context = new_context(chromium, "en")
    page = context.new_page()
    try:
        page.clock.install()
        page.goto(authorize_url)
        page.click("#start-qr")
        page.wait_for_selector("#qr-login[data-state=waiting]")
        assert page.get_attribute("#qr-status", "aria-live") == "polite"
        assert page.inner_text("#qr-status") == "Waiting for your phone… This code works for 2 minutes."
        assert page.is_hidden("#qr-restart")
        page.clock.fast_forward(45_000)  # 75 s left: "1 minute"
        page.wait_for_function("() => document.querySelector('#qr-status').textContent.includes('1 minute')")
        page.clock.fast_forward(51_000)  # 24 s left: time is short, a new code is offered at once
        page.wait_for_selector("#qr-restart", state="visible")
        assert page.inner_text("#qr-status") == (
            "This code works for 30 seconds more. Scan it now, or press Show a new code."
        )
        page.clock.fast_forward(30_000)
        page.wait_for_selector("#qr-login[data-state=expired]")
        assert page.inner_text("#qr-status") == "This code has expired. Press Show a new code to try again."
        assert _focused(page) == "qr-restart"
        page.keyboard.press("Enter")  # a new code, in the same login
        page.wait_for_selector("#qr-login[data-state=waiting]")
        assert page.is_hidden("#qr-restart")
    finally:
        context.close()


def test_the_pin_window_time_is_counted_down_and_can_be_extended(
    chromium: Any, site: Site, authorize_url: str
) -> None:
    context = new_context(chromium, "zh-CN")
    page = context.new_page()
    try:
        page.clock.install()
        page.goto(authorize_url)
        page.click("#start-card")
        page.wait_for_selector("#start", state="visible")
        page.click("#start")
        page.wait_for_selector("#pin-time", state="visible")  # the test bridge waits 30 s for the PIN
        assert (
            page.inner_text("#pin-time")
            == "输入密码只剩30秒。需要更多时间，请在一卡通密码窗口中按“延长时间”。"
        )
        page.clock.fast_forward(21_000)
        page.wait_for_function("() => document.querySelector('#pin-time').textContent.includes('只剩9秒')")
        dialog = open_pin_window(page)
        assert "这个窗口会等您输入密码到" in dialog.inner_text("#time")
        with dialog.expect_navigation():
            dialog.click("button[value=more_time]")
        assert dialog.is_visible("#pin")  # the same question, with its full time again
        page.wait_for_function("() => document.querySelector('#pin-time').textContent.includes('只剩30秒')")
        assert _focused(page) != "pin-link" or page.is_visible("#pin-link")
        dialog.close()
        page.clock.fast_forward(31_000)
        page.wait_for_function(
            "() => document.querySelector('#pin-time').textContent.startsWith('输入密码的时间已到')"
        )
    finally:
        context.close()
