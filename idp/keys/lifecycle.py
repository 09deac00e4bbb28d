"""One lifecycle for every key set, its timings, and the operations that move keys along it (DESIGN.md §7).

    pending ──activate──▶ active ──(successor activated)──▶ retired ──(retention over)──▶ removed
       └───────────────────────── revoke (any published state) ──────────────────────▶ revoked

The waiting periods are not settings of their own: they derive from the lifetimes that make them necessary
(STYLE.md "Time is a parameter"; issue #6 item 4), so they cannot disagree with what they protect.

- *Pre-publication* (pending → active): a relying party or gate that fetched the JWKS / QR key set just
  before the key appeared keeps that copy for ``jwks_max_age`` (the ``Cache-Control: max-age`` both
  documents carry), and another node keeps its key ring for ``KEY_RING_CACHE_SECONDS``. A key that signs
  only after both have passed is never an unknown ``kid`` to anyone. Symmetric sets (data, cookie, index)
  are never published outside, so for them only the key ring counts.
- *Retention* (retired → removed): until everything the key signed has expired — the longest token it
  signs (access / id / logout token; a QR code's lifetime plus the gates' clock skew; a session for cookie
  keys; a card certificate for a card-issuer CA) — plus the key ring (a node that has not yet seen the
  activation still signs with the old key) plus the published document's cache lifetime. A data key is
  removed only when no stored row is encrypted under it any more, whatever the time.
- *Rotation*: with an interval configured for the set, ``tick`` creates the next pending key when the
  active one is ``interval - prepublication`` old, so the successor can take over exactly on schedule.

Every operation takes the session (the caller commits), a ``KeyActor`` (who, why, with which KEKs / HSM)
and ``now``; it serialises with every other key change (``lock_key_store``), records one audit event per
key it moves, in the same transaction, and returns the ``KeyChange``\\ s. The actor's ``reason`` goes into
every event the same way (``record_key_event``), whichever command or API call made the change; it is
checked when the actor is made, before anything changes. Revocation cannot wait for caches:
the revoked key leaves this node's key ring at once (the caller invalidates it) and every other node's at
its next refresh, at most ``KEY_RING_CACHE_SECONDS`` later; relying parties drop it at their next JWKS
fetch, gates at their next sync.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from idp.audit.service import record_event
from idp.citizens.model import Citizen
from idp.citizens.service import reencrypt_citizens
from idp.config import Settings
from idp.crypto.kek import KeyEncryptionKeys
from idp.crypto.pii import PiiCipher
from idp.db import Database, utc_from_timestamp
from idp.keys.errors import (
    KeyInUseError,
    KeySetNotRotatableError,
    KeyStateError,
    PrepublicationError,
    RetentionError,
)
from idp.keys.model import KeyRecord, KeyState
from idp.keys.pkcs11 import Pkcs11Backend, hsm_key_sets, is_reference
from idp.keys.service import (
    COOKIE_KEYS,
    DATA_KEYS,
    INDEX_KEYS,
    KEY_RING_CACHE_SECONDS,
    OIDC_ES256,
    OIDC_RS256,
    QR_SIGNING,
    KeyRing,
    KeySetSpec,
    create_key,
    get_key,
    key_set_names,
    list_keys,
    lock_key_store,
    rewrap_keys,
    spec_for,
    transition,
    unwrap_secret,
    wipe_secret,
)
from sdk.errors import InvalidRequestError
from sdk.keys import Key
from sdk.qr_token import DEFAULT_CLOCK_SKEW, DEFAULT_LIFETIME

DAY = 86_400
# idp.oauth.tokens.issue_logout_token: back-channel logout tokens live two minutes.
LOGOUT_TOKEN_LIFETIME = 120
MAX_REASON_LENGTH = 200
CARD_CA_PREFIX = "card-ca-"


# Timings ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeySetPolicy:
    """How one key set moves through the lifecycle; every number derived from ``Settings``."""

    name: str
    published: bool  # in a document outside parties cache (JWKS, QR key set)
    prepublication: int  # seconds a pending key is published before it may sign
    retention: int  # seconds a retired key stays accepted before it may be removed
    rotation_interval: int  # seconds between automatic rotations; 0 = manual only
    rotatable: bool = True
    why: str = ""  # the derivation, for `onecard keys policy` and the runbook

    def rotation_due(self, activated_at: float) -> float | None:
        """When ``tick`` creates the successor of a key activated at ``activated_at``."""
        if not self.rotation_interval:
            return None
        return activated_at + max(self.rotation_interval - self.prepublication, 0)


def policy_for(
    settings: Settings, name: str, *, cache_seconds: float = KEY_RING_CACHE_SECONDS
) -> KeySetPolicy:
    ring = math.ceil(cache_seconds)
    outside = settings.jwks_max_age
    if name in (OIDC_RS256.name, OIDC_ES256.name):
        longest = max(settings.access_token_ttl, settings.id_token_ttl, LOGOUT_TOKEN_LIFETIME)
        return KeySetPolicy(
            name,
            True,
            outside + ring,
            longest + ring + outside,
            settings.key_rotation_oidc_days * DAY,
            why=f"pre-publication = jwks_max_age {outside} + key ring {ring}; retention = longest token "
            f"{longest} + key ring {ring} + jwks_max_age {outside}",
        )
    if name == QR_SIGNING.name:
        longest = DEFAULT_LIFETIME + DEFAULT_CLOCK_SKEW
        return KeySetPolicy(
            name,
            True,
            outside + ring,
            longest + ring + outside,
            settings.key_rotation_qr_days * DAY,
            why=f"pre-publication = QR key set max-age {outside} + key ring {ring}; retention = QR code "
            f"{DEFAULT_LIFETIME} + gate clock skew {DEFAULT_CLOCK_SKEW} + key ring {ring} "
            f"+ max-age {outside}",
        )
    if name == DATA_KEYS.name:
        return KeySetPolicy(
            name,
            False,
            ring,
            ring,
            settings.key_rotation_data_days * DAY,
            why=f"pre-publication = key ring {ring}; removal once no row is encrypted under the key "
            f"(after `onecard keys reencrypt`) and the key ring {ring} has passed",
        )
    if name == COOKIE_KEYS.name:
        longest = max(settings.sso_session_ttl, settings.login_transaction_ttl)
        return KeySetPolicy(
            name,
            False,
            ring,
            longest + ring,
            settings.key_rotation_cookie_days * DAY,
            why=f"pre-publication = key ring {ring}; retention = session {longest} + key ring {ring}",
        )
    if name == INDEX_KEYS.name:
        return KeySetPolicy(
            name,
            False,
            ring,
            ring,
            0,
            rotatable=False,
            why="the blind-index key cannot rotate by re-encryption: every index would change",
        )
    if name.startswith(CARD_CA_PREFIX):
        longest = settings.card_certificate_days * DAY
        return KeySetPolicy(
            name,
            False,
            ring,
            longest + ring,
            settings.key_rotation_card_ca_days * DAY,
            why=f"pre-publication = key ring {ring} (the trust list); retention = card certificate "
            f"{longest} + key ring {ring}",
        )
    spec_for(name)  # raises KeyNotFoundError for an unknown set
    raise KeyStateError(f"no lifecycle policy for key set {name}")


# Who acts ---------------------------------------------------------------------------------------------


def validate_reason(reason: str) -> str:
    """The reason with its whitespace collapsed; printable text of at most ``MAX_REASON_LENGTH``."""
    reason = " ".join(reason.split())
    if len(reason) > MAX_REASON_LENGTH or not reason.isprintable():
        raise InvalidRequestError(
            "reason",
            description=f"The reason must be printable text of at most {MAX_REASON_LENGTH} characters.",
        )
    return reason


@dataclass(frozen=True)
class KeyActor:
    """Who changes keys (``cli:<user>``, ``client:<id>``, ``scheduler``), why, and with what.

    ``reason`` is validated here, so a bad one stops a change before it starts (a re-encryption commits
    batch by batch and must not fail at its closing audit event).
    """

    settings: Settings
    keks: KeyEncryptionKeys
    actor: str
    reason: str = ""
    hsm: Pkcs11Backend | None = None
    cache_seconds: float = KEY_RING_CACHE_SECONDS

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", validate_reason(self.reason))

    def policy(self, name: str) -> KeySetPolicy:
        return policy_for(self.settings, name, cache_seconds=self.cache_seconds)


@dataclass(frozen=True)
class KeyChange:
    kid: str
    key_set: str
    action: str  # create | activate | retire | remove | revoke
    from_state: str | None
    to_state: str
    forced: bool = False

    def describe(self) -> str:
        moved = f"{self.from_state} → {self.to_state}" if self.from_state else self.to_state
        return f"{self.action:<8} {self.key_set:<12} {self.kid}  {moved}" + (
            "  (forced)" if self.forced else ""
        )


def record_key_event(
    session: Session,
    who: KeyActor,
    *,
    action: str,
    target_type: str,
    target_id: str,
    details: dict[str, Any],
    now: float,
) -> None:
    """The audit event of a key change, naming the actor and, if given, the reason: every change, one way."""
    record_event(
        session,
        actor=who.actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        details={**details, **({"reason": who.reason} if who.reason else {})},
        now=now,
    )


def _audit(session: Session, who: KeyActor, change: KeyChange, *, now: float, **extra: Any) -> None:
    details: dict[str, Any] = {"key_set": change.key_set, "to": change.to_state}
    if change.from_state:
        details["from"] = change.from_state
    if change.forced:
        details["forced"] = True
    details.update(extra)
    record_key_event(
        session,
        who,
        action=f"key.{change.action}",
        target_type="key",
        target_id=change.kid,
        details=details,
        now=now,
    )


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _move(
    session: Session,
    who: KeyActor,
    record: KeyRecord,
    to: KeyState,
    action: str,
    *,
    now: float,
    forced: bool = False,
    **extra: Any,
) -> KeyChange:
    before = record.state
    transition(record, to, now=now)
    if to in (KeyState.REMOVED, KeyState.REVOKED):
        _destroy_material(who, record)
    change = KeyChange(record.kid, record.key_set, action, before, record.state, forced)
    _audit(session, who, change, now=now, **extra)
    return change


def _destroy_material(who: KeyActor, record: KeyRecord) -> None:
    """A removed or revoked key can never sign or decrypt again: its stored secret is overwritten, and an
    HSM-held key is deleted from the token."""
    if record.public_jwk is not None and who.hsm is not None:
        secret = unwrap_secret(who.keks, record)
        if is_reference(secret):
            who.hsm.destroy(secret)
    wipe_secret(who.keks, record)


# Data keys in use --------------------------------------------------------------------------------------

# Tables encrypted under data keys: each counts the rows still under a kid. Others (the wallet) append here.
DATA_KEY_USERS: list[Callable[[Session, str], int]] = [
    lambda session, kid: int(
        session.scalar(select(func.count()).select_from(Citizen).where(Citizen.data_key_id == kid)) or 0
    ),
]


def rows_under_data_key(session: Session, kid: str) -> int:
    return sum(count(session, kid) for count in DATA_KEY_USERS)


def _check_data_key_unused(session: Session, record: KeyRecord, what: str) -> None:
    if record.key_set == DATA_KEYS.name:
        rows = rows_under_data_key(session, record.kid)
        if rows:
            raise KeyInUseError(
                f"{rows} row(s) are still encrypted under {record.kid}; run "
                f"`onecard keys reencrypt` before you {what} it"
            )


# Operations ------------------------------------------------------------------------------------------


def _keys_in(session: Session, name: str, state: KeyState) -> list[KeyRecord]:
    records = session.scalars(
        select(KeyRecord)
        .where(KeyRecord.key_set == name, KeyRecord.state == state.value)
        .order_by(KeyRecord.created_at, KeyRecord.kid)
    ).all()
    return list(records)


def _card_ca_certificate(key: Key, name: str, now: float, settings: Settings) -> str:
    # The card issuance code owns the CA certificate profile; imported here, when a CA set rotates.
    from cryptography.hazmat.primitives import serialization

    from idp.cards.issuance import create_ca_certificate

    certificate = create_ca_certificate(key, name.removeprefix(CARD_CA_PREFIX), now=now)
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


# key-set prefix → builder of the certificate stored with a new key of that set
CERTIFICATE_BUILDERS: dict[str, Callable[[Key, str, float, Settings], str]] = {
    CARD_CA_PREFIX: _card_ca_certificate,
}


def _refuse_a_second_pending_key(session: Session, policy: KeySetPolicy) -> None:
    """One successor at a time: a second pending key would be published for nothing, and which of the two
    ``tick`` or ``revoke`` promotes would be a surprise."""
    pending = _keys_in(session, policy.name, KeyState.PENDING)
    if not pending:
        return
    record = pending[0]
    ready_at = utc_from_timestamp(record.created_at.timestamp() + policy.prepublication).isoformat()
    raise KeyStateError(
        f"{policy.name} already has the pending key {record.kid} (created "
        f"{record.created_at.isoformat()}, may be activated from {ready_at}): activate it with "
        f"`onecard keys activate {record.kid}` (or wait for `onecard keys tick`), or drop it with "
        f"`onecard keys remove {record.kid}`, then rotate again",
        description=f"Key set {policy.name} already has a pending key, {record.kid}: activate or remove it "
        "first.",
    )


def rotate(session: Session, who: KeyActor, name: str, *, now: float) -> KeyChange:
    """Create the next key of ``name`` as pending: published at once, signing only once activated."""
    spec: KeySetSpec = spec_for(name)
    policy = who.policy(name)
    if not policy.rotatable:
        raise KeySetNotRotatableError(f"{name}: {policy.why}")
    lock_key_store(session)
    _refuse_a_second_pending_key(session, policy)
    hsm = who.hsm if name in hsm_key_sets(who.settings) else None
    key: Key | None = None
    certificate: str | None = None
    builder = next((b for prefix, b in CERTIFICATE_BUILDERS.items() if name.startswith(prefix)), None)
    if builder is not None and hsm is None:
        from sdk.keys import generate_key

        key = generate_key("ES256")
        certificate = builder(key, name, now, who.settings)
    record = create_key(
        session,
        who.keks,
        spec,
        state=KeyState.PENDING,
        now=now,
        key=key,
        certificate_pem=certificate,
        hsm=hsm,
    )
    change = KeyChange(record.kid, name, "create", None, KeyState.PENDING.value)
    _audit(session, who, change, now=now, alg=record.alg, hsm=hsm is not None)
    return change


def activate(
    session: Session, who: KeyActor, kid: str, *, now: float, force: bool = False
) -> list[KeyChange]:
    """Make a pending key the one that signs; the previously active key of its set retires."""
    lock_key_store(session)
    record = get_key(session, kid)
    if record.state != KeyState.PENDING:
        raise KeyStateError(f"key {kid} is {record.state}; only a pending key can be activated")
    policy = who.policy(record.key_set)
    published_for = now - record.created_at.timestamp()
    early = published_for < policy.prepublication
    if early and not force:
        raise PrepublicationError(
            f"key {kid} has been published for {published_for:.0f} s of the {policy.prepublication} s "
            f"pre-publication period ({policy.why}); it may be activated from "
            f"{utc_from_timestamp(record.created_at.timestamp() + policy.prepublication).isoformat()}"
        )
    previous = _keys_in(session, record.key_set, KeyState.ACTIVE)
    changes = [_move(session, who, record, KeyState.ACTIVE, "activate", now=now, forced=early)]
    changes += [
        _move(session, who, old, KeyState.RETIRED, "retire", now=now, successor=kid) for old in previous
    ]
    return changes


def retire(session: Session, who: KeyActor, kid: str, *, now: float, force: bool = False) -> KeyChange:
    """Stop an active key from signing without a successor (normally ``activate`` retires it)."""
    lock_key_store(session)
    record = get_key(session, kid)
    if record.state != KeyState.ACTIVE:
        raise KeyStateError(f"key {kid} is {record.state}; only an active key can be retired")
    others = [r for r in _keys_in(session, record.key_set, KeyState.ACTIVE) if r.kid != kid]
    if not others and not force:
        raise KeyStateError(
            f"{kid} is the only active key of {record.key_set}: retiring it leaves nothing to sign or "
            "encrypt with; activate its successor instead (that retires it), or force it"
        )
    return _move(session, who, record, KeyState.RETIRED, "retire", now=now, forced=not others)


def remove(session: Session, who: KeyActor, kid: str, *, now: float, force: bool = False) -> KeyChange:
    """Unpublish a retired key once its retention is over (or a pending key that was never used)."""
    lock_key_store(session)
    record = get_key(session, kid)
    if record.state not in (KeyState.RETIRED, KeyState.PENDING):
        raise KeyStateError(f"key {kid} is {record.state}; only a retired or pending key can be removed")
    _check_data_key_unused(session, record, "remove")
    forced = False
    if record.state == KeyState.RETIRED:
        policy = who.policy(record.key_set)
        retired_at = _ts(record.retired_at) or now
        if now < retired_at + policy.retention:
            if not force:
                raise RetentionError(
                    f"key {kid} retired {now - retired_at:.0f} s ago; its retention is {policy.retention} s "
                    f"({policy.why})"
                )
            forced = True
    return _move(session, who, record, KeyState.REMOVED, "remove", now=now, forced=forced)


def revoke(session: Session, who: KeyActor, kid: str, *, now: float) -> list[KeyChange]:
    """Withdraw a compromised key at once. If it was the active key, a successor takes over immediately:
    the newest pending key, or a fresh one (relying parties and gates then meet an unknown ``kid`` and
    refetch — the price of an emergency)."""
    lock_key_store(session)
    record = get_key(session, kid)
    if record.key_set == INDEX_KEYS.name:
        raise KeySetNotRotatableError("the blind-index key cannot be revoked: every lookup would fail")
    if record.state not in (KeyState.PENDING, KeyState.ACTIVE, KeyState.RETIRED):
        raise KeyStateError(f"key {kid} is {record.state} already")
    _check_data_key_unused(session, record, "revoke")
    was_active = record.state == KeyState.ACTIVE
    changes = [_move(session, who, record, KeyState.REVOKED, "revoke", now=now)]
    if was_active:
        pending = _keys_in(session, record.key_set, KeyState.PENDING)
        if pending:
            successor = pending[-1]
        else:
            spec = spec_for(record.key_set)
            hsm = who.hsm if spec.name in hsm_key_sets(who.settings) else None
            successor = create_key(session, who.keks, spec, state=KeyState.PENDING, now=now, hsm=hsm)
            created = KeyChange(successor.kid, spec.name, "create", None, KeyState.PENDING.value)
            _audit(session, who, created, now=now, alg=successor.alg, replaces=kid)
            changes.append(created)
        changes.append(
            _move(session, who, successor, KeyState.ACTIVE, "activate", now=now, forced=True, replaces=kid)
        )
    return changes


def tick(session: Session, who: KeyActor, *, now: float) -> list[KeyChange]:
    """Advance every key set by its schedule: activate pending keys published long enough (retiring their
    predecessors), remove retired keys whose retention is over, and start the next rotation when due."""
    lock_key_store(session)
    changes: list[KeyChange] = []
    for name in key_set_names(session):
        try:
            policy = who.policy(name)
        except KeyStateError:
            continue
        pending = [
            r
            for r in _keys_in(session, name, KeyState.PENDING)
            if now - r.created_at.timestamp() >= policy.prepublication
        ]
        if pending:
            changes.extend(activate(session, who, pending[0].kid, now=now))
        for record in _keys_in(session, name, KeyState.RETIRED):
            retired_at = _ts(record.retired_at) or now
            if now < retired_at + policy.retention:
                continue
            if record.key_set == DATA_KEYS.name and rows_under_data_key(session, record.kid):
                continue  # still needed to decrypt: `onecard keys reencrypt` has not finished
            changes.append(_move(session, who, record, KeyState.REMOVED, "remove", now=now))
        active = _keys_in(session, name, KeyState.ACTIVE)
        if policy.rotatable and active and not _keys_in(session, name, KeyState.PENDING):
            due = policy.rotation_due(_ts(active[-1].activated_at) or active[-1].created_at.timestamp())
            if due is not None and now >= due:
                changes.append(rotate(session, who, name, now=now))
    return changes


# Describing ------------------------------------------------------------------------------------------


def _iso(value: float | None) -> str | None:
    return utc_from_timestamp(value).isoformat() if value is not None else None


def describe_key(session: Session, who: KeyActor, record: KeyRecord, *, now: float) -> dict[str, Any]:
    """What operators see of a key: never its secret."""
    policy = who.policy(record.key_set)
    state = KeyState(record.state)
    next_step: dict[str, Any] | None = None
    if state is KeyState.PENDING:
        next_step = {
            "action": "activate",
            "not_before": _iso(record.created_at.timestamp() + policy.prepublication),
        }
    elif state is KeyState.RETIRED:
        next_step = {
            "action": "remove",
            "not_before": _iso((_ts(record.retired_at) or now) + policy.retention),
        }
    elif state is KeyState.ACTIVE:
        due = policy.rotation_due(_ts(record.activated_at) or record.created_at.timestamp())
        next_step = {"action": "rotate", "not_before": _iso(due)} if due is not None else None
    described: dict[str, Any] = {
        "kid": record.kid,
        "key_set": record.key_set,
        "alg": record.alg,
        "state": record.state,
        "created_at": _iso(_ts(record.created_at)),
        "activated_at": _iso(_ts(record.activated_at)),
        "retired_at": _iso(_ts(record.retired_at)),
        "removed_at": _iso(_ts(record.removed_at)),
        "revoked_at": _iso(_ts(record.revoked_at)),
        "published": record.is_published and policy.published,
        "next": next_step,
    }
    if record.public_jwk is not None:
        described["public_jwk"] = record.public_jwk
    if record.key_set == DATA_KEYS.name:
        described["rows"] = rows_under_data_key(session, record.kid)
    return described


def describe_policy(policy: KeySetPolicy) -> dict[str, Any]:
    return {
        "key_set": policy.name,
        "published": policy.published,
        "prepublication_seconds": policy.prepublication,
        "retention_seconds": policy.retention,
        "rotation_interval_seconds": policy.rotation_interval,
        "rotatable": policy.rotatable,
        "derivation": policy.why,
    }


def list_described(
    session: Session, who: KeyActor, key_set: str | None, *, now: float, include_gone: bool = False
) -> list[dict[str, Any]]:
    records = list_keys(session, key_set)
    return [
        describe_key(session, who, record, now=now)
        for record in records
        if include_gone or record.is_published
    ]


# Data-key re-encryption and KEK re-wrapping ----------------------------------------------------------


@dataclass(frozen=True)
class ReencryptReport:
    data_key: str  # the active data key everything is now (or is being) encrypted under
    reencrypted: int  # rows re-encrypted by this run
    remaining: int  # rows still under another key (0 when complete)

    @property
    def complete(self) -> bool:
        return self.remaining == 0


def rows_not_under(session: Session, kid: str) -> int:
    return int(
        session.scalar(select(func.count()).select_from(Citizen).where(Citizen.data_key_id != kid)) or 0
    )


def reencrypt_pii(
    database: Database,
    keyring: KeyRing,
    who: KeyActor,
    *,
    clock: Callable[[], float],
    batch_size: int = 500,
    progress: Callable[[int, int], None] | None = None,
    max_batches: int | None = None,
) -> ReencryptReport:
    """Re-encrypt every citizen row still under an older data key with the active one, batch by batch.

    Each batch is its own short transaction, so the server keeps serving (older keys still decrypt the rows
    not yet done) and an interrupted run loses at most one batch: the next run simply continues with the
    rows not yet under the active key. ``progress(done, total)`` is called after every batch.
    """
    keyring.invalidate()
    now = clock()
    cipher = _pii_cipher(keyring, now=now)
    with database.session() as session:
        total = rows_not_under(session, cipher.current_key_id)
    done = batches = 0
    if progress is not None:
        progress(0, total)
    while max_batches is None or batches < max_batches:
        with database.session() as session:
            count = reencrypt_citizens(session, cipher, now=clock(), batch_size=batch_size)
        if not count:
            break
        done += count
        batches += 1
        if progress is not None:
            progress(done, max(total, done))
    with database.session() as session:
        remaining = rows_not_under(session, cipher.current_key_id)
        record_key_event(
            session,
            who,
            action="keys.reencrypt",
            target_type="key",
            target_id=cipher.current_key_id,
            details={"rows": done, "remaining": remaining},
            now=clock(),
        )
    return ReencryptReport(cipher.current_key_id, done, remaining)


def _pii_cipher(keyring: KeyRing, *, now: float) -> PiiCipher:
    data_keys = keyring.secrets(DATA_KEYS.name, now=now)
    index_keys = keyring.secrets(INDEX_KEYS.name, now=now)
    return PiiCipher(data_keys, index_keys[0][1])


def rewrap_all(session: Session, who: KeyActor, *, now: float) -> int:
    """Re-wrap every stored key under the first KEK (idempotent: 0 the second time); audited."""
    lock_key_store(session)
    count = rewrap_keys(session, who.keks)
    record_key_event(
        session,
        who,
        action="keys.rewrap",
        target_type="kek",
        target_id=who.keks.current_id.hex(),
        details={"keys": count, "kek": who.keks.current_id.hex()},
        now=now,
    )
    return count
