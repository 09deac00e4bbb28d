"""Where the PIN comes from (DESIGN.md §4: "the PIN goes only into the bridge (or a PIN-pad reader) and the
card; the web page never sees it"; CARD_PROFILE.md "PIN").

Three sources:

- ``TerminalPinSource``: a ``getpass`` prompt on the bridge's console (kiosks, developers).
- ``DialogPinSource``: a small, accessible HTML page the bridge serves on its *own* loopback origin. The IdP
  page is told the page's URL (in the ``enter_pin`` event) and opens it; the PIN is typed and submitted to
  the bridge, so the IdP's script never touches it. The page refuses framing and cross-origin submission.
  It says how long it stays open and offers "More time" (WCAG 2.2.1); the ``enter_pin`` event carries the
  seconds left (``pin_expires_in``), again after "More time" (``extended``), for the login page's countdown.
- ``PinPadPinSource``: the reader's own keypad (PC/SC part 10 FEATURE_VERIFY_PIN_DIRECT); the PIN never
  reaches the host. ``build_verify_pin_structure`` builds the reader's PIN_VERIFY_STRUCTURE.

A dialog source made with ``prefer_pinpad`` (``--pin-source auto``, the kiosk profile's default) uses the
reader's keypad for VERIFY whenever the reader in use has one, and its dialog otherwise — and for CHANGE PIN,
which PIN pads do not do here (MODIFY_PIN_DIRECT is not supported yet).
"""

from __future__ import annotations

import datetime
import getpass
import html
import os
import secrets
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol
from zoneinfo import ZoneInfo

from reader_bridge.errors import PinCancelledError, PinPadUnavailableError, PinTimeoutError
from reader_bridge.messages import Language, choose_language, terminal_language
from sdk.clock import Clock, system_clock

Purpose = Literal["verify", "change"]
Announce = Callable[[Mapping[str, object]], None]
PIN_LENGTH: Final = 6
PINPAD_ONLY: Final = "pinpad"  # PinSource.kind: VERIFY on the reader's keypad, refused without one
PINPAD_FIRST: Final = "pinpad-or-dialog"  # PinSource.kind: the keypad where the reader has one, else ask
_POLL: Final = 0.2  # how often a waiting dialog looks at the operation's cancel flag


def is_valid_pin(pin: str) -> bool:
    return len(pin) == PIN_LENGTH and pin.isascii() and pin.isdigit()


@dataclass
class PinRequest:
    """One question to the cardholder; ``cancelled`` is the operation's cancel flag."""

    purpose: Purpose
    tries_left: int
    timeout: float
    cancelled: threading.Event = field(default_factory=threading.Event)
    wrong_before: bool = False  # the previous attempt was wrong: say so on the page


class PinSource(Protocol):
    kind: str

    def ask_pin(self, request: PinRequest, announce: Announce) -> str:
        """The PIN for VERIFY. ``announce`` publishes the ``enter_pin`` event (with source extras)."""
        ...

    def ask_pin_change(self, request: PinRequest, announce: Announce) -> tuple[str, str]:
        """(old PIN, new PIN) for CHANGE PIN."""
        ...


# --- terminal -------------------------------------------------------------------------------------------


class TerminalPinSource:
    kind = "terminal"

    def __init__(
        self, prompt: Callable[[str], str] = getpass.getpass, *, language: Language | None = None
    ) -> None:
        self._prompt = prompt
        # The console's language (ONECARD_BRIDGE_LANG, else LC_ALL / LC_MESSAGES / LANG).
        self._language = language or terminal_language(os.environ)

    def _ask(self, text: str) -> str:
        while True:
            try:
                pin = self._prompt(text)
            except (EOFError, KeyboardInterrupt) as exc:
                raise PinCancelledError("PIN entry cancelled at the terminal") from exc
            if is_valid_pin(pin):
                return pin
            print(self._language.gettext("The PIN is 6 digits."))

    def ask_pin(self, request: PinRequest, announce: Announce) -> str:
        announce({})
        _ = self._language.gettext
        return self._ask(
            _("Social security card PIN (%(tries)s left): ") % {"tries": _tries(self._language, request)}
        )

    def ask_pin_change(self, request: PinRequest, announce: Announce) -> tuple[str, str]:
        announce({})
        _ = self._language.gettext
        old = self._ask(_("Current PIN (%(tries)s left): ") % {"tries": _tries(self._language, request)})
        while True:
            new = self._ask(_("New PIN (6 digits): "))
            if self._ask(_("New PIN again: ")) == new:
                return old, new
            print(_("The two new PINs differ."))


def _tries(language: Language, request: PinRequest) -> str:
    return language.ngettext("%(count)s try", "%(count)s tries", request.tries_left) % {
        "count": request.tries_left
    }


# --- PIN pad ----------------------------------------------------------------------------------------------


