"""Every citizen page in headless Chromium, in Chinese and in English (issue #14, items 1, 2, 6 and 7).

One walk through the whole demo journey per language — the example portal, the login chooser, the card
login with the real bridge and its own PIN window, consent, the portal's claims, the wallet (activation,
passkey, code, scan history, sessions), the card PIN help, scan-to-login on a second "computer" with the
phone's pages, the e-card login, logout, an expired link — and on each page state:

- ``<html lang>`` is the language asked for (``zh-CN`` by default: the Chinese walk sets no preference but
  the browser's; the English one is ``Accept-Language: en-US``);
- no text outside the page's catalogue: no English words on a Chinese page, no Chinese on an English one,
  except data shown as it is (names, the portal's name);
- axe-core (the npm package, injected with ``bypass_csp``) finds nothing serious or critical.

Then the visible language switch (remembered in a cookie, on every page), ``ui_locales`` from the portal,
dates in China time and JSON errors in the page's language.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
import requests

from idp.i18n import LANGUAGE_TAGS
from idp.scopes import ACR_HIGH
from sdk.gate import OnlineGateClient
from tests.support.cardlogin import PIN
from tests.support.live import REDIRECT
from tests.support.pagecheck import axe_findings, outside_catalogue
from tests.support.site import (
    PORTAL_NAME,
    VENUE_NAME,
    Site,
    add_authenticator,
    new_context,
    open_pin_window,
)

pytestmark = pytest.mark.browser

# Shown as they are, in every language: names from the register, the portal's and the venue's names, the
# test-only login methods (tests/support/testlogin.py), the trust framework's wire name.
DATA = (
    "张三",
    "李四",
    PORTAL_NAME,
    VENUE_NAME,
    "Test card login",
    "Test e-card login",
    "Tests only.",
    "Test portal",
)


@dataclass
class Checked:
    """What the walk saw: per page state, the texts outside the catalogue and axe's serious findings."""

    lang: str
    foreign: dict[str, list[str]] = field(default_factory=dict)
    findings: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    langs: dict[str, str | None] = field(default_factory=dict)

    def page(self, name: str, page: Any, *, data: tuple[str, ...] = ()) -> None:
        page.wait_for_load_state()
        self.langs[name] = page.get_attribute("html", "lang")
        foreign = outside_catalogue(page, data=DATA + data)
        if foreign:
            self.foreign[name] = foreign
        findings = axe_findings(page)
        if findings:
            self.findings[name] = findings

    def assert_clean(self) -> None:
        assert {name: lang for name, lang in self.langs.items() if lang != self.lang} == {}
        assert self.foreign == {}
        assert self.findings == {}


