"""Test CA and card certificates made with ``cryptography`` (the server's issuance code comes later).

Certificates follow CARD_PROFILE "Certificate": P-256 key, issuer = the region's card-issuer CA, subject
serialNumber = card identification code in upper-case hex, CN = card number, validity within the card's.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sdk.card_file import CardHolder, VirtualCardFile, generate_card_id

NOT_BEFORE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
NOT_AFTER = dt.datetime(2034, 1, 1, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC).timestamp()  # inside every test certificate's validity


@dataclass(frozen=True)
class TestCA:
    __test__ = False  # not a pytest class
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def make_ca(name: str = "OneCard Test Card Issuer CA 420000") -> TestCA:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"), x509.NameAttribute(NameOID.COMMON_NAME, name)]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOT_BEFORE - dt.timedelta(days=1))
        .not_valid_after(NOT_AFTER + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return TestCA(certificate, key)


def make_card_certificate(
    ca: TestCA,
    card_id: bytes,
    card_number: str,
    key: ec.EllipticCurvePrivateKey,
    *,
    not_before: dt.datetime = NOT_BEFORE,
    not_after: dt.datetime = NOT_AFTER,
    serial_hex: str | None = None,
) -> x509.Certificate:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, serial_hex or card_id.hex().upper()),
            x509.NameAttribute(NameOID.COMMON_NAME, card_number),
        ]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
        .sign(ca.key, hashes.SHA256())
    )


def make_card(
    ca: TestCA,
    *,
    pin: str = "123456",
    protocol: str = "T=1",
    card_number: str = "X00000019",
    version: str = "3.00",
    holder: CardHolder | None = None,
) -> VirtualCardFile:
    key = ec.generate_private_key(ec.SECP256R1())
    card_id = generate_card_id("420100")
    certificate = make_card_certificate(ca, card_id, card_number, key)
    return VirtualCardFile.create(
        card_id=card_id,
        card_number=card_number,
        certificate_der=certificate.public_bytes(serialization.Encoding.DER),
        private_key_pem=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        pin=pin,
        issue_date=NOT_BEFORE.date(),
        expiry_date=NOT_AFTER.date(),
        holder=holder,
        protocol=protocol,  # type: ignore[arg-type]
        version=version,
    )


HOLDER = CardHolder(
    ssn="42010219600501123X",
    name="张三",
    gender="1",
    ethnic_group=1,
    birthplace="420102",
    birth_date=dt.date(1960, 5, 1),
)
