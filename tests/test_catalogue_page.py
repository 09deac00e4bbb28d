"""The public catalogue page (issue 13 item 3): no login, Chinese first and English on request, a search
form that works without JavaScript (GET), labels on every field, and — in Chromium — no serious axe-core
finding, no text outside the page's language, no sideways scrolling on a phone, also in large text; the
wallet links to it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.pagecheck import axe_findings, outside_catalogue, sideways_scroll
from tests.support.site import Site, new_context
from tests.support.wallet import LiveWallet, WalletUser, running_wallet
from wallet.catalogue.service import EntryFields, create_entry

ENTRIES = (
    ("wuhan-library", EntryFields("武汉图书馆", "library", "420103", "武汉市江汉区建设大道861号", 30.6013,
                                  114.2655, ("borrowing", "gate_entry"), ("name", "card_number"))),
    ("union-hospital", EntryFields("协和医院", "hospital", "420103", "武汉市江汉区解放大道1277号", 30.5878,
                                   114.2717, ("hospital_registration",), ("name", "id_number"))),
    ("hongshan-hall", EntryFields("洪山区政务服务中心", "government", "420111", "武汉市洪山区珞喻路", 30.5089,
                                  114.3967, ("queue_number", "business"), ("name", "id_number"))),
    ("hotline", EntryFields("12333 咨询热线", "government")),
)  # fmt: skip
# Shown as they are in every language: the entries' names and addresses, the gazetteer's Chinese names.
DATA = (*[text for _id, fields in ENTRIES for text in (fields.name, fields.address) if text], "JSON")


def seed_catalogue(live: LiveWallet) -> None:
    with live.services.database.session() as session:
        for entry_id, fields in ENTRIES:
            create_entry(session, fields, actor="test", now=live.clock(), entry_id=entry_id)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveWallet]:
    with running_wallet(f"sqlite:///{tmp_path}/page.sqlite3") as server:
        seed_catalogue(server)
        yield server


def get_page(live: LiveWallet, lang: str = "zh-CN", **params: str) -> requests.Response:
    return requests.get(
        live.base_url + "/catalogue", params=params, headers={"Accept-Language": lang}, timeout=10
    )


def shown_entries(html: str) -> list[str]:
    return re.findall(r'<li class="catalogue-entry" id="entry-([^"]+)"', html)


class FormFields(HTMLParser):
    """The form's controls and the ids its labels name."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, str | None]] = []
        self.labelled: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "label" and values.get("for"):
            self.labelled.add(str(values["for"]))
        if tag in ("input", "select") and values.get("type") != "hidden":
            self.controls.append(values)


def test_the_page_is_chinese_first_and_english_on_request(live: LiveWallet) -> None:
    chinese = get_page(live)
    assert chinese.status_code == 200
    assert '<html lang="zh-CN"' in chinese.text and "哪里可以用卡" in chinese.text
    assert "借阅图书" in chinese.text and "图书馆" in chinese.text and "洪山区" in chinese.text
    assert "找到4个场所" in chinese.text
    english = get_page(live, "en")
    assert '<html lang="en"' in english.text and "Where the card can be used" in english.text
    assert "borrow books" in english.text and "Hongshan District" in english.text
    assert "4 places found" in english.text
    assert "Set-Cookie" not in chinese.headers  # no login, no session: a public page


def test_the_search_form_works_without_javascript(live: LiveWallet) -> None:
    assert shown_entries(get_page(live, category="hospital").text) == ["union-hospital"]
    assert shown_entries(get_page(live, q="政务").text) == ["hongshan-hall"]
    assert set(shown_entries(get_page(live, region="420103").text)) == {"wuhan-library", "union-hospital"}
    near = get_page(live, near="420111")
    assert shown_entries(near.text) == ["hongshan-hall", "union-hospital", "wuhan-library", "hotline"]
    assert "公里" in near.text and 'option value="420111" selected' in near.text
    here = get_page(live, lat="30.6010", lon="114.2650")
    assert shown_entries(here.text)[0] == "wuhan-library" and 'name="lat" value="30.601"' in here.text
    empty = get_page(live, q="不存在的地方")
    assert shown_entries(empty.text) == [] and 'id="no-results"' in empty.text
    paged = get_page(live, per_page="3")
    assert len(shown_entries(paged.text)) == 3 and 'id="next-page"' in paged.text
    second = get_page(live, per_page="3", page="2")
    assert len(shown_entries(second.text)) == 1 and 'id="previous-page"' in second.text