def _card_login(site: Site, page: Any, checked: Checked | None) -> None:
    """From the login chooser through the card login and the bridge's PIN window to what comes next."""
    page.click("#start-card")
    page.wait_for_url("**/card")
    page.wait_for_selector("#start", state="visible")
    if checked:
        checked.page("card login: ready", page)
    page.click("#start")
    page.wait_for_selector("#pin-link", state="visible")
    page.wait_for_selector("#pin-time", state="visible")
    if checked:
        checked.page("card login: PIN", page)
    dialog = open_pin_window(page)
    if checked:
        checked.page("bridge PIN window", dialog)
    dialog.fill("#pin", PIN)
    dialog.click("button[value=submit]")
    dialog.wait_for_load_state()
    if checked:
        checked.page("bridge PIN window: done", dialog)
    dialog.close()


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_every_citizen_page_in_its_language(chromium: Any, site: Site, lang: str) -> None:
    live, checked = site.live, Checked(lang)
    context = new_context(chromium, lang)
    page = context.new_page()
    add_authenticator(context, page)
    try:
        # The portal, the login chooser, the card login with the PIN window, consent, the claims.
        page.goto(site.portal)
        checked.page("portal", page)
        page.click("#login-card")
        page.wait_for_url(re.compile(r".*/login/[^/]+$"))
        checked.page("login chooser", page)
        _card_login(site, page, checked)
        page.wait_for_selector("#allow")
        checked.page("consent", page)
        page.click("#allow")
        page.wait_for_url(site.portal + "/")
        page.wait_for_selector("#claims")
        checked.page("portal: claims", page, data=("11010519491231002X",))

        # The wallet: activation, a passkey, the code, a scan, the history and the sessions.
        page.goto(f"{live.base_url}/wallet/")
        page.wait_for_selector("#activate-1")
        checked.page("wallet: activate", page, data=_card_numbers(page))
        page.click("#activate-1")
        page.wait_for_selector("#ecard-status")
        checked.page("wallet: home", page)
        page.goto(f"{live.base_url}/wallet/devices")
        checked.page("wallet: no phone yet", page)
        page.fill("#device-name", "测试手机" if lang == "zh-CN" else "Test phone")
        page.click("#passkey-register")
        page.wait_for_selector("table", timeout=10_000)
        checked.page("wallet: phones", page, data=("测试手机", "Test phone"))
        page.goto(f"{live.base_url}/wallet/code")
        checked.page("wallet: code", page)
        code = page.evaluate("() => fetch('/wallet/api/code').then((r) => r.json()).then((d) => d.text)")
        if isinstance(code, str):
            OnlineGateClient(live.base_url, *site.venue).verify(code)
        page.goto(f"{live.base_url}/wallet/history")
        checked.page("wallet: scans", page)
        page.goto(f"{live.base_url}/wallet/sessions")
        checked.page("wallet: sessions", page)
        page.goto(f"{live.base_url}/card/pin")
        page.wait_for_selector("#start", state="visible")
        checked.page("card PIN help", page)

        # Scan-to-login: a computer without a session, this browser as the phone with the passkey.
        computer_context = new_context(chromium, lang)
        computer = computer_context.new_page()
        try:
            computer.goto(site.portal)
            computer.click("#login-ecard")
            computer.wait_for_url(re.compile(r".*/login/[^/]+$"))
            checked.page("login chooser: e-card", computer)
            computer.click("#start-ecard")
            computer.wait_for_selector("#passkey-login")
            checked.page("e-card login", computer)
            computer.go_back()
            computer.click("#start-qr")
            computer.wait_for_selector("#qr-login[data-state=waiting]")
            checked.page("scan-to-login: computer", computer)
            channel = computer.get_attribute("#qr-login", "data-channel-url")
            match = computer.inner_text("#match-code").strip()
            page.goto(channel)
            computer.wait_for_selector("#qr-login[data-state=scanned]")
            checked.page("scan-to-login: phone", page)
            checked.page("scan-to-login: computer, scanned", computer)
            page.click(f"#choice-{match}")
            page.wait_for_selector("#qr-approve-button")
            checked.page("scan-to-login: phone, matched", page)
            page.click("#qr-approve-button")
            page.wait_for_selector("#qr-result[data-outcome=approved]", timeout=10_000)
            checked.page("scan-to-login: phone, approved", page)
            computer.wait_for_url(re.compile(re.escape(site.portal) + r"/(consent.*)?$"), timeout=15_000)
        finally:
            computer_context.close()

        # Signing out of the wallet, logging out of OneCard, an expired link.
        page.goto(f"{live.base_url}/wallet/")
        page.click("form[action$='/signout'] button")
        page.wait_for_url(re.compile(r".*/wallet/signin$"))
        checked.page("wallet: sign in", page)
        other = context.new_page()
        other.goto(f"{live.base_url}/logout")
        checked.page("logged out", other)
        other.goto(f"{live.base_url}/login/{'x' * 32}")
        checked.page("expired link", other)
        other.close()

        # The operators' page: the scans per venue and category (an admin token, as their tools send it).
        operator = context.new_page()
        operator.set_extra_http_headers(_admin_authorization(site))
        operator.goto(f"{live.base_url}/api/v1/admin/stats/scans/page")
        checked.page("operators: scan statistics", operator)
        operator.close()
    finally:
        context.close()
    assert len(checked.langs) >= 25, sorted(checked.langs)
    checked.assert_clean()


