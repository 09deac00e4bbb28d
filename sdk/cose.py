"""COSE_Sign1 with EdDSA, exactly the profile ESSC1 uses (RFC 9052 §4.2, §4.4; RFC 9053 §2.2).

A message is the tagged array (RFC 9052 §4.2)::

    COSE_Sign1 = #6.18([ protected: bstr .cbor {1: -8, 4: h'<8-byte kid>'},
                         unprotected: {},
                         payload: bstr,
                         signature: bstr .size 64 ])

and the signature is Ed25519 (alg -8, RFC 9053 §2.2) over the ``Sig_structure`` (RFC 9052 §4.4)::

    ["Signature1", protected, external_aad, payload]

Only this profile is accepted, and only in its deterministic encoding (RFC 8949 §4.2.1): tag 18, a
definite-length array of four, the 13-byte protected header with ``alg`` first and ``kid`` second, an
*empty* unprotected map (so no ``crit``, no counter-signature, no header a verifier might misread), an
attached payload, a 64-byte signature, shortest-form lengths and nothing after the message. Because the
profile is that narrow, the envelope is read positionally rather than through a general CBOR decoder: a
byte string either is the one valid encoding of its parts or it is rejected, so a code has no malleable
variants and the gate's hot path never builds generic CBOR objects. The payload itself is opaque here;
the caller decodes it.

Why not a COSE library: see docs/formats/essc1.md, "Dependencies".
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from sdk.errors import OneCardError

COSE_SIGN1_TAG = 18  # RFC 9052 §4.2
HEADER_ALG = 1  # RFC 9052 §3.1
HEADER_KID = 4
ALG_EDDSA = -8  # RFC 9053 §2.2
KID_LENGTH = 8
SIGNATURE_LENGTH = 64  # Ed25519, RFC 8032 §5.1.6
MAX_PAYLOAD_LENGTH = 0xFFFF  # far above any QR payload; keeps length headers to at most 3 bytes

# {1: -8, 4: h'..'(8)} in deterministic CBOR: a2 (map of 2) 01 27 (1: -8) 04 48 (4: bstr of 8).
_PROTECTED_PREFIX = bytes((0xA2, 0x01, 0x27, 0x04, 0x48))
_PROTECTED_LENGTH = len(_PROTECTED_PREFIX) + KID_LENGTH
# d2 (tag 18) 84 (array of 4) 4d (bstr of 13: the protected header).
_MESSAGE_PREFIX = bytes((0xC0 | COSE_SIGN1_TAG, 0x84, 0x40 | _PROTECTED_LENGTH))
_EMPTY_MAP = b"\xa0"
# Where the protected header ends in a message: after the message prefix and the header itself.
_PROTECTED_END = len(_MESSAGE_PREFIX) + _PROTECTED_LENGTH
# The signature: 58 40 = bstr with a one-byte length of 64.
_SIGNATURE_HEADER = bytes((0x58, SIGNATURE_LENGTH))
# Sig_structure header: 84 (array of 4) 6a "Signature1" (RFC 9052 §4.4 context string).
_SIG_STRUCTURE_PREFIX = bytes((0x84, 0x6A)) + b"Signature1"


class CoseError(OneCardError, ValueError):
    """A COSE_Sign1 message outside the profile, or malformed."""

    error = "invalid_cose"
    description = "The signed message is malformed."
    status_code = 400


class CoseSignatureError(CoseError):
    """A well-formed message whose signature does not verify."""

    error = "bad_signature"
    description = "The signature does not verify."


@dataclass(frozen=True, slots=True)
class CoseSign1:
    """A parsed COSE_Sign1 message; ``protected`` is the serialized header exactly as signed."""

    protected: bytes
    kid: bytes
    payload: bytes
    signature: bytes

    def to_be_signed(self, external_aad: bytes = b"") -> bytes:
        return sig_structure(self.protected, self.payload, external_aad)


def _bstr(data: bytes) -> bytes:
    """A CBOR byte string with its shortest-form header (RFC 8949 §3.1, major type 2)."""
    length = len(data)
    if length < 24:
        return bytes((0x40 | length,)) + data
    if length < 0x100:
        return bytes((0x58, length)) + data
    if length < 0x10000:
        return bytes((0x59, length >> 8, length & 0xFF)) + data
    raise CoseError(f"byte string of {length} bytes is too long for this profile")


def protected_header(kid: bytes) -> bytes:
    """The serialized protected header ``{1: -8, 4: kid}``."""
    if len(kid) != KID_LENGTH:
        raise CoseError(f"kid must be {KID_LENGTH} bytes, got {len(kid)}")
    return _PROTECTED_PREFIX + kid


def sig_structure(protected: bytes, payload: bytes, external_aad: bytes = b"") -> bytes:
    """The bytes that are signed (RFC 9052 §4.4), deterministic CBOR."""
    return _SIG_STRUCTURE_PREFIX + _bstr(protected) + _bstr(external_aad) + _bstr(payload)


def create_sign1(
    payload: bytes, *, private_key: ed25519.Ed25519PrivateKey, kid: bytes, external_aad: bytes = b""
) -> bytes:
    """Sign ``payload`` and return the tagged COSE_Sign1 message."""
    if len(payload) > MAX_PAYLOAD_LENGTH:
        raise CoseError("payload too long")
    protected = protected_header(kid)
    signature = private_key.sign(sig_structure(protected, payload, external_aad))
    return _MESSAGE_PREFIX + protected + _EMPTY_MAP + _bstr(payload) + _SIGNATURE_HEADER + signature


def parse_sign1(data: bytes) -> CoseSign1:
    """Read a COSE_Sign1 message of this profile, rejecting every other encoding (no crypto)."""
    kid, payload, signature, _ = split_sign1(data)
    return CoseSign1(_PROTECTED_PREFIX + kid, kid, payload, signature)


def split_sign1(data: bytes, external_aad: bytes = b"") -> tuple[bytes, bytes, bytes, bytes]:
    """``(kid, payload, signature, to_be_signed)`` of a message of this profile, rejecting every other
    encoding (no crypto). The hot path of the gate: no message object is built.

    ``to_be_signed`` is ``sig_structure(protected, payload, external_aad)`` cut from the message itself:
    the strict parse has just proved that ``data`` holds the protected header and the payload, each with
    its CBOR header, in exactly the form the Sig_structure repeats, so slicing saves re-encoding them.
    """
    if data[:3] != _MESSAGE_PREFIX:
        raise CoseError("not a tagged COSE_Sign1 array with a 13-byte protected header")
    if data[3 : _PROTECTED_END - KID_LENGTH] != _PROTECTED_PREFIX or len(data) < _PROTECTED_END:
        raise CoseError("protected header must be exactly {1: -8 (EdDSA), 4: 8-byte kid}")
    if data[_PROTECTED_END : _PROTECTED_END + 1] != _EMPTY_MAP:
        raise CoseError("unprotected header must be an empty map")
    payload_length, start = _read_bstr_header(data, _PROTECTED_END + 1)
    end = start + payload_length
    payload = data[start:end]
    if len(payload) != payload_length:
        raise CoseError("payload truncated")
    if data[end : end + 2] != _SIGNATURE_HEADER:
        raise CoseError("signature must be a 64-byte byte string")
    signature = data[end + 2 :]
    if len(signature) != SIGNATURE_LENGTH:
        raise CoseError("signature truncated or trailing data after the message")
    # data[2:_PROTECTED_END] is the protected header's bstr, data[_PROTECTED_END + 1:end] the payload's.
    to_be_signed = b"".join(
        (_SIG_STRUCTURE_PREFIX, data[2:_PROTECTED_END], _bstr(external_aad), data[_PROTECTED_END + 1 : end])
    )
    return data[_PROTECTED_END - KID_LENGTH : _PROTECTED_END], payload, signature, to_be_signed


def _read_bstr_header(data: bytes, pos: int) -> tuple[int, int]:
    """Length and start of a definite-length byte string at ``pos``; non-shortest forms are rejected."""
    if pos >= len(data):
        raise CoseError("message truncated before the payload")
    initial = data[pos]
    if initial >> 5 != 2:
        # Also rejects nil (0xf6): a detached payload is not part of this profile.
        raise CoseError("payload must be an attached byte string")
    info = initial & 0x1F
    if info < 24:
        return info, pos + 1
    if info == 24 and pos + 2 <= len(data) and data[pos + 1] >= 24:
        return data[pos + 1], pos + 2
    if info == 25 and pos + 3 <= len(data):
        length = (data[pos + 1] << 8) | data[pos + 2]
        if length >= 0x100:
            return length, pos + 3
    raise CoseError("payload length is not in shortest form, indefinite or too long")


def verify_sign1(signature: bytes, to_be_signed: bytes, public_key: ed25519.Ed25519PublicKey) -> None:
    """Raise ``CoseSignatureError`` unless the signature over ``to_be_signed`` verifies under the key."""
    try:
        public_key.verify(signature, to_be_signed)
    except InvalidSignature:
        raise CoseSignatureError("Ed25519 signature does not verify") from None
