"""The transport interface the card protocol runs over (DESIGN.md §4 "Bridge local API").

Two implementations: ``reader_bridge.transport`` (PC/SC through pyscard, real and virtual readers) and
``reader_bridge.virtual`` (the emulator in-process, for demos without pcscd). ``reader_bridge.card`` only
sees a ``CardChannel``; operations only see a ``Terminal``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol as TypingProtocol

from reader_bridge.apdu import Protocol

HISTORICAL_MARKER = b"ONECARD-SSC3"  # CARD_PROFILE "Card and reader basics": a development card's ATR
VIRTUAL_READER_MARKER = "Virtual PCD"


class CardChannel(TypingProtocol):
    """A card connected for one operation: raw APDU bytes in, response bytes out.

    ``transmit`` raises ``CardRemovedError`` when the card is gone; an answer of no bytes at all means the
    same (``reader_bridge.card`` treats it so: PC/SC gives one when the card is pulled mid-command).
    """

    @property
    def protocol(self) -> Protocol: ...

    def transmit(self, apdu: bytes) -> bytes: ...


class PinPad(TypingProtocol):
    """Secure PIN entry on the reader (PC/SC part 10 FEATURE_VERIFY_PIN_DIRECT)."""

    def verify_pin(self, command_template: bytes, *, timeout_s: int) -> bytes:
        """Let the reader collect the PIN into ``command_template`` and send it; returns the response.
        ``timeout_s``: how long the reader waits for the cardholder's keys."""
        ...


class CardSession(CardChannel, TypingProtocol):
    @property
    def reader(self) -> str: ...

    @property
    def atr(self) -> bytes: ...

    def pinpad(self) -> PinPad | None: ...


@dataclass(frozen=True)
class ReaderState:
    name: str
    card_present: bool
    atr: bytes
    virtual: bool


class Terminal(TypingProtocol):
    """The readers of this machine."""

    def readers(self) -> list[ReaderState]: ...

    def wait_for_change(self, timeout: float) -> None:
        """Return when a reader or card appears or goes, or after ``timeout`` seconds."""
        ...

    def connect(self, reader: str) -> AbstractContextManager[CardSession]:
        """Take the card exclusively for one operation, reset it first and reset it afterwards.

        The first reset ends whatever session the card had before (another program may have verified the
        PIN and left the card so); the last one makes the card forget this operation's verified PIN.
        """
        ...


def is_virtual(reader: str, atr: bytes) -> bool:
    """A development reader or card: the vpcd reader name, or the emulator's historical bytes."""
    return VIRTUAL_READER_MARKER in reader or HISTORICAL_MARKER in atr


def iter_tlv_features(data: bytes) -> Iterator[tuple[int, int]]:
    """PC/SC part 10 GET_FEATURE_REQUEST answer: tag(1) ‖ len(1)=4 ‖ control code (4, big-endian)."""
    index = 0
    while index + 2 <= len(data):
        tag, length = data[index], data[index + 1]
        value = data[index + 2 : index + 2 + length]
        if length == 4 and len(value) == 4:
            yield tag, int.from_bytes(value, "big")
        index += 2 + length
