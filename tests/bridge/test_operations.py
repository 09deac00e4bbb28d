"""The bridge's operations (reader_bridge.operations) against cards that misbehave or run out of tries, over
the in-process virtual reader: the PIN is always typed and verified, the blocked card is said once, a card
without the authentication application is unsupported, and the pause for the page's card check."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from reader_bridge.card import SocialSecurityCard
from reader_bridge.emulator import CardEmulator
from reader_bridge.errors import (
    PinBlockedError,
    PinCancelledError,
    PinTimeoutError,
    UnsupportedCardError,
)
from reader_bridge.operations import Operation, OperationManager, Settings, authenticate, change_pin
from reader_bridge.pin import Announce, PinRequest
from reader_bridge.virtual import VIRTUAL_READER_NAME, VirtualTerminal
from sdk.card_auth import verify_card_auth_token
from sdk.card_file import VirtualCardFile
from tests.bridge.faulty_cards import CardWithoutAcse, StickyPinCard
from tests.bridge.pki import NOW, TestCA

ORIGIN = "https://login.onecard.test"
NONCE = bytes(range(64, 96))
QUICK = Settings(card_timeout=2, pin_timeout=5, card_check_timeout=5)


class TypedPins:
    """What the cardholder types, in order; once they have nothing more to type, they press Cancel."""

    kind = "terminal"

    def __init__(self, *pins: str) -> None:
        self.pins = list(pins)
        self.asked: list[int] = []  # tries left shown at each prompt

    def _take(self, request: PinRequest, announce: Announce, count: int) -> list[str]:
        announce({})
        self.asked.append(request.tries_left)
        if len(self.pins) < count:
            raise PinCancelledError("the cardholder cancelled")
        taken, self.pins = self.pins[:count], self.pins[count:]
        return taken

    def ask_pin(self, request: PinRequest, announce: Announce) -> str:
        return self._take(request, announce, 1)[0]

    def ask_pin_change(self, request: PinRequest, announce: Announce) -> tuple[str, str]:
        old, new = self._take(request, announce, 2)
        return old, new


def _types(operation: Operation) -> list[tuple[str, Any]]:
    return [(event.type, event.data.get("tries_left")) for event in operation.events_after(0, 0)]


def _authenticate(terminal: VirtualTerminal, pins: TypedPins, **kwargs: Any) -> tuple[Operation, Any]:
    operation = Operation("op", "authenticate", ORIGIN)
    try:
        return operation, authenticate(
            terminal, pins, operation, origin=ORIGIN, nonce=NONCE, settings=QUICK, **kwargs
        )
    except PinCancelledError as exc:
        return operation, exc


# --- A card that claims its PIN is already verified ------------------------------------------------------


def test_a_card_claiming_a_verified_pin_still_needs_the_typed_pin(card: VirtualCardFile, ca: TestCA) -> None:
    emulator = StickyPinCard(card)
    terminal = VirtualTerminal(emulator)
    _, token = _authenticate(terminal, TypedPins("123456"))
    verify_card_auth_token(
        token, expected_origin=ORIGIN, expected_nonce=NONCE, trusted_issuers=[ca.certificate], now=NOW
    )
    # The fault is real: after the reset that starts the next session, the card still says "verified".
    with terminal.connect(VIRTUAL_READER_NAME) as session:
        ssc = SocialSecurityCard(session)
        ssc.select_acse()
        assert ssc.pin_status().verified

    # Nobody types a PIN: no signature.
    pins = TypedPins()
    operation, outcome = _authenticate(terminal, pins)
    assert isinstance(outcome, PinCancelledError)
    assert pins.asked == [3] and ("enter_pin", 3) in _types(operation)

    # A wrong PIN is VERIFYed on the card (the card counts it, and forgets its stale state): no signature.
    pins = TypedPins("000000")
    operation, outcome = _authenticate(terminal, pins)
    assert isinstance(outcome, PinCancelledError)
    assert _types(operation)[1:] == [("enter_pin", 3), ("pin_wrong", 2), ("enter_pin", 2)]
    assert emulator.card.tries_left == 2

    # The right PIN, typed, logs in.
    operation, token = _authenticate(terminal, TypedPins("123456"))
    assert isinstance(token, dict) and ("enter_pin", 2) in _types(operation)


def test_the_reader_resets_the_card_before_the_operation(card: VirtualCardFile) -> None:
    emulator = StickyPinCard(card)
    before = emulator.resets
    with VirtualTerminal(emulator).connect(VIRTUAL_READER_NAME):
        assert emulator.resets > before


# --- tries running out -----------------------------------------------------------------------------------


@pytest.mark.parametrize("tries_left", [1, 3])
def test_the_last_wrong_pin_is_reported_as_blocked_only(card: VirtualCardFile, tries_left: int) -> None:
    emulator = CardEmulator(card.with_pin_state(pin=card.pin, tries_left=tries_left))
    pins = TypedPins(*["000000"] * tries_left)
    operation = Operation("op", "authenticate", ORIGIN)
    with pytest.raises(PinBlockedError) as blocked:
        authenticate(VirtualTerminal(emulator), pins, operation, origin=ORIGIN, nonce=NONCE, settings=QUICK)
    assert blocked.value.sw == 0x6983 and emulator.card.tries_left == 0
    events = _types(operation)
    assert ("pin_wrong", 0) not in events  # no "0 tries left" before the blocked message
    assert [tries for kind, tries in events if kind == "pin_wrong"] == list(range(tries_left - 1, 0, -1))
    assert [kind for kind, _ in events][-1] == "card_blocked"


def test_change_pin_with_the_last_try_wrong_is_blocked_only(card: VirtualCardFile) -> None:
    emulator = CardEmulator(card.with_pin_state(pin=card.pin, tries_left=1))
    operation = Operation("op", "change_pin", ORIGIN)
    with pytest.raises(PinBlockedError):
        change_pin(VirtualTerminal(emulator), TypedPins("000000", "246810"), operation, settings=QUICK)
    assert _types(operation) == [("reading_card", None), ("enter_pin", 1), ("card_blocked", None)]


# --- a card without the authentication application ------------------------------------------------------


def test_a_card_without_the_authentication_application_is_unsupported(card: VirtualCardFile) -> None:
    emulator = CardWithoutAcse(dataclasses.replace(card, version="2.00"))
    pins = TypedPins("123456")
    operation = Operation("op", "authenticate", ORIGIN)
    with pytest.raises(UnsupportedCardError) as unsupported:
        authenticate(VirtualTerminal(emulator), pins, operation, origin=ORIGIN, nonce=NONCE, settings=QUICK)
    assert unsupported.value.error == "unsupported_card"
    assert "does not support online login" in unsupported.value.description
    assert pins.asked == [] and emulator.card.tries_left == 3  # refused before any PIN


# --- the pause for the page's card check ----------------------------------------------------------------


@contextmanager
def _running(terminal: VirtualTerminal, pins: TypedPins, settings: Settings = QUICK) -> Iterator[Operation]:
    """``authenticate(card_check=True)`` in the bridge's own worker thread (``OperationManager``)."""
    manager = OperationManager()
    operation = manager.start(
        "authenticate",
        ORIGIN,
        lambda op: authenticate(
            terminal, pins, op, origin=ORIGIN, nonce=NONCE, card_check=True, settings=settings
        ),
    )
    try:
        yield operation
    finally:
        manager.cancel(operation)