def _admin_authorization(site: Site) -> dict[str, str]:
    client_id, secret = site.live.register_client(name="运维", kind="operator", scope="admin")
    answer = requests.post(
        site.live.base_url + "/token",
        data={"grant_type": "client_credentials", "scope": "admin"},
        auth=(client_id, str(secret)),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": "Bearer " + answer.json()["access_token"]}


def _card_numbers(page: Any) -> tuple[str, ...]:
    return tuple(re.findall(r"T[0-9A-F]{8}|\d{6,}", page.inner_text("main")))


def test_language_switch_is_remembered_and_ui_locales_is_honoured(chromium: Any, site: Site) -> None:
    live = site.live
    client_id, _ = live.register_client(name=PORTAL_NAME, redirect_uris=(REDIRECT,), scope="openid profile")
    context = new_context(chromium, "zh-CN")
    page = context.new_page()
    try:
        authorize = f"{live.base_url}/authorize?" + urlencode(
            {
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": REDIRECT,
                "scope": "openid profile",
                "state": "s",
                "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                "code_challenge_method": "S256",
            }
        )
        # No choice made: Chinese (the browser prefers it, and it is the default anyway).
        page.goto(authorize)
        assert page.get_attribute("html", "lang") == "zh-CN"
        assert page.inner_text("h1") == f"登录{PORTAL_NAME}"
        # The portal asks for English (OIDC ui_locales): the login pages follow, all through the login.
        page.goto(authorize + "&ui_locales=en")
        assert (
            page.get_attribute("html", "lang") == "en" and page.inner_text("h1") == f"Log in to {PORTAL_NAME}"
        )
        page.click("#start-card")
        page.wait_for_url("**/card")
        assert page.get_attribute("html", "lang") == "en"
        # The citizen's own choice wins, and is remembered: the switch is on every page.
        switch = page.locator("#language-switch")
        assert switch.get_attribute("lang") == "zh-CN" and switch.inner_text() == "中文"
        switch.click()
        page.wait_for_url("**/card")
        assert page.get_attribute("html", "lang") == "zh-CN"
        assert page.inner_text("h1") == "用社会保障卡登录"
        cookie = {c["name"]: c for c in context.cookies()}["oclang"]
        assert cookie["value"] == "zh-CN" and cookie["httpOnly"] and cookie["expires"] > 0
        page.goto(authorize + "&ui_locales=en")  # the citizen's choice is stronger than the portal's hint
        assert page.get_attribute("html", "lang") == "zh-CN"
        page.click("#language-switch")
        assert page.get_attribute("html", "lang") == "en"
        page.goto(f"{live.base_url}/card/pin")
        assert (
            page.get_attribute("html", "lang") == "en"
            and page.locator("#language-switch").inner_text() == "中文"
        )
    finally:
        context.close()


def test_the_portal_passes_its_language_to_onecard(chromium: Any, site: Site) -> None:
    context = new_context(chromium, "en")
    page = context.new_page()
    try:
        page.goto(site.portal)
        assert page.get_attribute("html", "lang") == "en"
        page.click("#language-switch")  # the portal's own switch, remembered by the portal
        assert (
            page.get_attribute("html", "lang") == "zh-CN" and page.inner_text("#login-card") == "用社保卡登录"
        )
        page.click("#login-card")  # …and OneCard follows the portal (ui_locales), whatever the browser says
        page.wait_for_url(re.compile(r".*/login/[^/]+$"))
        assert page.get_attribute("html", "lang") == "zh-CN"
    finally:
        context.close()


def test_times_in_china_time_and_errors_in_the_pages_language(site: Site) -> None:
    """The wallet's sessions in China time, the reader's form; JSON errors a page's script shows are in
    the page's language, while their codes (and a program's English) stay as they are."""
    from tests.support.wallet import WalletUser

    live = site.live
    live.add_card("li")
    user = WalletUser(live, "li")
    user.login_with_card()
    chinese = user.http.get(
        live.base_url + "/wallet/sessions",
        headers={"Accept": "text/html", "Accept-Language": "zh-CN"},
        timeout=10,
    )
    assert re.search(r"\d{4}年\d{1,2}月\d{1,2}日 \d{2}:\d{2}", chinese.text), chinese.text
    assert "UTC" not in chinese.text and "python-requests" not in chinese.text
    english = user.http.get(live.base_url + "/wallet/sessions", headers={"Accept-Language": "en"}, timeout=10)
    assert re.search(r"\d{1,2} [A-Z][a-z]{2} \d{4}, \d{2}:\d{2}", english.text), english.text

    url = f"{live.base_url}/wallet/api/passkeys/registration-options"
    refused = requests.post(url, json={}, headers={"Accept-Language": "zh-CN"}, timeout=10)
    program = requests.post(url, json={}, timeout=10)
    assert refused.json()["error"] == program.json()["error"]  # the wire code never changes
    assert re.search(r"[\u4e00-\u9fff]", refused.json()["error_description"])
    assert program.json()["error_description"].isascii()  # a program that states no language: English


def test_discovery_advertises_the_languages_it_serves(site: Site) -> None:
    metadata = requests.get(site.live.base_url + "/.well-known/openid-configuration", timeout=10).json()
    # What discovery promises is what the locale selection serves (idp.i18n), Chinese first.
    assert metadata["ui_locales_supported"] == list(LANGUAGE_TAGS.values()) == ["zh-CN", "en"]
    assert ACR_HIGH in metadata["acr_values_supported"]


def test_the_checks_find_what_they_look_for(chromium: Any) -> None:
    """A guarantee with its attack: an English sentence on a Chinese page, Chinese on an English one and a
    picture without a text are found."""
    context = chromium.new_context(bypass_csp=True)
    page = context.new_page()
    try:
        page.set_content(
            '<html lang="zh-CN"><head><title>登录</title></head><body><main><h1>登录</h1>'
            "<p>Please insert your card.</p><p>张三</p>"
            '<a href="/x" lang="en">English</a><img src="data:," width="10" height="10"></main></body></html>'
        )
        assert outside_catalogue(page, data=DATA) == ["Please insert your card."]
        assert "image-alt" in {finding["id"] for finding in axe_findings(page)}
        page.set_content('<html lang="en"><body><main><h1>Log in</h1><p>请插卡</p></main></body></html>')
        assert outside_catalogue(page) == ["请插卡"]
    finally:
        context.close()
