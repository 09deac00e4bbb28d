"""Build the ESSC1 golden vectors (tests/vectors/essc1/vectors.json).

Run ``python tests/vectors/essc1/generate.py`` to rewrite the file. Everything is derived from fixed labels
and Ed25519 signatures are deterministic (RFC 8032 §5.1.6), so the output is identical on every run;
tests/test_qr_token.py checks that. Change the file only together with a format change (a new prefix).
The format of the file is described in docs/formats/essc1.md, "Golden vectors".
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import cbor2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from sdk.base45 import b45decode, b45encode
from sdk.cose import sig_structure
from sdk.keys import Key, KeySet, b64url_decode, key_id_for
from sdk.qr_token import EXTERNAL_AAD, PREFIX, issue_qr_token, verify_qr_token

HERE = Path(__file__).resolve().parent
VECTORS_FILE = HERE / "vectors.json"

NOW = 1767225600.5  # 2026-01-01T00:00:00.5Z; the fraction checks that iat is floor(now)
ISSUER = "420100"  # 武汉市
HANDLE = "h2Pq9vXcT4mK8sLw"
SKEW = 30


def _seed(label: str) -> bytes:
    return hashlib.sha256(f"OneCard ESSC1 golden vector key: {label}".encode()).digest()


def _cti(label: str) -> bytes:
    return hashlib.sha256(f"OneCard ESSC1 golden vector cti: {label}".encode()).digest()[:16]


def _key(label: str) -> Key:
    private = ed25519.Ed25519PrivateKey.from_private_bytes(_seed(label))
    public = private.public_key()
    return Key(key_id_for(public), "EdDSA", public, private)


SIGNER = _key("signer")
OTHER = _key("other")


def _key_doc(label: str, key: Key) -> dict[str, Any]:
    return {
        "seed_hex": _seed(label).hex(),
        "private_key_pem": key.private_pem().decode(),
        "public_jwk": key.public_jwk(),
        "kid": key.kid,
        "kid_hex": b64url_decode(key.kid).hex(),
        "public_key_hex": key.public_key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        ).hex(),
    }


def _claims(
    *,
    issuer: str = ISSUER,
    handle: str = HANDLE,
    iat: int = int(NOW),
    lifetime: int = 60,
    cti: bytes | None = None,
    disclosures: dict[str, Any] | None = None,
) -> dict[Any, Any]:
    claims: dict[Any, Any] = {1: issuer, 2: handle, 4: iat + lifetime, 6: iat, 7: cti or _cti("default")}
    if disclosures is not None:
        claims[-65537] = disclosures
    return claims


def _protected(kid: bytes) -> bytes:
    return cbor2.dumps({1: -8, 4: kid})


def _sign(protected: bytes, payload: bytes, key: Key, aad: bytes = EXTERNAL_AAD) -> bytes:
    assert isinstance(key.private_key, ed25519.Ed25519PrivateKey)
    return key.private_key.sign(sig_structure(protected, payload, aad))


def _envelope(
    payload: bytes,
    *,
    key: Key = SIGNER,
    protected: bytes | None = None,
    unprotected: dict[Any, Any] | None = None,
    aad: bytes = EXTERNAL_AAD,
    tag: int | None = 18,
    kid_of: Key | None = None,
) -> bytes:
    """A COSE_Sign1 built by hand, so vectors can hold what ``issue_qr_token`` refuses to make."""
    kid = b64url_decode((kid_of or key).kid)
    protected = _protected(kid) if protected is None else protected
    body = [protected, unprotected or {}, payload, _sign(protected, payload, key, aad)]
    return cbor2.dumps(cbor2.CBORTag(tag, body) if tag is not None else body)


def _code(message: bytes) -> str:
    return PREFIX + b45encode(message)


def _signed_claims(claims: dict[Any, Any], **kw: Any) -> str:
    return _code(_envelope(cbor2.dumps(claims, canonical=True), **kw))


def _valid_vectors() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = [
        {"name": "basic", "input": {"handle": HANDLE, "lifetime": 60, "disclosures": {}}},
        {
            "name": "age_over_60",
            "input": {"handle": HANDLE, "lifetime": 60, "disclosures": {"age_over_60": True}},
        },
        {
            # Given out of order on purpose: the encoding sorts "resident" (8) before "age_over_60" (11).
            "name": "three_disclosures",
            "input": {
                "handle": "Zx81-_AbCdEf",
                "lifetime": 30,
                "disclosures": {"age_over_60": True, "resident": True, "visitor_type": "senior"},
            },
        },
        {
            "name": "longest_handle_and_lifetime",
            "input": {"handle": "AAAAAAAA-_-_-_-_", "lifetime": 300, "disclosures": {}},
        },
    ]
    out = []
    for case in cases:
        inp = case["input"]
        cti = _cti(case["name"])
        code = issue_qr_token(
            key=SIGNER,
            issuer=ISSUER,
            handle=inp["handle"],
            now=NOW,
            lifetime=inp["lifetime"],
            disclosures=inp["disclosures"],
            cti=cti,
        )
        iat = int(NOW)
        exp = iat + inp["lifetime"]
        message = b45decode(code[len(PREFIX) :])
        payload = message[19:-66]  # for display only; readers parse it properly
        assert cbor2.loads(message).value[2] == payload
        expected = verify_qr_token(code, keys=_verifier_keys(), expected_issuers={ISSUER}, now=NOW)
        out.append(
            {
                "name": case["name"],
                "input": {"issuer": ISSUER, "now": NOW, "cti_hex": cti.hex(), **inp},
                "code": code,
                "cose_hex": message.hex(),
                "payload_hex": payload.hex(),
                # Boundaries included: exactly iat - skew, and just before exp + skew.
                "accept_at": [NOW, iat - SKEW, exp + SKEW - 0.5],
                "expected": {
                    "issuer": expected.issuer,
                    "handle": expected.handle,
                    "issued_at": expected.issued_at,
                    "expires_at": expected.expires_at,
                    "cti": expected.cti,
                    "kid": expected.kid,
                    "disclosures": dict(expected.disclosures),
                },
            }
        )
    return out


def _verifier_keys() -> KeySet:
    return KeySet.of([SIGNER.public_only()])


def _invalid_vectors(basic: str) -> list[dict[str, Any]]:
    iat = int(NOW)
    exp = iat + 60
    rest = basic[len(PREFIX) :]
    message = b45decode(rest)
    canonical_payload = cbor2.dumps(_claims(), canonical=True)
    assert _code(_envelope(canonical_payload)) == issue_qr_token(
        key=SIGNER, issuer=ISSUER, handle=HANDLE, now=NOW, cti=_cti("default")
    )
    signer_kid = b64url_decode(SIGNER.kid)

    flipped_signature = message[:-1] + bytes((message[-1] ^ 0x01,))
    # exp + 3600 inside the signed payload, signature left as it was.
    longer = cbor2.dumps(_claims(lifetime=3660), canonical=True)
    tampered_payload = message.replace(canonical_payload, longer)
    assert len(tampered_payload) == len(message) and tampered_payload != message
    # iat re-encoded as an 8-byte integer: same value, not the shortest form.
    nonminimal = canonical_payload.replace(b"\x06\x1a" + iat.to_bytes(4), b"\x06\x1b" + iat.to_bytes(8))
    assert nonminimal != canonical_payload
    reordered = {2: HANDLE, 1: ISSUER, 4: exp, 6: iat, 7: _cti("default")}
    too_long_rest = rest + "0" * (513 - len(basic))

    cases: list[tuple[str, str, str, float, str]] = [
        # (name, reason, code, now, what it shows)
        ("prefix_lowercase", "malformed", "essc1:" + rest, NOW, "the prefix is case-sensitive"),
        ("prefix_other_version", "malformed", "ESSC2:" + rest, NOW, "only ESSC1"),
        ("no_prefix", "malformed", rest, NOW, "bare base45"),
        ("trailing_newline", "malformed", basic + "\n", NOW, "nothing after the base45 text"),
        ("base45_lowercase", "malformed", PREFIX + "a" + rest[1:], NOW, "a-z is not base45"),
        ("base45_length_3k_plus_1", "malformed", basic + "0", NOW, "RFC 9285: 3k+1 characters"),
        ("base45_triple_overflow", "malformed", PREFIX + "GGW" + rest, NOW, "RFC 9285: triple > 65535"),
        ("too_long", "malformed", PREFIX + too_long_rest, NOW, "more than 512 characters"),
        ("cose_untagged", "malformed", _code(_envelope(canonical_payload, tag=None)), NOW, "tag 18 missing"),
        (
            "cose_cwt_tag_61",
            "malformed",
            _code(cbor2.dumps(cbor2.CBORTag(61, cbor2.loads(message)))),
            NOW,
            "the CWT tag is not part of ESSC1",
        ),
        ("cose_trailing_byte", "malformed", _code(message + b"\x00"), NOW, "nothing after the message"),
        ("cose_signature_63_bytes", "malformed", _code(message[:-2] + message[-1:]), NOW, "signature length"),
        (
            "cose_detached_payload",
            "malformed",
            _code(
                cbor2.dumps(
                    cbor2.CBORTag(
                        18, [_protected(signer_kid), {}, None, _sign(_protected(signer_kid), b"", SIGNER)]
                    )
                )
            ),
            NOW,
            "detached payloads are refused",
        ),
        (
            "unprotected_kid",
            "malformed",
            _code(_envelope(canonical_payload, protected=cbor2.dumps({1: -8}), unprotected={4: signer_kid})),
            NOW,
            "kid must be protected; the unprotected map must be empty",
        ),
        (
            "protected_crit",
            "malformed",
            _code(_envelope(canonical_payload, protected=cbor2.dumps({1: -8, 2: [-65538], 4: signer_kid}))),
            NOW,
            "no crit, no other header parameter",
        ),
        (
            "protected_alg_es256",
            "malformed",
            _code(_envelope(canonical_payload, protected=cbor2.dumps({1: -7, 4: signer_kid}))),
            NOW,
            "alg must be -8 (EdDSA)",
        ),
        (
            "protected_key_order",
            "malformed",
            _code(_envelope(canonical_payload, protected=cbor2.dumps({4: signer_kid, 1: -8}))),
            NOW,
            "protected header not deterministically encoded",
        ),
        ("claims_extra_nbf", "malformed", _signed_claims({**_claims(), 5: iat}), NOW, "no unknown claims"),
        (
            "claims_missing_cti",
            "malformed",
            _signed_claims({k: v for k, v in _claims().items() if k != 7}),
            NOW,
            "cti is required",
        ),
        (
            "claims_text_keys",
            "malformed",
            _signed_claims({"iss": ISSUER, "sub": HANDLE, "exp": exp, "iat": iat, "cti": _cti("default")}),
            NOW,
            "claim keys are integers",
        ),
        (
            "claims_not_deterministic_order",
            "malformed",
            _code(_envelope(cbor2.dumps(reordered))),
            NOW,
            "claims map keys out of order",
        ),
        (
            "claims_nonminimal_integer",
            "malformed",
            _code(_envelope(nonminimal)),
            NOW,
            "iat not in shortest form",
        ),
        ("claims_exp_before_iat", "malformed", _signed_claims({**_claims(), 4: iat - 1}), NOW, "exp > iat"),
        ("claims_lifetime_301", "malformed", _signed_claims(_claims(lifetime=301)), NOW, "lifetime <= 300"),
        (
            "claims_float_exp",
            "malformed",
            _signed_claims({**_claims(), 4: float(exp)}),
            NOW,
            "times are integers",
        ),
        (
            "claims_cti_8_bytes",
            "malformed",
            _signed_claims(_claims(cti=_cti("default")[:8])),
            NOW,
            "cti is 16 bytes",
        ),
        (
            "claims_issuer_not_region_code",
            "malformed",
            _signed_claims(_claims(issuer="Wuhan")),
            NOW,
            "iss is a 6-digit code",
        ),
        (
            "claims_handle_too_long",
            "malformed",
            _signed_claims(_claims(handle="A" * 17)),
            NOW,
            "handle is 8..16 base64url characters",
        ),
        (
            "disclosure_name",
            "malformed",
            _signed_claims(_claims(disclosures={"name": "张三"})),
            NOW,
            "no name, ever",
        ),
        (
            "disclosure_id_number",
            "malformed",
            _signed_claims(_claims(disclosures={"document": "42010219900101123X"})),
            NOW,
            "no ID number, ever",
        ),
        (
            "disclosure_empty_map",
            "malformed",
            _signed_claims(_claims(disclosures={})),
            NOW,
            "absent, not empty",
        ),
        ("signature_flipped_bit", "bad_signature", _code(flipped_signature), NOW, "tampered signature"),
        ("payload_tampered", "bad_signature", _code(tampered_payload), NOW, "exp extended after signing"),
        (
            "signed_without_external_aad",
            "bad_signature",
            _code(_envelope(canonical_payload, aad=b"")),
            NOW,
            "the external AAD b'ESSC1' is part of what is signed",
        ),
        (
            "other_key_signer_kid",
            "bad_signature",
            _code(_envelope(canonical_payload, key=OTHER, kid_of=SIGNER)),
            NOW,
            "right kid, wrong key",
        ),
        (
            "unknown_kid",
            "unknown_key",
            _code(_envelope(canonical_payload, key=OTHER)),
            NOW,
            "signed by a key the verifier does not hold",
        ),
        ("expired_at_exp_plus_skew", "expired", basic, exp + SKEW, "exp + skew is already too late"),
        ("expired_long_ago", "expired", basic, exp + 3600, "an old code"),
        ("not_yet_valid", "not_yet_valid", basic, iat - SKEW - 1, "issued more than skew in the future"),
        (
            "wrong_issuer",
            "wrong_issuer",
            _signed_claims(_claims(issuer="310000")),
            NOW,
            "validly signed for a region this verifier does not accept",
        ),
    ]
    return [
        {"name": name, "reason": reason, "code": code, "now": now, "note": note}
        for name, reason, code, now, note in cases
    ]


def _gate_scenario() -> dict[str, Any]:
    iat = int(NOW)
    fresh = issue_qr_token(key=SIGNER, issuer=ISSUER, handle=HANDLE, now=NOW, cti=_cti("gate-1"))
    suspended_handle = "SuspendedCard001"
    suspended = issue_qr_token(
        key=SIGNER, issuer=ISSUER, handle=suspended_handle, now=NOW, cti=_cti("gate-2")
    )
    return {
        "revoked_handles": [suspended_handle],
        "scans": [
            {"code": fresh, "now": NOW + 1, "result": "pass"},
            {"code": fresh, "now": NOW + 2, "result": "reject", "reason": "replayed"},
            {"code": suspended, "now": NOW + 3, "result": "reject", "reason": "revoked"},
            # Expiry is checked before one-time use: a used code that ran out reads "expired".
            {"code": fresh, "now": iat + 60 + SKEW, "result": "reject", "reason": "expired"},
        ],
    }


def build_vectors() -> dict[str, Any]:
    valid = _valid_vectors()
    basic = issue_qr_token(key=SIGNER, issuer=ISSUER, handle=HANDLE, now=NOW, cti=_cti("default"))
    return {
        "format": "ESSC1",
        "description": "Golden vectors for the ESSC1 dynamic QR token; see docs/formats/essc1.md",
        "external_aad_hex": EXTERNAL_AAD.hex(),
        "keys": {"signer": _key_doc("signer", SIGNER), "other": _key_doc("other", OTHER)},
        "verifier": {
            "jwks": {"keys": [SIGNER.public_jwk()]},
            "expected_issuers": [ISSUER],
            "clock_skew": SKEW,
        },
        "valid": valid,
        "invalid": _invalid_vectors(basic),
        "gate_scenario": _gate_scenario(),
    }


def render() -> str:
    return json.dumps(build_vectors(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    VECTORS_FILE.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {VECTORS_FILE}\n")