def _wait_for(operation: Operation, kind: str) -> dict[str, Any]:
    seen = 0
    while True:
        events = operation.events_after(seen, 5)
        assert events, f"no {kind} event"
        for event in events:
            if event.type == kind:
                return event.to_json()
        seen = events[-1].seq


def test_card_check_pauses_before_the_pin_until_the_page_says_go(card: VirtualCardFile, ca: TestCA) -> None:
    pins = TypedPins("123456")
    with _running(VirtualTerminal(CardEmulator(card)), pins) as operation:
        read = _wait_for(operation, "card_read")
        assert base64.b64decode(read["card_certificate"]) == card.certificate_der
        assert read["card_id"] == card.card_id.hex().upper()
        assert operation.events_after(read["seq"], 0.3) == [] and pins.asked == []  # no PIN yet
        operation.allow_continue()
        assert operation.wait_finished(5)
    assert pins.asked == [3] and operation.result is not None
    verify_card_auth_token(
        operation.result,
        expected_origin=ORIGIN,
        expected_nonce=NONCE,
        trusted_issuers=[ca.certificate],
        now=NOW,
    )


def test_card_check_cancelled_or_unanswered_never_asks_the_pin(card: VirtualCardFile) -> None:
    pins = TypedPins("123456")
    with _running(VirtualTerminal(CardEmulator(card)), pins) as operation:
        _wait_for(operation, "card_read")
        operation.request_cancel()
        assert operation.wait_finished(5)
    assert isinstance(operation.error, PinCancelledError) and pins.asked == []

    impatient = dataclasses.replace(QUICK, card_check_timeout=0.2)
    with _running(VirtualTerminal(CardEmulator(card)), pins, impatient) as operation:
        assert operation.wait_finished(5)
    assert isinstance(operation.error, PinTimeoutError) and pins.asked == []
