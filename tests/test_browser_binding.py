"""The browser binding (the ``ocbr`` cookie that login transactions and QR-login channels are bound to) is
issued by the server only: a value a client chose is replaced, never used (issue #9, item 9)."""

from __future__ import annotations

import requests
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from idp.web import BROWSER_COOKIE
from tests.support.live import REDIRECT, LiveIdp, portal


def start_login(idp: LiveIdp, http: requests.Session, client_id: str) -> requests.Response:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid",
        "state": "s",
        "code_challenge": create_s256_code_challenge(generate_token(48)),
        "code_challenge_method": "S256",
    }
    return http.get(f"{idp.base_url}/authorize", params=params, allow_redirects=False, timeout=5)


def test_a_chosen_browser_id_is_replaced_and_binds_nothing(live_idp: LiveIdp) -> None:
    idp = live_idp
    client = portal(idp)
    for chosen in ["A" * 32, "attacker-chosen-value-1234", "abc.def", "x" * 20 + ".", ""]:
        http = requests.Session()
        if chosen:
            http.cookies.set(BROWSER_COOKIE, chosen)
        started = start_login(idp, http, client.client_id)
        issued = started.cookies.get(BROWSER_COOKIE)
        assert issued and issued != chosen and "." in issued, (chosen, issued)
        login_page = started.headers["Location"]
        # The transaction belongs to the issued id: the chosen one alone does not reach it.
        planted = requests.Session()
        planted.cookies.set(BROWSER_COOKIE, chosen or "B" * 32)
        assert planted.get(f"{idp.base_url}{login_page}", timeout=5).status_code == 400
        # The browser that holds the issued id goes on, and keeps its id.
        http.cookies.set(BROWSER_COOKIE, issued)
        page = http.get(f"{idp.base_url}{login_page}", timeout=5)
        assert page.status_code == 200 and BROWSER_COOKIE not in page.cookies


def test_a_tampered_mac_is_replaced(live_idp: LiveIdp) -> None:
    idp = live_idp
    client = portal(idp)
    first = start_login(idp, requests.Session(), client.client_id).cookies[BROWSER_COOKIE]
    random_part, mac = first.split(".")
    for forged in [f"{random_part}x.{mac}", f"{random_part}.{mac[:-1]}A", f"{random_part[::-1]}.{mac}"]:
        http = requests.Session()
        http.cookies.set(BROWSER_COOKIE, forged)
        assert start_login(idp, http, client.client_id).cookies[BROWSER_COOKIE] not in (forged, first)


def test_a_non_ascii_cookie_or_csrf_token_is_replaced_not_a_500(live_idp: LiveIdp) -> None:
    """compare_digest refuses a non-ASCII str: a planted cookie must not lock a browser out of logging in."""
    idp = live_idp
    client = portal(idp)
    http = requests.Session()
    http.headers["Cookie"] = f"{BROWSER_COOKIE}=abc.d\xe9f"
    started = start_login(idp, http, client.client_id)
    assert started.status_code == 303 and started.cookies[BROWSER_COOKIE] != "abc.d\xe9f"
    logout = requests.post(
        f"{idp.base_url}/logout", data={"csrf": "\xe9" * 64}, headers={"Accept": "text/html"}, timeout=5
    )
    assert logout.status_code < 500
