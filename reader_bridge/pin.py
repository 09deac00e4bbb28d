"""Where the PIN comes from (DESIGN.md §4: "the PIN goes only into the bridge (or a PIN-pad reader) and the
card; the web page never sees it"; CARD_PROFILE.md "PIN").

Three sources:

- ``TerminalPinSource``: a ``getpass`` prompt on the bridge's console (kiosks, developers).
- ``DialogPinSource``: a small, accessible HTML page the bridge serves on its *own* loopback origin. The IdP
  page is told the page's URL (in the ``enter_pin`` event) and opens it; the PIN is typed and submitted to
  the bridge, so the IdP's script never touches it. The page refuses framing and cross-origin submission.
- ``PinPadPinSource``: the reader's own keypad (PC/SC part 10 FEATURE_VERIFY_PIN_DIRECT); the PIN never
  reaches the host. ``build_verify_pin_structure`` builds the reader's PIN_VERIFY_STRUCTURE.
"""

from __future__ import annotations

import getpass
import html
import secrets
import struct
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

from reader_bridge.errors import PinCancelledError, PinPadUnavailableError, PinTimeoutError

Purpose = Literal["verify", "change"]
Announce = Callable[[Mapping[str, object]], None]
PIN_LENGTH: Final = 6
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

    def __init__(self, prompt: Callable[[str], str] = getpass.getpass) -> None:
        self._prompt = prompt

    def _ask(self, text: str) -> str:
        while True:
            try:
                pin = self._prompt(text)
            except (EOFError, KeyboardInterrupt) as exc:
                raise PinCancelledError("PIN entry cancelled at the terminal") from exc
            if is_valid_pin(pin):
                return pin
            print("The PIN is 6 digits.")

    def ask_pin(self, request: PinRequest, announce: Announce) -> str:
        announce({})
        return self._ask(f"Social security card PIN ({request.tries_left} tries left): ")

    def ask_pin_change(self, request: PinRequest, announce: Announce) -> tuple[str, str]:
        announce({})
        old = self._ask(f"Current PIN ({request.tries_left} tries left): ")
        while True:
            new = self._ask("New PIN (6 digits): ")
            if self._ask("New PIN again: ") == new:
                return old, new
            print("The two new PINs differ.")


# --- PIN pad ----------------------------------------------------------------------------------------------


class PinPadPinSource:
    """Marker source: the operation hands VERIFY to the reader's keypad instead of asking here."""

    kind = "pinpad"

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


@dataclass
class _Pending:
    request: PinRequest
    done: threading.Event = field(default_factory=threading.Event)
    pins: tuple[str, ...] = ()
    cancelled: bool = False


@dataclass(frozen=True)
class DialogOutcome:
    """What the bridge answers the browser after a form submission."""

    status: int
    html: str


