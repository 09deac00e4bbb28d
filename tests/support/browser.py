"""Headless Chromium for the browser tests: Debian's own ``chromium`` driven by Playwright (never a browser
Playwright downloads), with the flags this sandboxed, offline machine needs. One browser per test session;
each test opens its own context."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.fixtures.services import service_unavailable

# Where browser tests leave screenshots of failures.
ARTIFACTS = Path(os.environ.get("ONECARD_TEST_ARTIFACTS", "/tmp/onecard-artifacts"))

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    executable = shutil.which("chromium")
    if executable is None:
        service_unavailable("Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def type_pin_in_bridge_dialog(page: Any, pin: str) -> None:
    """Type ``pin`` into the reader bridge's own PIN window, opened from the card login page."""
    page.wait_for_selector("#pin-link", state="visible")
    href = page.get_attribute("#pin-link", "href")
    assert href and href.startswith("http://127.0.0.1:")
    with page.context.expect_page() as opened:
        page.click("#pin-link")
    dialog = opened.value
    dialog.wait_for_load_state()
    assert urlsplit(dialog.url).netloc != urlsplit(page.url).netloc  # the bridge's origin, not the IdP's
    # The PIN window speaks the login page's language (the page passes it in the link: ?lang=).
    language = page.get_attribute("html", "lang")
    assert dialog.get_attribute("html", "lang") == language
    dialog.fill("#pin", pin)
    dialog.click("button[value=submit]")
    dialog.wait_for_load_state()
    thanks = {"en": "Thank you", "zh-CN": "谢谢"}[language]
    assert thanks in dialog.content(), dialog.content()
    dialog.close()
