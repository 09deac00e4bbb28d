"""Key store operations and the per-process key ring.

Services below take a SQLAlchemy ``Session`` and ``now``; they never commit (the caller's unit of work
does). ``KeyRing`` is the read side every signer and verifier uses: it loads the published keys of a key
set, unwraps private parts once, and caches the result for a few seconds so a key activated on one node is
used by every node shortly after, without a database round trip per token.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.config import ConfigError
from idp.crypto.errors import DecryptionFailure, UnwrapError
from idp.crypto.kek import KeyEncryptionKeys, kek_id_of_blob
from idp.crypto.pii import PiiCipher
from idp.db import Database, lock_transaction, utc_from_timestamp
from idp.keys.errors import HsmError, KeyNotFoundError, KeyStateError
from idp.keys.model import PUBLISHED_STATES, KeyRecord, KeyState
from idp.keys.pkcs11 import Pkcs11Backend, is_reference
from sdk.keys import Algorithm, Key, KeySet, generate_key

SecretAlg = Literal["A256GCM", "HS256"]

# DO NOT CHANGE: bound into every wrapped key as associated data; changing it makes stored keys unreadable.
WRAP_PURPOSE_PREFIX = "onecard/key/v1/"
# DO NOT CHANGE: every node must take the same PostgreSQL advisory lock for key changes ("ONEKEYS" + 1).
_PG_KEYS_LOCK = 0x4F4E454B_45595301
# How long a node uses its cached view of the key sets. The lifecycle's waiting periods include it: a key
# activated, retired or revoked on one node is seen by every node at most this much later.
KEY_RING_CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class KeySetSpec:
    """What a key set holds: an asymmetric signing algorithm or a 32-byte symmetric secret."""

    name: str
    alg: str

    @property
    def symmetric(self) -> bool:
        return self.alg in ("A256GCM", "HS256")


OIDC_RS256 = KeySetSpec("oidc-rs256", "RS256")
OIDC_ES256 = KeySetSpec("oidc-es256", "ES256")
QR_SIGNING = KeySetSpec("qr", "EdDSA")
DATA_KEYS = KeySetSpec("data", "A256GCM")
INDEX_KEYS = KeySetSpec("index", "HS256")
COOKIE_KEYS = KeySetSpec("cookie", "HS256")
# OpenID Federation 1.0: signs this deployment's entity configuration and, for an anchor or intermediate,
# its subordinate statements and trust marks (idp.federation).
FEDERATION_KEYS = KeySetSpec("federation", "ES256")
# Cross-region login: this deployment as a relying party of other regions' OneCards signs its request objects
# and client assertions with these (published in its entity configuration's openid_relying_party jwks).
FEDERATION_RP_KEYS = KeySetSpec("federation-rp", "ES256")

# Key sets every deployment has; card-issuer CA sets ("card-ca-<region>") are added as regions are set up.
CORE_KEY_SETS: tuple[KeySetSpec, ...] = (
    OIDC_RS256,
    OIDC_ES256,
    QR_SIGNING,
    DATA_KEYS,
    INDEX_KEYS,
    COOKIE_KEYS,
    FEDERATION_KEYS,
    FEDERATION_RP_KEYS,
)


def spec_for(name: str) -> KeySetSpec:
    for spec in CORE_KEY_SETS:
        if spec.name == name:
            return spec
    if name.startswith("card-ca-"):
        return KeySetSpec(name, "ES256")
    raise KeyNotFoundError(f"unknown key set {name!r}")


def _wrap_purpose(kid: str) -> str:
    return WRAP_PURPOSE_PREFIX + kid


def create_key(
    session: Session,
    keks: KeyEncryptionKeys,
    spec: KeySetSpec,
    *,
    state: KeyState,
    now: float,
    key: Key | None = None,
    certificate_pem: str | None = None,
    hsm: Pkcs11Backend | None = None,
) -> KeyRecord:
    """Generate (or take) a key for ``spec`` and store it wrapped.

    With ``hsm`` the key pair is generated in the PKCS#11 token and only a reference to it is stored.
    """
    at = utc_from_timestamp(now)
    if spec.symmetric:
        if hsm is not None:
            raise HsmError(f"{spec.name} is a symmetric key set; only signing keys live in the HSM")
        secret = secrets.token_bytes(32)
        kid = spec.name + "-" + secrets.token_hex(6)
        public_jwk = None
    elif hsm is not None:
        key, secret = hsm.generate(_asym_alg(spec))
        kid = key.kid
        public_jwk = key.public_jwk()
    else:
        key = key or generate_key(_asym_alg(spec))
        secret = key.private_pem()
        kid = key.kid
        public_jwk = key.public_jwk()
    record = KeyRecord(
        kid=kid,
        key_set=spec.name,
        alg=spec.alg,
        state=state.value,
        wrapped_secret=keks.wrap(_wrap_purpose(kid), secret),
        public_jwk=public_jwk,
        certificate_pem=certificate_pem,
        created_at=at,
        activated_at=at if state is KeyState.ACTIVE else None,
    )
    session.add(record)
    session.flush()
    return record


def _asym_alg(spec: KeySetSpec) -> Algorithm:
    if spec.alg not in ("RS256", "ES256", "EdDSA"):
        raise KeyStateError(f"key set {spec.name} is symmetric")
    return spec.alg  # type: ignore[return-value]


def ensure_key_sets(
    session: Session, keks: KeyEncryptionKeys, specs: Iterable[KeySetSpec], *, now: float
) -> list[str]:
    """Create an active key for every set that has none; returns the names created.

    On first start nobody can have cached a key set yet, so the first key may sign at once; every later key
    goes through pending first. Run at every start-up (``idp.app.initialise_keys``: ``onecard serve``,
    ``idp.wsgi``, every ``onecard`` command that needs keys), so it first refuses KEKs that cannot open the
    stored keys (``require_keks_open_stored_keys``).
    """
    require_keks_open_stored_keys(session, keks)
    # Several workers may start on a new database at once: only one may create each first key.
    lock_key_store(session)
    created = []
    for spec in specs:
        active = session.scalar(
            select(KeyRecord.kid).where(KeyRecord.key_set == spec.name, KeyRecord.state == KeyState.ACTIVE)
        )
        if active is None:
            create_key(session, keks, spec, state=KeyState.ACTIVE, now=now)
            created.append(spec.name)
    return created


def require_keks_open_stored_keys(session: Session, keks: KeyEncryptionKeys) -> None:
    """Raise ``ConfigError`` unless the configured KEKs unwrap every key the server uses (every published
    key: pending, active, retired).

    A server started without the KEK its keys were wrapped under (ONECARD_KEK unset, so a development node
    falls back to the development KEK, or the wrong key or file deployed) would otherwise answer discovery
    and fail every request that signs or decrypts. Refusing to start names the setting; the message carries
    KEK ids (a hash prefix, as ``onecard keys rewrap`` prints them), never key material.
    """
    missing: dict[str, int] = {}
    unopened = 0
    for record in session.scalars(select(KeyRecord).where(KeyRecord.state.in_(PUBLISHED_STATES))):
        try:
            unwrap_secret(keks, record)
        except UnwrapError as exc:
            if exc.reason is DecryptionFailure.UNKNOWN_KEY:
                ident = kek_id_of_blob(record.wrapped_secret).hex()
                missing[ident] = missing.get(ident, 0) + 1
            else:
                unopened += 1
    if not missing and not unopened:
        return
    configured = ", ".join(ident.hex() for ident in keks.key_ids)
    problems = [
        f"{count} stored key(s) are wrapped under KEK {ident}, which is not configured"
        for ident, count in sorted(missing.items())
    ]
    if unopened:
        problems.append(f"{unopened} stored key(s) do not open under the configured KEKs (tampered?)")
    raise ConfigError(
        "ONECARD_KEK (or ONECARD_KEK_FILE) does not hold the key-encryption key of the stored keys: "
        + "; ".join(problems)
        + f". Configured KEK id(s): {configured}. Set ONECARD_KEK or ONECARD_KEK_FILE to the KEK the keys "
        "were created under (during a KEK rotation: the new one first, then the old one)."
    )


def lock_key_store(session: Session) -> None:
    """Serialise key changes for the rest of the transaction (two ticks must not both rotate a set).

    PostgreSQL: a transaction-scoped advisory lock; SQLite: its single write lock, taken by a write that
    changes nothing (the same technique as the audit trail's appends).
    """
    lock_transaction(session, _PG_KEYS_LOCK, KeyRecord.state)


def key_set_names(session: Session) -> list[str]:
    """Every key set that has keys, core sets first, then card-issuer CA sets by name."""
    stored = set(session.scalars(select(KeyRecord.key_set).distinct()))
    core = [spec.name for spec in CORE_KEY_SETS if spec.name in stored]
    return core + sorted(stored - set(core))


def list_keys(session: Session, key_set: str | None = None) -> list[KeyRecord]:
    query = select(KeyRecord).order_by(KeyRecord.key_set, KeyRecord.created_at.desc())
    if key_set:
        query = query.where(KeyRecord.key_set == key_set)
    return list(session.scalars(query))


def get_key(session: Session, kid: str) -> KeyRecord:
    record = session.get(KeyRecord, kid) if isinstance(kid, str) and len(kid) <= 64 else None
    if record is None:
        raise KeyNotFoundError(f"kid {kid!r}")
    return record


def unwrap_secret(keks: KeyEncryptionKeys, record: KeyRecord) -> bytes:
    """The key's stored secret: a private key PEM, a 32-byte symmetric key, or an HSM reference."""
    return keks.unwrap(_wrap_purpose(record.kid), record.wrapped_secret)


def wipe_secret(keks: KeyEncryptionKeys, record: KeyRecord) -> None:
    """Overwrite the stored secret of a removed or revoked key; the row stays for the record."""
    record.wrapped_secret = keks.wrap(_wrap_purpose(record.kid), b"")


def rewrap_keys(session: Session, keks: KeyEncryptionKeys) -> int:
    """Re-wrap every secret not yet under the first KEK; returns how many (0 when done: idempotent)."""
    count = 0
    for record in session.scalars(select(KeyRecord)):
        if keks.needs_rewrap(record.wrapped_secret):
            record.wrapped_secret = keks.rewrap(_wrap_purpose(record.kid), record.wrapped_secret)
            count += 1
    session.flush()
    return count


def count_needing_rewrap(session: Session, keks: KeyEncryptionKeys) -> int:
    return sum(1 for blob in session.scalars(select(KeyRecord.wrapped_secret)) if keks.needs_rewrap(blob))


_STATE_ORDER = {KeyState.ACTIVE: 0, KeyState.PENDING: 1, KeyState.RETIRED: 2}


def _published(session: Session, key_set: str) -> list[KeyRecord]:
    """Published keys: active first, then pending, then retired; newest first within each state."""
    records = session.scalars(
        select(KeyRecord).where(KeyRecord.key_set == key_set, KeyRecord.state.in_(PUBLISHED_STATES))
    ).all()
    return sorted(records, key=lambda r: (_STATE_ORDER[KeyState(r.state)], -r.created_at.timestamp()))


@dataclass(frozen=True)
class _Loaded:
    loaded_at: float
    key_set: KeySet
    secrets: tuple[tuple[str, bytes], ...]
    certificates: tuple[str, ...]


class KeyRing:
    """This process's view of the key sets, refreshed from the database every ``cache_seconds``.

    Asymmetric sets: the active key signs (with its private part, or through the HSM), pending and retired
    keys are published for verification only. Symmetric sets: the active secret first, then pending ones
    (so every node can already decrypt with a new key before any node encrypts with it), then retired ones.
    """

    def __init__(
        self,
        database: Database,
        keks: KeyEncryptionKeys,
        *,
        cache_seconds: float = KEY_RING_CACHE_SECONDS,
        hsm: Pkcs11Backend | None = None,
    ) -> None:
        self._database = database
        self._keks = keks
        self.cache_seconds = cache_seconds
        self.hsm = hsm
        self._loaded: dict[str, _Loaded] = {}
        self._lock = threading.Lock()
        # Unwrapped material by kid: unwrapping and PEM parsing cost more than the signature itself.
        self._unwrapped: dict[str, Key | bytes] = {}

    def invalidate(self) -> None:
        with self._lock:
            self._loaded.clear()

    def _material(self, record: KeyRecord, symmetric: bool) -> Key | bytes:
        cached = self._unwrapped.get(record.kid)
        if cached is not None:
            return cached
        raw = unwrap_secret(self._keks, record)
        material: Key | bytes
        if symmetric:
            material = raw
        elif is_reference(raw):
            if self.hsm is None or record.public_jwk is None:
                raise HsmError(f"key {record.kid} lives in an HSM, and no PKCS#11 module is configured")
            public_key = Key.from_jwk(record.public_jwk).public_key
            material = self.hsm.load(raw, kid=record.kid, public_key=public_key)
        else:
            material = Key.from_private_pem(raw, kid=record.kid)
        self._unwrapped[record.kid] = material
        return material

    def _load(self, name: str, now: float) -> _Loaded:
        cached = self._loaded.get(name)
        if cached is not None and 0 <= now - cached.loaded_at < self.cache_seconds:
            return cached
        symmetric = spec_for(name).symmetric
        keys: list[Key] = []
        secret_list: list[tuple[str, bytes]] = []
        certificates: list[str] = []
        with self._database.session() as session:
            for record in _published(session, name):
                material = self._material(record, symmetric)
                if isinstance(material, Key):
                    keys.append(material if record.state == KeyState.ACTIVE else material.public_only())
                else:
                    secret_list.append((record.kid, material))
                if record.certificate_pem:
                    certificates.append(record.certificate_pem)
        loaded = _Loaded(now, KeySet(tuple(keys)), tuple(secret_list), tuple(certificates))
        with self._lock:
            self._loaded[name] = loaded
        return loaded

    def key_set(self, name: str, *, now: float) -> KeySet:
        """Published keys of an asymmetric set: the active key (able to sign) first."""
        return self._load(name, now).key_set

    def secrets(self, name: str, *, now: float) -> tuple[tuple[str, bytes], ...]:
        """(kid, secret) of a symmetric set: active first, then pending, then retired."""
        return self._load(name, now).secrets

    def certificates(self, name: str, *, now: float) -> tuple[str, ...]:
        return self._load(name, now).certificates


def pii_cipher_of(keyring: KeyRing, *, now: float) -> PiiCipher:
    """The PII cipher over the current data keys (the active key encrypts, retired ones decrypt)."""
    data_keys = keyring.secrets(DATA_KEYS.name, now=now)
    index_keys = keyring.secrets(INDEX_KEYS.name, now=now)
    return PiiCipher(data_keys, index_keys[0][1])


def transition(record: KeyRecord, to: KeyState, *, now: float) -> None:
    """Move a key along its lifecycle; raises ``KeyStateError`` for a move the lifecycle does not allow."""
    allowed = {
        KeyState.PENDING: {KeyState.ACTIVE, KeyState.REVOKED, KeyState.REMOVED},
        KeyState.ACTIVE: {KeyState.RETIRED, KeyState.REVOKED},
        KeyState.RETIRED: {KeyState.REMOVED, KeyState.REVOKED},
        KeyState.REMOVED: set(),
        KeyState.REVOKED: set(),
    }
    current = KeyState(record.state)
    if to not in allowed[current]:
        raise KeyStateError(f"key {record.kid} cannot go from {current} to {to}")
    at: datetime = utc_from_timestamp(now)
    record.state = to.value
    if to is KeyState.ACTIVE:
        record.activated_at = at
    elif to is KeyState.RETIRED:
        record.retired_at = at
    elif to is KeyState.REMOVED:
        record.removed_at = at
    elif to is KeyState.REVOKED:
        record.revoked_at = at