class PinPadPinSource:
    """Marker source: the operation hands VERIFY to the reader's keypad instead of asking here."""

    kind = PINPAD_ONLY

    def ask_pin(self, request: PinRequest, announce: Announce) -> str:
        raise PinPadUnavailableError("the PIN pad verifies on the reader; no PIN reaches the host")

    def ask_pin_change(self, request: PinRequest, announce: Announce) -> tuple[str, str]:
        raise PinPadUnavailableError("PIN change on a PIN pad (MODIFY_PIN_DIRECT) is not supported yet")


def build_verify_pin_structure(command_template: bytes, *, timeout_s: int = 60) -> bytes:
    """PC/SC part 10 §2.5.2 PIN_VERIFY_STRUCTURE for 6 BCD digits in 3 bytes (CARD_PROFILE "PIN").

    Little-endian multi-byte fields, as the specification (and CCID) lay them out.
    """
    return (
        bytes(
            (
                timeout_s & 0xFF,  # bTimerOut: seconds for the first key
                timeout_s & 0xFF,  # bTimerOut2: seconds between keys
                0x81,  # bmFormatString: units are bytes, PIN at data offset 0, left-justified, BCD
                0x03,  # bmPINBlockString: no length field in the block, 3-byte PIN block
                0x00,  # bmPINLengthFormat: no PIN length written into the APDU
            )
        )
        + struct.pack("<H", (PIN_LENGTH << 8) | PIN_LENGTH)  # wPINMaxExtraDigit: min 6, max 6 digits
        + bytes((0x02, 0x01))  # bEntryValidationCondition: OK key; bNumberMessage: one prompt
        + struct.pack("<H", 0x0409)  # wLangId
        + bytes((0x00, 0x00, 0x00, 0x00))  # bMsgIndex, bTeoPrologue[3]
        + struct.pack("<I", len(command_template))
        + command_template
    )


VERIFY_TEMPLATE: Final = bytes.fromhex("0020000003000000")  # VERIFY with 3 placeholder PIN bytes


# --- the local PIN dialog ---------------------------------------------------------------------------------

CHINA_TIME: Final = ZoneInfo("Asia/Shanghai")
MAX_EXTENSIONS: Final = 5  # "More time" this often per PIN question; each gives the full time again


@dataclass
class _Pending:
    """One open dialog. Every field but ``request``, ``url`` and ``announce`` is read and written under
    ``DialogPinSource._lock``: a POST thread changes them while ``_wait`` reads them."""

    request: PinRequest
    deadline: float  # on the dialog's monotonic clock, when the dialog gives up
    url: str
    announce: Announce
    done: threading.Event = field(default_factory=threading.Event)
    pins: tuple[str, ...] = ()
    cancelled: bool = False
    extensions: int = 0

    def seconds_left(self, now: float) -> int:
        return max(0, round(self.deadline - now))


@dataclass(frozen=True)
class DialogOutcome:
    """What the bridge answers the browser after a form submission."""

    status: int
    html: str


