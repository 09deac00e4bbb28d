"""Moving stored data onto the current keys: citizen rows onto the active data key, stored keys onto the
first KEK (DESIGN.md §7, docs/runbook.md).

A data key is needed for as long as a row is encrypted under it, so the lifecycle asks
``rows_under_data_key`` before it removes or revokes one; ``reencrypt_pii`` empties an old key batch by
batch while the server keeps serving. ``rewrap_all`` re-wraps every stored key under the first KEK after a
KEK rotation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from idp.citizens.model import Citizen
from idp.citizens.service import reencrypt_citizens
from idp.db import Database
from idp.keys.actor import KeyActor, record_key_event
from idp.keys.service import KeyRing, lock_key_store, pii_cipher_of, rewrap_keys


def rows_under_data_key(session: Session, kid: str) -> int:
    """Rows still encrypted under the data key ``kid``."""
    return int(
        session.scalar(select(func.count()).select_from(Citizen).where(Citizen.data_key_id == kid)) or 0
    )


def rows_not_under(session: Session, kid: str) -> int:
    """Rows encrypted under any data key but ``kid``."""
    return int(
        session.scalar(select(func.count()).select_from(Citizen).where(Citizen.data_key_id != kid)) or 0
    )


@dataclass(frozen=True)
class ReencryptReport:
    data_key: str  # the active data key everything is now (or is being) encrypted under
    reencrypted: int  # rows re-encrypted by this run
    remaining: int  # rows still under another key (0 when complete)

    @property
    def complete(self) -> bool:
        return self.remaining == 0


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
    cipher = pii_cipher_of(keyring, now=clock())
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
