"""Deliberately wrong cards for the tests: the real card emulator with one fault each, of the kinds a
bridge meets in the field. Never used outside the tests; ``reader_bridge.emulator`` itself follows
CARD_PROFILE.md."""

from __future__ import annotations

from collections.abc import Callable

from reader_bridge.apdu import CommandAPDU, Protocol
from reader_bridge.emulator import CardEmulator
from reader_bridge.profile import ACSE_AID
from sdk.card_file import VirtualCardFile

SELECT_ACSE = CommandAPDU(0x00, 0xA4, 0x04, 0x00, ACSE_AID)


class StickyPinCard(CardEmulator):
    """A faulty card that keeps its "PIN verified" state over a reset and a power cycle (CARD_PROFILE says
    every security state is lost then). Only a wrong PIN clears it. ``resets`` counts the resets and power
    cycles it went through, so a test can see that the bridge reset it."""

    resets = 0

    def _reset_state(self) -> None:
        kept = getattr(self, "_pin_verified", False)
        super()._reset_state()
        self._pin_verified = kept
        self.resets += 1


class CardWithoutAcse(CardEmulator):
    """A social security card without the authentication application (as 1.00 and 2.00 cards are):
    SELECT ACSE answers 6A82; everything else as the profile says."""

    def process(self, raw: bytes) -> bytes:
        if CommandAPDU.parse(raw) == SELECT_ACSE:
            return bytes.fromhex("6A82")
        return super().process(raw)


class PulledMidCommand(CardEmulator):
    """A card the cardholder pulls out while it works on the first command with instruction ``ins``:
    ``pull`` (e.g. the vpcd client's ``stop``) runs before the card answers."""

    def __init__(self, card: VirtualCardFile, *, ins: int, protocol: Protocol | None = None) -> None:
        super().__init__(card, protocol=protocol)
        self.ins = ins
        self.pull: Callable[[], None] | None = None

    def process(self, raw: bytes) -> bytes:
        if self.pull is not None and len(raw) >= 2 and raw[1] == self.ins:
            pull, self.pull = self.pull, None
            pull()
        return super().process(raw)
