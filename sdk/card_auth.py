"""The card-auth token "onecard-card-auth/1" (DESIGN.md §4, CARD_PROFILE.md "Authentication application").

The reader bridge has the card sign ``SHA-256(origin) ‖ SHA-256(nonce)`` with INTERNAL AUTHENTICATE and
hands the page ``{format, card_certificate, algorithm, signature, card_id}``. The token carries neither
nonce nor origin: the server rebuilds the signed data from its own origin and the challenge it issued, so a
token answers exactly one challenge for exactly one site.

``verify_card_auth_token`` checks what the token itself can prove (chain to a trusted card-issuer CA,
validity at ``now``, key type, certificate ↔ card id, signature). Its certificate part,
``verify_card_certificate``, also stands alone: the login page asks the IdP whether a card can log in at
all before the PIN is asked, with nothing but the certificate. ``verify_card_signature`` is the rest, for
a server that keeps a certificate's result (a card's certificate is the same every login) and re-checks
only what changes with time (``VerifiedCardCertificate.valid_at``). Card status in the register (lost,
suspended, cancelled) and the card → citizen mapping are the server's job.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.x509.oid import NameOID

from sdk.errors import OneCardError
from sdk.keys import b64url

FORMAT: Final = "onecard-card-auth/1"
ALGORITHM: Final = "ES256"
SIGNED_DATA_LEN: Final = 64  # INTERNAL AUTHENTICATE signs exactly 64 bytes
SIGNATURE_LEN: Final = 64  # raw r ‖ s, P-256
CARD_ID_LEN: Final = 16
MAX_CERTIFICATE_LEN: Final = 4096  # a card file C001 holds a few hundred bytes; bound what we parse
_MEMBERS: Final = frozenset({"format", "card_certificate", "algorithm", "signature", "card_id"})
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
_HEX32 = re.compile(r"^[0-9A-Fa-f]{32}$")
_CARD_ID_SERIAL = re.compile(r"^[0-9A-F]{32}$")  # CARD_PROFILE "Certificate": upper-case hex


class CardAuthFailure(enum.Enum):
    """Why a token failed: precise for tests and operators, never sent to the client."""

    MALFORMED = "malformed"
    UNTRUSTED_ISSUER = "untrusted_issuer"
    EXPIRED_CERTIFICATE = "expired_certificate"
    NOT_YET_VALID = "not_yet_valid"
    CARD_MISMATCH = "card_mismatch"
    BAD_SIGNATURE = "bad_signature"


class InvalidCardAuthError(OneCardError):
    """Opaque outward (one wire code), precise inward (``reason``)."""

    error = "invalid_card_auth"
    description = "The card could not be verified."
    status_code = 400

    def __init__(self, reason: CardAuthFailure, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason


def signed_data(origin: str, nonce: bytes) -> bytes:
    """``SHA-256(origin) ‖ SHA-256(nonce)``; ``origin`` is the browser's ASCII serialisation, e.g.
    ``https://login.example.gov.cn`` (no trailing slash), exactly as the ``Origin`` header carries it."""
    return hashlib.sha256(origin.encode("utf-8")).digest() + hashlib.sha256(nonce).digest()


@dataclass(frozen=True)
class CardAuthToken:
    card_certificate: bytes  # DER
    signature: bytes  # raw r ‖ s, 64 bytes
    card_id: bytes  # 16 bytes


@dataclass(frozen=True)
class VerifiedCardCertificate:
    """What a card certificate proves by itself: a trusted card-issuer CA issued it for ``card_id`` and it
    is valid now. Not that whoever shows it holds the card: that takes a signature (``VerifiedCardAuth``)."""

    card_id: bytes
    card_number: str | None  # the certificate's CN, if any
    certificate: x509.Certificate
    issuer: x509.Certificate

    @property
    def card_id_hex(self) -> str:
        return self.card_id.hex().upper()

    def valid_at(self, now: float) -> bool:
        """Whether the certificate and its issuer are both inside their validity windows at ``now``: the
        part of ``verify_card_certificate`` that changes with time, for a caller that keeps its result."""
        return _within_validity(self.issuer, now) and _within_validity(self.certificate, now)


@dataclass(frozen=True)
class VerifiedCardAuth(VerifiedCardCertificate):
    """What a valid token proves: its certificate, and that the card signed this challenge for this
    origin. The server still checks card status and maps card → citizen."""


def _malformed(detail: str) -> InvalidCardAuthError:
    return InvalidCardAuthError(CardAuthFailure.MALFORMED, detail)