class DialogPinSource:
    """PIN dialog pages at ``<base_url>/pin/<id>``; ``base_url`` is set once the server is bound.

    ``page`` and ``submit`` take the reader's language: the ``lang`` the login page put into the link
    (``?lang=zh-CN``), else the browser's Accept-Language; Chinese when neither says.
    """

    kind = "dialog"

    def __init__(
        self,
        base_url: str = "",
        *,
        on_open: Callable[[str], object] | None = None,
        clock: Clock = time.monotonic,
        wall_clock: Clock = system_clock,
        prefer_pinpad: bool = False,
    ) -> None:
        self.base_url = base_url
        if prefer_pinpad:
            self.kind = PINPAD_FIRST
        self._on_open = on_open  # e.g. webbrowser.open, for a bridge run without a page that opens it
        self._clock = clock  # deadlines: monotonic, so a wall-clock step neither ends nor stretches a dialog
        self._wall_clock = wall_clock  # only for the "waits until 14:05" the page shows
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()

    def _wait(self, request: PinRequest, announce: Announce) -> tuple[str, ...]:
        dialog_id = secrets.token_urlsafe(18)  # unguessable: knowing it is what lets a page open the dialog
        url = f"{self.base_url}/pin/{dialog_id}"
        now = self._clock()
        pending = _Pending(request, now + request.timeout, url, announce)
        with self._lock:
            self._pending[dialog_id] = pending
        try:
            announce({"pin_url": url, "pin_expires_in": pending.seconds_left(now)})
            if self._on_open is not None:
                self._on_open(url)
            while not pending.done.wait(_POLL):
                if request.cancelled.is_set():
                    raise PinCancelledError("operation cancelled while the PIN dialog was open")
                with self._lock:
                    # Decided under the lock, so a "More time" is either in before the deadline or refused.
                    if self._clock() >= pending.deadline and not pending.done.is_set():
                        pending.done.set()
                        raise PinTimeoutError("no PIN entered in time")
            if pending.cancelled:
                raise PinCancelledError("cancelled in the PIN dialog")
            return pending.pins
        finally:
            with self._lock:
                # Once this returns, the operation may emit its terminal event: nothing is announced after.
                pending.done.set()
                self._pending.pop(dialog_id, None)

    def ask_pin(self, request: PinRequest, announce: Announce) -> str:
        return self._wait(request, announce)[0]

    def ask_pin_change(self, request: PinRequest, announce: Announce) -> tuple[str, str]:
        old, new = self._wait(request, announce)
        return old, new

    def has(self, dialog_id: str) -> bool:
        with self._lock:
            return dialog_id in self._pending

    def page(self, dialog_id: str, *, lang: str | None = None, accept_language: str = "") -> DialogOutcome:
        language = choose_language(lang, accept_language)
        with self._lock:
            pending = self._pending.get(dialog_id)
            if pending is not None:
                seconds_left = pending.seconds_left(self._clock())
                can_extend = pending.extensions < MAX_EXTENSIONS
        if pending is None:
            return DialogOutcome(
                404, render_closed_page(language.gettext("This PIN request is no longer open."), language)
            )
        return DialogOutcome(
            200,
            render_pin_page(
                pending.request,
                now=self._wall_clock(),
                language=language,
                seconds_left=seconds_left,
                can_extend=can_extend,
            ),
        )

    def submit(
        self, dialog_id: str, form: Mapping[str, str], *, lang: str | None = None, accept_language: str = ""
    ) -> DialogOutcome:
        """Take the form; a malformed PIN re-renders the page (no card try is spent on a typo)."""
        language = choose_language(lang, accept_language)
        _ = language.gettext
        closed = DialogOutcome(404, render_closed_page(_("This PIN request is no longer open."), language))
        with self._lock:
            pending = self._pending.get(dialog_id)
        if pending is None:
            return closed

        def again(error: str | None = None, status: int = 400) -> DialogOutcome:
            with self._lock:
                seconds_left = pending.seconds_left(self._clock())
                can_extend = pending.extensions < MAX_EXTENSIONS
            return DialogOutcome(
                status,
                render_pin_page(
                    pending.request,
                    now=self._wall_clock(),
                    language=language,
                    error=error,
                    seconds_left=seconds_left,
                    can_extend=can_extend,
                ),
            )

        action = form.get("action")
        pins: tuple[str, ...] = ()
        if action == "more_time":
            with self._lock:
                # Check and update in one step, and announce only while the dialog is open: two POSTs at
                # once get one extension each up to MAX_EXTENSIONS, and no enter_pin follows the end.
                if pending.done.is_set():
                    return closed
                if pending.extensions < MAX_EXTENSIONS:
                    pending.extensions += 1
                    now = self._clock()
                    pending.deadline = now + pending.request.timeout
                    pending.announce(
                        {
                            "pin_url": pending.url,
                            "pin_expires_in": pending.seconds_left(now),
                            "extended": True,
                        }
                    )
            return again(None, 200)
        if action != "cancel":
            if pending.request.purpose == "verify":
                pin = form.get("pin", "")
                if not is_valid_pin(pin):
                    return again(_("The PIN is 6 digits."))
                pins = (pin,)
            else:
                old, new, repeated = (
                    form.get("old_pin", ""),
                    form.get("new_pin", ""),
                    form.get("new_pin_again", ""),
                )
                if not (is_valid_pin(old) and is_valid_pin(new)):
                    return again(_("A PIN is 6 digits."))
                if new != repeated:
                    return again(_("The two new PINs differ."))
                pins = (old, new)
        with self._lock:
            if pending.done.is_set():  # answered, cancelled or timed out by another thread meanwhile
                return closed
            pending.cancelled = action == "cancel"
            pending.pins = pins
            pending.done.set()
        if action == "cancel":
            return DialogOutcome(
                200, render_closed_page(_("Cancelled. You can close this window."), language)
            )
        return DialogOutcome(
            200,
            render_closed_page(
                _("Thank you. The card is checking the PIN; you can close this window."), language
            ),
        )


