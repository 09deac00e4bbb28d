"""The operations that move keys along their lifecycle (DESIGN.md §7): rotate, activate, retire, remove,
revoke, and ``tick``, which does on schedule what an operator would.

    pending ──activate──▶ active ──(successor activated)──▶ retired ──(retention over)──▶ removed
       └───────────────────────── revoke (any published state) ──────────────────────▶ revoked

The waiting periods they enforce derive from token lifetimes and cache settings (``idp.keys.policy``).
Every operation takes the session (the caller commits), a ``KeyActor`` (who, why, with which KEKs / HSM;
``idp.keys.actor``) and ``now``; it serialises with every other key change (``lock_key_store``), records
one audit event per key it moves, in the same transaction, and returns the ``KeyChange``\\ s. Revocation
cannot wait for caches: the revoked key leaves this node's key ring at once (the caller invalidates it) and
every other node's at its next refresh, at most ``KEY_RING_CACHE_SECONDS`` later; relying parties drop it
at their next JWKS fetch, gates at their next sync.

What operators see of keys is in ``idp.keys.describe``; data-key re-encryption and KEK re-wrapping in
``idp.keys.reencrypt``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.db import utc_from_timestamp
from idp.keys.actor import KeyActor, record_key_event
from idp.keys.describe import describe_key, describe_policy, list_described
from idp.keys.errors import (
    KeyInUseError,
    KeySetNotRotatableError,
    KeyStateError,
    PrepublicationError,
    RetentionError,
)
from idp.keys.model import KeyRecord, KeyState
from idp.keys.pkcs11 import hsm_key_sets, is_reference
from idp.keys.policy import CARD_CA_PREFIX, KeySetPolicy
from idp.keys.reencrypt import reencrypt_pii, rewrap_all, rows_under_data_key
from idp.keys.service import (
    DATA_KEYS,
    INDEX_KEYS,
    KeySetSpec,
    create_key,
    get_key,
    key_set_names,
    lock_key_store,
    spec_for,
    transition,
    unwrap_secret,
    wipe_secret,
)
from sdk.keys import Key, generate_key

# idp/keys/cli.py still imports these from here; they stay re-exported until it imports them from
# idp.keys.actor, idp.keys.describe and idp.keys.reencrypt.
__all__ = [
    "KeyActor",
    "KeyChange",
    "activate",
    "describe_key",
    "describe_policy",
    "list_described",
    "reencrypt_pii",
    "remove",
    "retire",
    "revoke",
    "rewrap_all",
    "rotate",
    "tick",
]


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


def _check_data_key_unused(session: Session, record: KeyRecord, what: str) -> None:
    if record.key_set == DATA_KEYS.name:
        rows = rows_under_data_key(session, record.kid)
        if rows:
            raise KeyInUseError(
                f"{rows} row(s) are still encrypted under {record.kid}; run "
                f"`onecard keys reencrypt` before you {what} it"
            )


def _keys_in(session: Session, name: str, state: KeyState) -> list[KeyRecord]:
    records = session.scalars(
        select(KeyRecord)
        .where(KeyRecord.key_set == name, KeyRecord.state == state.value)
        .order_by(KeyRecord.created_at, KeyRecord.kid)
    ).all()
    return list(records)


def _card_ca_certificate(key: Key, name: str, *, now: float) -> str:
    # The card issuance code owns the CA certificate profile; imported here, when a CA set rotates.
    from cryptography.hazmat.primitives import serialization

    from idp.cards.issuance import create_ca_certificate

    certificate = create_ca_certificate(key, name.removeprefix(CARD_CA_PREFIX), now=now)
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


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
    if name.startswith(CARD_CA_PREFIX) and hsm is None:
        key = generate_key("ES256")
        certificate = _card_ca_certificate(key, name, now=now)
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
