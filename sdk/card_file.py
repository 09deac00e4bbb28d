"""The virtual card file: a development social security card as JSON (CARD_PROFILE.md "Virtual card file").

``onecard cards issue`` writes it and the reader bridge's card emulator loads it. It holds what a chip
holds: the ATR protocol, the EF05 records (CARD_PROFILE "EF05"), optionally the EF06 cardholder records
("EF06"), the PIN and its tries counter ("PIN"), and the ACSE certificate with its P-256 private key
("Authentication application"). In production the key pair is generated on the chip and this file does not
exist.

The PIN is stored as its six digits, not as a hash: the emulator must compare a PIN the way a chip does
(including the tries counter), and the file already carries the signing key in the clear, so hashing the PIN
would protect nothing. A card file is a development artefact; never issue one for a real citizen.

JSON layout (``"format": "onecard-virtual-card/1"``)::

    {"format": "onecard-virtual-card/1", "protocol": "T=1",
     "ef05": {"card_id": "<32 hex>", "card_type": "3", "version": "3.00", "org_code": "<24 hex>",
              "issue_date": "2024-01-01", "expiry_date": "2034-01-01", "card_number": "X00000019"},
     "ef06": null | {"ssn": "<18 chars>", "name": "...", "name_extension": "", "gender": "1",
                     "ethnic_group": 1, "birthplace": "420100", "birth_date": "1960-05-01"},
     "pin": {"digits": "123456", "tries_left": 3},
     "certificate": "<PEM, or base64 DER>", "private_key": "<PEM PKCS#8>"}
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import os
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sdk.errors import OneCardError

FORMAT: Final = "onecard-virtual-card/1"
Protocol = Literal["T=0", "T=1"]
PROTOCOLS: Final[tuple[Protocol, ...]] = ("T=0", "T=1")
PIN_TRIES: Final = 3  # CARD_PROFILE "PIN": tries 3
ISSUER_RID: Final = bytes.fromhex("D156000005")  # the RID inside the card identification code
VERSIONS: Final = ("1.00", "2.00", "3.00")
NAME_LEN: Final = 30  # EF06 tag 09, GBK padded with 00
NAME_EXTENSION_LEN: Final = 20  # EF06 tag 4E


class InvalidCardFileError(OneCardError):
    error = "invalid_card_file"
    description = "The virtual card file is malformed."
    status_code = 400


def _fail(message: str) -> InvalidCardFileError:
    return InvalidCardFileError(message, description=f"The virtual card file is malformed: {message}.")


def _is_bcd(data: bytes) -> bool:
    return all((b >> 4) <= 9 and (b & 0x0F) <= 9 for b in data)


def generate_card_id(region_code: str) -> bytes:
    """A fresh card identification code: region (3 bytes BCD) ‖ RID ‖ 8 random chip-unique bytes."""
    if len(region_code) != 6 or not region_code.isdigit():
        raise _fail("region code must be 6 digits (GB/T 2260)")
    return bytes.fromhex(region_code) + ISSUER_RID + secrets.token_bytes(8)


def validate_card_id(card_id: bytes) -> None:
    """The 16-byte card identification code of CARD_PROFILE "EF05" rec 01."""
    if len(card_id) != 16:
        raise _fail("card_id must be 16 bytes")
    if not _is_bcd(card_id[:3]):
        raise _fail("card_id must start with a BCD region code")
    if card_id[3:8] != ISSUER_RID:
        raise _fail("card_id must carry the RID D156000005 after the region code")


def validate_pin(pin: str) -> None:
    if len(pin) != 6 or not pin.isascii() or not pin.isdigit():
        raise _fail("the PIN must be 6 decimal digits")


@dataclass(frozen=True)
class CardHolder:
    """EF06 (cardholder data). On version 3.00 cards the emulator keeps it closed (6982)."""

    ssn: str  # tag 08: the 18-character ID number
    name: str  # tag 09: GBK, at most 30 bytes
    gender: Literal["1", "2"]  # tag 0A
    ethnic_group: int  # tag 0B, GB 3304 code, 1 byte
    birthplace: str  # tag 0C: 6-digit division code
    birth_date: dt.date  # tag 0D
    name_extension: str = ""  # tag 4E: GBK, at most 20 bytes

    def __post_init__(self) -> None:
        if len(self.ssn) != 18 or not self.ssn.isascii():
            raise _fail("ef06.ssn must be 18 ASCII characters")
        for text, size, label in (
            (self.name, NAME_LEN, "name"),
            (self.name_extension, NAME_EXTENSION_LEN, "name_extension"),
        ):
            try:
                encoded = text.encode("gbk")
            except UnicodeEncodeError as exc:
                raise _fail(f"ef06.{label} must be encodable in GBK") from exc
            if len(encoded) > size:
                raise _fail(f"ef06.{label} must fit in {size} GBK bytes")
        if self.gender not in ("1", "2"):
            raise _fail("ef06.gender must be '1' or '2'")
        if not 0 <= self.ethnic_group <= 255:
            raise _fail("ef06.ethnic_group must fit in one byte")
        if len(self.birthplace) != 6 or not self.birthplace.isdigit():
            raise _fail("ef06.birthplace must be a 6-digit division code")

    def to_json(self) -> dict[str, Any]:
        return {
            "ssn": self.ssn,
            "name": self.name,
            "name_extension": self.name_extension,
            "gender": self.gender,
            "ethnic_group": self.ethnic_group,
            "birthplace": self.birthplace,
            "birth_date": self.birth_date.isoformat(),
        }


@dataclass(frozen=True)
class VirtualCardFile:
    """A development card: everything the emulator needs, validated on construction."""

    protocol: Protocol
    card_id: bytes
    card_type: str
    version: str
    org_code: bytes
    issue_date: dt.date
    expiry_date: dt.date
    card_number: str
    holder: CardHolder | None
    pin: str
    tries_left: int
    certificate_der: bytes
    private_key_pem: bytes

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise _fail("protocol must be 'T=0' or 'T=1'")
        validate_card_id(self.card_id)
        if len(self.card_type) != 1 or not self.card_type.isascii():
            raise _fail("card_type must be one ASCII character")
        if self.version not in VERSIONS:
            raise _fail("version must be 1.00, 2.00 or 3.00")
        if len(self.org_code) != 12:
            raise _fail("org_code must be 12 bytes")
        if self.expiry_date <= self.issue_date:
            raise _fail("expiry_date must be after issue_date")
        if len(self.card_number) != 9 or not self.card_number.isascii() or not self.card_number.isprintable():
            raise _fail("card_number must be 9 printable ASCII characters")
        validate_pin(self.pin)
        if not 0 <= self.tries_left <= PIN_TRIES:
            raise _fail(f"tries_left must be between 0 and {PIN_TRIES}")
        self._validate_key_and_certificate()

    def _validate_key_and_certificate(self) -> None:
        try:
            certificate = x509.load_der_x509_certificate(self.certificate_der)
        except ValueError as exc:
            raise _fail("certificate is not an X.509 certificate in DER") from exc
        try:
            key = serialization.load_pem_private_key(self.private_key_pem, password=None)
        except (ValueError, TypeError) as exc:
            raise _fail("private_key must be an unencrypted PEM PKCS#8 key") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
            raise _fail("private_key must be an ECDSA P-256 key")
        if certificate.public_key() != key.public_key():
            raise _fail("certificate and private_key do not belong together")
        serials = certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
        if [attr.value for attr in serials] != [self.card_id.hex().upper()]:
            # CARD_PROFILE "Certificate": subject serialNumber = card identification code, upper-case hex.
            raise _fail("the certificate's subject serialNumber must be the card_id in upper-case hex")
        if certificate.not_valid_after_utc.date() > self.expiry_date:
            raise _fail("the certificate must not outlive the card's expiry_date")
        if len(self.certificate_der) > 0x7FFF:
            raise _fail("certificate too large for the C001 file")

    @classmethod
    def create(
        cls,
        *,
        card_id: bytes,
        card_number: str,
        certificate_der: bytes,
        private_key_pem: bytes,
        pin: str,
        issue_date: dt.date,
        expiry_date: dt.date,
        holder: CardHolder | None = None,
        protocol: Protocol = "T=1",
        card_type: str = "3",
        version: str = "3.00",
        org_code: bytes = bytes(12),
    ) -> VirtualCardFile:
        """A new card with a fresh tries counter; what ``onecard cards issue`` calls."""
        return cls(
            protocol=protocol,
            card_id=card_id,
            card_type=card_type,
            version=version,
            org_code=org_code,
            issue_date=issue_date,
            expiry_date=expiry_date,
            card_number=card_number,
            holder=holder,
            pin=pin,
            tries_left=PIN_TRIES,
            certificate_der=certificate_der,
            private_key_pem=private_key_pem,
        )

    def with_pin_state(self, *, pin: str, tries_left: int) -> VirtualCardFile:
        return dataclasses.replace(self, pin=pin, tries_left=tries_left)

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.certificate_der)

    def private_key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.private_key_pem, password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)  # checked in __post_init__
        return key


def _field(obj: Mapping[str, Any], name: str, kind: type, where: str) -> Any:
    value = obj.get(name)
    if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
        raise _fail(f"{where}{name} must be a {kind.__name__}")
    return value


def _hex(obj: Mapping[str, Any], name: str, where: str) -> bytes:
    try:
        return bytes.fromhex(_field(obj, name, str, where))
    except ValueError as exc:
        raise _fail(f"{where}{name} must be hex") from exc


def _date(obj: Mapping[str, Any], name: str, where: str) -> dt.date:
    try:
        return dt.date.fromisoformat(_field(obj, name, str, where))
    except ValueError as exc:
        raise _fail(f"{where}{name} must be a date YYYY-MM-DD") from exc


def _certificate_der(text: str) -> bytes:
    if "-----BEGIN CERTIFICATE-----" in text:
        try:
            return x509.load_pem_x509_certificate(text.encode("ascii")).public_bytes(
                serialization.Encoding.DER
            )
        except ValueError as exc:
            raise _fail("certificate PEM does not parse") from exc
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as exc:  # binascii.Error, and the ValueError of a non-ASCII string
        raise _fail("certificate must be PEM or base64 DER") from exc


def parse_card_file(data: bytes) -> VirtualCardFile:
    """Parse and validate a card file; raises ``InvalidCardFileError`` naming the bad member."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _fail("not JSON") from exc
    if not isinstance(obj, dict):
        raise _fail("the top level must be an object")
    if obj.get("format") != FORMAT:
        raise _fail(f"format must be {FORMAT!r}")
    ef05 = _field(obj, "ef05", dict, "")
    pin = _field(obj, "pin", dict, "")
    raw_holder = obj.get("ef06")
    holder: CardHolder | None = None
    if raw_holder is not None:
        if not isinstance(raw_holder, dict):
            raise _fail("ef06 must be an object or null")
        holder = CardHolder(
            ssn=_field(raw_holder, "ssn", str, "ef06."),
            name=_field(raw_holder, "name", str, "ef06."),
            name_extension=raw_holder.get("name_extension", "") or "",
            gender=_field(raw_holder, "gender", str, "ef06."),
            ethnic_group=_field(raw_holder, "ethnic_group", int, "ef06."),
            birthplace=_field(raw_holder, "birthplace", str, "ef06."),
            birth_date=_date(raw_holder, "birth_date", "ef06."),
        )
        if not isinstance(holder.name_extension, str):
            raise _fail("ef06.name_extension must be a str")
    return VirtualCardFile(
        protocol=_field(obj, "protocol", str, ""),
        card_id=_hex(ef05, "card_id", "ef05."),
        card_type=_field(ef05, "card_type", str, "ef05."),
        version=_field(ef05, "version", str, "ef05."),
        org_code=_hex(ef05, "org_code", "ef05."),
        issue_date=_date(ef05, "issue_date", "ef05."),
        expiry_date=_date(ef05, "expiry_date", "ef05."),
        card_number=_field(ef05, "card_number", str, "ef05."),
        holder=holder,
        pin=_field(pin, "digits", str, "pin."),
        tries_left=_field(pin, "tries_left", int, "pin."),
        certificate_der=_certificate_der(_field(obj, "certificate", str, "")),
        private_key_pem=_field(obj, "private_key", str, "").encode("ascii", "replace"),
    )


def dump_card_file(card: VirtualCardFile) -> bytes:
    """The JSON bytes of ``card`` (certificate as PEM), stable member order, trailing newline."""
    certificate_pem = card.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
    obj = {
        "format": FORMAT,
        "protocol": card.protocol,
        "ef05": {
            "card_id": card.card_id.hex().upper(),
            "card_type": card.card_type,
            "version": card.version,
            "org_code": card.org_code.hex().upper(),
            "issue_date": card.issue_date.isoformat(),
            "expiry_date": card.expiry_date.isoformat(),
            "card_number": card.card_number,
        },
        "ef06": card.holder.to_json() if card.holder else None,
        "pin": {"digits": card.pin, "tries_left": card.tries_left},
        "certificate": certificate_pem,
        "private_key": card.private_key_pem.decode("ascii"),
    }
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def load_card_file(path: str | os.PathLike[str]) -> VirtualCardFile:
    return parse_card_file(Path(path).read_bytes())


def save_card_file(path: str | os.PathLike[str], card: VirtualCardFile) -> None:
    """Write atomically (temp file + rename), so a crash mid-write never leaves half a card; mode 0600
    because the file holds a private key and a PIN."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=".card-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(dump_card_file(card))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