_STYLE: Final = """
*{box-sizing:border-box}
body{font-family:system-ui,"Noto Sans CJK SC","WenQuanYi Micro Hei","Microsoft YaHei",sans-serif;
font-size:1.5rem;line-height:1.5;margin:1rem;color:#111;background:#fff}
main{max-width:34rem;margin:0 auto}
h1{font-size:2rem;line-height:1.3}label{display:block;font-weight:bold;margin-top:1rem}
input{font-size:2rem;letter-spacing:.5rem;padding:.4rem;width:9ch;max-width:100%;border:3px solid #333}
input:focus,button:focus{outline:3px solid #111;outline-offset:2px;box-shadow:0 0 0 2px #fff}
button{font:inherit;font-weight:bold;min-height:3rem;padding:.6rem 1.4rem;margin:1.5rem 1rem 0 0;
border:2px solid #111;border-radius:.3rem;background:#fff;color:#111}
button.primary{background:#0050b3;border-color:#0050b3;color:#fff}.error{color:#a00000;font-weight:bold}
.time{border-left:.4rem solid #0050b3;padding-left:.6rem}
.switch{text-align:right;margin:0}.switch a{color:#0050b3;font-weight:bold}
a:focus{outline:3px solid #111;outline-offset:2px;box-shadow:0 0 0 2px #fff}
"""


def _pin_input(name: str, label: str, autofocus: bool = False) -> str:
    return (
        f'<label for="{name}">{html.escape(label)}</label>'
        f'<input id="{name}" name="{name}" type="password" inputmode="numeric" pattern="[0-9]{{6}}" '
        f'minlength="6" maxlength="6" autocomplete="off" required aria-describedby="hint time"'
        f"{' autofocus' if autofocus else ''}>"
    )


def _minutes(language: Language, seconds: int) -> str:
    """How long, in words: whole minutes (rounded up) from a minute on, else seconds."""
    if seconds >= 60:
        minutes = -(-seconds // 60)
        return language.ngettext("%(count)s minute", "%(count)s minutes", minutes) % {"count": minutes}
    return language.ngettext("%(count)s second", "%(count)s seconds", seconds) % {"count": seconds}


def render_pin_page(
    request: PinRequest,
    *,
    now: float,
    error: str | None = None,
    language: Language | None = None,
    seconds_left: int | None = None,
    can_extend: bool = True,
) -> str:
    language = language or choose_language(None, "")
    _ = language.gettext
    if request.purpose == "verify":
        title = _("Enter your social security card PIN")
        fields = _pin_input("pin", _("PIN (6 digits)"), autofocus=True)
    else:
        title = _("Change your social security card PIN")
        fields = (
            _pin_input("old_pin", _("Current PIN (6 digits)"), autofocus=True)
            + _pin_input("new_pin", _("New PIN (6 digits)"))
            + _pin_input("new_pin_again", _("New PIN again"))
        )
    notices = []
    if request.wrong_before:
        notices.append(_("The PIN was wrong."))
    if error:
        notices.append(error)
    notice = f'<p class="error" role="alert">{html.escape(" ".join(notices))}</p>' if notices else ""
    tries = _("%(tries)s left before the card is blocked.") % {"tries": _tries(language, request)}
    seconds = int(request.timeout) if seconds_left is None else seconds_left
    # China time, as on the IdP's pages; ``now`` is POSIX seconds.
    until = datetime.datetime.fromtimestamp(now + seconds, CHINA_TIME)
    until_text = until.strftime("%H:%M")
    timing = _("This window waits for the PIN until %(time)s, %(left)s from now.") % {
        "time": until_text,
        "left": _minutes(language, seconds),
    }
    more_time = html.escape(_("More time"))
    more = (
        f'<button type="submit" name="action" value="more_time" formnovalidate>{more_time}</button>'
        if can_extend
        else ""
    )
    longer = html.escape(_("Need longer? Press More time.")) if can_extend else ""
    only_card = html.escape(_("The PIN goes only to your card, not to the web site."))
    ok, cancel = html.escape(_("OK")), html.escape(_("Cancel"))
    space = "" if language.tag == "zh-CN" else " "  # Chinese sentences follow each other without one
    # The window follows the login page's language; its own switch shows it again in the other one.
    other, other_name = ("en", "English") if language.tag == "zh-CN" else ("zh-CN", "中文")
    switch = (
        f'<p class="switch"><a href="?lang={other}" lang="{other}" hreflang="{other}">{other_name}</a></p>'
    )
    return f"""<!DOCTYPE html>
<html lang="{language.tag}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title><style>{_STYLE}</style></head>
<body><main>{switch}<h1>{html.escape(title)}</h1>{notice}
<p id="hint">{only_card}{space}<strong>{html.escape(tries)}</strong></p>
<p class="time" id="time">{html.escape(timing)}{space}{longer}</p>
<form method="post">{fields}
<div><button class="primary" type="submit" name="action" value="submit">{ok}</button>
<button type="submit" name="action" value="cancel" formnovalidate>{cancel}</button>
{more}</div>
</form></main></body></html>
"""


def render_closed_page(message: str, language: Language | None = None) -> str:
    language = language or choose_language(None, "")
    title = html.escape(language.gettext("OneCard reader program"))
    return f"""<!DOCTYPE html>
<html lang="{language.tag}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><style>{_STYLE}</style></head>
<body><main><p role="status">{html.escape(message)}</p></main></body></html>
"""
