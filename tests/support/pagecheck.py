"""Checks a browser test runs on a page as people see it (issue #14, item 7): axe-core's accessibility rules,
text outside the page's language catalogue, sideways scrolling, focus-ring contrast.

axe-core is the npm package, installed by ``scripts/setup.sh`` from ``tests/browser/package-lock.json``; it is
injected as a script, which the pages' CSP (``script-src 'self'``) refuses: contexts that run it are made
with Playwright's ``bypass_csp=True``, in tests only. Without the package the axe tests skip — and fail under
``CI=true`` (``service_unavailable``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tests.fixtures.services import service_unavailable

AXE = Path(__file__).resolve().parents[1] / "browser" / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")
# Latin words a Chinese page may show: names of browsers and systems (what the wallet says a computer is),
# and of the technique a page needs (JavaScript).
LATIN_NAMES = frozenset(
    {
        "Chrome",
        "HeadlessChrome",
        "Edge",
        "Firefox",
        "Safari",
        "Linux",
        "Windows",
        "Android",
        "iPhone",
        "iPad",
        "Mac",
        "JavaScript",
    }
)


def axe_source() -> str:
    if not AXE.is_file():
        service_unavailable(f"axe-core is not installed ({AXE}): run scripts/setup.sh")
    return AXE.read_text(encoding="utf-8")


def axe_findings(page: Any, *, impacts: tuple[str, ...] = BLOCKING) -> list[dict[str, Any]]:
    """axe-core's violations of ``impacts`` on the page as it is now: rule id, impact, help, the nodes."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(content=axe_source())
    results = page.evaluate(
        """async () => {
             const result = await axe.run(document, {resultTypes: ["violations"]});
             return result.violations.map((v) => ({
               id: v.id, impact: v.impact, help: v.help,
               nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5),
             }));
           }"""
    )
    return [finding for finding in results if finding["impact"] in impacts]


# Every text a person can meet on the page: text nodes (hidden ones too — they show in another state),
# the title, the texts of attributes people hear or see (alt, aria-label, title, placeholder, a button's
# value, a field's preset value, the words CSS shows from data-label / data-done) and the sentences the
# page's scripts will show (its JSON data blocks). Left out: scripts, styles, code, and whatever is marked
# as another language (the language switch says "English" with lang="en").
_TEXTS = """() => {
  const pageLang = document.documentElement.lang;
  const out = [];
  const foreign = (el) => {
    const marked = el.closest("[lang]");
    return marked && marked.lang !== pageLang;
  };
  const walker = document.createTreeWalker(document.documentElement, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (!parent || parent.closest("script, style, code") || foreign(parent)) continue;
    // A <noscript>'s content is markup while scripts run: its words, without the tags.
    const raw = parent.closest("noscript") ? node.textContent.replace(/<[^>]*>/g, " ") : node.textContent;
    const text = raw.trim();
    if (text) out.push(text);
  }
  const attributes = ["alt", "aria-label", "title", "placeholder", "data-label", "data-done"];
  for (const el of document.querySelectorAll("*")) {
    if (foreign(el)) continue;
    for (const name of attributes) {
      const value = (el.getAttribute(name) || "").trim();
      if (value) out.push(value);
    }
    if (el.matches("input[type=submit], input[type=button], input[type=text]") && el.value.trim()) {
      out.push(el.value.trim());
    }
  }
  for (const block of document.querySelectorAll('script[type="application/json"]')) {
    out.push(block.textContent);
  }
  return out;
}"""


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def page_texts(page: Any) -> list[str]:
    texts: list[str] = []
    for text in page.evaluate(_TEXTS):
        if text.startswith(("{", "[")):
            try:
                texts.extend(_strings(json.loads(text)))
                continue
            except ValueError:
                pass
        texts.append(text)
    return texts


def outside_catalogue(page: Any, *, data: Iterable[str] = ()) -> list[str]:
    """Texts of the page that are not in its language: English words on a Chinese page (``lang="zh-CN"``),
    Chinese characters on an English one. ``data`` are the values the page shows as they are (names,
    numbers, the portal's name), which are no message of any catalogue."""
    lang = page.get_attribute("html", "lang")
    known = sorted(set(data) | {"{count}", "{time}", "{seconds}", "{code}", "{name}"}, key=len, reverse=True)
    found = []
    for text in page_texts(page):
        rest = text
        for value in known:
            rest = rest.replace(value, " ")
        rest = re.sub(r"https?://\S+|urn:\S+", " ", rest)
        if lang == "zh-CN":
            words = [word for word in re.findall(r"[A-Za-z]{2,}", rest) if word not in LATIN_NAMES]
        else:
            words = re.findall(r"[\u3400-\u9fff\uff00-\uffef\u3000-\u303f]+", rest)
        if words:
            found.append(text)
    return found


def sideways_scroll(page: Any) -> int:
    """How many CSS pixels the page is wider than the window (0: no horizontal scrolling, WCAG 1.4.10)."""
    return int(
        page.evaluate(
            "() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
            " - document.documentElement.clientWidth"
        )
    )


def _luminance(rgb: tuple[float, float, float]) -> float:
    def channel(value: float) -> float:
        value /= 255
        return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4

    red, green, blue = (channel(v) for v in rgb)
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def parse_colour(css: str) -> tuple[float, float, float]:
    numbers = [float(part) for part in re.findall(r"[\d.]+", css)[:3]]
    return numbers[0], numbers[1], numbers[2]


def contrast(first: str, second: str) -> float:
    """WCAG contrast ratio of two CSS ``rgb(…)`` colours."""
    lighter, darker = sorted(
        (_luminance(parse_colour(first)), _luminance(parse_colour(second))), reverse=True
    )
    return (lighter + 0.05) / (darker + 0.05)
