"""Command and response APDUs and the status-word table (ISO/IEC 7816-4; CARD_PROFILE.md "Status words").

Only short APDUs exist in this profile (Lc, Le ≤ 256). ``CommandAPDU.to_bytes`` renders the same command
for either protocol: in T=0 a command with data carries no Le (the card answers ``61xx`` instead,
CARD_PROFILE "Card and reader basics"), and that difference lives here, once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from reader_bridge.errors import (
    ApplicationLockedError,
    CardFileNotFoundError,
    CardStatusError,
    ClassNotSupportedError,
    ConditionsNotSatisfiedError,
    IncorrectDataError,
    IncorrectParametersError,
    InstructionNotSupportedError,
    PinBlockedError,
    RecordNotFoundError,
    SecurityStatusError,
    UnexpectedStatusError,
    WrongLengthError,
    WrongPinError,
)

Protocol = Literal["T=0", "T=1"]

SW_OK: Final = 0x9000
SW1_MORE_DATA: Final = 0x61  # T=0: GET RESPONSE with Le = SW2
SW1_WRONG_LE: Final = 0x6C  # resend with Le = SW2


class ApduFormatError(ValueError):
    """Bytes that are not a short command APDU (the emulator answers 6700)."""


@dataclass(frozen=True)
class CommandAPDU:
    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None  # None: no response data expected; 256 is encoded as 00

    def __post_init__(self) -> None:
        for value in (self.cla, self.ins, self.p1, self.p2):
            if not 0 <= value <= 0xFF:
                raise ApduFormatError("header bytes must be 0..255")
        if len(self.data) > 255:
            raise ApduFormatError("only short APDUs (Lc ≤ 255)")
        if self.le is not None and not 1 <= self.le <= 256:
            raise ApduFormatError("Le must be 1..256 (256 is sent as 00)")

    def with_le(self, le: int) -> CommandAPDU:
        return CommandAPDU(self.cla, self.ins, self.p1, self.p2, self.data, le)

    def to_bytes(self, protocol: Protocol = "T=1") -> bytes:
        header = bytes((self.cla, self.ins, self.p1, self.p2))
        le = b"" if self.le is None else bytes((self.le & 0xFF,))
        if self.data:
            # T=0 has one length byte (P3); a case-4 command travels without Le and the card says 61xx.
            return header + bytes((len(self.data),)) + self.data + (b"" if protocol == "T=0" else le)
        return header + le

    @classmethod
    def parse(cls, raw: bytes) -> CommandAPDU:
        """Decode the four short cases. A 5-byte command is case 2 (the last byte is Le/P3)."""
        if len(raw) < 4:
            raise ApduFormatError("an APDU has at least 4 bytes")
        cla, ins, p1, p2 = raw[:4]
        body = raw[4:]
        if not body:
            return cls(cla, ins, p1, p2)
        if len(body) == 1:
            return cls(cla, ins, p1, p2, le=body[0] or 256)
        lc = body[0]
        if lc == 0:
            raise ApduFormatError("extended length APDUs are not supported")
        if len(body) == 1 + lc:
            return cls(cla, ins, p1, p2, body[1:])
        if len(body) == 2 + lc:
            return cls(cla, ins, p1, p2, body[1:-1], body[-1] or 256)
        raise ApduFormatError("Lc does not match the data")


@dataclass(frozen=True)
class ResponseAPDU:
    data: bytes
    sw: int

    @property
    def sw1(self) -> int:
        return self.sw >> 8

    @property
    def sw2(self) -> int:
        return self.sw & 0xFF

    def to_bytes(self) -> bytes:
        return self.data + self.sw.to_bytes(2, "big")

    @classmethod
    def parse(cls, raw: bytes) -> ResponseAPDU:
        if len(raw) < 2:
            raise ApduFormatError("a response APDU has at least the two status bytes")
        return cls(bytes(raw[:-2]), int.from_bytes(raw[-2:], "big"))


# Exact status words → error class. Anything not here and not matched by _MASKED is unexpected.
STATUS_ERRORS: Final[Mapping[int, type[CardStatusError]]] = {
    0x6700: WrongLengthError,
    0x6982: SecurityStatusError,
    0x6983: PinBlockedError,
    0x6985: ConditionsNotSatisfiedError,
    0x6A80: IncorrectDataError,
    0x6A82: CardFileNotFoundError,
    0x6A83: RecordNotFoundError,
    0x6A86: IncorrectParametersError,
    0x6D00: InstructionNotSupportedError,
    0x6E00: ClassNotSupportedError,
    0x9303: ApplicationLockedError,
}
# Families carrying a counter in the low nibble: (mask, value) → class. 63Cx = wrong PIN, x tries left.
MASKED_STATUS_ERRORS: Final[Mapping[tuple[int, int], type[CardStatusError]]] = {
    (0xFFF0, 0x63C0): WrongPinError,
}


def error_for_status(sw: int) -> CardStatusError:
    """The error a status word stands for (not for 9000)."""
    cls = STATUS_ERRORS.get(sw)
    if cls is None:
        cls = next(
            (err for (mask, value), err in MASKED_STATUS_ERRORS.items() if sw & mask == value),
            UnexpectedStatusError,
        )
    return cls(sw)


def check_status(response: ResponseAPDU) -> ResponseAPDU:
    """Return ``response`` if it is 9000, raise its error otherwise."""
    if response.sw != SW_OK:
        raise error_for_status(response.sw)
    return response