class DialogPinSource:
    """PIN dialog pages at ``<base_url>/pin/<id>``; ``base_url`` is set once the server is bound."""

    kind = "dialog"

    def __init__(self, base_url: str = "", *, on_open: Callable[[str], object] | None = None) -> None:
        self.base_url = base_url
        self._on_open = on_open  # e.g. webbrowser.open, for a bridge run without a page that opens it
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()

    def _wait(self, request: PinRequest, announce: Announce) -> tuple[str, ...]:
        dialog_id = secrets.token_urlsafe(18)  # unguessable: knowing it is what lets a page open the dialog
        pending = _Pending(request)
        with self._lock:
            self._pending[dialog_id] = pending
        url = f"{self.base_url}/pin/{dialog_id}"
        try:
            announce({"pin_url": url})
            if self._on_open is not None:
                self._on_open(url)
            waited = 0.0
            while not pending.done.wait(_POLL):
                waited += _POLL
                if request.cancelled.is_set():
                    raise PinCancelledError("operation cancelled while the PIN dialog was open")
                if waited >= request.timeout:
                    raise PinTimeoutError("no PIN entered in time")
            if pending.cancelled:
                raise PinCancelledError("cancelled in the PIN dialog")
            return pending.pins
        finally:
            with self._lock:
                self._pending.pop(dialog_id, None)

    def ask_pin(self, request: PinRequest, announce: Announce) -> str:
        return self._wait(request, announce)[0]

    def ask_pin_change(self, request: PinRequest, announce: Announce) -> tuple[str, str]:
        old, new = self._wait(request, announce)
        return old, new

    def has(self, dialog_id: str) -> bool:
        with self._lock:
            return dialog_id in self._pending

    def page(self, dialog_id: str) -> DialogOutcome:
        with self._lock:
            pending = self._pending.get(dialog_id)
        if pending is None:
            return DialogOutcome(404, render_closed_page("This PIN request is no longer open."))
        return DialogOutcome(200, render_pin_page(pending.request))

    def submit(self, dialog_id: str, form: Mapping[str, str]) -> DialogOutcome:
        """Take the form; a malformed PIN re-renders the page (no card try is spent on a typo)."""
        with self._lock:
            pending = self._pending.get(dialog_id)
        if pending is None or pending.done.is_set():
            return DialogOutcome(404, render_closed_page("This PIN request is no longer open."))
        if form.get("action") == "cancel":
            pending.cancelled = True
            pending.done.set()
            return DialogOutcome(200, render_closed_page("Cancelled. You can close this window."))
        if pending.request.purpose == "verify":
            pin = form.get("pin", "")
            if not is_valid_pin(pin):
                return DialogOutcome(400, render_pin_page(pending.request, error="The PIN is 6 digits."))
            pending.pins = (pin,)
        else:
            old, new, again = form.get("old_pin", ""), form.get("new_pin", ""), form.get("new_pin_again", "")
            if not (is_valid_pin(old) and is_valid_pin(new)):
                return DialogOutcome(400, render_pin_page(pending.request, error="A PIN is 6 digits."))
            if new != again:
                return DialogOutcome(400, render_pin_page(pending.request, error="The two new PINs differ."))
            pending.pins = (old, new)
        pending.done.set()
        return DialogOutcome(
            200, render_closed_page("Thank you. The card is checking the PIN; you can close this window.")
        )


_STYLE: Final = """
body{font-family:system-ui,sans-serif;font-size:1.5rem;line-height:1.5;margin:2rem;color:#111;background:#fff}
h1{font-size:2rem}label{display:block;font-weight:bold;margin-top:1rem}
input{font-size:2rem;letter-spacing:.5rem;padding:.4rem;width:9ch;border:3px solid #333}
input:focus,button:focus{outline:4px solid #0050b3;outline-offset:2px}
button{font-size:1.5rem;padding:.6rem 1.4rem;margin:1.5rem 1rem 0 0;border:2px solid #111;border-radius:.3rem}
button.primary{background:#0050b3;color:#fff}.error{color:#a00000;font-weight:bold}
"""


def _pin_input(name: str, label: str, autofocus: bool = False) -> str:
    return (
        f'<label for="{name}">{html.escape(label)}</label>'
        f'<input id="{name}" name="{name}" type="password" inputmode="numeric" pattern="[0-9]{{6}}" '
        f'minlength="6" maxlength="6" autocomplete="off" required aria-describedby="hint"'
        f"{' autofocus' if autofocus else ''}>"
    )


def render_pin_page(request: PinRequest, *, error: str | None = None) -> str:
    if request.purpose == "verify":
        title = "Enter your social security card PIN"
        fields = _pin_input("pin", "PIN (6 digits)", autofocus=True)
    else:
        title = "Change your social security card PIN"
        fields = (
            _pin_input("old_pin", "Current PIN (6 digits)", autofocus=True)
            + _pin_input("new_pin", "New PIN (6 digits)")
            + _pin_input("new_pin_again", "New PIN again")
        )
    notices = []
    if request.wrong_before:
        notices.append("The PIN was wrong.")
    if error:
        notices.append(error)
    notice = f'<p class="error" role="alert">{html.escape(" ".join(notices))}</p>' if notices else ""
    tries = "try" if request.tries_left == 1 else "tries"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title><style>{_STYLE}</style></head>
<body><main><h1>{html.escape(title)}</h1>{notice}
<p id="hint">The PIN goes only to your card, not to the web site.
<strong>{request.tries_left} {tries} left</strong> before the card is blocked.</p>
<form method="post">{fields}
<div><button class="primary" type="submit" name="action" value="submit">OK</button>
<button type="submit" name="action" value="cancel" formnovalidate>Cancel</button></div>
</form></main></body></html>
"""


def render_closed_page(message: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>OneCard reader bridge</title><style>{_STYLE}</style></head>
<body><main><p role="status">{html.escape(message)}</p></main></body></html>
"""
