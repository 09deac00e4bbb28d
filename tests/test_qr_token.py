"""ESSC1 QR tokens: round trips, the golden vectors, every failure reason, size, and the COSE profile."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import cbor2
import pytest
import qrcode
import qrcode.util
from cryptography.hazmat.primitives.asymmetric import ed25519

from sdk.base45 import b45decode, b45encode
from sdk.cose import CoseError, create_sign1, parse_sign1, sig_structure
from sdk.keys import InvalidKeyError, Key, KeySet, b64url_decode, generate_key, key_id_for
from sdk.qr_token import (
    CLAIM_DISCLOSURES,
    EXTERNAL_AAD,
    PREFIX,
    InvalidQrClaimsError,
    QrTokenError,
    QrTokenReason,
    generate_qr_handle,
    issue_qr_token,
    parse_qr_kid,
    parse_qr_token,
    verify_qr_token,
)

VECTOR_DIR = Path(__file__).parent / "vectors" / "essc1"
VECTORS: dict[str, Any] = json.loads((VECTOR_DIR / "vectors.json").read_text(encoding="utf-8"))
NOW = 1_767_225_600.0


def _signer_from_vectors() -> Key:
    seed = bytes.fromhex(VECTORS["keys"]["signer"]["seed_hex"])
    private = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    return Key(key_id_for(private.public_key()), "EdDSA", private.public_key(), private)


def _verifier_keys() -> KeySet:
    return KeySet.from_jwks(VECTORS["verifier"]["jwks"])


def _verify(code: str, now: float, **kw: Any) -> Any:
    return verify_qr_token(
        code,
        keys=kw.pop("keys", _verifier_keys()),
        expected_issuers=VECTORS["verifier"]["expected_issuers"],
        now=now,
        clock_skew=VECTORS["verifier"]["clock_skew"],
        **kw,
    )


@pytest.fixture(scope="module")
def key() -> Key:
    return generate_key("EdDSA")


# --- round trip -----------------------------------------------------------------------------------------


def test_round_trip(key: Key) -> None:
    handle = generate_qr_handle()
    code = issue_qr_token(
        key=key, issuer="420100", handle=handle, now=NOW + 0.9, disclosures={"age_over_60": True}
    )
    assert code.startswith(PREFIX)
    verified = verify_qr_token(
        code, keys=KeySet.of([key.public_only()]), expected_issuers={"420100"}, now=NOW + 5
    )
    assert verified.handle == handle
    assert verified.issuer == "420100"
    assert verified.issued_at == int(NOW)
    assert verified.expires_at == int(NOW) + 60
    assert verified.kid == key.kid
    assert len(bytes.fromhex(verified.cti)) == 16
    assert dict(verified.disclosures) == {"age_over_60": True}
    parsed = parse_qr_token(code)
    assert (parsed.kid, parsed.handle, parsed.cti) == (key.kid, handle, verified.cti)
    assert parse_qr_kid(code) == key.kid


def test_each_code_has_a_fresh_cti(key: Key) -> None:
    codes = {issue_qr_token(key=key, issuer="420100", handle="h2Pq9vXcT4mK8sLw", now=NOW) for _ in range(5)}
    assert len({parse_qr_token(code).cti for code in codes}) == 5


def test_results_are_frozen(key: Key) -> None:
    code = issue_qr_token(
        key=key, issuer="420100", handle="h2Pq9vXcT4mK8sLw", now=NOW, disclosures={"x": True}
    )
    verified = verify_qr_token(code, keys=KeySet.of([key]), expected_issuers={"420100"}, now=NOW)
    with pytest.raises(AttributeError):
        verified.handle = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        verified.disclosures["x"] = False  # type: ignore[index]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"issuer": "Wuhan"}, InvalidQrClaimsError),
        ({"issuer": "4201000"}, InvalidQrClaimsError),
        ({"handle": "short"}, InvalidQrClaimsError),
        ({"handle": "A" * 17}, InvalidQrClaimsError),
        ({"handle": "has space in it"}, InvalidQrClaimsError),
        ({"lifetime": 0}, InvalidQrClaimsError),
        ({"lifetime": 301}, InvalidQrClaimsError),
        ({"lifetime": True}, InvalidQrClaimsError),
        ({"now": float("nan")}, InvalidQrClaimsError),
        ({"cti": b"\x00" * 15}, InvalidQrClaimsError),
        ({"disclosures": {"name": "张三"}}, InvalidQrClaimsError),
        ({"disclosures": {"id_number": "42010219900101123X"}}, InvalidQrClaimsError),
        ({"disclosures": {"note": "42010219900101123X"}}, InvalidQrClaimsError),
        ({"disclosures": {"note": "call 13800138000"}}, InvalidQrClaimsError),
        ({"disclosures": {"Age": True}}, InvalidQrClaimsError),
        ({"disclosures": {"age": 61}}, InvalidQrClaimsError),
        ({"disclosures": {"a": True, "b": True, "c": True, "d": True, "e": True}}, InvalidQrClaimsError),
        ({"disclosures": {"note": "x" * 17}}, InvalidQrClaimsError),
        ({"disclosures": {"note": "老年人老年人老"}}, InvalidQrClaimsError),  # 21 bytes
        ({"disclosures": {"a" * 21: True}}, InvalidQrClaimsError),
    ],
)
def test_issue_refuses_what_the_format_forbids(
    key: Key, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    args: dict[str, Any] = {
        "key": key,
        "issuer": "420100",
        "handle": "h2Pq9vXcT4mK8sLw",
        "now": NOW,
        **kwargs,
    }
    with pytest.raises(error):
        issue_qr_token(**args)


def test_issue_needs_an_ed25519_signing_key() -> None:
    for not_usable in (generate_key("ES256"), generate_key("EdDSA").public_only()):
        with pytest.raises(InvalidKeyError):
            issue_qr_token(key=not_usable, issuer="420100", handle="h2Pq9vXcT4mK8sLw", now=NOW)
    eddsa = generate_key("EdDSA")
    odd_kid = Key("short", "EdDSA", eddsa.public_key, eddsa.private_key)
    with pytest.raises(InvalidKeyError):
        issue_qr_token(key=odd_kid, issuer="420100", handle="h2Pq9vXcT4mK8sLw", now=NOW)


def test_error_is_opaque_outward_and_precise_inward(key: Key) -> None:
    code = issue_qr_token(key=key, issuer="420100", handle="h2Pq9vXcT4mK8sLw", now=NOW)
    with pytest.raises(QrTokenError) as caught:
        verify_qr_token(code, keys=KeySet.of([key]), expected_issuers={"420100"}, now=NOW + 3600)
    assert caught.value.reason is QrTokenReason.EXPIRED
    assert caught.value.to_dict() == {
        "error": "invalid_qr_code",
        "error_description": "The code is not valid.",
    }


@pytest.mark.parametrize("value", [b"ESSC1:BB8", None, 42, ""])
def test_non_text_and_empty_input_is_malformed(value: Any) -> None:
    with pytest.raises(QrTokenError) as caught:
        verify_qr_token(value, keys=_verifier_keys(), expected_issuers={"420100"}, now=NOW)
    assert caught.value.reason is QrTokenReason.MALFORMED


def test_expected_issuers_must_not_be_a_bare_string(key: Key) -> None:
    code = issue_qr_token(key=key, issuer="420100", handle="h2Pq9vXcT4mK8sLw", now=NOW)
    with pytest.raises(TypeError):
        verify_qr_token(code, keys=KeySet.of([key]), expected_issuers="420100310000", now=NOW)


def test_a_non_eddsa_key_with_the_kid_is_not_used(key: Key) -> None:
    code = issue_qr_token(key=key, issuer="420100", handle="h2Pq9vXcT4mK8sLw", now=NOW)
    impostor = generate_key("ES256")
    keys = KeySet.of([Key(key.kid, "ES256", impostor.public_key)])
    with pytest.raises(QrTokenError) as caught:
        verify_qr_token(code, keys=keys, expected_issuers={"420100"}, now=NOW)
    assert caught.value.reason is QrTokenReason.UNKNOWN_KEY


def test_every_single_bit_flip_is_refused(key: Key) -> None:
    code = issue_qr_token(
        key=key, issuer="420100", handle="h2Pq9vXcT4mK8sLw", now=NOW, disclosures={"x": True}
    )
    message = b45decode(code[len(PREFIX) :])
    keys = KeySet.of([key.public_only()])
    for index in range(len(message)):
        for bit in range(8):
            mutated = bytearray(message)
            mutated[index] ^= 1 << bit
            with pytest.raises(QrTokenError) as caught:
                verify_qr_token(
                    PREFIX + b45encode(bytes(mutated)), keys=keys, expected_issuers={"420100"}, now=NOW
                )
            assert caught.value.reason in {
                QrTokenReason.MALFORMED,
                QrTokenReason.BAD_SIGNATURE,
                QrTokenReason.UNKNOWN_KEY,
            }


# --- golden vectors -------------------------------------------------------------------------------------


def test_vector_file_is_reproducible() -> None:
    """Re-deriving the vectors from their fixed inputs gives the committed file byte for byte."""
    spec = importlib.util.spec_from_file_location("essc1_vectors_generate", VECTOR_DIR / "generate.py")
    assert spec is not None and spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    assert generate.render() == (VECTOR_DIR / "vectors.json").read_text(encoding="utf-8")


def test_vector_keys_agree() -> None:
    signer = VECTORS["keys"]["signer"]
    from_pem = Key.from_private_pem(signer["private_key_pem"].encode())
    from_seed = _signer_from_vectors()
    assert from_pem.kid == from_seed.kid == signer["kid"] == signer["public_jwk"]["kid"]
    assert b64url_decode(signer["kid"]).hex() == signer["kid_hex"]
    assert from_seed.public_jwk() == signer["public_jwk"]
    assert VECTORS["external_aad_hex"] == EXTERNAL_AAD.hex()


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=lambda v: v["name"])
def test_valid_vector_is_issued_exactly(vector: dict[str, Any]) -> None:
    inp = vector["input"]
    for signer in (
        _signer_from_vectors(),
        Key.from_private_pem(VECTORS["keys"]["signer"]["private_key_pem"].encode()),
    ):
        code = issue_qr_token(
            key=signer,
            issuer=inp["issuer"],
            handle=inp["handle"],
            now=inp["now"],
            lifetime=inp["lifetime"],
            disclosures=inp["disclosures"],
            cti=bytes.fromhex(inp["cti_hex"]),
        )
        assert code == vector["code"]
    assert b45decode(code[len(PREFIX) :]).hex() == vector["cose_hex"]
    assert parse_sign1(bytes.fromhex(vector["cose_hex"])).payload.hex() == vector["payload_hex"]


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=lambda v: v["name"])
def test_valid_vector_verifies(vector: dict[str, Any]) -> None:
    expected = vector["expected"]
    for now in vector["accept_at"]:
        verified = _verify(vector["code"], now)
        assert {
            "issuer": verified.issuer,
            "handle": verified.handle,
            "issued_at": verified.issued_at,
            "expires_at": verified.expires_at,
            "cti": verified.cti,
            "kid": verified.kid,
            "disclosures": dict(verified.disclosures),
        } == expected
    parsed = parse_qr_token(vector["code"])
    assert (parsed.kid, parsed.handle, parsed.cti) == (expected["kid"], expected["handle"], expected["cti"])


@pytest.mark.parametrize("vector", VECTORS["invalid"], ids=lambda v: v["name"])
def test_invalid_vector_is_refused_with_its_reason(vector: dict[str, Any]) -> None:
    with pytest.raises(QrTokenError) as caught:
        _verify(vector["code"], vector["now"])
    assert caught.value.reason == vector["reason"]


def test_vectors_cover_every_token_level_reason() -> None:
    reasons = {vector["reason"] for vector in VECTORS["invalid"]}
    gate_reasons = {scan.get("reason") for scan in VECTORS["gate_scenario"]["scans"]}
    # revocation_list_stale is about the gate's own list, not the code: tests/test_gate.py attacks it;
    # untrusted_region is about the regions a gate trusts: tests/test_gate_regions_sdk.py.
    gate_level = {QrTokenReason.REVOCATION_LIST_STALE.value, QrTokenReason.UNTRUSTED_REGION.value}
    token_level = {reason.value for reason in QrTokenReason} - gate_level
    assert reasons | gate_reasons >= token_level


def test_parse_does_not_need_keys_but_verify_does() -> None:
    vector = VECTORS["valid"][0]
    assert parse_qr_token(vector["code"]).handle == vector["expected"]["handle"]
    with pytest.raises(QrTokenError) as caught:
        _verify(vector["code"], vector["input"]["now"], keys=KeySet())
    assert caught.value.reason is QrTokenReason.UNKNOWN_KEY


# --- size -----------------------------------------------------------------------------------------------


def _qr_version(text: str) -> int:
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M)
    qr.add_data(text)
    qr.make(fit=True)
    # Base45 is exactly the QR alphanumeric set: the whole code must go in one alphanumeric segment.
    assert [segment.mode for segment in qr.data_list] == [qrcode.util.MODE_ALPHA_NUM]
    return int(qr.version)


def test_qr_size_bounds(key: Key) -> None:
    def code(**kw: Any) -> str:
        return issue_qr_token(key=key, issuer="420100", now=NOW, **kw)

    # The usual code, and the largest code without disclosures: version 8-M (DESIGN.md §5).
    assert _qr_version(code(handle=generate_qr_handle())) <= 8
    assert _qr_version(code(handle="A" * 16, lifetime=300)) <= 8
    # Each short boolean disclosure costs about a version.
    assert _qr_version(code(handle=generate_qr_handle(), disclosures={"age_over_60": True})) <= 9
    # The largest code the format allows still scans comfortably.
    worst = {c * 20: "x" * 16 for c in "abcd"}
    assert _qr_version(code(handle="A" * 16, lifetime=300, disclosures=worst)) <= 14


# --- the COSE profile -----------------------------------------------------------------------------------


def test_positional_cose_encoding_matches_a_general_cbor_encoder(key: Key) -> None:
    assert isinstance(key.private_key, ed25519.Ed25519PrivateKey)
    kid = bytes(range(8))
    for length in (0, 23, 24, 255, 256, 1000):
        payload = bytes(length)
        message = create_sign1(payload, private_key=key.private_key, kid=kid, external_aad=b"aad")
        protected = cbor2.dumps({1: -8, 4: kid})
        signature = key.private_key.sign(
            cbor2.dumps(["Signature1", protected, b"aad", payload]),
        )
        assert message == cbor2.dumps(cbor2.CBORTag(18, [protected, {}, payload, signature]))
        assert sig_structure(protected, payload, b"aad") == cbor2.dumps(
            ["Signature1", protected, b"aad", payload]
        )
        parsed = parse_sign1(message)
        assert (parsed.kid, parsed.payload, parsed.signature) == (kid, payload, signature)


def test_cose_parse_refuses_every_truncation_and_non_shortest_lengths(key: Key) -> None:
    assert isinstance(key.private_key, ed25519.Ed25519PrivateKey)
    message = create_sign1(b"x" * 30, private_key=key.private_key, kid=bytes(8))
    for end in range(len(message)):
        with pytest.raises(CoseError):
            parse_sign1(message[:end])
    # 30-byte payload with a two-byte length header (0x59 0x00 0x1e) instead of 0x58 0x1e.
    stretched = message.replace(b"\x58\x1e" + b"x" * 30, b"\x59\x00\x1e" + b"x" * 30)
    with pytest.raises(CoseError):
        parse_sign1(stretched)
    indefinite = message.replace(b"\x58\x1e" + b"x" * 30, b"\x5f\x58\x1e" + b"x" * 30 + b"\xff")
    with pytest.raises(CoseError):
        parse_sign1(indefinite)


def test_disclosure_claim_key_is_private_use() -> None:
    # RFC 8392 §9.1: integer claim keys below -65536 are private use.
    assert CLAIM_DISCLOSURES < -65536
