"""The example portal (examples/portal) against a live OneCard, both in-process werkzeug servers (issue #5
item 4): log in with the e-card → the claims page → step-up to the card → SSO into a second portal without
logging in again → "log out everywhere", with the back-channel logout reaching both portals."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urljoin

import requests

from idp.scopes import ACR_HIGH, ACR_SUBSTANTIAL
from tests.support.live import Browser, LiveIdp
from tests.support.portal import running_portal


def start_login(browser: Browser, portal: str, acr: str) -> str:
    """Click a login button: the portal sends the browser to the IdP."""
    response = browser.http.get(f"{portal}/login", params={"acr": acr}, allow_redirects=False, timeout=10)
    assert response.status_code == 303
    return response.headers["Location"]


def finish(browser: Browser, callback: str) -> requests.Response:
    """The IdP sent the browser back: follow the callback to the portal's page."""
    page = browser.http.get(callback, timeout=10)
    assert page.status_code == 200, page.text[:500]
    return page


def csrf_of(html: str) -> str:
    marker = 'name="csrf" value="'
    return html.split(marker, 1)[1].split('"', 1)[0]


def wait_for(predicate: Any, seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_login_claims_step_up_sso_and_logout_everywhere(idp: LiveIdp) -> None:
    browser = Browser(idp)
    with running_portal(idp, "Tax office") as tax, running_portal(idp, "Pension office") as pension:
        home = browser.http.get(f"{tax}/", timeout=10)
        assert (
            'id="login-card"' in home.text and 'id="login-ecard"' in home.text and "<label" not in home.text
        )

        # Log in with the e-card; the claims page shows the verified claims.
        callback = browser.authorize(
            start_login(browser, tax, ACR_SUBSTANTIAL), citizen="zhang", acr=ACR_SUBSTANTIAL
        )
        assert callback.startswith(f"{tax}/callback")
        page = finish(browser, callback)
        assert "张三" in page.text and "11010519491231002X" in page.text
        assert ACR_SUBSTANTIAL in page.text and 'id="step-up"' in page.text

        # Step-up at the first portal: the card login is asked for, and the level shown is high.
        step_up = browser.http.get(f"{tax}/", timeout=10)
        assert 'id="step-up"' in step_up.text
        pages_before = len(browser.pages)
        callback = browser.authorize(start_login(browser, tax, ACR_HIGH), citizen="zhang", acr=ACR_HIGH)
        assert any("/login/" in url for url in browser.pages[pages_before:])
        page = finish(browser, callback)
        assert ACR_HIGH in page.text and 'id="step-up"' not in page.text

        # SSO: the second portal gets the citizen without a login page.
        pages_before = len(browser.pages)
        callback = browser.authorize(start_login(browser, pension, ACR_SUBSTANTIAL), citizen=None)
        assert callback.startswith(f"{pension}/callback"), callback
        assert not any("/login/" in url for url in browser.pages[pages_before:])
        assert "张三" in finish(browser, callback).text

        # Log out everywhere from the first portal: RP-initiated logout, back-channel to both.
        answer = browser.http.post(f"{tax}/logout", data={"csrf": csrf_of(page.text)}, allow_redirects=False)
        assert answer.status_code == 303 and answer.headers["Location"].startswith(f"{idp.base_url}/logout?")
        back = browser.http.get(answer.headers["Location"], allow_redirects=False, timeout=10)
        assert back.status_code == 303 and back.headers["Location"].startswith(f"{tax}/")
        assert 'id="login-card"' in browser.http.get(urljoin(tax, back.headers["Location"]), timeout=10).text
        # The pension portal heard about it over the back channel: its session is gone too.
        assert wait_for(lambda: 'id="login-card"' in browser.http.get(f"{pension}/", timeout=10).text)
        # And the IdP session is over: logging in again asks for the card.
        login_page = browser.authorize(start_login(browser, pension, ACR_HIGH), citizen=None)
        assert "/login/" in login_page


def test_bad_requests_to_the_portal(idp: LiveIdp) -> None:
    with running_portal(idp, "Tax office") as tax:
        http = requests.Session()
        assert http.get(f"{tax}/login", params={"acr": "urn:other"}, timeout=10).status_code == 400
        assert http.get(f"{tax}/callback", params={"code": "x", "state": "y"}, timeout=10).status_code == 400
        assert http.post(f"{tax}/logout", data={"csrf": "nope"}, timeout=10).status_code == 400
        refused = http.post(f"{tax}/backchannel-logout", data={"logout_token": "x.y.z"}, timeout=10)
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_request"
        # A login started here, answered for another state: refused without a 500.
        start = http.get(f"{tax}/login", params={"acr": ACR_HIGH}, allow_redirects=False, timeout=10)
        assert start.status_code == 303
        wrong = http.get(f"{tax}/callback", params={"code": "x", "state": "forged"}, timeout=10)
        assert wrong.status_code == 400 and "Sign-in problem" in wrong.text
        # No open redirect through ?next=.
        start = http.get(
            f"{tax}/login",
            params={"acr": ACR_HIGH, "next": "//evil.example/"},
            allow_redirects=False,
            timeout=10,
        )
        assert start.status_code == 303


def test_a_portal_joined_before_a_step_up_is_logged_out_too(idp: LiveIdp) -> None:
    browser = Browser(idp)
    with running_portal(idp, "Tax office") as tax, running_portal(idp, "Pension office") as pension:
        login = start_login(browser, tax, ACR_SUBSTANTIAL)
        finish(browser, browser.authorize(login, citizen="zhang", acr=ACR_SUBSTANTIAL))
        finish(browser, browser.authorize(start_login(browser, pension, ACR_SUBSTANTIAL), citizen=None))
        page = finish(browser, browser.authorize(start_login(browser, tax, ACR_HIGH), citizen="zhang"))
        answer = browser.http.post(f"{tax}/logout", data={"csrf": csrf_of(page.text)}, allow_redirects=False)
        browser.http.get(answer.headers["Location"], allow_redirects=False, timeout=10)
        assert wait_for(lambda: 'id="login-card"' in browser.http.get(f"{pension}/", timeout=10).text, 2)
