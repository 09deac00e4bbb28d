"""sdk.base45 against RFC 9285 and a plain reference decoder."""

from __future__ import annotations

import random

import pytest

from sdk.base45 import ALPHABET, Base45Error, b45decode, b45encode
from sdk.errors import OneCardError

# RFC 9285 §4.3 examples, plus the edges of each group size.
RFC_VECTORS = [
    (b"AB", "BB8"),
    (b"Hello!!", "%69 VD92EX0"),
    (b"base-45", "UJCLQE7W581"),
    (b"ietf!", "QED8WEX0"),
    (b"", ""),
    (b"\x00", "00"),
    (b"\xff", "U5"),  # 255 = 30 + 5*45
    (b"\x00\x00", "000"),
    (b"\xff\xff", "FGW"),  # 65535 = 15 + 16*45 + 32*2025
]


def reference_decode(text: str) -> bytes:
    """Character by character, straight from RFC 9285 §4.2, for comparison only."""
    values = [ALPHABET.index(ch) for ch in text]
    out = bytearray()
    for i in range(0, len(values) - len(values) % 3, 3):
        n = values[i] + values[i + 1] * 45 + values[i + 2] * 45 * 45
        out += n.to_bytes(2, "big")
    if len(values) % 3 == 2:
        out.append(values[-2] + values[-1] * 45)
    return bytes(out)


@pytest.mark.parametrize(("data", "text"), RFC_VECTORS)
def test_rfc_vectors(data: bytes, text: str) -> None:
    assert b45encode(data) == text
    assert b45decode(text) == data
    assert b45decode(text.encode("ascii")) == data


def test_round_trip_and_reference_agree_for_every_length() -> None:
    rng = random.Random(9285)  # fixed seed: the same inputs on every run
    for length in range(0, 300):
        data = bytes(rng.getrandbits(8) for _ in range(length))
        text = b45encode(data)
        assert set(text) <= set(ALPHABET)
        assert len(text) == length // 2 * 3 + length % 2 * 2
        assert b45decode(text) == data == reference_decode(text)


@pytest.mark.parametrize(
    "text",
    [
        "A",  # 3k+1
        "BB8A",
        "abc",  # lowercase is not in the alphabet
        "BB\n",
        "BB8 \t",
        "B\u00e9B",  # non-ASCII
        "GGW",  # 65536
        ":::",  # 44 + 44*45 + 44*2025 = 91124
        "FGWGGW",  # a bad triple after a good one
        "U6",  # 256
        "::",  # 44 + 44*45 = 2024
    ],
)
def test_rejects_non_canonical_or_foreign_text(text: str) -> None:
    with pytest.raises(Base45Error):
        b45decode(text)


def test_error_shape() -> None:
    with pytest.raises(Base45Error) as caught:
        b45decode("GGW")
    assert isinstance(caught.value, OneCardError)
    assert isinstance(caught.value, ValueError)
    assert caught.value.error == "invalid_base45"


def test_long_text_and_bad_triples_anywhere_agree_with_the_reference() -> None:
    # Past the precomputed lane masks, and an out-of-range triple in every position of a short text.
    data = bytes(range(256)) * 8
    assert b45decode(b45encode(data)) == data
    good = b45encode(bytes(12))
    for start in range(0, len(good), 3):
        with pytest.raises(Base45Error):
            b45decode(good[:start] + "GGW" + good[start + 3 :])
