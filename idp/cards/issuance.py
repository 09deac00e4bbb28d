"""Card-issuer CAs and card issuance (DESIGN.md §4 "Card issuance", §7; CARD_PROFILE.md "Certificate").

Each region has a card-issuer CA: an ES256 key in the key set ``card-ca-<region>`` with its self-signed CA
certificate stored on the key record, following the key lifecycle of DESIGN.md §7 (a new CA of a region
that already has one starts *pending*: trusted for verification at once, signing only once activated). The
trust list every login node verifies against is the certificates of every published key of every
``card-ca-*`` set, so several regions (cross-region cards) and a rotating region's old and new CA are
trusted at once, and a revoked CA drops out within the key ring's cache time.

``issue_card`` creates the register row, a P-256 key pair and the issuer-signed card certificate — subject
serialNumber = card identification code in upper-case hex, CN = card number, no name or ID number,
validity ending no later than the card's expiry date — and returns the virtual card file the emulator
loads, with EF06 holding the cardholder's records from the register (CARD_PROFILE "EF06"). On the 3.00
cards issued here EF06 and the card number answer 6982 without the issuer's external authentication, as
on a real card; the bridge never reads them. In production the key pair is generated on the chip and only
the certificate is made here.

``issuer_ca_certificates`` gives a region's trusted CA certificates, for ``onecard cards ca REGION``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.audit.service import record_event
from idp.cards.errors import (
    CardExistsError,
    CitizenNotEligibleError,
    InvalidRegionError,
    IssuerCaNotFoundError,
)
from idp.cards.model import Card, CardStatus
from idp.cards.service import cards_of_citizen, change_status, find_card, find_card_by_number
from idp.citizens.errors import CitizenNotFoundError
from idp.citizens.idnumber import Gender, region_of
from idp.citizens.service import CitizenProfile, decrypt_profile, find_citizen
from idp.crypto.kek import KeyEncryptionKeys
from idp.crypto.pii import PiiCipher
from idp.db import Database, utc_from_timestamp
from idp.keys.model import PUBLISHED_STATES, KeyRecord, KeyState
from idp.keys.service import WRAP_PURPOSE_PREFIX, KeyRing, create_key, spec_for
from sdk.card_file import (
    NAME_EXTENSION_LEN,
    NAME_LEN,
    CardHolder,
    Protocol,
    VirtualCardFile,
    generate_card_id,
    validate_pin,
)
from sdk.keys import Key, generate_key

CA_KEY_SET_PREFIX = "card-ca-"
CA_VALIDITY_DAYS = 25 * 366  # outlives every card it signs (cards: 10 years)
CARD_VALIDITY_YEARS = 10
DEFAULT_REGION = "420100"
_REGION = re.compile(r"^[1-9][0-9]{5}$")
_CLOCK_SKEW = dt.timedelta(minutes=5)  # certificates start a little early: nodes' clocks differ slightly
# GB 3304 "other": the register does not record the ethnic group, and EF06 tag 0B must hold a code.
ETHNIC_GROUP_NOT_RECORDED = 97


def validate_region(region: str) -> str:
    """A GB/T 2260 division code: 6 digits, not starting with 0."""
    if not isinstance(region, str) or not _REGION.match(region):
        raise InvalidRegionError(f"region {region!r}")
    return region


def ca_key_set(region: str) -> str:
    return CA_KEY_SET_PREFIX + validate_region(region)


def _at(now: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(now), dt.UTC)


def _ca_name(region: str, kid: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "OneCard"),
            # From the kid: keeps the subjects of a region's successive CAs apart (PrintableString: hex).
            x509.NameAttribute(NameOID.SERIAL_NUMBER, hashlib.sha256(kid.encode()).hexdigest()[:16].upper()),
            x509.NameAttribute(NameOID.COMMON_NAME, f"OneCard Card Issuer CA {region}"),
        ]
    )


def create_ca_certificate(key: Key, region: str, *, now: float) -> x509.Certificate:
    """The self-signed certificate of a region's card-issuer CA."""
    private_key = key.private_key
    assert isinstance(private_key, ec.EllipticCurvePrivateKey)
    name = _ca_name(region, key.kid)
    start = _at(now) - dt.timedelta(days=1)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=CA_VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(private_key.public_key()), critical=False)
        .sign(private_key, hashes.SHA256())
    )


