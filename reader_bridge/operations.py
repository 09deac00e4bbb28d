"""Card operations of the bridge and their progress events (DESIGN.md §4 steps 3–4).

An operation runs in its own thread and publishes events the page reads by long-polling, modelled on the
AusweisApp SDK's messages: ``no_reader``, ``insert_card``, ``reading_card``, ``card_read`` (the card's
certificate, when the page asked to check the card before the PIN), ``enter_pin`` (with ``tries_left``),
``pin_wrong`` (with ``tries_left``, never 0: a wrong PIN that leaves no try is ``card_blocked``),
``card_blocked`` (with what to do), then ``done`` (with the result) or ``error``. One operation at a time:
the reader and the cardholder's attention are single resources. The page may cancel an operation; a
cancelled one ends within a fraction of a second, which the cancel request waits for, so the next
operation can start at once.

An authentication always has the cardholder type the PIN and always VERIFYs it on the card, even if the
card says its PIN is already verified: the card is reset when the operation takes it, so a card that still
claims so is faulty, and trusting it would log in without a PIN.

Independent of HTTP and of PC/SC: it takes a ``Terminal`` and a ``PinSource``; time comes from a clock
parameter.
"""

from __future__ import annotations

import base64
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from cryptography import x509
from cryptography.x509.oid import NameOID

from reader_bridge.apdu import ResponseAPDU
from reader_bridge.card import SocialSecurityCard
from reader_bridge.channel import CardSession, Terminal
from reader_bridge.errors import (
    BridgeError,
    BusyError,
    CardMismatchError,
    CardResponseError,
    NoCardError,
    NoReaderError,
    PinBlockedError,
    PinCancelledError,
    PinPadUnavailableError,
    PinTimeoutError,
    WrongPinError,
)
from reader_bridge.pin import PINPAD_FIRST, PINPAD_ONLY, VERIFY_TEMPLATE, PinRequest, PinSource
from sdk.card_auth import create_card_auth_token, signed_data
from sdk.clock import Clock

log = logging.getLogger(__name__)

NONCE_LEN: Final = 32
_KEEP_FINISHED: Final = 8  # finished operations kept for late readers of their result
SW_BLOCKED: Final = 0x6983

OperationKind = Literal["authenticate", "change_pin"]
State = Literal["running", "done", "error"]


CANCEL_WAIT: Final = 3.0  # how long a cancel request waits for the operation to end


@dataclass(frozen=True)
class Settings:
    card_timeout: float = 60.0  # waiting for a reader and a card
    # Waiting for the cardholder to type the PIN. Long enough to find the card's PIN letter, short enough
    # that a login page left during PIN entry (without cancelling) does not keep the bridge busy for long.
    pin_timeout: float = 60.0
    card_check_timeout: float = 30.0  # waiting for the page to say the card may go on to the PIN


@dataclass(frozen=True)
class Event:
    seq: int
    type: str
    data: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "type": self.type, **self.data}