def _b64url_decode_strict(text: str) -> bytes:
    if not _B64URL.match(text) or len(text) % 4 == 1:
        raise _malformed("signature is not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse_card_auth_token(obj: Mapping[str, Any]) -> CardAuthToken:
    """Parse the JSON object the page posts; strict on members, types and sizes."""
    if not isinstance(obj, Mapping):
        raise _malformed("token must be an object")
    if set(obj) != _MEMBERS:
        raise _malformed(f"token members must be exactly {sorted(_MEMBERS)}")
    if not all(isinstance(obj[name], str) for name in _MEMBERS):
        raise _malformed("token members must be strings")
    if obj["format"] != FORMAT:
        raise _malformed("unknown format")
    if obj["algorithm"] != ALGORITHM:
        raise _malformed("unsupported algorithm")
    certificate = decode_card_certificate(obj["card_certificate"])
    signature = _b64url_decode_strict(obj["signature"])
    if len(signature) != SIGNATURE_LEN:
        raise _malformed("signature must be 64 bytes r ‖ s")
    if not _HEX32.match(obj["card_id"]):
        raise _malformed("card_id must be 32 hex digits")
    return CardAuthToken(certificate, signature, bytes.fromhex(obj["card_id"]))


def decode_card_certificate(text: str) -> bytes:
    """The DER bytes of a ``card_certificate`` member (standard base64), bounded in size."""
    if len(text) > MAX_CERTIFICATE_LEN * 4 // 3 + 4:
        raise _malformed("certificate too large")
    try:
        certificate = base64.b64decode(text, validate=True)
    except ValueError as exc:  # binascii.Error, and the ValueError of a non-ASCII string
        raise _malformed("card_certificate is not base64") from exc
    if not certificate:
        raise _malformed("card_certificate is empty")
    return certificate


def create_card_auth_token(
    *, card_certificate_der: bytes, signature: bytes, card_id: bytes
) -> dict[str, str]:
    """The JSON object the bridge returns to the page."""
    if len(signature) != SIGNATURE_LEN or len(card_id) != CARD_ID_LEN:
        raise ValueError("signature must be 64 bytes and card_id 16 bytes")
    return {
        "format": FORMAT,
        "card_certificate": base64.b64encode(card_certificate_der).decode("ascii"),
        "algorithm": ALGORITHM,
        "signature": b64url(signature),
        "card_id": card_id.hex().upper(),
    }


def _find_issuer(
    certificate: x509.Certificate, trusted_issuers: Sequence[x509.Certificate], now: float
) -> x509.Certificate:
    for issuer in trusted_issuers:
        if issuer.subject != certificate.issuer:
            continue
        try:
            certificate.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            continue
        # A CA outside its own validity window no longer vouches for anything.
        if _within_validity(issuer, now):
            return issuer
    raise InvalidCardAuthError(CardAuthFailure.UNTRUSTED_ISSUER, "no trusted CA issued this certificate")


def _within_validity(certificate: x509.Certificate, now: float) -> bool:
    return certificate.not_valid_before_utc.timestamp() <= now <= certificate.not_valid_after_utc.timestamp()


def verify_card_auth_token(
    token: CardAuthToken | Mapping[str, Any],
    *,
    expected_origin: str,
    expected_nonce: bytes,
    trusted_issuers: Sequence[x509.Certificate],
    now: float,
) -> VerifiedCardAuth:
    """Verify a card-auth token for the challenge ``expected_nonce`` issued to ``expected_origin``.

    Raises ``InvalidCardAuthError`` whose ``reason`` says which check failed. ``now`` is POSIX seconds.
    """
    parsed = token if isinstance(token, CardAuthToken) else parse_card_auth_token(token)
    verified = verify_card_certificate(parsed.card_certificate, trusted_issuers=trusted_issuers, now=now)
    return verify_card_signature(
        parsed, verified, expected_origin=expected_origin, expected_nonce=expected_nonce
    )


def verify_card_signature(
    token: CardAuthToken,
    verified: VerifiedCardCertificate,
    *,
    expected_origin: str,
    expected_nonce: bytes,
) -> VerifiedCardAuth:
    """The token's half of ``verify_card_auth_token``, for a certificate ``verify_card_certificate``
    already verified (a server may keep that result per certificate): the certificate names the token's
    card id, and the card signed ``expected_nonce`` for ``expected_origin``."""
    if verified.certificate.public_bytes(serialization.Encoding.DER) != token.card_certificate:
        raise InvalidCardAuthError(CardAuthFailure.CARD_MISMATCH, "verified certificate is not the token's")
    if verified.card_id != token.card_id:
        raise InvalidCardAuthError(CardAuthFailure.CARD_MISMATCH, "certificate serialNumber != card_id")
    public_key = verified.certificate.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)  # checked by verify_card_certificate
    r = int.from_bytes(token.signature[:32], "big")
    s = int.from_bytes(token.signature[32:], "big")
    try:
        public_key.verify(
            utils.encode_dss_signature(r, s),
            signed_data(expected_origin, expected_nonce),
            ec.ECDSA(hashes.SHA256()),
        )
    except InvalidSignature as exc:
        raise InvalidCardAuthError(CardAuthFailure.BAD_SIGNATURE) from exc
    return VerifiedCardAuth(verified.card_id, verified.card_number, verified.certificate, verified.issuer)


def verify_card_certificate(
    certificate_der: bytes, *, trusted_issuers: Sequence[x509.Certificate], now: float
) -> VerifiedCardCertificate:
    """A card certificate (CARD_PROFILE "Certificate"): ECDSA P-256 key, issued by one of
    ``trusted_issuers`` (valid at ``now`` itself), valid at ``now``, naming one card id (subject
    serialNumber, 32 upper-case hex digits). Raises ``InvalidCardAuthError`` with the failed check."""
    try:
        certificate = x509.load_der_x509_certificate(certificate_der)
    except ValueError as exc:
        raise _malformed("card_certificate does not parse") from exc
    public_key = certificate.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
        public_key.curve, ec.SECP256R1
    ):
        raise _malformed("the card key must be ECDSA P-256")
    issuer = _find_issuer(certificate, trusted_issuers, now)
    if now < certificate.not_valid_before_utc.timestamp():
        raise InvalidCardAuthError(CardAuthFailure.NOT_YET_VALID)
    if now > certificate.not_valid_after_utc.timestamp():
        raise InvalidCardAuthError(CardAuthFailure.EXPIRED_CERTIFICATE)
    serials = [attr.value for attr in certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)]
    if len(serials) != 1 or not isinstance(serials[0], str) or not _CARD_ID_SERIAL.match(serials[0]):
        raise InvalidCardAuthError(CardAuthFailure.CARD_MISMATCH, "certificate names no card id")
    common_names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    card_number = str(common_names[0].value) if common_names else None
    return VerifiedCardCertificate(bytes.fromhex(serials[0]), card_number, certificate, issuer)


def certificate_der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)
