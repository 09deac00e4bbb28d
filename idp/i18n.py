"""Languages, the display mode and China time for every page a person reads (DESIGN.md §11).

Simplified Chinese (``zh_Hans_CN``, served as ``lang="zh-CN"``) is the default; English is the other choice.
The catalogues are gettext ones, read by Flask-Babel: ``idp/translations`` here, and each plug-in adds its
own directory (``add_translation_directory``). Their source language is English: a message's English text
is its msgid, so English needs no catalogue and a missing translation shows the English, never a key.

Which language a request gets, first match wins (``select_locale``):

1. the citizen's own choice, the ``oclang`` cookie the language switch sets (``GET /language``);
2. the portal's ``ui_locales`` (OIDC Core §3.1.2.1), from the authorization request or the login
   transaction that keeps it;
3. the browser's ``Accept-Language``;
4. nothing stated: Chinese for a page; English for a program that asked for JSON, whose
   ``error_description`` stays the wire text it always was.

The display mode (``ocdisplay`` cookie, ``GET /display``) is the ageing-friendly one (适老化): larger text
and higher contrast, remembered like the language. Times are shown in China time (Asia/Shanghai), in the
reader's form: 2026年12月7日 14:05, or 7 Dec 2026, 14:05.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from flask import Blueprint, Flask, current_app, g, make_response, redirect, render_template, request, url_for
from flask_babel import Babel, get_babel, get_locale, gettext
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect
from werkzeug.wrappers import Response

from idp.web import UI_LOCALES_G, cookie_secure, wants_page

ZH: Final = "zh_Hans_CN"
EN: Final = "en"
DEFAULT_LOCALE: Final = ZH
SOURCE_LOCALE: Final = EN  # the msgids' language: needs no catalogue
# Locale → the BCP 47 tag pages carry (``lang``), discovery advertises and the cookie holds.
LANGUAGE_TAGS: Final = {ZH: "zh-CN", EN: "en"}
LANGUAGE_NAMES: Final = {ZH: "中文", EN: "English"}  # each in its own language, for the switch
LANGUAGE_COOKIE: Final = "oclang"
DISPLAY_COOKIE: Final = "ocdisplay"
LARGE_DISPLAY: Final = "large"
STANDARD_DISPLAY: Final = "standard"
CHINA_TIME: Final = ZoneInfo("Asia/Shanghai")
PREFERENCE_MAX_AGE: Final = 400 * 86400  # as long as browsers keep a cookie
TRANSLATIONS: Final = Path(__file__).parent / "translations"
_TAG: Final = re.compile(r"^[A-Za-z]{1,8}(?:[-_][A-Za-z0-9]{1,8})*$")
# Date and time patterns per language (CLDR syntax, Babel): what citizens read on a receipt or a ticket.
_DATETIME_PATTERNS: Final = {ZH: "y年M月d日 HH:mm", EN: "d MMM y, HH:mm"}
_DATE_PATTERNS: Final = {ZH: "y年M月d日", EN: "d MMM y"}

bp = Blueprint("i18n", __name__)
log = logging.getLogger(__name__)


def locale_of(tag: str) -> str | None:
    """The supported locale for a language tag (``zh``, ``zh-CN``, ``zh-Hans``, ``en-GB`` …), or ``None``.

    Every Chinese tag gets Simplified Chinese: it is what the card and the national e-card use.
    """
    if not isinstance(tag, str) or not _TAG.match(tag.strip()):
        return None
    language = re.split(r"[-_]", tag.strip().lower(), maxsplit=1)[0]
    return {"zh": ZH, "en": EN}.get(language)


def first_supported(tags: Iterable[str]) -> str | None:
    return next((locale for locale in map(locale_of, tags) if locale is not None), None)


def language_tag(locale: Any = None) -> str:
    """The ``lang`` attribute for ``locale`` (the request's by default)."""
    key = str(locale if locale is not None else get_locale())
    return LANGUAGE_TAGS.get(key, LANGUAGE_TAGS[DEFAULT_LOCALE] if key.startswith("zh") else "en")


def available_locales() -> frozenset[str]:
    """English always; Chinese once its catalogue is compiled (``scripts/setup.sh``, or the wheel's build).

    A checkout nobody compiled serves English rather than Chinese pages that say ``lang="zh-CN"`` over
    English text.
    """
    return _compiled(tuple(get_babel().translation_directories))


@lru_cache(maxsize=8)
def _compiled(directories: tuple[str, ...]) -> frozenset[str]:
    found = {SOURCE_LOCALE}
    if any(any(Path(directory).glob(f"{ZH}/LC_MESSAGES/*.mo")) for directory in directories):
        found.add(ZH)
    return frozenset(found)


def _ui_locales() -> str:
    """The portal's ``ui_locales`` for this request: on the authorization request itself, or kept in the
    login transaction a login page runs in (``/login/<tx>…``, ``/consent/<tx>``), which the view's
    ``current_transaction`` has already loaded and left in ``g``.

    No I/O here: the selector also runs inside the error handlers (``json_error``), and a store that failed
    the view must not fail the error answer too."""
    if request.endpoint == "oidc.authorize":
        return str(request.values.get("ui_locales", ""))
    return str(g.get(UI_LOCALES_G, ""))


def stated_languages() -> Iterator[str]:
    """What the request says about its reader's language, strongest first (see the module docstring)."""
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen:
        yield chosen
    yield from _ui_locales().split()[:8]
    yield from (tag for tag, _quality in request.accept_languages)


def select_locale() -> str:
    """Flask-Babel's locale selector. Never raises: it runs inside the error handlers too, where a failure
    would replace OneCard's error answer with Werkzeug's."""
    try:
        return _select_locale()
    except Exception:  # any failure: the default rule below, without the request's hints
        log.warning("locale selection failed; using the default", exc_info=True)
        return _fallback_locale()


def _fallback_locale() -> str:
    """The rule for a request that states nothing, as far as the request can still be read."""
    try:
        if not wants_page():
            return EN  # a program: the English wire text
        return DEFAULT_LOCALE if DEFAULT_LOCALE in available_locales() else SOURCE_LOCALE
    except Exception:  # nothing left to read: a page's default
        return DEFAULT_LOCALE


def _select_locale() -> str:
    available = available_locales()
    for tag in stated_languages():
        locale = locale_of(tag)
        if locale in available:
            return locale
    if not wants_page() and not request.accept_languages and not request.cookies.get(LANGUAGE_COOKIE):
        return EN  # a program that stated no language: the English wire text
    return DEFAULT_LOCALE if DEFAULT_LOCALE in available else SOURCE_LOCALE


def translate(text: str) -> str:
    """A message whose English text arrives as a value (an error's description, a login method's label):
    its translation when the catalogue has one, else the text itself. Never %-formats the text."""
    if not text or "babel" not in current_app.extensions:
        return text
    return str(gettext(text))


def large_display() -> bool:
    return request.cookies.get(DISPLAY_COOKIE) == LARGE_DISPLAY


# --- dates and times ---------------------------------------------------------------------------------------


def _aware(value: dt.datetime | float | int) -> dt.datetime:
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def china_time(value: dt.datetime | float | int | None, locale: Any = None) -> str:
    """``2026年12月7日 14:05`` (or ``7 Dec 2026, 14:05``): a moment in China time, the reader's form."""
    if value is None:
        return ""
    key = str(locale if locale is not None else get_locale())
    key = key if key in _DATETIME_PATTERNS else EN
    moment = _aware(value).astimezone(CHINA_TIME)
    return format_datetime(moment, _DATETIME_PATTERNS[key], tzinfo=CHINA_TIME, locale=key)


def china_date(value: dt.date | dt.datetime | None, locale: Any = None) -> str:
    """``2026年12月7日`` (or ``7 Dec 2026``); a datetime is first taken to China time."""
    if value is None:
        return ""
    key = str(locale if locale is not None else get_locale())
    key = key if key in _DATE_PATTERNS else EN
    if isinstance(value, dt.datetime):
        value = _aware(value).astimezone(CHINA_TIME).date()
    return format_date(value, _DATE_PATTERNS[key], locale=key)


# --- the switches on every page ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Switch:
    """A link in the page header: what it offers (in the language it offers), where it goes."""

    label: str
    url: str
    lang: str | None = None  # the link text's own language, when it differs from the page's


def _here() -> str:
    """The page to come back to: this one, if a GET can show it again (not a switch's own page)."""
    if request.blueprint == bp.name:
        return ""
    if request.method == "GET":
        path = request.full_path
        return path[:-1] if path.endswith("?") else path
    return request.path if _get_route_exists(request.path) else ""


def _get_route_exists(path: str) -> bool:
    adapter = current_app.url_map.bind("localhost")
    try:
        adapter.match(path, method="GET")
    except RequestRedirect:  # the same page with a trailing slash
        return True
    except (NotFound, MethodNotAllowed):
        return False
    return True


def _switch_url(endpoint: str, **params: str) -> str:
    here = _here()
    if here:
        params["next"] = here
    return f"{url_for(endpoint)}?{urlencode(params)}"


def language_switch() -> Switch:
    other = EN if str(get_locale()) == ZH else ZH
    return Switch(
        LANGUAGE_NAMES[other],
        _switch_url("i18n.choose_language", lang=LANGUAGE_TAGS[other]),
        LANGUAGE_TAGS[other],
    )


def display_switch() -> Switch:
    if large_display():
        return Switch(gettext("Standard text"), _switch_url("i18n.choose_display", mode=STANDARD_DISPLAY))
    return Switch(gettext("Large text"), _switch_url("i18n.choose_display", mode=LARGE_DISPLAY))


def _safe_next(target: str | None) -> str | None:
    """Only a path of this site that a GET can show (no open redirect: no scheme, host or ``//``)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    if any(ord(ch) < 0x20 for ch in target):
        return None
    return target if _get_route_exists(target.split("?", 1)[0]) else None


def _remember(name: str, value: str, target: str | None, changed: str) -> Response:
    back = _safe_next(target)
    if back:
        response: Response = redirect(back, 303)
    else:
        response = make_response(render_template("preference_saved.html", message=changed))
    response.set_cookie(
        name, value, max_age=PREFERENCE_MAX_AGE, secure=cookie_secure(), httponly=True, samesite="Lax"
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/language")
def choose_language() -> Response:
    """The language switch: remember the choice, go back to the page."""
    locale = locale_of(request.args.get("lang", ""))
    if locale is None:
        locale = DEFAULT_LOCALE
    g.chosen_locale = locale
    return _remember(
        LANGUAGE_COOKIE, LANGUAGE_TAGS[locale], request.args.get("next"), gettext("The language is changed.")
    )


@bp.get("/display")
def choose_display() -> Response:
    """The large-text switch (适老化): remember it, go back to the page."""
    mode = LARGE_DISPLAY if request.args.get("mode") == LARGE_DISPLAY else STANDARD_DISPLAY
    return _remember(DISPLAY_COOKIE, mode, request.args.get("next"), gettext("The text size is changed."))


# --- wiring ------------------------------------------------------------------------------------------------


def _selected_locale() -> str:
    chosen = g.get("chosen_locale")
    return str(chosen) if chosen else select_locale()


def _page_context() -> dict[str, Any]:
    if "babel" not in current_app.extensions:
        return {}
    return {
        "html_lang": language_tag(),
        "large_display": large_display(),
        "language_switch": language_switch,
        "display_switch": display_switch,
    }


def _content_language(response: Response) -> Response:
    """A response that was put into words (Flask-Babel picked a locale for it) says which language, and that
    it varies with the request's language; the others (key sets, discovery) stay cacheable for everyone."""
    state = g.get("_flask_babel")
    if state is None or not hasattr(state, "babel_locale"):
        return response
    if response.mimetype == "text/html":
        response.headers.setdefault("Content-Language", language_tag(state.babel_locale))
    response.vary.update(("Accept-Language", "Cookie"))
    return response


def install_i18n(app: Flask) -> None:
    """Flask-Babel with idp's catalogue, the switches' blueprint, the Jinja helpers."""
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT_LOCALE)
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", "Asia/Shanghai")
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    Babel(app, locale_selector=_selected_locale)
    # {% trans %} blocks are looked up as pybabel extracts them (babel.cfg: trimmed = true).
    app.jinja_env.policies["ext.i18n.trimmed"] = True
    app.register_blueprint(bp)
    app.context_processor(_page_context)
    app.after_request(_content_language)
    app.jinja_env.filters.update(translate=translate, china_time=china_time, china_date=china_date)


def add_translation_directory(app: Flask, directory: Path) -> None:
    """A plug-in's own catalogues (the wallet's), merged with idp's for every request."""
    get_babel(app).translation_directories.append(str(directory))