@dataclass
class Operation:
    id: str
    kind: OperationKind
    origin: str
    state: State = "running"
    result: dict[str, Any] | None = None
    error: BridgeError | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    _continue_allowed: bool = False
    _events: list[Event] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def emit(self, type_: str, **data: Any) -> None:
        with self._changed:
            self._events.append(Event(len(self._events) + 1, type_, data))
            self._changed.notify_all()

    def events_after(self, seq: int, timeout: float) -> list[Event]:
        """Events with a sequence number above ``seq``; waits up to ``timeout`` s for one (long poll)."""
        with self._changed:
            self._changed.wait_for(lambda: len(self._events) > seq or self.state != "running", timeout)
            return self._events[seq:]

    def finish(self, result: dict[str, Any]) -> None:
        with self._changed:
            self.result = result
            self.state = "done"
            self._events.append(Event(len(self._events) + 1, "done", {"result": result}))
            self._changed.notify_all()

    def fail(self, error: BridgeError) -> None:
        with self._changed:
            self.error = error
            self.state = "error"
            self._events.append(Event(len(self._events) + 1, "error", error.to_dict()))
            self._changed.notify_all()

    def check_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise PinCancelledError("operation cancelled")

    def request_cancel(self) -> None:
        """Ask the worker to stop; it notices at its next step (the PIN dialog looks several times a
        second)."""
        with self._changed:
            self.cancelled.set()
            self._changed.notify_all()

    def allow_continue(self) -> None:
        """The page's go-ahead after ``card_read``: the card may be asked for the PIN."""
        with self._changed:
            self._continue_allowed = True
            self._changed.notify_all()

    def wait_for_continue(self, timeout: float) -> None:
        """Block until ``allow_continue``; ``PinCancelledError`` if cancelled, ``PinTimeoutError`` if the
        page never answers."""
        with self._changed:
            self._changed.wait_for(lambda: self._continue_allowed or self.cancelled.is_set(), timeout)
            allowed = self._continue_allowed
        self.check_cancelled()
        if not allowed:
            raise PinTimeoutError("the page did not confirm the card in time")

    def wait_finished(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the operation to end; whether it has."""
        with self._changed:
            return self._changed.wait_for(lambda: self.state != "running", timeout)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"operation_id": self.id, "kind": self.kind, "state": self.state}
        if self.result is not None:
            body["result"] = self.result
        if self.error is not None:
            body["error"] = self.error.to_dict()
        return body


class OperationManager:
    """Runs one operation at a time in a worker thread; a second one while busy raises ``BusyError``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._operations: OrderedDict[str, Operation] = OrderedDict()
        self._current: Operation | None = None

    @property
    def current(self) -> Operation | None:
        with self._lock:
            return self._current

    def get(self, operation_id: str) -> Operation | None:
        with self._lock:
            return self._operations.get(operation_id)

    def cancel(self, operation: Operation, *, timeout: float = CANCEL_WAIT) -> None:
        """Cancel ``operation`` and wait (bounded) until it has ended and freed the reader, so whoever
        cancelled can start the next operation straight away."""
        operation.request_cancel()
        operation.wait_finished(timeout)

    def start(
        self, kind: OperationKind, origin: str, work: Callable[[Operation], dict[str, Any]]
    ) -> Operation:
        with self._lock:
            if self._current is not None:
                raise BusyError(f"operation {self._current.id} is running")
            operation = Operation(secrets.token_urlsafe(16), kind, origin)
            self._current = operation
            self._operations[operation.id] = operation
            while len(self._operations) > _KEEP_FINISHED:
                self._operations.popitem(last=False)
        thread = threading.Thread(target=self._run, args=(operation, work), name=f"op-{kind}", daemon=True)
        thread.start()
        return operation

    def _run(self, operation: Operation, work: Callable[[Operation], dict[str, Any]]) -> None:
        try:
            result = work(operation)
        except BridgeError as exc:
            log.info("operation %s failed: %s (%s)", operation.id, exc.error, exc.detail)
            outcome: tuple[str, Any] = ("error", exc)
        except Exception:  # a bug must still end the operation with a clean error, never a traceback
            log.exception("operation %s crashed", operation.id)
            outcome = ("error", BridgeError("internal error"))
        else:
            outcome = ("done", result)
        # Free the slot before publishing the outcome: a page that saw "done" may start the next one.
        with self._lock:
            self._current = None
        if outcome[0] == "done":
            operation.finish(outcome[1])
        else:
            operation.fail(outcome[1])


# --- the steps ---------------------------------------------------------------------------------------------


def find_card(terminal: Terminal, operation: Operation, *, timeout: float, clock: Clock) -> str:
    """Wait for a reader with a card; announce ``no_reader`` / ``insert_card`` once each while waiting."""
    deadline = clock() + timeout
    announced: set[str] = set()
    while True:
        operation.check_cancelled()
        readers = terminal.readers()
        with_card = [reader for reader in readers if reader.card_present]
        if with_card:
            # Prefer a real card over a development card when both are present.
            with_card.sort(key=lambda reader: reader.virtual)
            return with_card[0].name
        waiting_for = "no_reader" if not readers else "insert_card"
        if waiting_for not in announced:
            announced.add(waiting_for)
            operation.emit(waiting_for)
        remaining = deadline - clock()
        if remaining <= 0:
            if not readers:
                raise NoReaderError("no reader connected in time")
            raise NoCardError("no card inserted in time")
        terminal.wait_for_change(min(0.5, remaining))


def _blocked(operation: Operation, sw: int = SW_BLOCKED) -> PinBlockedError:
    error = PinBlockedError(sw)
    operation.emit("card_blocked", what_to_do=error.description)
    return error


def _wrong_pin(operation: Operation, error: WrongPinError) -> int:
    """After a wrong PIN: tries left, announced; the last try gone is the card blocked, said once and
    only so (no "0 tries left" before it)."""
    if error.tries_left == 0:
        raise _blocked(operation) from error
    operation.emit("pin_wrong", tries_left=error.tries_left)
    return error.tries_left


def verify_pin(
    card: SocialSecurityCard,
    session: CardSession,
    pin_source: PinSource,
    operation: Operation,
    settings: Settings,
) -> None:
    """Show tries, ask, VERIFY; repeat on a wrong PIN until the card blocks (CARD_PROFILE "PIN").

    Always asks and always VERIFYs. The empty VERIFY is only how the tries are shown: its "already
    verified" (9000) is not believed, since the card was reset when the operation took it (a verified PIN
    implies a full counter, so 9000 shows as all tries left).
    """
    tries_left, wrong_before = card.pin_status().tries_left, False
    while True:
        if tries_left == 0:
            raise _blocked(operation)
        operation.check_cancelled()
        request = PinRequest("verify", tries_left, settings.pin_timeout, operation.cancelled, wrong_before)

        def announce(extra: Mapping[str, object], tries: int = tries_left) -> None:
            operation.emit("enter_pin", tries_left=tries, **extra)

        try:
            pinpad = session.pinpad() if pin_source.kind in (PINPAD_ONLY, PINPAD_FIRST) else None
            if pinpad is None and pin_source.kind == PINPAD_ONLY:
                raise PinPadUnavailableError(f"{session.reader} has no PIN pad")
            if pinpad is not None:
                announce({"pinpad": True})
                # The reader's timer is one byte of seconds (PC/SC part 10 bTimerOut).
                timeout_s = max(1, min(255, int(settings.pin_timeout)))
                raw = pinpad.verify_pin(VERIFY_TEMPLATE, timeout_s=timeout_s)
                try:
                    card.verify_pin_response(ResponseAPDU.parse(raw))
                except ValueError as exc:
                    raise CardResponseError("PIN pad returned no status word") from exc
            else:
                pin = pin_source.ask_pin(request, announce)
                operation.check_cancelled()
                card.verify_pin(pin)
            return
        except WrongPinError as exc:
            tries_left, wrong_before = _wrong_pin(operation, exc), True
        except PinBlockedError as exc:
            raise _blocked(operation, exc.sw) from exc


def _check_certificate(certificate_der: bytes, card_id: bytes) -> None:
    """The bridge's own sanity check (the server checks again): C001 belongs to this card."""
    try:
        certificate = x509.load_der_x509_certificate(certificate_der)
    except ValueError as exc:
        raise CardResponseError("the card's certificate does not parse") from exc
    serials = [attr.value for attr in certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)]
    if serials != [card_id.hex().upper()]:
        raise CardMismatchError("certificate serialNumber does not match EF05 card identification code")


