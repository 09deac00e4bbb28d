"""ESSC1, the electronic social security card's dynamic QR token (DESIGN.md §5).

A code is ``"ESSC1:" + base45(COSE_Sign1(CWT))``:

- base45 (RFC 9285) keeps the whole text inside the QR alphanumeric character set;
- COSE_Sign1 (RFC 9052) with EdDSA over Ed25519, protected header ``{1: -8, 4: kid}`` (see ``sdk.cose``),
  with the external AAD fixed to ``b"ESSC1"`` so the QR key's signatures cannot be taken for anything else;
- the payload is a CWT claims set (RFC 8392 §3) in deterministic CBOR: ``iss`` (1) the issuing region's
  6-digit administrative division code, ``sub`` (2) an opaque random per-e-card handle, ``exp`` (4),
  ``iat`` (6), ``cti`` (7) 16 random bytes for one-time use, and optionally the private-use claim -65537
  (RFC 8392 §9.1: keys below -65536 are private use) holding the few facts the citizen chose to show,
  e.g. ``{"age_over_60": true}``. Never a name or an ID number.

Parsing is strict: the exact envelope, exactly these claims with exactly these types, deterministic
encoding, a bounded lifetime. Anything else is ``malformed`` — a new claim means a new prefix, not a
lenient reader. The full wire description and the golden vectors are in docs/formats/essc1.md and
tests/vectors/essc1/.
"""

from __future__ import annotations

import enum
import io
import math
import re
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

import cbor2
from cryptography.hazmat.primitives.asymmetric import ed25519

from sdk.base45 import Base45Error, b45decode, b45encode
from sdk.cose import (
    CoseError,
    CoseSign1,
    CoseSignatureError,
    create_sign1,
    protected_header,
    split_sign1,
    verify_sign1,
)
from sdk.errors import InvalidRequestError, OneCardError
from sdk.keys import InvalidKeyError, Key, KeySet, b64url, b64url_decode

PREFIX: Final = "ESSC1:"
# The purpose bound into every signature as COSE external_aad (STYLE.md "Bind a purpose").
# DO NOT CHANGE: every issued code and every deployed gate depends on this value.
EXTERNAL_AAD: Final = b"ESSC1"

# CWT claim keys (RFC 8392 §4, IANA "CBOR Web Token Claims"). DO NOT CHANGE.
CLAIM_ISS: Final = 1
CLAIM_SUB: Final = 2
CLAIM_EXP: Final = 4
CLAIM_IAT: Final = 6
CLAIM_CTI: Final = 7
CLAIM_DISCLOSURES: Final = -65537  # private use (RFC 8392 §9.1); the first key in that range
CTI_LENGTH: Final = 16
DEFAULT_LIFETIME: Final = 60
# The wallet refreshes every 30 s and codes live 60 s; anything much longer is a bug or a forgery attempt.
MAX_LIFETIME: Final = 300
DEFAULT_CLOCK_SKEW: Final = 30
# Far above the largest code the format allows (~400); bounds the work done on hostile input.
MAX_TEXT_LENGTH: Final = 512
MAX_DISCLOSURES: Final = 4
# Limits that keep the largest possible code (4 disclosures at their limits) under MAX_TEXT_LENGTH.
MAX_DISCLOSURE_NAME: Final = 20
MAX_DISCLOSURE_TEXT_BYTES: Final = 16  # UTF-8 bytes: "senior", "student", 6 Chinese characters
HANDLE_BYTES: Final = 12  # 96 random bits: unique across every e-card, and 16 characters in the code

_ISSUER_RE: Final = re.compile(r"[0-9]{6}")
# At most 16 characters (12 bytes in base64url): any code without disclosures then fits version 8-M,
# whose alphanumeric capacity (221 characters) the largest such code (219) just meets.
_HANDLE_RE: Final = re.compile(r"[A-Za-z0-9_-]{8,16}")
_DISCLOSURE_NAME_RE: Final = re.compile(r"[a-z][a-z0-9_]{0,19}")
# A long run of digits in a disclosed value looks like an ID, phone or card number: refuse it outright.
_DIGIT_RUN_RE: Final = re.compile(r"[0-9]{11}")
# Names a disclosure may never have, whatever the wallet asks for (DESIGN.md §5: no name, no ID number).
FORBIDDEN_DISCLOSURES: Final = frozenset(
    {
        "name",
        "given_name",
        "family_name",
        "full_name",
        "id_number",
        "idcard",
        "id_card",
        "ssn",
        "card_number",
        "birthdate",
        "phone",
        "phone_number",
        "email",
        "address",
    }
)


