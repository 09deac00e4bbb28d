"""The card emulator against the golden APDU transcripts of tests/vectors/apdu (CARD_PROFILE.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from reader_bridge.emulator import CardEmulator
from sdk.card_file import VirtualCardFile, load_card_file

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "apdu"
_PLACEHOLDER = re.compile(r"\{(cert|sig)(?::(\d+):(\d+))?\}")


def _cases() -> list[Any]:
    cases = []
    for path in sorted(VECTORS.glob("*.json")):
        document = json.loads(path.read_text())
        if "transcripts" not in document:
            continue
        for transcript in document["transcripts"]:
            cases.append(pytest.param(document, transcript, id=f"{path.stem}-{transcript['name']}"))
    return cases


class _Signatures:
    """Collects a signature that GET RESPONSE may hand out in pieces and checks it when complete."""

    def __init__(self, card: VirtualCardFile) -> None:
        self.public_key = card.certificate.public_key()
        self.signed = b""
        self.parts = b""
        self.checked = 0

    def take(self, piece: bytes) -> None:
        self.parts += piece
        if len(self.parts) == 64:
            assert isinstance(self.public_key, ec.EllipticCurvePublicKey)
            r, s = int.from_bytes(self.parts[:32], "big"), int.from_bytes(self.parts[32:], "big")
            self.public_key.verify(utils.encode_dss_signature(r, s), self.signed, ec.ECDSA(hashes.SHA256()))
            self.parts = b""
            self.checked += 1


def _expect(expected: str, actual: bytes, card: VirtualCardFile, signatures: _Signatures) -> None:
    """Match ``actual`` against ``expected`` hex with placeholders, consuming ``actual`` left to right."""
    rest = actual
    position = 0
    for match in _PLACEHOLDER.finditer(expected):
        literal = bytes.fromhex(expected[position : match.start()])
        assert rest[: len(literal)] == literal, (expected, actual.hex().upper())
        rest = rest[len(literal) :]
        kind, start, end = match.group(1), match.group(2), match.group(3)
        if kind == "cert":
            assert start is not None and end is not None
            piece = card.certificate_der[int(start) : int(end)]
            assert rest[: len(piece)] == piece, (expected, actual.hex().upper())
        else:
            size = 64 if start is None else int(end or 0) - int(start)
            piece = rest[:size]
            assert len(piece) == size
            signatures.take(piece)
        rest = rest[len(piece) :]
        position = match.end()
    assert rest == bytes.fromhex(expected[position:]), (expected, actual.hex().upper())


@pytest.mark.parametrize(("document", "transcript"), _cases())
def test_transcript(document: dict[str, Any], transcript: dict[str, Any], tmp_path: Path) -> None:
    card = load_card_file(VECTORS / document["card"])
    emulator = CardEmulator(card, protocol=document["protocol"])
    signatures = _Signatures(card)
    expected_signatures = 0
    for number, step in enumerate(transcript["steps"]):
        if step.get("reset"):
            emulator.reset()
            continue
        command = bytes.fromhex(step["c"])
        if command[1] == 0x88:
            signatures.signed = command[5 : 5 + command[4]]
        expected_signatures += step["r"].count("{sig}") + (1 if "{sig:32:64}" in step["r"] else 0)
        response = emulator.process(command)
        try:
            _expect(step["r"], response, card, signatures)
        except AssertionError as exc:
            raise AssertionError(
                f"step {number}: {step['c']} → {response.hex().upper()}, want {step['r']}"
            ) from exc
    assert signatures.checked == expected_signatures


def test_every_status_word_of_the_profile_is_exercised() -> None:
    """The transcripts cover the status words CARD_PROFILE lists (9303 is sent by real cards only)."""
    text = " ".join(path.read_text() for path in VECTORS.glob("*.json"))
    for sw in [
        "9000",
        "61",
        "6C",
        "63C3",
        "63C2",
        "63C1",
        "63C0",
        "6700",
        "6982",
        "6983",
        "6985",
        "6A80",
        "6A82",
        "6A83",
        "6A86",
        "6D00",
        "6E00",
    ]:
        assert f'{sw}"' in text or f"{sw}" in text, sw


def test_tries_and_pin_changes_are_persisted(tmp_path: Path) -> None:
    stored: list[VirtualCardFile] = []
    card = load_card_file(VECTORS / "card_v3.json")
    emulator = CardEmulator(card, store=stored.append)
    emulator.process(bytes.fromhex("00A4040009D15600000541435345"))
    emulator.process(bytes.fromhex("0020000003111111"))
    assert stored[-1].tries_left == 2
    emulator.process(bytes.fromhex("805E010007123456FF222222"))
    assert (stored[-1].pin, stored[-1].tries_left) == ("222222", 3)
    emulator.power_off()
    # A card built from the stored file remembers the new PIN.
    again = CardEmulator(stored[-1])
    again.process(bytes.fromhex("00A4040009D15600000541435345"))
    assert again.process(bytes.fromhex("0020000003222222")) == bytes.fromhex("9000")


def test_atr_carries_the_development_marker() -> None:
    card = load_card_file(VECTORS / "card_v3.json")
    for protocol in ("T=0", "T=1"):
        atr = CardEmulator(card, protocol=protocol).atr
        assert b"ONECARD-SSC3" in atr
    t1 = CardEmulator(card, protocol="T=1").atr
    check = 0
    for byte in t1[1:]:
        check ^= byte
    assert check == 0  # TCK makes the XOR of T0..TCK zero