def active_issuer_ca(session: Session, region: str) -> KeyRecord | None:
    return session.scalar(
        select(KeyRecord)
        .where(KeyRecord.key_set == ca_key_set(region), KeyRecord.state == KeyState.ACTIVE.value)
        .order_by(KeyRecord.created_at.desc())
        .limit(1)
    )


def create_issuer_ca(
    session: Session, keks: KeyEncryptionKeys, region: str, *, actor: str, now: float
) -> KeyRecord:
    """A new CA for ``region``: active if the region has none, else pending (trusted, not yet signing)."""
    spec = spec_for(ca_key_set(region))
    key = generate_key("ES256")
    certificate = create_ca_certificate(key, region, now=now)
    state = KeyState.PENDING if active_issuer_ca(session, region) is not None else KeyState.ACTIVE
    record = create_key(
        session,
        keks,
        spec,
        state=state,
        now=now,
        key=key,
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
    )
    record_event(
        session,
        actor=actor,
        action="card_ca.created",
        target_type="key",
        target_id=record.kid,
        details={"key_set": spec.name, "state": state.value},
        now=now,
    )
    return record


def ensure_issuer_ca(
    session: Session, keks: KeyEncryptionKeys, region: str, *, actor: str, now: float
) -> KeyRecord:
    """The region's active CA, created on first use."""
    return active_issuer_ca(session, region) or create_issuer_ca(session, keks, region, actor=actor, now=now)


def issuer_ca_certificates(session: Session, region: str) -> list[x509.Certificate]:
    """The certificates of ``region``'s card-issuer CAs that verifiers trust — every published key, the
    active one first — so a bridge, kiosk or test tool with this list accepts the cards of a CA being
    rotated in or out too. ``IssuerCaNotFoundError`` if the region has none."""
    records = session.scalars(
        select(KeyRecord)
        .where(
            KeyRecord.key_set == ca_key_set(region),
            KeyRecord.state.in_([state.value for state in PUBLISHED_STATES]),
        )
        .order_by(KeyRecord.created_at.desc())
    ).all()
    active_first = sorted(records, key=lambda record: record.state != KeyState.ACTIVE.value)
    certificates = [
        x509.load_pem_x509_certificate(record.certificate_pem.encode("ascii"))
        for record in active_first
        if record.certificate_pem is not None
    ]
    if not certificates:
        raise IssuerCaNotFoundError(f"no published CA in {ca_key_set(region)}")
    return certificates


def list_issuer_cas(session: Session) -> list[KeyRecord]:
    return list(
        session.scalars(
            select(KeyRecord)
            .where(KeyRecord.key_set.startswith(CA_KEY_SET_PREFIX))
            .order_by(KeyRecord.key_set, KeyRecord.created_at.desc())
        )
    )


def _unwrap_ca_key(keks: KeyEncryptionKeys, record: KeyRecord) -> ec.EllipticCurvePrivateKey:
    # Directly from the record, not through the key ring: a CA created in this unit of work is not committed
    # yet, and the ring reads committed rows only.
    raw = keks.unwrap(WRAP_PURPOSE_PREFIX + record.kid, record.wrapped_secret)
    key = Key.from_private_pem(raw, kid=record.kid)
    assert isinstance(key.private_key, ec.EllipticCurvePrivateKey)
    return key.private_key


def create_card_certificate(
    *,
    ca_certificate: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    card_key: ec.EllipticCurvePublicKey,
    card_id: bytes,
    card_number: str,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.Certificate:
    """CARD_PROFILE.md "Certificate": P-256, subject serialNumber = card id (upper-case hex), CN = card
    number, nothing about the person (the certificate passes through the web page)."""
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, card_id.hex().upper()),
            x509.NameAttribute(NameOID.COMMON_NAME, card_number),
        ]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_certificate.subject)
        .public_key(card_key)
        .serial_number(x509.random_serial_number())
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
        .sign(ca_key, hashes.SHA256())
    )