def is_region_code(value: Any) -> bool:
    """A GB/T 2260 region code as ESSC1 and the federation carry it: six ASCII digits."""
    return isinstance(value, str) and _ISSUER_RE.fullmatch(value) is not None


Disclosures = Mapping[str, bool | str]
_NO_DISCLOSURES: Final[Disclosures] = MappingProxyType({})


class QrTokenReason(enum.StrEnum):
    """Why a code was refused; a fixed set shared by the offline gate, the online API and the CLI."""

    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_KEY = "unknown_key"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    REPLAYED = "replayed"
    REVOKED = "revoked"
    WRONG_ISSUER = "wrong_issuer"
    # The code's region is neither the verifier's own nor one of a region the federation trusts (a gate
    # across regions, sdk.gate and the online API): no key could vouch for it.
    UNTRUSTED_REGION = "untrusted_region"
    # Not about the code: an offline gate whose suspended-handles list is missing or older than its limit
    # cannot tell a suspended e-card from a valid one, so it refuses every code (sdk.gate). Never sent by
    # the online API.
    REVOCATION_LIST_STALE = "revocation_list_stale"


class QrTokenError(OneCardError):
    """A code that must not be accepted: ``reason`` is precise (gates, logs), the description opaque."""

    error = "invalid_qr_code"
    description = "The code is not valid."
    status_code = 400

    def __init__(self, reason: QrTokenReason | str, detail: str = "") -> None:
        self.reason = QrTokenReason(reason)
        super().__init__(detail or self.reason.value)


class InvalidQrClaimsError(InvalidRequestError):
    """The issuer was asked to put something into a code that the format does not allow."""

    error = "invalid_qr_claims"
    description = "The code cannot carry these claims."


@dataclass(frozen=True, slots=True)
class ParsedQrToken:
    """A code's content, read without any cryptographic check. Never trust it for a decision."""

    kid: str
    issuer: str
    handle: str
    issued_at: int
    expires_at: int
    cti: str
    disclosures: Disclosures
    message: CoseSign1 = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class VerifiedQrToken:
    """A code whose signature, issuer and validity period have been checked."""

    issuer: str
    handle: str
    issued_at: int
    expires_at: int
    cti: str
    kid: str
    disclosures: Disclosures


def generate_qr_handle() -> str:
    """A fresh opaque per-e-card handle: random, carries nothing about the citizen."""
    return b64url(secrets.token_bytes(HANDLE_BYTES))


def is_handle(value: object) -> bool:
    """Whether ``value`` has the shape of an e-card handle (8..16 base64url characters)."""
    return isinstance(value, str) and _HANDLE_RE.fullmatch(value) is not None


def generate_cti() -> bytes:
    return secrets.token_bytes(CTI_LENGTH)


def _deterministic_text_order(name: str) -> tuple[int, bytes]:
    # For text keys, bytewise order of the encodings is length first (the length is in the header byte).
    encoded = name.encode()
    return len(encoded), encoded


def _disclosure_problem(name: object, value: object) -> str | None:
    if not isinstance(name, str) or not _DISCLOSURE_NAME_RE.fullmatch(name):
        return f"disclosure name {name!r} is not lower_snake_case of at most {MAX_DISCLOSURE_NAME} characters"
    if name in FORBIDDEN_DISCLOSURES:
        return f"disclosure {name!r} would put personal data into the code"
    if isinstance(value, bool):
        return None
    if (
        not isinstance(value, str)
        or not value
        or len(value.encode()) > MAX_DISCLOSURE_TEXT_BYTES
        or not value.isprintable()
    ):
        return (
            f"disclosure {name!r} must be a boolean or printable text of 1..{MAX_DISCLOSURE_TEXT_BYTES} bytes"
        )
    if _DIGIT_RUN_RE.search(value):
        return f"disclosure {name!r} looks like an identifying number"
    return None


def _disclosures_problem(disclosures: Mapping[Any, Any]) -> str | None:
    if len(disclosures) > MAX_DISCLOSURES:
        return f"at most {MAX_DISCLOSURES} disclosures"
    for name, value in disclosures.items():
        problem = _disclosure_problem(name, value)
        if problem:
            return problem
    return None


def _signing_parts(key: Key) -> tuple[ed25519.Ed25519PrivateKey, bytes]:
    if key.alg != "EdDSA" or not isinstance(key.private_key, ed25519.Ed25519PrivateKey):
        raise InvalidKeyError(f"key {key.kid} is not an Ed25519 signing key")
    kid = _kid_bytes(key.kid)
    if kid is None:
        raise InvalidKeyError(f"key id {key.kid!r} is not base64url of 8 bytes")
    return key.private_key, kid