def test_every_field_has_a_label(live: LiveWallet) -> None:
    parser = FormFields()
    parser.feed(get_page(live).text)
    names = {str(control.get("name")) for control in parser.controls}
    assert names == {"q", "category", "capability", "region", "near"}
    assert all(control.get("id") in parser.labelled for control in parser.controls)


@pytest.mark.parametrize("params", [{"category": "casino"}, {"lat": "x", "lon": "1"}, {"page": "²"}])
def test_bad_search_terms_get_a_page_in_words(live: LiveWallet, params: dict[str, str]) -> None:
    answer = get_page(live, **params)
    assert answer.status_code == 400 and answer.headers["Content-Type"].startswith("text/html")
    assert 'role="alert"' in answer.text and "部分查询条件无法使用" in answer.text
    assert len(shown_entries(answer.text)) == 4


def test_the_wallet_links_to_the_catalogue(live: LiveWallet) -> None:
    live.add_card("zhang")
    user = WalletUser(live, "zhang")
    user.login_with_card()
    home = user.http.get(user.url("/wallet/"), timeout=10)
    assert home.status_code == 200
    assert re.search(r'id="catalogue-link" href="/catalogue"', home.text)
    assert '<a href="/catalogue">Where to use it</a>' in home.text  # in the wallet's menu on every page


# In Chromium -----------------------------------------------------------------------------------------------

PHONE = {"width": 360, "height": 740}


@pytest.mark.browser
@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_the_page_passes_the_page_checks(chromium: Any, site: Site, lang: str) -> None:
    seed_catalogue(site.live)
    context = new_context(chromium, lang, viewport=PHONE)
    try:
        page = context.new_page()
        page.goto(site.live.base_url + "/catalogue?near=420111")
        assert page.get_attribute("html", "lang") == ("zh-CN" if lang == "zh-CN" else "en")
        data = (*DATA, "省博物馆")  # the site's gate venue is listed too
        assert outside_catalogue(page, data=data) == []
        assert axe_findings(page) == []
        assert sideways_scroll(page) == 0
        # With JavaScript, "near me" is offered; the geolocation is only asked for when it is pressed.
        assert page.is_visible("#near-me")
        # By keyboard alone: to the name field, type, Enter sends the form.
        page.focus("#q")
        page.keyboard.type("图书")
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r"q=%E5%9B%BE%E4%B9%A6"))
        assert page.locator(".catalogue-entry h3").all_inner_texts() == ["武汉图书馆"]
        # Large text: still no sideways scrolling, still no finding.
        page.click("#display-switch")
        page.wait_for_load_state()
        assert page.evaluate("() => document.documentElement.classList.contains('large-display')")
        assert sideways_scroll(page) == 0
        assert axe_findings(page) == []
    finally:
        context.close()


@pytest.mark.browser
def test_near_me_uses_the_browsers_position(chromium: Any, site: Site) -> None:
    seed_catalogue(site.live)
    context = new_context(
        chromium,
        "zh-CN",
        geolocation={"latitude": 30.5090, "longitude": 114.3960},
        permissions=["geolocation"],
    )
    try:
        page = context.new_page()
        page.goto(site.live.base_url + "/catalogue")
        page.click("#near-me")
        page.wait_for_url(re.compile(r"lat=30\.509"))
        assert page.locator(".catalogue-entry h3").first.inner_text() == "洪山区政务服务中心"
        assert page.is_visible("#near-here")
    finally:
        context.close()
