"""Base45, the QR-friendly binary-to-text encoding of RFC 9285.

Base45 maps bytes onto exactly the 45 characters of the QR code *alphanumeric* mode
(``0-9 A-Z space $ % * + - . / :``), so a QR code holding the text packs 5.5 bits per character instead
of the 8 of byte mode (RFC 9285 §1). Every two bytes become three characters, a trailing odd byte two
characters, least significant digit first (RFC 9285 §4).

Decoding is strict (RFC 9285 §6 "Security Considerations"): a character outside the alphabet, a
length of ``3k + 1`` characters, or a group whose value does not fit its bytes (a triple above 65535, a
trailing pair above 255) is an error, never silently skipped or truncated. Together these make the encoding
canonical: every byte string has exactly one valid text, so two different texts never verify as the same
signed payload.

The hot loop of the offline gate runs through ``b45decode``, so both directions work on whole slices
(``bytes.translate`` and ``struct``) rather than one character at a time.
"""

from __future__ import annotations

import struct

from sdk.errors import OneCardError

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"

_INVALID = 0xFF
# Character → digit value; every other byte maps to _INVALID so one ``in`` test finds bad input.
_DECODE_TABLE = bytes(ALPHABET.index(chr(b)) if chr(b) in ALPHABET else _INVALID for b in range(256))
# Value 0..2024 → its two-character "least significant first" rendering, used to build triples fast.
_PAIRS = tuple(ALPHABET[v % 45] + ALPHABET[v // 45] for v in range(45 * 45))


class Base45Error(OneCardError, ValueError):
    """Text that is not valid base45 (RFC 9285 §4.2)."""

    error = "invalid_base45"
    description = "The text is not valid base45."
    status_code = 400


def b45encode(data: bytes) -> str:
    """Encode bytes as base45 text (RFC 9285 §4.1)."""
    data = bytes(data)
    even = len(data) & ~1
    words = struct.unpack(f">{even // 2}H", data[:even])
    # n = c + 45*d + 2025*e: the low two digits come from the pair table, the high one is n // 2025.
    parts = [_PAIRS[n % 2025] + ALPHABET[n // 2025] for n in words]
    if even != len(data):
        parts.append(_PAIRS[data[-1]])
    return "".join(parts)


def b45decode(text: str | bytes) -> bytes:
    """Decode base45 text (RFC 9285 §4.2), raising ``Base45Error`` on anything not canonical base45."""
    if isinstance(text, str):
        try:
            raw = text.encode("ascii")
        except UnicodeEncodeError as exc:
            raise Base45Error("non-ASCII character in base45 text") from exc
    else:
        raw = bytes(text)
    length = len(raw)
    tail = length % 3
    if tail == 1:
        raise Base45Error(f"base45 text of length {length} cannot be decoded (3k+1)")
    digits = raw.translate(_DECODE_TABLE)
    if _INVALID in digits:
        raise Base45Error("character outside the base45 alphabet")
    whole = length - tail
    out = _combine_triples(digits[:whole])
    if tail:
        last = digits[whole] + 45 * digits[whole + 1]
        if last > 0xFF:
            raise Base45Error("base45 trailing pair exceeds 255")
        out.append(last)
    return bytes(out)


# Masks over 3-byte lanes: the low byte of every lane, and the top byte. Built once, long enough for any
# code (the gate caps codes at 512 characters); longer text gets its own.
_MASKED_LANES = 512
_LANE_LOW = int.from_bytes(b"\x00\x00\xff" * _MASKED_LANES)
_LANE_TOP = _LANE_LOW << 16


def _combine_triples(digits: bytes) -> bytearray:
    """``c + 45*d + 2025*e`` for every triple ``c d e`` of digit values at once, as big-endian 16-bit words.

    Read as one big integer, the digits already sit in 3-byte lanes (``c`` high, ``e`` low); shifting and
    masking isolates each digit of every lane, and one multiply-add computes every triple's value (at most
    44 + 45*44 + 2025*44 = 91124 < 2**24: lanes never carry into each other). A value fits 16 bits exactly
    when the top byte of its lane is zero; deleting every lane's top byte then leaves the words. This keeps
    per-character work in C: a Python loop over the triples cost more than everything else in the gate's
    verify path but Ed25519, and the same lanes built from three strided slices cost twice this.
    """
    low, top = _LANE_LOW, _LANE_TOP
    if len(digits) > 3 * _MASKED_LANES:
        low = int.from_bytes(b"\x00\x00\xff" * (len(digits) // 3))
        top = low << 16
    lanes = int.from_bytes(digits)
    values = (lanes >> 16 & low) + 45 * (lanes >> 8 & low) + 2025 * (lanes & low)
    if values & top:
        raise Base45Error("base45 triple exceeds 65535")
    out = bytearray(values.to_bytes(len(digits)))
    del out[::3]
    return out