def _kid_bytes(kid: str) -> bytes | None:
    try:
        raw = b64url_decode(kid)
    except ValueError:
        return None
    return raw if len(raw) == 8 and b64url(raw) == kid else None


def issue_qr_token(
    *,
    key: Key,
    issuer: str,
    handle: str,
    now: float,
    lifetime: int = DEFAULT_LIFETIME,
    disclosures: Disclosures = _NO_DISCLOSURES,
    cti: bytes | None = None,
) -> str:
    """Issue an ESSC1 code valid from ``floor(now)`` for ``lifetime`` seconds.

    ``cti`` is for golden vectors only; production lets it default to fresh random bytes.
    """
    private_key, kid = _signing_parts(key)
    if not isinstance(issuer, str) or not _ISSUER_RE.fullmatch(issuer):
        raise InvalidQrClaimsError(f"issuer {issuer!r} is not a 6-digit region code")
    if not isinstance(handle, str) or not _HANDLE_RE.fullmatch(handle):
        raise InvalidQrClaimsError("handle must be 8..16 base64url characters")
    if isinstance(lifetime, bool) or not isinstance(lifetime, int) or not 1 <= lifetime <= MAX_LIFETIME:
        raise InvalidQrClaimsError(f"lifetime must be 1..{MAX_LIFETIME} seconds")
    if not math.isfinite(now) or now < 0:
        raise InvalidQrClaimsError("now must be a finite, non-negative POSIX time")
    problem = _disclosures_problem(disclosures)
    if problem:
        raise InvalidQrClaimsError(problem)
    if cti is None:
        cti = generate_cti()
    elif not isinstance(cti, bytes) or len(cti) != CTI_LENGTH:
        raise InvalidQrClaimsError(f"cti must be {CTI_LENGTH} bytes")

    issued_at = math.floor(now)
    claims: dict[int, Any] = {
        CLAIM_ISS: issuer,
        CLAIM_SUB: handle,
        CLAIM_EXP: issued_at + lifetime,
        CLAIM_IAT: issued_at,
        CLAIM_CTI: cti,
    }
    if disclosures:
        claims[CLAIM_DISCLOSURES] = dict(disclosures)
    payload = cbor2.dumps(claims, canonical=True)
    message = create_sign1(payload, private_key=private_key, kid=kid, external_aad=EXTERNAL_AAD)
    text = PREFIX + b45encode(message)
    if len(text) > MAX_TEXT_LENGTH:
        raise InvalidQrClaimsError("the code would be too large for a gate to scan")
    return text


def _decode_envelope(text: str) -> tuple[bytes, bytes, bytes, bytes]:
    """``(kid, payload, signature, to_be_signed)`` of a code, or ``malformed``."""
    if not isinstance(text, str):
        raise QrTokenError(QrTokenReason.MALFORMED, "code is not text")
    if len(text) > MAX_TEXT_LENGTH:
        raise QrTokenError(QrTokenReason.MALFORMED, f"code longer than {MAX_TEXT_LENGTH} characters")
    if not text.startswith(PREFIX):
        raise QrTokenError(QrTokenReason.MALFORMED, f"code does not start with {PREFIX!r}")
    try:
        return split_sign1(b45decode(text[len(PREFIX) :]), EXTERNAL_AAD)
    except (Base45Error, CoseError) as exc:
        raise QrTokenError(QrTokenReason.MALFORMED, exc.detail) from exc


def _malformed(detail: str) -> QrTokenError:
    return QrTokenError(QrTokenReason.MALFORMED, detail)


# What cbor2.loads raises on input that is not CBOR (or too deep, too large).
_CBOR_ERRORS: Final = (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError, LookupError)

