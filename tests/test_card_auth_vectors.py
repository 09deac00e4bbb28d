"""The card-auth token ("onecard-card-auth/1", DESIGN.md §4) against its golden vectors in
tests/vectors/card_auth: sdk.card_auth's verifier gives every vector its verdict and reason, its producer
emits the canonical tokens byte for byte, and the reader bridge (operations over the card emulator) builds
the same token for the vectors' card."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from reader_bridge.emulator import CardEmulator
from reader_bridge.operations import Operation, Settings, authenticate
from reader_bridge.pin import Announce, PinRequest
from reader_bridge.virtual import VirtualTerminal
from sdk.card_auth import (
    CardAuthFailure,
    InvalidCardAuthError,
    VerifiedCardAuth,
    create_card_auth_token,
    parse_card_auth_token,
    signed_data,
    verify_card_auth_token,
)
from sdk.card_file import PROTOCOLS, Protocol, VirtualCardFile

VECTOR_DIR = Path(__file__).parent / "vectors" / "card_auth"
VECTORS: dict[str, Any] = json.loads((VECTOR_DIR / "vectors.json").read_text(encoding="utf-8"))
CERTIFICATES = {
    name: x509.load_pem_x509_certificate(doc["pem"].encode()) for name, doc in VECTORS["certificates"].items()
}


def _verify(vector: dict[str, Any], now: float) -> VerifiedCardAuth:
    return verify_card_auth_token(
        vector["token"],
        expected_origin=vector["expected_origin"],
        expected_nonce=bytes.fromhex(vector["expected_nonce_hex"]),
        trusted_issuers=[CERTIFICATES[name] for name in vector["trusted_issuers"]],
        now=now,
    )


def _private_key(name: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(VECTORS["keys"][name]["private_key_pem"].encode(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _der(name: str) -> bytes:
    return CERTIFICATES[name].public_bytes(serialization.Encoding.DER)


# --- the file ---------------------------------------------------------------------------------------------


def test_vector_file_is_reproducible() -> None:
    """Re-deriving the vectors from their fixed inputs gives the committed file byte for byte."""
    spec = importlib.util.spec_from_file_location("card_auth_vectors_generate", VECTOR_DIR / "generate.py")
    assert spec is not None and spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    assert generate.render() == (VECTOR_DIR / "vectors.json").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(VECTORS["keys"]))
def test_vector_keys_agree(name: str) -> None:
    doc = VECTORS["keys"][name]
    key = _private_key(name)
    assert key.curve.name == doc["curve"]
    assert key.private_numbers().private_value == int(doc["private_scalar_hex"], 16)
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert public.hex() == doc["public_key_hex"]


def test_certificates_are_what_they_say() -> None:
    for name in CERTIFICATES:
        assert hashlib.sha256(_der(name)).hexdigest() == VECTORS["certificates"][name]["sha256_hex"]
    card = VECTORS["card"]
    assert CERTIFICATES[card["certificate"]].public_key() == _private_key(card["key"]).public_key()
    CERTIFICATES[card["certificate"]].verify_directly_issued_by(CERTIFICATES["ca"])


def test_vectors_cover_every_reason() -> None:
    reasons = {vector["reason"] for vector in VECTORS["invalid"]}
    assert reasons == {reason.value for reason in CardAuthFailure}
    names = [vector["name"] for vector in VECTORS["valid"] + VECTORS["invalid"]]
    assert len(names) == len(set(names))


# --- sdk.card_auth: the verifier ---------------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=lambda v: v["name"])
def test_valid_vector_verifies(vector: dict[str, Any]) -> None:
    expected = vector["expected"]
    assert len(vector["accept_at"]) > 1
    for now in vector["accept_at"]:
        verified = _verify(vector, now)
        assert verified.card_id_hex == expected["card_id_hex"]
        assert verified.card_number == expected["card_number"]
        assert verified.issuer == CERTIFICATES[expected["issuer"]]
    origin, nonce = vector["expected_origin"], bytes.fromhex(vector["expected_nonce_hex"])
    assert signed_data(origin, nonce).hex() == vector["signed_data_hex"]


@pytest.mark.parametrize("vector", VECTORS["invalid"], ids=lambda v: v["name"])
def test_invalid_vector_is_refused_with_its_reason(vector: dict[str, Any]) -> None:
    with pytest.raises(InvalidCardAuthError) as caught:
        _verify(vector, vector["now"])
    assert caught.value.reason.value == vector["reason"]
    assert caught.value.error == "invalid_card_auth"  # one opaque wire code for every reason


# --- sdk.card_auth: the producer ---------------------------------------------------------------------------


@pytest.mark.parametrize("vector", [v for v in VECTORS["valid"] if v["canonical"]], ids=lambda v: v["name"])
def test_canonical_vector_is_produced_exactly(vector: dict[str, Any]) -> None:
    card = VECTORS["card"]
    data = bytes.fromhex(vector["signed_data_hex"])
    # The card's signature, made again with RFC 6979 nonces (a real card's ECDSA is randomised).
    der_signature = _private_key(card["key"]).sign(
        data, ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
    )
    r, s = utils.decode_dss_signature(der_signature)
    token = create_card_auth_token(
        card_certificate_der=_der(card["certificate"]),
        signature=r.to_bytes(32, "big") + s.to_bytes(32, "big"),
        card_id=bytes.fromhex(card["card_id_hex"]),
    )
    assert token == vector["token"]
    parsed = parse_card_auth_token(vector["token"])
    assert parsed.card_certificate == _der(card["certificate"])
    assert parsed.card_id.hex().upper() == card["card_id_hex"]


# --- reader_bridge: the producer over the card emulator ----------------------------------------------------


class _TypedPin:
    kind = "terminal"

    def __init__(self, pin: str) -> None:
        self.pin = pin

    def ask_pin(self, request: PinRequest, announce: Announce) -> str:
        announce({})
        return self.pin

    def ask_pin_change(self, request: PinRequest, announce: Announce) -> tuple[str, str]:
        raise AssertionError("not asked in an authentication")


def _vector_card() -> VirtualCardFile:
    card = VECTORS["card"]
    return VirtualCardFile.create(
        card_id=bytes.fromhex(card["card_id_hex"]),
        card_number=card["card_number"],
        certificate_der=_der(card["certificate"]),
        private_key_pem=VECTORS["keys"][card["key"]]["private_key_pem"].encode(),
        pin=card["pin"],
        issue_date=dt.date.fromisoformat(card["issue_date"]),
        expiry_date=dt.date.fromisoformat(card["expiry_date"]),
    )


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_bridge_builds_the_vector_token(protocol: Protocol) -> None:
    """The bridge's token for the vectors' card and challenge: the same members, byte for byte, but the
    signature (the emulated card signs with random ECDSA nonces, as a chip does), which verifies."""
    vector = next(v for v in VECTORS["valid"] if v["name"] == "basic")
    origin, nonce = vector["expected_origin"], bytes.fromhex(vector["expected_nonce_hex"])
    terminal = VirtualTerminal(CardEmulator(_vector_card(), protocol=protocol))
    operation = Operation("op", "authenticate", origin)
    token = authenticate(
        terminal,
        _TypedPin(VECTORS["card"]["pin"]),
        operation,
        origin=origin,
        nonce=nonce,
        settings=Settings(card_timeout=2, pin_timeout=5, card_check_timeout=5),
    )
    assert set(token) == set(vector["token"])
    assert {k: v for k, v in token.items() if k != "signature"} == {
        k: v for k, v in vector["token"].items() if k != "signature"
    }
    assert len(base64.urlsafe_b64decode(token["signature"] + "==")) == 64
    for now in vector["accept_at"]:
        verified = _verify({**vector, "token": token}, now)
        assert verified.card_id_hex == vector["expected"]["card_id_hex"]
