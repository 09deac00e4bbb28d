"""The key lifecycle with a fixed clock: derived timings, rotate/activate/retire/remove/revoke, tick with
automatic rotation, data keys in use, KEK re-wrapping, the key ring's view, the scheduler's lock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

import idp.models  # noqa: F401 - every table on the metadata
from idp.audit.model import AuditEvent
from idp.audit.service import verify_chain
from idp.citizens.model import Citizen
from idp.citizens.service import create_citizen, decrypt_profile, get_citizen
from idp.config import DEVELOPMENT_KEK, Settings
from idp.crypto.kek import KeyEncryptionKeys
from idp.crypto.pii import PiiCipher
from idp.db import Database
from idp.keys.actor import KeyActor
from idp.keys.errors import (
    KeyInUseError,
    KeySetNotRotatableError,
    KeyStateError,
    PrepublicationError,
    RetentionError,
)
from idp.keys.lifecycle import activate, remove, retire, revoke, rotate, tick
from idp.keys.model import KeyRecord, KeyState
from idp.keys.policy import policy_for
from idp.keys.reencrypt import reencrypt_pii, rewrap_all
from idp.keys.service import (
    CORE_KEY_SETS,
    DATA_KEYS,
    INDEX_KEYS,
    KeyRing,
    count_needing_rewrap,
    ensure_key_sets,
    get_key,
    unwrap_secret,
)
from sdk.errors import InvalidRequestError
from sdk.qr_token import DEFAULT_CLOCK_SKEW, DEFAULT_LIFETIME

T0 = 1_800_000_000.0
NEW_KEK = "bmV3LWtleS1lbmNyeXB0aW9uLWtleS0wMTIzNDU2Nzg"  # 32 bytes, base64url


@pytest.fixture
def settings() -> Settings:
    return Settings(
        env="test",
        jwks_max_age=300,
        access_token_ttl=600,
        id_token_ttl=900,
        key_rotation_qr_days=1,
        key_rotation_oidc_days=0,
        key_rotation_data_days=0,
        key_rotation_cookie_days=0,
    )


@pytest.fixture
def keks() -> KeyEncryptionKeys:
    return KeyEncryptionKeys.from_strings([DEVELOPMENT_KEK])


@pytest.fixture
def database(sqlite_database: Database, keks: KeyEncryptionKeys) -> Iterator[Database]:
    with sqlite_database.session() as session:
        ensure_key_sets(session, keks, CORE_KEY_SETS, now=T0)
    yield sqlite_database


def who(settings: Settings, keks: KeyEncryptionKeys, reason: str = "test") -> KeyActor:
    return KeyActor(settings, keks, "cli:tester", reason)


def active(database: Database, key_set: str) -> KeyRecord:
    with database.session() as session:
        record = session.scalar(
            select(KeyRecord).where(KeyRecord.key_set == key_set, KeyRecord.state == KeyState.ACTIVE.value)
        )
        assert record is not None
        return record


def test_timings_derive_from_the_lifetimes(settings: Settings) -> None:
    oidc = policy_for(settings, "oidc-rs256")
    assert oidc.prepublication == 300 + 5
    assert oidc.retention == 900 + 5 + 300
    qr = policy_for(settings, "qr")
    assert qr.prepublication == 305
    assert qr.retention == DEFAULT_LIFETIME + DEFAULT_CLOCK_SKEW + 5 + 300
    assert qr.rotation_interval == 86_400
    assert policy_for(settings, "cookie").retention == settings.sso_session_ttl + 5
    assert policy_for(settings, "data").prepublication == 5  # never published outside: the key ring only
    assert not policy_for(settings, "index").rotatable
    # One number changes, every period that depends on it follows.
    longer = policy_for(settings.replace(jwks_max_age=3600), "oidc-es256")
    assert (longer.prepublication, longer.retention) == (3605, 900 + 5 + 3600)


def test_rotate_activate_retire_remove(
    database: Database, settings: Settings, keks: KeyEncryptionKeys
) -> None:
    old = active(database, "oidc-rs256").kid
    actor = who(settings, keks, "routine")
    with database.session() as session:
        new = rotate(session, actor, "oidc-rs256", now=T0 + 10).kid
    with database.session() as session, pytest.raises(PrepublicationError):
        activate(session, actor, new, now=T0 + 10 + 304)
    with database.session() as session:
        changes = activate(session, actor, new, now=T0 + 10 + 305)
    assert [(c.kid, c.action, c.to_state) for c in changes] == [
        (new, "activate", "active"),
        (old, "retire", "retired"),
    ]
    retired_at = T0 + 315
    with database.session() as session, pytest.raises(RetentionError):
        remove(session, actor, old, now=retired_at + 1204)
    with database.session() as session:
        assert remove(session, actor, old, now=retired_at + 1205).to_state == "removed"
        record = get_key(session, old)
        assert unwrap_secret(keks, record) == b""  # the private key is gone, not just unpublished
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
        assert [(e.action, e.actor, e.details.get("reason")) for e in events] == [
            ("key.create", "cli:tester", "routine"),
            ("key.activate", "cli:tester", "routine"),
            ("key.retire", "cli:tester", "routine"),
            ("key.remove", "cli:tester", "routine"),
        ]
        assert verify_chain(session).ok


def test_forced_activation_is_marked(database: Database, settings: Settings, keks: KeyEncryptionKeys) -> None:
    with database.session() as session:
        new = rotate(session, who(settings, keks), "oidc-es256", now=T0).kid
        changes = activate(session, who(settings, keks), new, now=T0 + 1, force=True)
        assert changes[0].forced
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "key.activate")).one()
        assert event.details["forced"] is True


def test_only_active_key_is_not_retired_without_force(
    database: Database, settings: Settings, keks: KeyEncryptionKeys
) -> None:
    kid = active(database, "cookie").kid
    with database.session() as session, pytest.raises(KeyStateError):
        retire(session, who(settings, keks), kid, now=T0)


def test_tick_runs_the_whole_schedule(
    database: Database, settings: Settings, keks: KeyEncryptionKeys
) -> None:
    actor = KeyActor(settings, keks, "scheduler")
    first = active(database, "qr").kid
    policy = policy_for(settings, "qr")
    due = T0 + 86_400 - policy.prepublication
    with database.session() as session:
        assert tick(session, actor, now=due - 1) == []
    with database.session() as session:
        [created] = tick(session, actor, now=due)
    assert (created.key_set, created.action, created.to_state) == ("qr", "create", "pending")
    with database.session() as session:
        assert tick(session, actor, now=due + policy.prepublication - 1) == []
    with database.session() as session:
        changes = tick(session, actor, now=due + policy.prepublication)
    assert {(c.kid, c.to_state) for c in changes} == {(created.kid, "active"), (first, "retired")}
    retired_at = due + policy.prepublication
    with database.session() as session:
        assert tick(session, actor, now=retired_at + policy.retention - 1) == []
    with database.session() as session:
        [removed] = tick(session, actor, now=retired_at + policy.retention)
    assert (removed.kid, removed.to_state) == (first, "removed")
    with database.session() as session:
        actors = set(session.scalars(select(AuditEvent.actor)))
    assert actors == {"scheduler"}


def test_revoking_the_active_key_hands_over_at_once(
    database: Database, settings: Settings, keks: KeyEncryptionKeys
) -> None:
    ring = KeyRing(database, keks)
    compromised = ring.key_set("oidc-es256", now=T0).signing_key().kid
    with database.session() as session:
        changes = revoke(session, who(settings, keks, "INC-1"), compromised, now=T0 + 1)
    assert [c.action for c in changes] == ["revoke", "create", "activate"]
    # Cached for a few seconds on every node; invalidated on the node that made the change.
    assert ring.key_set("oidc-es256", now=T0 + 2).find(compromised) is not None
    ring.invalidate()
    keys = ring.key_set("oidc-es256", now=T0 + 2)
    assert keys.find(compromised) is None
    assert keys.signing_key().kid == changes[-1].kid
    # Another node's ring drops it at its next refresh, cache_seconds later.
    with database.session() as session, pytest.raises(KeyStateError):
        revoke(session, who(settings, keks, "again"), compromised, now=T0 + 3)


def test_revoking_prefers_the_published_pending_key(
    database: Database, settings: Settings, keks: KeyEncryptionKeys
) -> None:
    with database.session() as session:
        pending = rotate(session, who(settings, keks), "qr", now=T0).kid
    with database.session() as session:
        changes = revoke(session, who(settings, keks, "INC-2"), active(database, "qr").kid, now=T0 + 60)
    assert [(c.action, c.kid) for c in changes][1:] == [("activate", pending)]


def test_index_key_never_rotates(database: Database, settings: Settings, keks: KeyEncryptionKeys) -> None:
    with database.session() as session, pytest.raises(KeySetNotRotatableError):
        rotate(session, who(settings, keks), INDEX_KEYS.name, now=T0)
    with database.session() as session, pytest.raises(KeySetNotRotatableError):
        revoke(session, who(settings, keks), active(database, INDEX_KEYS.name).kid, now=T0)


def test_pending_symmetric_keys_decrypt_but_do_not_encrypt(
    database: Database, settings: Settings, keks: KeyEncryptionKeys
) -> None:
    old = active(database, "data").kid
    with database.session() as session:
        new = rotate(session, who(settings, keks), "data", now=T0).kid
    secrets = KeyRing(database, keks).secrets("data", now=T0 + 1)
    assert [kid for kid, _ in secrets] == [old, new]


def test_data_key_rotation_reencrypts_and_only_then_removes(
    database: Database, settings: Settings, keks: KeyEncryptionKeys
) -> None:
    ring = KeyRing(database, keks, cache_seconds=0)
    clock = [T0]

    def cipher() -> PiiCipher:
        return PiiCipher(ring.secrets("data", now=clock[0]), ring.secrets("index", now=clock[0])[0][1])

    with database.session() as session:
        ids = [
            create_citizen(session, cipher(), "张三", "11010519491231002X", now=T0).id,
            create_citizen(session, cipher(), "李四", "420106198001010015", now=T0).id,
        ]
    old = active(database, "data").kid
    actor = who(settings, keks, "yearly")
    with database.session() as session:
        new = rotate(session, actor, "data", now=T0).kid
    clock[0] = T0 + 5
    with database.session() as session:
        tick(session, actor, now=clock[0])  # activates the new key, retires the old
    clock[0] = T0 + 100
    with database.session() as session, pytest.raises(KeyInUseError):
        remove(session, actor, old, now=clock[0])
    with database.session() as session:
        assert tick(session, actor, now=clock[0]) == []  # retention over, but rows still need the key
    # Interrupted after one batch of one row, then resumed.
    first = reencrypt_pii(database, ring, actor, clock=lambda: clock[0], batch_size=1, max_batches=1)
    assert (first.reencrypted, first.remaining) == (1, 1)
    second = reencrypt_pii(database, ring, actor, clock=lambda: clock[0], batch_size=1)
    assert (second.data_key, second.reencrypted, second.remaining) == (new, 1, 0)
    with database.session() as session:
        assert {c.data_key_id for c in session.scalars(select(Citizen))} == {new}
        [removed] = tick(session, actor, now=clock[0])
    assert (removed.kid, removed.to_state) == (old, "removed")
    with database.session() as session:
        names = {decrypt_profile(cipher(), get_citizen(session, cid)).name for cid in ids}
    assert names == {"张三", "李四"}


def test_rewrap_moves_every_key_to_the_first_kek(database: Database, settings: Settings) -> None:
    both = KeyEncryptionKeys.from_strings([NEW_KEK, DEVELOPMENT_KEK])
    with database.session() as session:
        assert count_needing_rewrap(session, both) == len(CORE_KEY_SETS)
        assert rewrap_all(session, who(settings, both), now=T0) == len(CORE_KEY_SETS)
    with database.session() as session:
        assert rewrap_all(session, who(settings, both), now=T0) == 0  # idempotent
    only_new = KeyEncryptionKeys.from_strings([NEW_KEK])
    ring = KeyRing(database, only_new)
    assert ring.key_set("oidc-rs256", now=T0).signing_key().can_sign
    assert ring.secrets(DATA_KEYS.name, now=T0)


def test_scheduler_ticks_on_one_node_per_interval(sqlite_database: Database, settings: Settings) -> None:
    from idp.app import create_app
    from idp.keys.schedule import KeyScheduler
    from idp.services import Services
    from sdk.clock import FixedClock

    clock = FixedClock(T0)
    apps = [
        create_app(env="test", database_url=sqlite_database.url, clock=clock, plugins=[]) for _ in range(2)
    ]
    nodes: list[Services] = [app.extensions["onecard"] for app in apps]
    schedulers = [
        KeyScheduler(svc, KeyActor(svc.settings, svc.keks, "scheduler"), interval=60) for svc in nodes
    ]
    results = [scheduler.run_once() for scheduler in schedulers]
    assert sum(result is not None for result in results) == 1
    clock.advance(60)
    assert schedulers[1].run_once() is not None
    for svc in nodes:
        svc.database.dispose()


def test_a_second_pending_key_is_refused_until_the_first_moves_on(
    database: Database, settings: Settings, keks: KeyEncryptionKeys
) -> None:
    with database.session() as session:
        pending = rotate(session, who(settings, keks), "qr", now=T0).kid
    with database.session() as session, pytest.raises(KeyStateError) as refused:
        rotate(session, who(settings, keks), "qr", now=T0 + 1)
    # Said outward too (the admin API shows the description): which key, and what to do with it.
    assert pending in refused.value.description and "activate or remove" in refused.value.description
    assert f"onecard keys activate {pending}" in refused.value.detail
    assert f"onecard keys remove {pending}" in refused.value.detail
    with database.session() as session:
        assert [r.kid for r in session.scalars(select(KeyRecord).where(KeyRecord.state == "pending"))] == [
            pending
        ]
        remove(session, who(settings, keks), pending, now=T0 + 2)
    with database.session() as session:
        assert rotate(session, who(settings, keks), "qr", now=T0 + 3).kid != pending


def test_the_reason_is_checked_before_anything_changes_and_recorded_by_tick(
    database: Database, settings: Settings, keks: KeyEncryptionKeys
) -> None:
    for bad in ("x" * 201, "line\x00break"):
        with pytest.raises(InvalidRequestError):
            KeyActor(settings, keks, "cli:tester", bad)
    assert KeyActor(settings, keks, "cli:tester", "  CHG-1 \n weekly ").reason == "CHG-1 weekly"
    with database.session() as session:
        changes = tick(session, who(settings, keks, "CHG-9 catch-up"), now=T0 + 86_400)
    assert changes
    with database.session() as session:
        reasons = {e.details.get("reason") for e in session.scalars(select(AuditEvent))}
    assert reasons == {"CHG-9 catch-up"}