# The claims read positionally, like the COSE envelope (sdk.cose): a payload is accepted exactly when it is
# ``cbor2.dumps`` of a valid claims map, i.e. deterministic CBOR (RFC 8949 §4.2.1) with the claims in key
# order 1, 2, 4, 6, 7 (then -65537). Up to exp's value that leaves one form: a map of 5 or 6 (a5/a6),
# 01 66 + six ASCII digits (iss), 02 6x + 8..16 handle characters (sub), 04 (exp's key). The handle's
# header must then agree with the characters matched; the byte after them (04) is outside their class, so
# the greedy match never runs past a handle.
_CLAIMS_HEAD: Final = re.compile(rb"([\xa5\xa6])\x01\x66([0-9]{6})\x02([\x68-\x70])([A-Za-z0-9_-]{8,16})\x04")
_IAT_KEY: Final = b"\x06"
_CTI_KEY_AND_HEADER: Final = b"\x07\x50"  # 7: bstr of 16
_DISCLOSURES_KEY: Final = b"\x3a\x00\x01\x00\x00"  # -65537: major type 1, argument 65536
# CBOR unsigned integers (major type 0) with a 1-, 2-, 4- or 8-byte argument, and the least value for
# which each is the shortest form (RFC 8949 §4.2.1).
_UINT_FORMS: Final = {24: (1, 24), 25: (2, 0x100), 26: (4, 0x10000), 27: (8, 0x1_0000_0000)}


def _read_timestamp(payload: bytes, pos: int) -> tuple[int, int]:
    """A non-negative integer at ``pos`` exactly as cbor2 writes it, and the position after it."""
    head = payload[pos] if pos < len(payload) else -1
    if 0 <= head < 24:
        return head, pos + 1
    form = _UINT_FORMS.get(head)
    if form is not None:
        end = pos + 1 + form[0]
        value = int.from_bytes(payload[pos + 1 : end])
        if end <= len(payload) and value >= form[1]:
            return value, end
        raise _malformed("timestamp truncated or not in shortest form")
    # Anything else may still be an integer cbor2 writes, a bignum (tag 2) from 2**64 on: decode the one
    # item and require it to be one that cbor2 writes back unchanged, the rule for the whole payload.
    stream = io.BytesIO(payload[pos:])
    try:
        value = cbor2.CBORDecoder(stream).decode()
    except _CBOR_ERRORS as exc:
        raise _malformed(f"timestamp is not valid CBOR: {exc}") from exc
    end = pos + stream.tell()
    # bool is an int subclass; CBOR true is not a timestamp. A negative iat, or exp, is refused anyway.
    if type(value) is not int or value < 0 or cbor2.dumps(value) != payload[pos:end]:
        raise _malformed("iat and exp must be non-negative integers in deterministic encoding")
    return value, end


# Validated disclosure maps by their exact encoding: a venue sees the same few (``{"age_over_60": true}``)
# over and over, and equal bytes decode to equal maps. Bounded: emptied when full (hostile variety only
# costs a re-validation).
_DISCLOSURES_CACHE_SIZE: Final = 256
_valid_disclosures: dict[bytes, Disclosures] = {}


def _parse_disclosures(encoded: bytes) -> Disclosures:
    """The disclosure map whose encoding is exactly ``encoded`` (nothing after it), checked, or malformed."""
    disclosures = _valid_disclosures.get(encoded)
    if disclosures is not None:
        return disclosures
    try:
        raw = cbor2.loads(encoded)
    except _CBOR_ERRORS as exc:
        raise _malformed(f"disclosures are not valid CBOR: {exc}") from exc
    # Present means non-empty: an empty map would give the same code two encodings.
    if not isinstance(raw, dict) or not raw:
        raise _malformed("disclosures must be a non-empty map")
    problem = _disclosures_problem(raw)
    if problem:
        raise _malformed(problem)
    if len(raw) > 1 and list(raw) != sorted(raw, key=_deterministic_text_order):
        raise _malformed("disclosures are not in deterministic order")
    # With the order and every type checked, re-encoding proves the rest of RFC 8949 §4.2.1: shortest
    # lengths, definite lengths, no tags, nothing after the map. (Last: only checked values are encoded.)
    if cbor2.dumps(raw) != encoded:
        raise _malformed("disclosures are not deterministically encoded")
    if len(_valid_disclosures) >= _DISCLOSURES_CACHE_SIZE:
        _valid_disclosures.clear()
    disclosures = _valid_disclosures[encoded] = MappingProxyType(raw)
    return disclosures