def authenticate(
    terminal: Terminal,
    pin_source: PinSource,
    operation: Operation,
    *,
    origin: str,
    nonce: bytes,
    card_check: bool = False,
    settings: Settings = Settings(),
    clock: Clock = time.monotonic,
) -> dict[str, Any]:
    """DESIGN.md §4 step 3: read EF05 and the certificate, VERIFY the PIN, sign origin and nonce.

    With ``card_check`` the operation stops after reading the certificate: it publishes ``card_read`` so
    the page can ask the IdP whether this card can log in there at all, and asks for the PIN only after
    the page's go-ahead (``Operation.allow_continue``). The card stays taken meanwhile, so the PIN is asked
    for the very card that was checked. The check is the page's convenience; the IdP verifies everything
    again at the end.
    """
    if len(nonce) != NONCE_LEN:
        raise ValueError("the nonce is 32 bytes")
    reader = find_card(terminal, operation, timeout=settings.card_timeout, clock=clock)
    operation.emit("reading_card", reader=reader)
    with terminal.connect(reader) as session:
        card = SocialSecurityCard(session)
        info = card.read_card_info()
        certificate = card.read_certificate()
        _check_certificate(certificate, info.card_id)
        if card_check:
            operation.emit(
                "card_read",
                card_certificate=base64.b64encode(certificate).decode("ascii"),
                card_id=info.card_id.hex().upper(),
            )
            operation.wait_for_continue(settings.card_check_timeout)
        verify_pin(card, session, pin_source, operation, settings)
        operation.check_cancelled()
        signature = card.internal_authenticate(signed_data(origin, nonce))
    return create_card_auth_token(card_certificate_der=certificate, signature=signature, card_id=info.card_id)


def change_pin(
    terminal: Terminal,
    pin_source: PinSource,
    operation: Operation,
    *,
    settings: Settings = Settings(),
    clock: Clock = time.monotonic,
) -> dict[str, Any]:
    """CHANGE PIN under the SSSE application; a wrong old PIN costs a try like a wrong VERIFY."""
    reader = find_card(terminal, operation, timeout=settings.card_timeout, clock=clock)
    operation.emit("reading_card", reader=reader)
    with terminal.connect(reader) as session:
        card = SocialSecurityCard(session)
        card.select_ssse()
        tries_left, wrong_before = card.pin_status().tries_left, False
        while True:
            if tries_left == 0:
                raise _blocked(operation)
            request = PinRequest(
                "change", tries_left, settings.pin_timeout, operation.cancelled, wrong_before
            )

            def announce(extra: Mapping[str, object], tries: int = tries_left) -> None:
                operation.emit("enter_pin", tries_left=tries, purpose="change", **extra)

            old, new = pin_source.ask_pin_change(request, announce)
            operation.check_cancelled()
            try:
                card.change_pin(old, new)
                return {"changed": True}
            except WrongPinError as exc:
                tries_left, wrong_before = _wrong_pin(operation, exc), True
            except PinBlockedError as exc:
                raise _blocked(operation, exc.sw) from exc
