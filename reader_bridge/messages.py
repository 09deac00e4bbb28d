"""The bridge's own words in the cardholder's language: its PIN window and console prompts (DESIGN.md §11).

The bridge must not import Flask (DESIGN.md §1), so it reads its gettext catalogue with the standard
library: ``reader_bridge/translations/<locale>/LC_MESSAGES/messages.mo``, compiled from the ``.po`` by
``scripts/setup.sh`` (and by the wheel's build). English is the source language (the msgids) and needs no
catalogue. Simplified Chinese is the default; when its catalogue was never compiled, the bridge speaks
English — and says ``lang="en"``, never Chinese over English text.
"""

from __future__ import annotations

import gettext
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Final

TRANSLATIONS: Final = Path(__file__).parent / "translations"
ZH: Final = "zh_Hans_CN"
EN: Final = "en"
_TAGS: Final = {ZH: "zh-CN", EN: "en"}
_TAG: Final = re.compile(r"^[A-Za-z]{1,8}(?:[-_][A-Za-z0-9]{1,8})*")


@dataclass(frozen=True)
class Language:
    """A catalogue and the BCP 47 tag its pages carry."""

    tag: str
    translations: gettext.NullTranslations

    def gettext(self, message: str) -> str:
        return self.translations.gettext(message)

    def ngettext(self, singular: str, plural: str, count: int) -> str:
        return self.translations.ngettext(singular, plural, count)


@lru_cache(maxsize=4)
def language(locale: str) -> Language:
    """The language for ``locale`` (``zh_Hans_CN`` or ``en``); English when its catalogue is missing."""
    if locale == EN:
        return Language(_TAGS[EN], gettext.NullTranslations())
    translations = gettext.translation("messages", TRANSLATIONS, languages=[locale], fallback=True)
    if not isinstance(translations, gettext.GNUTranslations):
        return Language(_TAGS[EN], gettext.NullTranslations())
    return Language(_TAGS.get(locale, _TAGS[EN]), translations)


def _locale_of(tag: str) -> str | None:
    match = _TAG.match(tag.strip())
    if not match:
        return None
    return {"zh": ZH, "en": EN}.get(re.split(r"[-_]", match.group(0).lower(), maxsplit=1)[0])


def _accept_language(header: str) -> Iterator[str]:
    """Accept-Language's tags, highest quality first (RFC 9110 §12.5.4)."""
    weighted = []
    for index, part in enumerate(header.split(",")[:16]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and quality > 0:
            weighted.append((-quality, index, tag))
    yield from (tag for _quality, _index, tag in sorted(weighted))


def _first_locale(tags: Iterable[str]) -> str:
    return next((locale for locale in map(_locale_of, tags) if locale is not None), ZH)


def choose_language(lang: str | None, accept_language: str) -> Language:
    """The page's language: the ``lang`` the login page passed, else Accept-Language, else Chinese."""
    return language(_first_locale([*([lang] if lang else []), *_accept_language(accept_language or "")]))


def terminal_language(environ: Mapping[str, str]) -> Language:
    """The console's language: ``ONECARD_BRIDGE_LANG``, else the POSIX locale variables; Chinese unless
    they name another language (a ``C`` or ``POSIX`` locale means English)."""
    for name in ("ONECARD_BRIDGE_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name, "")
        if value:
            if value.split(".")[0] in ("C", "POSIX"):
                return language(EN)
            return language(_locale_of(value.split(".")[0]) or EN)
    return language(ZH)