def _add_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def generate_card_number() -> str:
    """A 9-character card number (CARD_PROFILE.md EF05 rec 07): a letter and 8 digits."""
    return "A" + f"{secrets.randbelow(10**8):08d}"


def _gbk_name_fields(name: str) -> tuple[str, str]:
    """The name as EF06 holds it: GBK, the first 30 bytes in tag 09 and the rest (up to 20) in the name
    extension, tag 4E, cut between characters. A character GBK lacks is written as "?": a card printer
    uses the issuer's own font for those, which a development card does not have."""
    fields = ["", ""]
    used = [0, 0]
    limits = (NAME_LEN, NAME_EXTENSION_LEN)
    index = 0
    for char in name:
        encoded = char.encode("gbk", errors="replace")
        while index < 2 and used[index] + len(encoded) > limits[index]:
            index += 1
        if index == 2:
            break  # longer than the card holds: the register keeps the whole name
        fields[index] += encoded.decode("gbk")
        used[index] += len(encoded)
    return fields[0], fields[1]


def cardholder_record(profile: CitizenProfile) -> CardHolder:
    """EF06 (CARD_PROFILE "EF06") from the register: social security number = ID number, name, gender,
    date of birth; the place of birth is the ID number's division code, the nearest the register knows."""
    name, extension = _gbk_name_fields(profile.name)
    return CardHolder(
        ssn=profile.id_number,
        name=name,
        name_extension=extension,
        gender="1" if profile.gender is Gender.MALE else "2",
        ethnic_group=ETHNIC_GROUP_NOT_RECORDED,
        birthplace=region_of(profile.id_number),
        birth_date=profile.birthdate,
    )


def certificate_fingerprint(certificate_der: bytes) -> str:
    return hashlib.sha256(certificate_der).hexdigest()


@dataclass(frozen=True)
class IssuedCard:
    card: Card
    card_file: VirtualCardFile


def issue_card(
    session: Session,
    keks: KeyEncryptionKeys,
    *,
    citizen_id: str,
    actor: str,
    now: float,
    region: str = DEFAULT_REGION,
    pin: str | None = None,
    protocol: Protocol = "T=1",
    replace: bool = False,
    validity_years: int = CARD_VALIDITY_YEARS,
    pii: PiiCipher | None = None,
) -> IssuedCard:
    """Issue a card to an active citizen: register row, key pair, certificate, audit event, card file.

    A citizen holds one live card: with ``replace`` the live ones are cancelled first (audited), without it
    ``CardExistsError``. ``pin`` defaults to a random 6-digit PIN (it is in the returned card file).
    ``pii`` decrypts the citizen's record for the card file's EF06; without it the file has no EF06 (the
    callers that do not pass it yet: the demo seeding and the benchmark).
    """
    validate_region(region)
    valid_id = isinstance(citizen_id, str) and 0 < len(citizen_id) <= 36
    citizen = find_citizen(session, citizen_id) if valid_id else None
    if citizen is None:
        raise CitizenNotFoundError("no citizen with this id")
    if not citizen.is_active:
        raise CitizenNotEligibleError(f"citizen is {citizen.status}")
    live = cards_of_citizen(session, citizen.id, live_only=True)
    if live and not replace:
        raise CardExistsError(f"{len(live)} live card(s)")
    holder = cardholder_record(decrypt_profile(pii, citizen)) if pii is not None else None
    pin = pin if pin is not None else f"{secrets.randbelow(10**6):06d}"
    validate_pin(pin)
    issued_on = _at(now).date()
    expires_on = _add_years(issued_on, validity_years)
    ca_record = ensure_issuer_ca(session, keks, region, actor=actor, now=now)
    assert ca_record.certificate_pem is not None
    ca_certificate = x509.load_pem_x509_certificate(ca_record.certificate_pem.encode("ascii"))
    ca_key = _unwrap_ca_key(keks, ca_record)

    card_id = generate_card_id(region)
    while find_card(session, card_id.hex()) is not None:
        card_id = generate_card_id(region)
    card_number = generate_card_number()
    while find_card_by_number(session, card_number) is not None:
        card_number = generate_card_number()
    card_key = ec.generate_private_key(ec.SECP256R1())
    expiry_moment = dt.datetime.combine(expires_on, dt.time(), dt.UTC)
    certificate = create_card_certificate(
        ca_certificate=ca_certificate,
        ca_key=ca_key,
        card_key=card_key.public_key(),
        card_id=card_id,
        card_number=card_number,
        not_before=_at(now) - _CLOCK_SKEW,
        not_after=min(expiry_moment, ca_certificate.not_valid_after_utc),
    )
    certificate_der = certificate.public_bytes(serialization.Encoding.DER)
    card_file = VirtualCardFile.create(
        card_id=card_id,
        card_number=card_number,
        certificate_der=certificate_der,
        private_key_pem=card_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        pin=pin,  # validated here: InvalidCardFileError before any row is written
        issue_date=issued_on,
        expiry_date=expires_on,
        holder=holder,
        protocol=protocol,
    )
    for old in live:
        change_status(
            session, old, CardStatus.CANCELLED, actor=actor, now=now, details={"reason": "replaced"}
        )
    at = utc_from_timestamp(now)
    card = Card(
        card_id=card_id.hex().upper(),
        card_number=card_number,
        citizen_id=citizen.id,
        region=region,
        status=CardStatus.ACTIVE.value,
        issuer_kid=ca_record.kid,
        certificate_serial=format(certificate.serial_number, "x"),
        certificate_fingerprint=certificate_fingerprint(certificate_der),
        issued_on=issued_on,
        expires_on=expires_on,
        created_at=at,
        updated_at=at,
        status_changed_at=None,
    )
    session.add(card)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="card.issued",
        target_type="card",
        target_id=card.card_id,
        details={"region": region, "issuer_kid": ca_record.kid, "replaced": [c.card_id for c in live]},
        now=now,
    )
    return IssuedCard(card, card_file)


