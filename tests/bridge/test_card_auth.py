"""sdk.card_auth ("onecard-card-auth/1", DESIGN.md §4) and sdk.card_file: formats and every failure reason."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from sdk.card_auth import (
    CardAuthFailure,
    InvalidCardAuthError,
    create_card_auth_token,
    parse_card_auth_token,
    signed_data,
    verify_card_auth_token,
)
from sdk.card_file import (
    InvalidCardFileError,
    VirtualCardFile,
    dump_card_file,
    generate_card_id,
    load_card_file,
    parse_card_file,
    save_card_file,
)
from tests.bridge.pki import HOLDER, NOW, TestCA, make_ca, make_card, make_card_certificate

ORIGIN = "https://login.onecard.test"
NONCE = b"\x07" * 32


def _sign(card: VirtualCardFile, data: bytes) -> bytes:
    r, s = utils.decode_dss_signature(card.private_key().sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _token(card: VirtualCardFile, origin: str = ORIGIN, nonce: bytes = NONCE) -> dict[str, str]:
    return create_card_auth_token(
        card_certificate_der=card.certificate_der,
        signature=_sign(card, signed_data(origin, nonce)),
        card_id=card.card_id,
    )


def _verify(token: Any, ca: TestCA, **overrides: Any) -> Any:
    arguments = {
        "expected_origin": ORIGIN,
        "expected_nonce": NONCE,
        "trusted_issuers": [ca.certificate],
        "now": NOW,
        **overrides,
    }
    return verify_card_auth_token(token, **arguments)


def _reason(token: Any, ca: TestCA, **overrides: Any) -> CardAuthFailure:
    with pytest.raises(InvalidCardAuthError) as error:
        _verify(token, ca, **overrides)
    assert error.value.error == "invalid_card_auth"
    return error.value.reason


def test_signed_data_layout() -> None:
    data = signed_data("https://a.example", b"n")
    assert len(data) == 64
    import hashlib

    assert data == hashlib.sha256(b"https://a.example").digest() + hashlib.sha256(b"n").digest()


def test_valid_token(card: VirtualCardFile, ca: TestCA) -> None:
    token = _token(card)
    assert set(token) == {"format", "card_certificate", "algorithm", "signature", "card_id"}
    verified = _verify(token, ca)
    assert verified.card_id_hex == card.card_id.hex().upper()
    assert verified.issuer == ca.certificate
    # A second trusted issuer (cross-region cards, rotation) does not disturb the match.
    assert _verify(token, ca, trusted_issuers=[make_ca("Other").certificate, ca.certificate]).card_id


def test_wrong_origin_or_nonce_is_a_bad_signature(card: VirtualCardFile, ca: TestCA) -> None:
    token = _token(card)
    assert _reason(token, ca, expected_origin="https://evil.example") is CardAuthFailure.BAD_SIGNATURE
    assert _reason(token, ca, expected_nonce=b"\x08" * 32) is CardAuthFailure.BAD_SIGNATURE


def test_untrusted_issuer(card: VirtualCardFile, ca: TestCA) -> None:
    other = make_ca(ca.certificate.subject.rfc4514_string().split("=", 1)[-1])  # same name, other key
    assert _reason(_token(card), ca, trusted_issuers=[other.certificate]) is CardAuthFailure.UNTRUSTED_ISSUER
    assert _reason(_token(card), ca, trusted_issuers=[]) is CardAuthFailure.UNTRUSTED_ISSUER


def test_validity_window(card: VirtualCardFile, ca: TestCA) -> None:
    token = _token(card)
    before = dt.datetime(2023, 12, 31, 12, tzinfo=dt.UTC).timestamp()  # CA valid, card not yet
    after = dt.datetime(2034, 2, 1, tzinfo=dt.UTC).timestamp()
    assert _reason(token, ca, now=before) is CardAuthFailure.NOT_YET_VALID
    assert _reason(token, ca, now=after) is CardAuthFailure.EXPIRED_CERTIFICATE


def test_card_mismatch(card: VirtualCardFile, ca: TestCA) -> None:
    token = _token(card)
    token["card_id"] = generate_card_id("420100").hex().upper()
    assert _reason(token, ca) is CardAuthFailure.CARD_MISMATCH


def test_non_p256_key_is_malformed(ca: TestCA, card: VirtualCardFile) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    certificate = make_card_certificate(ca, card.card_id, "X00000019", key)
    token = _token(card)
    token["card_certificate"] = base64.b64encode(
        certificate.public_bytes(serialization.Encoding.DER)
    ).decode()
    assert _reason(token, ca) is CardAuthFailure.MALFORMED


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t.pop("algorithm"),
        lambda t: t.update(extra="x"),
        lambda t: t.update(format="onecard-card-auth/2"),
        lambda t: t.update(algorithm="RS256"),
        lambda t: t.update(signature=t["signature"][:-2]),
        lambda t: t.update(signature=t["signature"] + "=="),
        lambda t: t.update(signature=base64.b64encode(bytes(64)).decode().replace("A", "+", 1)),
        lambda t: t.update(card_id=t["card_id"][:-2]),
        lambda t: t.update(card_id=1),
        lambda t: t.update(card_certificate="not base64!"),
        lambda t: t.update(card_certificate="\u00c7\u00a4-"),  # non-ASCII: found by schemathesis
        lambda t: t.update(card_certificate=base64.b64encode(b"junk").decode()),
        lambda t: t.update(card_certificate=""),
    ],
)
def test_malformed_tokens(card: VirtualCardFile, ca: TestCA, mutate: Any) -> None:
    token: dict[str, Any] = dict(_token(card))
    mutate(token)
    assert _reason(token, ca) is CardAuthFailure.MALFORMED


def test_parse_is_strict_about_the_object_type() -> None:
    with pytest.raises(InvalidCardAuthError):
        parse_card_auth_token([])  # type: ignore[arg-type]


# --- virtual card file -------------------------------------------------------------------------------


def test_card_file_round_trip(ca: TestCA, tmp_path: Path) -> None:
    card = make_card(ca, holder=HOLDER, protocol="T=0")
    assert parse_card_file(dump_card_file(card)) == card
    path = tmp_path / "card.json"
    save_card_file(path, card)
    assert load_card_file(path) == card
    assert path.stat().st_mode & 0o777 == 0o600


def test_card_file_accepts_base64_der_certificate(card: VirtualCardFile) -> None:
    obj = json.loads(dump_card_file(card))
    obj["certificate"] = base64.b64encode(card.certificate_der).decode()
    assert parse_card_file(json.dumps(obj).encode()) == card


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("format",), "other"),
        (("protocol",), "T=2"),
        (("ef05", "card_id"), "00" * 16),
        (("ef05", "card_id"), "zz"),
        (("ef05", "version"), "4.00"),
        (("ef05", "org_code"), "00"),
        (("ef05", "card_number"), "X1"),
        (("ef05", "expiry_date"), "2020-01-01"),
        (("ef05", "issue_date"), "01/01/2024"),
        (("pin", "digits"), "12345"),
        (("pin", "tries_left"), 4),
        (("pin", "tries_left"), True),
        (("certificate",), "bm90IGEgY2VydA=="),
        (("certificate",), "\u00c7\u00a4-"),
        (("private_key",), "nope"),
        (("ef06",), {"ssn": "1"}),
    ],
)
def test_card_file_validation(card: VirtualCardFile, path: tuple[str, ...], value: Any) -> None:
    obj = json.loads(dump_card_file(card))
    target = obj
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(InvalidCardFileError) as error:
        parse_card_file(json.dumps(obj).encode())
    assert error.value.error == "invalid_card_file"


def test_card_file_rejects_a_foreign_key_or_certificate(ca: TestCA, card: VirtualCardFile) -> None:
    other = make_card(ca)
    with pytest.raises(InvalidCardFileError):
        dataclasses.replace(card, private_key_pem=other.private_key_pem)
    with pytest.raises(InvalidCardFileError):
        dataclasses.replace(card, certificate_der=other.certificate_der)  # serialNumber of another card
    with pytest.raises(InvalidCardFileError):
        parse_card_file(b"[]")
    with pytest.raises(InvalidCardFileError):
        parse_card_file(b"\xff")
