"""The card protocol of the bridge over any ``CardChannel`` (CARD_PROFILE.md, DESIGN.md §4 step 3).

``SocialSecurityCard.exchange`` is the one place that speaks T=0's dialect: ``61xx`` → GET RESPONSE until
the data is complete, ``6Cxx`` → resend with the right Le. Everything above it sees whole responses and
status words mapped to errors by ``reader_bridge.apdu``. Every answer from the card is checked before use
(TLV tags and lengths, BCD dates, certificate length) — the card is outside input too (DESIGN.md §8).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from reader_bridge.apdu import (
    SW1_MORE_DATA,
    SW1_WRONG_LE,
    SW_OK,
    CommandAPDU,
    ResponseAPDU,
    check_status,
    error_for_status,
)
from reader_bridge.channel import CardChannel
from reader_bridge.errors import (
    CardFileNotFoundError,
    CardRemovedError,
    CardResponseError,
    InvalidPinFormatError,
    PinBlockedError,
    UnsupportedCardError,
    WrongPinError,
)
from reader_bridge.profile import (
    ACSE_AID,
    C001,
    EF05,
    EF05_CARD_ID,
    EF05_EXPIRY,
    EF05_VERSION,
    PIN_TRIES,
    SSSE_AID,
)

MAX_CERTIFICATE_LEN: Final = 4096
_MAX_CHAINED_RESPONSES: Final = 64  # 64 GET RESPONSEs of 256 bytes is far beyond any answer here


@dataclass(frozen=True)
class CardInfo:
    """EF05 items the bridge uses; the card number is not read (closed on 3.00 cards)."""

    card_id: bytes
    version: str
    expiry_date: dt.date


@dataclass(frozen=True)
class PinStatus:
    verified: bool
    tries_left: int  # 0 when blocked

    @property
    def blocked(self) -> bool:
        return self.tries_left == 0 and not self.verified


def encode_pin(pin: str) -> bytes:
    """6 decimal digits → 3 BCD bytes (CARD_PROFILE "PIN")."""
    if len(pin) != 6 or not pin.isascii() or not pin.isdigit():
        raise InvalidPinFormatError("PIN is not 6 digits")
    return bytes.fromhex(pin)


def _bcd_date(value: bytes) -> dt.date:
    text = value.hex()
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError as exc:
        raise CardResponseError("bad BCD date on the card") from exc


class SocialSecurityCard:
    """Commands of CARD_PROFILE over one channel; counts APDU round trips for the benchmark."""

    def __init__(self, channel: CardChannel) -> None:
        self._channel = channel
        self.round_trips = 0

    def _transmit(self, command: CommandAPDU) -> ResponseAPDU:
        self.round_trips += 1
        raw = self._channel.transmit(command.to_bytes(self._channel.protocol))
        if not raw:
            # A card always answers at least a status word. Nothing at all is what pcscd hands back when the
            # card is pulled while it works on a command (the transmit itself "succeeds"): the card is gone,
            # not confused, and the cardholder's next step is to insert it again.
            raise CardRemovedError("empty response: the card went away during the command")
        try:
            return ResponseAPDU.parse(raw)
        except ValueError as exc:
            raise CardResponseError("response shorter than a status word") from exc

    def exchange(self, command: CommandAPDU) -> ResponseAPDU:
        """Send ``command`` and return the complete response, T=0 chaining resolved (SW not checked)."""
        response = self._transmit(command)
        if response.sw1 == SW1_WRONG_LE:
            # The card names the right Le; resend once (a second 6C would be a broken card).
            response = self._transmit(command.with_le(response.sw2 or 256))
        data = response.data
        for _ in range(_MAX_CHAINED_RESPONSES):
            if response.sw1 != SW1_MORE_DATA:
                return ResponseAPDU(data, response.sw)
            response = self._transmit(CommandAPDU(0x00, 0xC0, 0x00, 0x00, le=response.sw2 or 256))
            if response.sw1 == SW1_WRONG_LE:
                response = self._transmit(CommandAPDU(0x00, 0xC0, 0x00, 0x00, le=response.sw2 or 256))
            data += response.data
        raise CardResponseError("the card keeps announcing more data")

    def _command(self, command: CommandAPDU) -> bytes:
        return check_status(self.exchange(command)).data

    # --- applications and files -------------------------------------------------------------------------

    def select_ssse(self) -> None:
        self._command(CommandAPDU(0x00, 0xA4, 0x04, 0x00, SSSE_AID))

    def select_acse(self) -> None:
        """SELECT the authentication application; a card without one (1.00/2.00 cards) is unsupported."""
        try:
            self._command(CommandAPDU(0x00, 0xA4, 0x04, 0x00, ACSE_AID))
        except CardFileNotFoundError as exc:
            # The social security application answered (EF05 was read), so this is a social security card,
            # just one without the certificate and key that online login needs.
            raise UnsupportedCardError("SELECT ACSE answered 6A82: no authentication application") from exc

    def select_file(self, fid: int) -> None:
        self._command(CommandAPDU(0x00, 0xA4, 0x02, 0x00, fid.to_bytes(2, "big")))

    def read_record(self, rec: int, *, tag: int | None = None) -> bytes:
        """Record ``rec`` of the current EF by number; the TLV value after checking its tag (EF05: tag =
        record number)."""
        tlv = self._command(CommandAPDU(0x00, 0xB2, rec, 0x04, le=256))
        if len(tlv) < 2 or tlv[1] != len(tlv) - 2:
            raise CardResponseError(f"record {rec} is not one TLV")
        if tlv[0] != (rec if tag is None else tag):
            raise CardResponseError(f"record {rec} has an unexpected tag")
        return tlv[2:]

    def read_card_info(self) -> CardInfo:
        """SELECT SSSE, EF05 and read the card identification code (01), version (03) and expiry (06)."""
        self.select_ssse()
        self.select_file(EF05)
        card_id = self.read_record(EF05_CARD_ID)
        if len(card_id) != 16:
            raise CardResponseError("card identification code is not 16 bytes")
        version = self.read_record(EF05_VERSION)
        expiry = self.read_record(EF05_EXPIRY)
        if len(expiry) != 4:
            raise CardResponseError("expiry date is not 4 BCD bytes")
        try:
            version_text = version.decode("ascii")
        except UnicodeDecodeError as exc:
            raise CardResponseError("specification version is not ASCII") from exc
        return CardInfo(card_id, version_text, _bcd_date(expiry))

    def read_certificate(self) -> bytes:
        """SELECT ACSE, C001 and READ BINARY by chunks; the DER header tells how much to read."""
        self.select_acse()
        self.select_file(C001)
        content = self._command(CommandAPDU(0x00, 0xB0, 0x00, 0x00, le=256))
        total = _der_length(content)
        while len(content) < total:
            offset = len(content)
            chunk = self._command(CommandAPDU(0x00, 0xB0, offset >> 8, offset & 0xFF, le=256))
            if not chunk:
                raise CardResponseError("empty certificate chunk")
            content += chunk
        if len(content) != total:
            raise CardResponseError("certificate longer than its DER header says")
        return content

    # --- PIN and signing ----------------------------------------------------------------------------------

    def pin_status(self) -> PinStatus:
        """Empty VERIFY: tries left without consuming one (CARD_PROFILE "PIN").

        ``verified`` is the card's own claim; an authentication never relies on it (see
        ``reader_bridge.operations.verify_pin``)."""
        response = self.exchange(CommandAPDU(0x00, 0x20, 0x00, 0x00))
        if response.sw == SW_OK:
            return PinStatus(True, PIN_TRIES)
        error = error_for_status(response.sw)
        if isinstance(error, WrongPinError):
            return PinStatus(False, error.tries_left)
        if isinstance(error, PinBlockedError):
            return PinStatus(False, 0)
        raise error

    def verify_pin(self, pin: str) -> None:
        """VERIFY; raises ``WrongPinError`` (``tries_left``) or ``PinBlockedError``."""
        self._command(CommandAPDU(0x00, 0x20, 0x00, 0x00, encode_pin(pin)))

    def verify_pin_response(self, response: ResponseAPDU) -> None:
        """Check the answer of a VERIFY sent by a PIN pad."""
        check_status(response)

    def change_pin(self, old_pin: str, new_pin: str) -> None:
        self._command(
            CommandAPDU(0x80, 0x5E, 0x01, 0x00, encode_pin(old_pin) + b"\xff" + encode_pin(new_pin))
        )

    def internal_authenticate(self, data: bytes) -> bytes:
        """The card's ECDSA P-256 signature (raw r ‖ s) over 64 bytes; needs the PIN verified."""
        if len(data) != 64:
            raise ValueError("INTERNAL AUTHENTICATE signs exactly 64 bytes")
        signature = self._command(CommandAPDU(0x00, 0x88, 0x00, 0x01, data, le=256))
        if len(signature) != 64:
            raise CardResponseError("signature is not 64 bytes")
        return signature


def _der_length(head: bytes) -> int:
    """Total length of the DER SEQUENCE starting ``head`` (tag 30, definite length)."""
    if len(head) < 2 or head[0] != 0x30:
        raise CardResponseError("certificate file does not hold a DER SEQUENCE")
    first = head[1]
    if first < 0x80:
        total = 2 + first
    else:
        count = first & 0x7F
        if count == 0 or count > 2 or len(head) < 2 + count:
            raise CardResponseError("unsupported DER length in the certificate file")
        total = 2 + count + int.from_bytes(head[2 : 2 + count], "big")
    if total > MAX_CERTIFICATE_LEN:
        raise CardResponseError("certificate too large")
    return total
