"""The virtual social security card: CARD_PROFILE.md, APDU bytes in, response bytes out.

Implements "Card and reader basics" (T=0 and T=1, Le rules, 61xx/6Cxx, GET RESPONSE), the SSSE application
(EF05/EF06, READ RECORD), the PIN (VERIFY, empty VERIFY, CHANGE PIN, tries, blocking), the ACSE application
(C001 READ BINARY, INTERNAL AUTHENTICATE) and the status words. Used by ``reader_bridge.vpcd`` behind a real
PC/SC stack and by ``reader_bridge.virtual`` in-process.

Where the profile leaves an order of checks open, the emulator checks, for every command: class (6E00),
instruction (6D00), then the selected application/file (6985), then P1/P2 (6A86), then lengths (6700),
then data format (6A80), then the PIN (6982/6983). One exception is written into the profile itself: a
blocked PIN answers 6983 to every VERIFY (and, alike, CHANGE PIN) once an application is selected, before
any P1/P2, length or format check.

The PIN state is card-wide and lives only until power-off or reset; the tries counter and PIN changes are
persisted through ``store`` (the card file), like a chip's EEPROM.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from reader_bridge.apdu import ApduFormatError, CommandAPDU, Protocol
from reader_bridge.channel import HISTORICAL_MARKER
from reader_bridge.profile import ACSE_AID, C001, EF05, EF06, MAX_BINARY_CHUNK, PIN_TRIES, SSSE_AID
from sdk.card_file import VirtualCardFile

SW_OK: Final = 0x9000
SW_WRONG_LENGTH: Final = 0x6700
SW_SECURITY: Final = 0x6982
SW_BLOCKED: Final = 0x6983
SW_CONDITIONS: Final = 0x6985
SW_BAD_DATA: Final = 0x6A80
SW_NOT_FOUND: Final = 0x6A82
SW_NO_RECORD: Final = 0x6A83
SW_BAD_P1P2: Final = 0x6A86
SW_BAD_INS: Final = 0x6D00
SW_BAD_CLA: Final = 0x6E00


class App(Enum):
    SSSE = "ssse"
    ACSE = "acse"


@dataclass(frozen=True)
class _Answer:
    data: bytes
    sw: int


def _sw(sw: int) -> _Answer:
    return _Answer(b"", sw)


def atr_for(protocol: Protocol) -> bytes:
    """ATR with the historical bytes "ONECARD-SSC3". T=1: TD1 announces T=0 then T=1 (so a TCK follows);
    T=0: no interface bytes at all, T=0 implied and no TCK (ISO/IEC 7816-3 §8.2)."""
    k = len(HISTORICAL_MARKER)
    if protocol == "T=0":
        return bytes((0x3B, k)) + HISTORICAL_MARKER
    body = bytes((0x80 | k, 0x80, 0x01)) + HISTORICAL_MARKER
    tck = 0
    for byte in body:
        tck ^= byte
    return bytes((0x3B,)) + body + bytes((tck,))


def _bcd_date(value: dt.date) -> bytes:
    return bytes.fromhex(value.strftime("%Y%m%d"))


def _pin_from_bcd(data: bytes) -> str | None:
    digits = data.hex()
    return digits if len(data) == 3 and digits.isdigit() else None


class CardEmulator:
    """One virtual card. Thread-safe: vpcd and a test may call it from different threads."""

    def __init__(
        self,
        card: VirtualCardFile,
        *,
        protocol: Protocol | None = None,
        store: Callable[[VirtualCardFile], None] | None = None,
    ) -> None:
        self._card = card
        self.protocol: Protocol = protocol or card.protocol
        self._store = store
        self._lock = threading.Lock()
        self._key = card.private_key()
        self._ef05 = self._build_ef05(card)
        self._ef06 = self._build_ef06(card)
        self._powered = True
        self._reset_state()

    # --- session ------------------------------------------------------------------------------------

    @property
    def card(self) -> VirtualCardFile:
        return self._card

    @property
    def atr(self) -> bytes:
        return atr_for(self.protocol)

    def power_on(self) -> bytes:
        with self._lock:
            self._powered = True
            self._reset_state()
            return self.atr

    def power_off(self) -> None:
        with self._lock:
            self._powered = False
            self._reset_state()

    def reset(self) -> bytes:
        return self.power_on()

    def _reset_state(self) -> None:
        # CARD_PROFILE: a session ends with power-off or reset; every security state is lost then.
        self._app: App | None = None
        self._ef: int | None = None
        self._pin_verified = False
        self._pending = b""

    # --- persistent PIN state ---------------------------------------------------------------------------

    def _save_pin(self, pin: str, tries_left: int) -> None:
        self._card = self._card.with_pin_state(pin=pin, tries_left=tries_left)
        if self._store is not None:
            self._store(self._card)

    # --- files ------------------------------------------------------------------------------------------

    @staticmethod
    def _build_ef05(card: VirtualCardFile) -> dict[int, tuple[int, bytes]]:
        values = [
            card.card_id,
            card.card_type.encode("ascii"),
            card.version.encode("ascii"),
            card.org_code,
            _bcd_date(card.issue_date),
            _bcd_date(card.expiry_date),
            card.card_number.encode("ascii"),
        ]
        return {rec: (rec, value) for rec, value in enumerate(values, start=1)}

    @staticmethod
    def _build_ef06(card: VirtualCardFile) -> dict[int, tuple[int, bytes]] | None:
        holder = card.holder
        if holder is None:
            return None
        values = [
            (0x08, holder.ssn.encode("ascii")),
            (0x09, holder.name.encode("gbk").ljust(30, b"\x00")),
            (0x4E, holder.name_extension.encode("gbk").ljust(20, b"\x00")),
            (0x0A, holder.gender.encode("ascii")),
            (0x0B, bytes((holder.ethnic_group,))),
            (0x0C, bytes.fromhex(holder.birthplace)),
            (0x0D, _bcd_date(holder.birth_date)),
        ]
        return dict(enumerate(values, start=1))

    def _record_closed(self, ef: int, rec: int) -> bool:
        # Version 3.00: EF05 rec 07 and all of EF06 need the issuer's external authentication, which this
        # profile does not offer, so they stay closed (CARD_PROFILE "EF06").
        return self._card.version == "3.00" and (ef == EF06 or (ef == EF05 and rec == 7))

    # --- APDU processing --------------------------------------------------------------------------------

    def process(self, raw: bytes) -> bytes:
        """One command APDU → one response APDU (data ‖ SW1 SW2)."""
        with self._lock:
            if not self._powered:
                self._powered = True
                self._reset_state()
            answer = self._process(raw)
            return answer.data + answer.sw.to_bytes(2, "big")

    def _process(self, raw: bytes) -> _Answer:
        try:
            command = CommandAPDU.parse(raw)
        except ApduFormatError:
            self._pending = b""
            return _sw(SW_WRONG_LENGTH)
        if command.cla not in (0x00, 0x80):
            self._pending = b""
            return _sw(SW_BAD_CLA)
        handler = _HANDLERS.get((command.cla, command.ins))
        if handler is None:
            self._pending = b""
            return _sw(SW_BAD_INS)
        if handler is not CardEmulator._get_response:
            self._pending = b""  # any command other than GET RESPONSE drops pending data
        answer = handler(self, command)
        return self._deliver(command, answer)

    def _deliver(self, command: CommandAPDU, answer: _Answer) -> _Answer:
        """T=0: every response with data first answers 61xx and waits for GET RESPONSE."""
        if self.protocol == "T=0" and answer.data and command.ins != 0xC0:
            self._pending = answer.data
            return _sw(0x6100 | (len(answer.data) & 0xFF))
        return answer

    def _check_le(self, command: CommandAPDU, available: int) -> _Answer | None:
        """Le rules for a command whose answer has exactly ``available`` bytes (CARD_PROFILE basics)."""
        if command.le is None:
            return None if command.data else _sw(SW_WRONG_LENGTH)
        if self.protocol == "T=1" and command.le == 256:
            return None  # "all there is"
        if command.le != available:
            return _sw(0x6C00 | (available & 0xFF))
        return None

    # SELECT ---------------------------------------------------------------------------------------------

    def _select(self, command: CommandAPDU) -> _Answer:
        if command.p2 != 0x00 or command.p1 not in (0x04, 0x02):
            return _sw(SW_BAD_P1P2)
        if command.p1 == 0x04:
            app = {SSSE_AID: App.SSSE, ACSE_AID: App.ACSE}.get(command.data)
            if app is None:
                return _sw(SW_NOT_FOUND)  # a failed SELECT leaves the current selection as it was
            self._app, self._ef = app, None
            return _sw(SW_OK)
        if len(command.data) != 2:
            return _sw(SW_WRONG_LENGTH)
        fid = int.from_bytes(command.data, "big")
        if fid not in self._files_of(self._app):
            return _sw(SW_NOT_FOUND)
        self._ef = fid
        return _sw(SW_OK)

    def _files_of(self, app: App | None) -> set[int]:
        if app is App.SSSE:
            return {EF05} if self._ef06 is None else {EF05, EF06}
        if app is App.ACSE:
            return {C001}
        return set()  # EFs are only reachable under an application

    # READ RECORD ----------------------------------------------------------------------------------------

    def _read_record(self, command: CommandAPDU) -> _Answer:
        records = {EF05: self._ef05, EF06: self._ef06}.get(self._ef or 0)
        if records is None:
            return _sw(SW_CONDITIONS)
        if command.p2 == 0x04:
            rec = command.p1
        elif command.p2 == 0x00:
            rec = next((number for number, (tag, _) in records.items() if tag == command.p1), 0)
        else:
            return _sw(SW_BAD_P1P2)
        if rec not in records:
            return _sw(SW_NO_RECORD)
        assert self._ef is not None
        if self._record_closed(self._ef, rec):
            return _sw(SW_SECURITY)
        tag, value = records[rec]
        tlv = bytes((tag, len(value))) + value
        return self._check_le(command, len(tlv)) or _Answer(tlv, SW_OK)

    # READ BINARY ----------------------------------------------------------------------------------------

    def _read_binary(self, command: CommandAPDU) -> _Answer:
        if self._ef != C001:
            return _sw(SW_CONDITIONS)
        if command.p1 & 0x80:
            return _sw(SW_BAD_P1P2)  # short EF identifiers are not part of this profile
        content = self._card.certificate_der
        offset = (command.p1 << 8) | command.p2
        if offset >= len(content):
            return _sw(SW_BAD_P1P2)
        if command.le is None or command.data:
            return _sw(SW_WRONG_LENGTH)
        available = min(MAX_BINARY_CHUNK, len(content) - offset)
        if self.protocol == "T=1" and command.le == 256:
            size = available
        elif command.le > available:
            return _sw(0x6C00 | available)
        else:
            size = command.le  # a shorter read is a legitimate partial read of a transparent file
        return _Answer(content[offset : offset + size], SW_OK)

    # GET RESPONSE ---------------------------------------------------------------------------------------

    def _get_response(self, command: CommandAPDU) -> _Answer:
        if not self._pending:
            return _sw(SW_CONDITIONS)
        if command.p1 or command.p2:
            return _sw(SW_BAD_P1P2)
        if command.data or command.le is None:
            return _sw(SW_WRONG_LENGTH)
        pending = self._pending
        if command.le > len(pending):
            return _sw(0x6C00 | (len(pending) & 0xFF))
        chunk, self._pending = pending[: command.le], pending[command.le :]
        if self._pending:
            return _Answer(chunk, 0x6100 | (len(self._pending) & 0xFF))
        return _Answer(chunk, SW_OK)

    # PIN ------------------------------------------------------------------------------------------------

    def _tries_status(self) -> _Answer:
        if self._card.tries_left == 0:
            return _sw(SW_BLOCKED)
        return _sw(0x63C0 | self._card.tries_left)

    def _check_pin(self, candidate: str) -> _Answer | None:
        """Compare like a chip: a wrong PIN costs a try and drops the verified state."""
        if candidate == self._card.pin:
            if self._card.tries_left != PIN_TRIES:
                self._save_pin(self._card.pin, PIN_TRIES)
            self._pin_verified = True
            return None
        self._pin_verified = False
        self._save_pin(self._card.pin, self._card.tries_left - 1)
        return _sw(0x63C0 | self._card.tries_left)

    def _verify(self, command: CommandAPDU) -> _Answer:
        if self._app is None:
            return _sw(SW_CONDITIONS)
        if self._card.tries_left == 0:
            return _sw(SW_BLOCKED)
        if command.p1 != 0x00 or command.p2 != 0x00:
            return _sw(SW_BAD_P1P2)
        if not command.data:
            # "00 20 00 00" and "00 20 00 00 00" alike: report, consume nothing.
            return _sw(SW_OK) if self._pin_verified else self._tries_status()
        if len(command.data) != 3:
            return _sw(SW_WRONG_LENGTH)
        pin = _pin_from_bcd(command.data)
        if pin is None:
            return _sw(SW_BAD_DATA)
        return self._check_pin(pin) or _sw(SW_OK)

    def _change_pin(self, command: CommandAPDU) -> _Answer:
        if self._app is None:
            return _sw(SW_CONDITIONS)
        if self._card.tries_left == 0:
            return _sw(SW_BLOCKED)
        if command.p1 != 0x01 or command.p2 != 0x00:
            return _sw(SW_BAD_P1P2)
        if len(command.data) != 7:
            return _sw(SW_WRONG_LENGTH)
        old, separator, new = (
            _pin_from_bcd(command.data[:3]),
            command.data[3],
            _pin_from_bcd(command.data[4:]),
        )
        if old is None or new is None or separator != 0xFF:
            return _sw(SW_BAD_DATA)
        failed = self._check_pin(old)
        if failed is not None:
            return failed
        self._save_pin(new, PIN_TRIES)
        self._pin_verified = True  # CARD_PROFILE: a successful CHANGE PIN leaves the PIN verified
        return _sw(SW_OK)

    # INTERNAL AUTHENTICATE ------------------------------------------------------------------------------

    def _internal_authenticate(self, command: CommandAPDU) -> _Answer:
        if self._app is not App.ACSE:
            return _sw(SW_CONDITIONS)
        if command.p1 != 0x00 or command.p2 != 0x01:
            return _sw(SW_BAD_P1P2)
        if len(command.data) != 64:
            return _sw(SW_WRONG_LENGTH)
        if self.protocol == "T=1":
            if command.le is None:
                return _sw(SW_WRONG_LENGTH)
            if command.le not in (256, 64):
                return _sw(0x6C40)
        # In T=0 an Le byte (if a sloppy reader sent one) is ignored: the answer is 61 40 either way.
        if not self._pin_verified:
            return _sw(SW_SECURITY)
        der = self._key.sign(command.data, ec.ECDSA(hashes.SHA256()))
        r, s = utils.decode_dss_signature(der)
        return _Answer(r.to_bytes(32, "big") + s.to_bytes(32, "big"), SW_OK)

    # EXTERNAL AUTHENTICATE / GET CHALLENGE are outside the profile: they fall through to 6D00.


_HANDLERS: Final[dict[tuple[int, int], Callable[[CardEmulator, CommandAPDU], _Answer]]] = {
    (0x00, 0xA4): CardEmulator._select,
    (0x00, 0xB2): CardEmulator._read_record,
    (0x00, 0xB0): CardEmulator._read_binary,
    (0x00, 0xC0): CardEmulator._get_response,
    (0x00, 0x20): CardEmulator._verify,
    (0x80, 0x5E): CardEmulator._change_pin,
    (0x00, 0x88): CardEmulator._internal_authenticate,
}
