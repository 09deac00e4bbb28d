"""Build the card-auth golden vectors (tests/vectors/card_auth/vectors.json).

"onecard-card-auth/1" is the token the reader bridge hands the login page (DESIGN.md §4, ``sdk.card_auth``).
Run ``python tests/vectors/card_auth/generate.py`` to rewrite the file. Every key is derived from a fixed
label, certificates have fixed serial numbers and dates, and both certificates and card signatures use
deterministic ECDSA (RFC 6979), so the output is identical on every run; tests/test_card_auth_vectors.py
checks that. Change the file only together with a format change (a new ``format`` value).

Layout of the file:

- ``keys``: P-256 (and one P-384) private keys by name, as the scalar and as PKCS#8 PEM;
- ``certificates``: PEM by name; ``ca`` is the card-issuer CA every vector trusts unless it says otherwise;
- ``card``: the card of the ``valid`` tokens (its id, number, key, certificate, PIN and EF05 dates), enough
  to build a virtual card file for an emulator;
- ``valid``: tokens that verify, each with the verifier's inputs (``expected_origin``,
  ``expected_nonce_hex``, ``trusted_issuers`` by certificate name) and ``accept_at`` (POSIX seconds, the
  certificate's validity boundaries included), and what the verified result says (``expected``);
  ``canonical`` says whether it is byte for byte what a producer emits;
- ``invalid``: tokens refused, each with the verifier's inputs, ``now`` and the ``reason``
  (``sdk.card_auth.CardAuthFailure`` values), and a note on what it shows.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sdk.card_auth import (
    ALGORITHM,
    FORMAT,
    create_card_auth_token,
    signed_data,
    verify_card_auth_token,
)
from sdk.keys import b64url

HERE = Path(__file__).resolve().parent
VECTORS_FILE = HERE / "vectors.json"

NOW = 1780272000.0  # 2026-06-01T00:00:00Z, inside the card certificate's validity
ORIGIN = "https://login.onecard.test"
NONCE = hashlib.sha256(b"OneCard card-auth golden vector nonce").digest()  # 32 bytes, like a challenge
CARD_NUMBER = "X00000019"
CARD_ID = bytes.fromhex("420100" + "D156000005") + hashlib.sha256(b"OneCard card-auth card id").digest()[:8]
OTHER_CARD_ID = bytes.fromhex("420100" + "D156000005") + hashlib.sha256(b"OneCard other card id").digest()[:8]
CA_NAME = "OneCard Card Issuer CA 420100"

CARD_NOT_BEFORE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
CARD_NOT_AFTER = dt.datetime(2034, 1, 1, tzinfo=dt.UTC)
CA_NOT_BEFORE = dt.datetime(2023, 12, 31, tzinfo=dt.UTC)
CA_NOT_AFTER = dt.datetime(2044, 1, 1, tzinfo=dt.UTC)

_ORDERS = {
    "secp256r1": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "secp384r1": int(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973", 16
    ),
}
P256_ORDER = _ORDERS["secp256r1"]


def _scalar(label: str, curve: ec.EllipticCurve) -> int:
    digest = hashlib.sha512(f"OneCard card-auth golden vector key: {label}".encode()).digest()
    return int.from_bytes(digest, "big") % (_ORDERS[curve.name] - 1) + 1


def _key(label: str, curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    curve = curve or ec.SECP256R1()
    return ec.derive_private_key(_scalar(label, curve), curve)


def _serial(label: str) -> int:
    return (
        int.from_bytes(hashlib.sha256(f"OneCard card-auth serial: {label}".encode()).digest()[:16], "big") | 1
    )


KEYS: dict[str, ec.EllipticCurvePrivateKey] = {
    "ca": _key("ca"),
    "ca_same_name": _key("ca_same_name"),  # another key under the same CA name (or its successor's)
    "card": _key("card"),
    "other_card": _key("other_card"),
    "card_p384": _key("card_p384", ec.SECP384R1()),
    "other_ca": _key("other_ca"),  # the card-issuer CA of another region
}


def _ca_certificate(
    label: str, key: ec.EllipticCurvePrivateKey, *, not_after: dt.datetime, common_name: str = CA_NAME
) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "OneCard"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(_serial(label))
        .not_valid_before(CA_NOT_BEFORE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256(), ecdsa_deterministic=True)
    )


def _card_certificate(
    label: str,
    *,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    key: ec.EllipticCurvePrivateKey,
    serial_hex: str | None = CARD_ID.hex().upper(),
    not_before: dt.datetime = CARD_NOT_BEFORE,
    not_after: dt.datetime = CARD_NOT_AFTER,
) -> x509.Certificate:
    """CARD_PROFILE.md "Certificate", as ``idp.cards.issuance`` issues it."""
    attributes = [x509.NameAttribute(NameOID.COUNTRY_NAME, "CN")]
    if serial_hex is not None:
        attributes.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, serial_hex))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, CARD_NUMBER))
    ca_certificate, ca_key = ca
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attributes))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(_serial(label))
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256(), ecdsa_deterministic=True)
    )


def _certificates() -> dict[str, x509.Certificate]:
    ca = _ca_certificate("ca", KEYS["ca"], not_after=CA_NOT_AFTER)
    same_name = _ca_certificate("ca_same_name", KEYS["ca_same_name"], not_after=CA_NOT_AFTER)
    # The trusted CA's own key and name, but a certificate that ran out before NOW.
    expired_ca = _ca_certificate("ca_expired", KEYS["ca"], not_after=dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    by_ca = (ca, KEYS["ca"])
    card = KEYS["card"]
    return {
        "ca": ca,
        "ca_same_name": same_name,
        "ca_expired": expired_ca,
        "other_ca": _ca_certificate(
            "other_ca", KEYS["other_ca"], not_after=CA_NOT_AFTER, common_name="OneCard Card Issuer CA 310000"
        ),
        "card": _card_certificate("card", ca=by_ca, key=card),
        "card_by_same_name_ca": _card_certificate(
            "card_by_same_name_ca", ca=(same_name, KEYS["ca_same_name"]), key=card
        ),
        "card_expired": _card_certificate(
            "card_expired",
            ca=by_ca,
            key=card,
            not_before=dt.datetime(2014, 1, 1, tzinfo=dt.UTC),
            not_after=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        ),
        "card_not_yet_valid": _card_certificate(
            "card_not_yet_valid",
            ca=by_ca,
            key=card,
            not_before=dt.datetime(2027, 1, 1, tzinfo=dt.UTC),
            not_after=dt.datetime(2037, 1, 1, tzinfo=dt.UTC),
        ),
        "card_without_serial_number": _card_certificate(
            "card_without_serial_number", ca=by_ca, key=card, serial_hex=None
        ),
        "card_serial_lowercase": _card_certificate(
            "card_serial_lowercase", ca=by_ca, key=card, serial_hex=CARD_ID.hex()
        ),
        "card_p384": _card_certificate("card_p384", ca=by_ca, key=KEYS["card_p384"]),
    }


CERTIFICATES = _certificates()


def _der(name: str) -> bytes:
    return CERTIFICATES[name].public_bytes(serialization.Encoding.DER)


def _raw_signature(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """What INTERNAL AUTHENTICATE answers: r ‖ s, here with RFC 6979 nonces so the bytes are golden."""
    r, s = utils.decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256(), deterministic_signing=True)))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _token(
    *,
    certificate: str = "card",
    key: str = "card",
    card_id: bytes = CARD_ID,
    origin: str = ORIGIN,
    nonce: bytes = NONCE,
) -> dict[str, str]:
    signature = _raw_signature(KEYS[key], signed_data(origin, nonce))
    return create_card_auth_token(
        card_certificate_der=_der(certificate), signature=signature, card_id=card_id
    )


def _verifier(
    *, origin: str = ORIGIN, nonce: bytes = NONCE, trusted: tuple[str, ...] = ("ca",)
) -> dict[str, Any]:
    return {"expected_origin": origin, "expected_nonce_hex": nonce.hex(), "trusted_issuers": list(trusted)}


def _key_doc(key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    size = (key.curve.key_size + 7) // 8
    return {
        "curve": key.curve.name,
        "private_scalar_hex": key.private_numbers().private_value.to_bytes(size, "big").hex(),
        "private_key_pem": key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        "public_key_hex": key.public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        .hex(),
    }


def _certificate_doc(certificate: x509.Certificate) -> dict[str, Any]:
    return {
        "pem": certificate.public_bytes(serialization.Encoding.PEM).decode(),
        "sha256_hex": hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest(),
    }


def _check(vector: dict[str, Any], now: float) -> Any:
    """Run sdk.card_auth over a vector, so the file never states a verdict the verifier does not give."""
    return verify_card_auth_token(
        vector["token"],
        expected_origin=vector["expected_origin"],
        expected_nonce=bytes.fromhex(vector["expected_nonce_hex"]),
        trusted_issuers=[CERTIFICATES[name] for name in vector["trusted_issuers"]],
        now=now,
    )


def _valid_vectors() -> list[dict[str, Any]]:
    not_before = CARD_NOT_BEFORE.timestamp()
    not_after = CARD_NOT_AFTER.timestamp()
    basic = _token()
    lowercase_id = {**basic, "card_id": basic["card_id"].lower()}
    cases: list[tuple[str, dict[str, Any], dict[str, Any], bool, str]] = [
        # (name, token, verifier inputs, canonical, note)
        ("basic", basic, _verifier(), True, "the token the bridge returns for this challenge"),
        (
            "other_region_trusted_too",
            basic,
            _verifier(trusted=("other_ca", "ca")),
            True,
            "several trusted issuers (cross-region cards): the one that issued the certificate is found",
        ),
        (
            "successor_ca_listed_first",
            basic,
            _verifier(trusted=("ca_same_name", "ca")),
            True,
            "CA rotation: a CA of the same name but another key does not hide the one that signed",
        ),
        (
            "card_id_lowercase_hex",
            lowercase_id,
            _verifier(),
            False,
            "the card_id member may be lower-case hex; the certificate's serialNumber may not",
        ),
    ]
    out = []
    for name, token, verifier, canonical, note in cases:
        vector: dict[str, Any] = {"name": name, "token": token, **verifier}
        # Boundaries included: the certificate is valid at exactly notBefore and notAfter.
        accept_at = [NOW, not_before, not_after]
        results = [_check(vector, now) for now in accept_at]
        verified = results[0]
        signed = signed_data(vector["expected_origin"], bytes.fromhex(vector["expected_nonce_hex"]))
        out.append(
            {
                **vector,
                "accept_at": accept_at,
                "canonical": canonical,
                "signed_data_hex": signed.hex(),
                "expected": {
                    "card_id_hex": verified.card_id_hex,
                    "card_number": verified.card_number,
                    "issuer": next(
                        n for n in vector["trusted_issuers"] if CERTIFICATES[n] == verified.issuer
                    ),
                },
                "note": note,
            }
        )
    return out


def _invalid_vectors() -> list[dict[str, Any]]:
    basic = _token()
    signature = base64.urlsafe_b64decode(basic["signature"] + "==")
    r, s = signature[:32], signature[32:]

    def with_(**members: Any) -> dict[str, Any]:
        return {**basic, **members}

    def without(member: str) -> dict[str, Any]:
        return {name: value for name, value in basic.items() if name != member}

    def signed_over(data: bytes, key: str = "card") -> dict[str, Any]:
        return with_(signature=b64url(_raw_signature(KEYS[key], data)))

    flipped = signature[:-1] + bytes((signature[-1] ^ 0x01,))
    swapped_halves = hashlib.sha256(NONCE).digest() + hashlib.sha256(ORIGIN.encode()).digest()
    not_before = CARD_NOT_BEFORE.timestamp()
    not_after = CARD_NOT_AFTER.timestamp()
    default = _verifier()

    cases: list[tuple[str, str, Any, dict[str, Any], float, str]] = [
        # (name, reason, token, verifier inputs, now, what it shows)
        ("not_an_object", "malformed", [basic["card_id"]], default, NOW, "the token is a JSON object"),
        ("missing_algorithm", "malformed", without("algorithm"), default, NOW, "every member is required"),
        (
            "extra_member",
            "malformed",
            with_(nonce=NONCE.hex()),
            default,
            NOW,
            "no other member, not even a nonce",
        ),
        ("format_other_version", "malformed", with_(format="onecard-card-auth/2"), default, NOW, "only /1"),
        (
            "format_case",
            "malformed",
            with_(format=FORMAT.upper()),
            default,
            NOW,
            "the format is case-sensitive",
        ),
        ("algorithm_rs256", "malformed", with_(algorithm="RS256"), default, NOW, f"algorithm is {ALGORITHM}"),
        ("card_id_number", "malformed", with_(card_id=1), default, NOW, "members are strings"),
        (
            "card_id_31_hex_digits",
            "malformed",
            with_(card_id=basic["card_id"][:-1]),
            default,
            NOW,
            "16 bytes",
        ),
        ("card_id_not_hex", "malformed", with_(card_id="G" * 32), default, NOW, "card_id is hex"),
        ("signature_63_bytes", "malformed", with_(signature=b64url(signature[:63])), default, NOW, "r ‖ s"),
        (
            "signature_padded",
            "malformed",
            with_(signature=basic["signature"] + "=="),
            default,
            NOW,
            "base64url without padding",
        ),
        (
            "signature_standard_base64_alphabet",
            "malformed",
            with_(signature="+" + basic["signature"][1:]),
            default,
            NOW,
            "'+' and '/' are not base64url",
        ),
        (
            "signature_der_encoded",
            "malformed",
            with_(
                signature=b64url(
                    utils.encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))
                )
            ),
            default,
            NOW,
            "raw r ‖ s, not the DER form",
        ),
        (
            "certificate_not_base64",
            "malformed",
            with_(card_certificate="not base64!"),
            default,
            NOW,
            "standard base64",
        ),
        (
            "certificate_base64url",
            "malformed",
            with_(card_certificate=base64.urlsafe_b64encode(_der("card")).decode()),
            default,
            NOW,
            "standard base64, not base64url (this certificate's encoding differs)",
        ),
        (
            "certificate_empty",
            "malformed",
            with_(card_certificate=""),
            default,
            NOW,
            "a certificate is required",
        ),
        (
            "certificate_not_der",
            "malformed",
            with_(card_certificate=base64.b64encode(b"junk").decode()),
            default,
            NOW,
            "the certificate must parse",
        ),
        (
            "certificate_too_large",
            "malformed",
            with_(card_certificate=base64.b64encode(_der("card") + bytes(4096)).decode()),
            default,
            NOW,
            "refused by size before parsing (at most 4096 bytes)",
        ),
        (
            "card_key_p384",
            "malformed",
            _token(certificate="card_p384"),
            default,
            NOW,
            "the certificate's key must be ECDSA P-256 (the signature is a well-formed 64 bytes)",
        ),
        ("no_trusted_issuer", "untrusted_issuer", basic, _verifier(trusted=()), NOW, "an empty trust list"),
        (
            "same_name_other_key",
            "untrusted_issuer",
            basic,
            _verifier(trusted=("ca_same_name",)),
            NOW,
            "a CA with the issuer's name but another key",
        ),
        (
            "issued_by_same_name_ca",
            "untrusted_issuer",
            _token(certificate="card_by_same_name_ca"),
            default,
            NOW,
            "a card certificate signed by a key the verifier does not trust",
        ),
        (
            "trusted_ca_certificate_expired",
            "untrusted_issuer",
            basic,
            _verifier(trusted=("ca_expired",)),
            NOW,
            "the right CA key, but its certificate is not valid now",
        ),
        (
            "certificate_expired",
            "expired_certificate",
            _token(certificate="card_expired"),
            default,
            NOW,
            "a card certificate that ran out",
        ),
        (
            "after_not_after",
            "expired_certificate",
            basic,
            default,
            not_after + 1,
            "one second after notAfter",
        ),
        (
            "certificate_not_yet_valid",
            "not_yet_valid",
            _token(certificate="card_not_yet_valid"),
            default,
            NOW,
            "a card certificate valid from 2027",
        ),
        ("before_not_before", "not_yet_valid", basic, default, not_before - 1, "one second before notBefore"),
        (
            "card_id_of_another_card",
            "card_mismatch",
            _token(card_id=OTHER_CARD_ID),
            default,
            NOW,
            "card_id is the certificate's serialNumber",
        ),
        (
            "certificate_without_serial_number",
            "card_mismatch",
            _token(certificate="card_without_serial_number"),
            default,
            NOW,
            "a certificate naming no card",
        ),
        (
            "certificate_serial_lowercase",
            "card_mismatch",
            _token(certificate="card_serial_lowercase"),
            default,
            NOW,
            "serialNumber is upper-case hex (CARD_PROFILE.md)",
        ),
        (
            "other_origin",
            "bad_signature",
            basic,
            _verifier(origin="https://evil.example"),
            NOW,
            "signed for another site",
        ),
        (
            "origin_with_trailing_slash",
            "bad_signature",
            basic,
            _verifier(origin=ORIGIN + "/"),
            NOW,
            "the origin is hashed exactly as the Origin header carries it",
        ),
        (
            "other_nonce",
            "bad_signature",
            basic,
            _verifier(nonce=bytes(32)),
            NOW,
            "the answer to another challenge",
        ),
        (
            "signature_flipped_bit",
            "bad_signature",
            with_(signature=b64url(flipped)),
            default,
            NOW,
            "tampered",
        ),
        ("signature_s_r", "bad_signature", with_(signature=b64url(s + r)), default, NOW, "r first, then s"),
        (
            "signed_halves_swapped",
            "bad_signature",
            signed_over(swapped_halves),
            default,
            NOW,
            "SHA-256(origin) comes first, then SHA-256(nonce)",
        ),
        (
            "signed_by_another_card",
            "bad_signature",
            signed_over(signed_data(ORIGIN, NONCE), key="other_card"),
            default,
            NOW,
            "this certificate, another card's key",
        ),
        ("signature_zero", "bad_signature", with_(signature=b64url(bytes(64))), default, NOW, "r = s = 0"),
        (
            "signature_r_is_group_order",
            "bad_signature",
            with_(signature=b64url(P256_ORDER.to_bytes(32, "big") + s)),
            default,
            NOW,
            "r out of range",
        ),
    ]
    out = []
    for name, reason, token, verifier, now, note in cases:
        vector = {"name": name, "reason": reason, "token": token, **verifier, "now": now, "note": note}
        try:
            _check(vector, now)
        except Exception as exc:
            actual = getattr(getattr(exc, "reason", None), "value", repr(exc))
            if actual != reason:
                raise AssertionError(f"{name}: the verifier says {actual}, not {reason}") from exc
        else:
            raise AssertionError(f"{name}: the verifier accepts it")
        out.append(vector)
    return out


def build_vectors() -> dict[str, Any]:
    return {
        "format": FORMAT,
        "description": (
            "Golden vectors for the card-auth token of DESIGN.md §4 (sdk.card_auth); the layout is described"
            " in tests/vectors/card_auth/generate.py"
        ),
        "signed_data": "SHA-256(origin as UTF-8) ‖ SHA-256(nonce), 64 bytes, signed with ECDSA P-256/SHA-256",
        "now": NOW,
        "keys": {name: _key_doc(key) for name, key in KEYS.items()},
        "certificates": {name: _certificate_doc(certificate) for name, certificate in CERTIFICATES.items()},
        "card": {
            "card_id_hex": CARD_ID.hex().upper(),
            "card_number": CARD_NUMBER,
            "key": "card",
            "certificate": "card",
            "pin": "123456",
            # EF05's dates, for a virtual card file (CARD_PROFILE.md) the emulator can load.
            "issue_date": CARD_NOT_BEFORE.date().isoformat(),
            "expiry_date": CARD_NOT_AFTER.date().isoformat(),
        },
        "valid": _valid_vectors(),
        "invalid": _invalid_vectors(),
    }


def render() -> str:
    return json.dumps(build_vectors(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    VECTORS_FILE.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {VECTORS_FILE}\n")