def _parse_claims(payload: bytes) -> tuple[str, str, int, int, bytes, Disclosures]:
    head = _CLAIMS_HEAD.match(payload)
    if head is None:
        raise _malformed("claims must be iss, sub, exp, iat, cti (and -65537), deterministically encoded")
    map_header, issuer, handle_header, handle = head.groups()
    if len(handle) != handle_header[0] - 0x60:
        raise _malformed("sub is not a handle")
    expires_at, pos = _read_timestamp(payload, head.end())
    if payload[pos : pos + 1] != _IAT_KEY:
        raise _malformed("iat must follow exp")
    issued_at, pos = _read_timestamp(payload, pos + 1)
    if payload[pos : pos + 2] != _CTI_KEY_AND_HEADER:
        raise _malformed(f"cti must follow iat, {CTI_LENGTH} bytes")
    cti = payload[pos + 2 : pos + 2 + CTI_LENGTH]
    if len(cti) != CTI_LENGTH:
        raise _malformed(f"cti is not {CTI_LENGTH} bytes")
    if not issued_at < expires_at:
        raise _malformed("iat and exp must be integers with iat < exp")
    if expires_at - issued_at > MAX_LIFETIME:
        raise _malformed(f"lifetime longer than {MAX_LIFETIME} s")
    rest = payload[pos + 2 + CTI_LENGTH :]
    disclosures: Disclosures = _NO_DISCLOSURES
    if map_header == b"\xa6":
        if rest[: len(_DISCLOSURES_KEY)] != _DISCLOSURES_KEY:
            raise _malformed(f"the sixth claim must be {CLAIM_DISCLOSURES}")
        disclosures = _parse_disclosures(rest[len(_DISCLOSURES_KEY) :])
    elif rest:
        raise _malformed("data after the claims")
    return issuer.decode("ascii"), handle.decode("ascii"), issued_at, expires_at, cti, disclosures


def parse_qr_kid(text: str) -> str:
    """The key id a code names, from its envelope alone (no crypto, claims not read)."""
    return b64url(_decode_envelope(text)[0])


def parse_qr_token(text: str) -> ParsedQrToken:
    """Read a code's structure and claims without checking the signature (for display and diagnostics)."""
    kid, payload, signature, _ = _decode_envelope(text)
    issuer, handle, issued_at, expires_at, cti, disclosures = _parse_claims(payload)
    message = CoseSign1(protected_header(kid), kid, payload, signature)
    return ParsedQrToken(b64url(kid), issuer, handle, issued_at, expires_at, cti.hex(), disclosures, message)


# The concrete class cryptography's Ed25519 public keys have (registered with the ABC).
_ED25519_PUBLIC_TYPE: Final = type(ed25519.Ed25519PrivateKey.from_private_bytes(bytes(32)).public_key())


def verify_qr_token(
    text: str,
    *,
    keys: KeySet,
    expected_issuers: Collection[str],
    now: float,
    clock_skew: int = DEFAULT_CLOCK_SKEW,
) -> VerifiedQrToken:
    """Verify a code: envelope, key, signature, claims, issuer, validity period — in that order.

    Raises ``QrTokenError`` with reason malformed, unknown_key, bad_signature, wrong_issuer, not_yet_valid
    or expired. One-time use and suspension are the caller's (``sdk.gate``, the online API).
    """
    if isinstance(expected_issuers, str):
        # "420100" in "420100310000" is True: a bare string would accept every substring's region.
        raise TypeError("expected_issuers must be a collection of region codes, not one string")
    raw_kid, payload, signature, to_be_signed = _decode_envelope(text)
    key = keys.find_raw(raw_kid)
    if key is None or (
        # The exact type first: isinstance against the ABC costs a quarter of a microsecond per scan.
        type(key.public_key) is not _ED25519_PUBLIC_TYPE
        and not isinstance(key.public_key, ed25519.Ed25519PublicKey)
    ):
        raise QrTokenError(QrTokenReason.UNKNOWN_KEY, f"no Ed25519 key with kid {b64url(raw_kid)}")
    try:
        verify_sign1(signature, to_be_signed, key.public_key)
    except CoseSignatureError as exc:
        raise QrTokenError(QrTokenReason.BAD_SIGNATURE, exc.detail) from None
    # Claims are decoded only once the signature holds: nobody can make a gate parse unsigned CBOR.
    issuer, handle, issued_at, expires_at, cti, disclosures = _parse_claims(payload)
    if issuer not in expected_issuers:
        raise QrTokenError(QrTokenReason.WRONG_ISSUER, f"issuer {issuer} not accepted here")
    if now < issued_at - clock_skew:
        raise QrTokenError(QrTokenReason.NOT_YET_VALID, f"issued at {issued_at}, now {now:.0f}")
    # RFC 8392 §3.1.4: not accepted "on or after" exp; the skew is the gate's clock tolerance.
    if now >= expires_at + clock_skew:
        raise QrTokenError(QrTokenReason.EXPIRED, f"expired at {expires_at}, now {now:.0f}")
    # key.kid is b64url(raw_kid): find_raw matches exactly that.
    return VerifiedQrToken(issuer, handle, issued_at, expires_at, cti.hex(), key.kid, disclosures)