@dataclass(frozen=True)
class TrustedIssuers:
    """One reading of the trust list: the CA certificates, and a version that changes whenever the set does
    (the SHA-256 over their fingerprints), so whatever is kept per card certificate can be keyed by it."""

    certificates: tuple[x509.Certificate, ...]
    version: bytes

    @classmethod
    def of(cls, certificates: Sequence[x509.Certificate]) -> TrustedIssuers:
        digest = hashlib.sha256()
        for certificate in certificates:
            digest.update(certificate.fingerprint(hashes.SHA256()))
        return cls(tuple(certificates), digest.digest())


class IssuerTrustList:
    """The card-issuer CA certificates this node trusts: every published key of every ``card-ca-*`` set.

    The set names are re-read every ``cache_seconds``; the certificates come from the key ring (same cache
    rule), so a new or revoked CA takes effect on every node within seconds.
    """

    def __init__(self, database: Database, keyring: KeyRing, *, cache_seconds: float = 5.0) -> None:
        self._database = database
        self._keyring = keyring
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._loaded: tuple[float, TrustedIssuers] | None = None
        self._parsed: dict[str, x509.Certificate] = {}

    def invalidate(self) -> None:
        with self._lock:
            self._loaded = None

    def certificates(self, *, now: float) -> tuple[x509.Certificate, ...]:
        return self.snapshot(now=now).certificates

    def snapshot(self, *, now: float) -> TrustedIssuers:
        loaded = self._loaded
        if loaded is not None and 0 <= now - loaded[0] < self._cache_seconds:
            return loaded[1]
        with self._database.session() as session:
            names: Sequence[str] = session.scalars(
                select(KeyRecord.key_set)
                .where(
                    KeyRecord.key_set.startswith(CA_KEY_SET_PREFIX),
                    KeyRecord.state.in_([state.value for state in PUBLISHED_STATES]),
                )
                .distinct()
            ).all()
        certificates = []
        for name in sorted(names):
            for pem in self._keyring.certificates(name, now=now):
                certificate = self._parsed.get(pem)
                if certificate is None:
                    certificate = x509.load_pem_x509_certificate(pem.encode("ascii"))
                    self._parsed[pem] = certificate
                certificates.append(certificate)
        result = TrustedIssuers.of(certificates)
        with self._lock:
            self._loaded = (now, result)
        return result
