"""The hash-chained audit trail (DESIGN.md §8): recording, tamper detection, export, concurrent appends."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from idp.audit.errors import InvalidAuditEventError
from idp.audit.model import AuditEvent
from idp.audit.service import (
    GENESIS_HASH,
    MAX_PROBLEMS,
    AuditHead,
    AuditProblemReason,
    EventRecord,
    chain_head,
    compute_event_hash,
    export_events,
    record_event,
    verify_chain,
    verify_exported_events,
)
from idp.db import Database

NOW = 1_750_000_000.0


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest) -> Database:
    return request.getfixturevalue(f"{request.param}_database")  # type: ignore[no-any-return]


@pytest.fixture
def session(database: Database) -> Iterator[Session]:
    with database.session() as session:
        yield session


def record(session: Session, n: int, **overrides: Any) -> AuditEvent:
    fields: dict[str, Any] = {
        "actor": "staff:operator-7",
        "action": "keys.rotated",
        "target_type": "key_set",
        "target_id": f"oidc-es256-{n}",
        "details": {"kid": f"kid-{n}", "count": n, "flags": [True, None], "nested": {"b": 1, "a": "x"}},
        "now": NOW + n + 0.123456,
    }
    return record_event(session, **{**fields, **overrides})


def fill(database: Database, count: int) -> list[AuditEvent]:
    with database.session() as session:
        return [record(session, n) for n in range(1, count + 1)]


def raw(database: Database, sql: str) -> None:
    with database.engine.begin() as connection:
        connection.execute(text(sql))


def problems(database: Database, **kwargs: Any) -> list[tuple[int, str]]:
    with database.session() as session:
        result = verify_chain(session, **kwargs)
    return [(problem.seq, problem.reason) for problem in result.problems]


def test_events_chain(session: Session) -> None:
    first, second, third = (record(session, n) for n in (1, 2, 3))
    assert [first.seq, second.seq, third.seq] == [1, 2, 3]
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash and third.prev_hash == second.hash
    assert len({first.hash, second.hash, third.hash}) == 3
    assert chain_head(session) == AuditHead(3, third.hash)
    result = verify_chain(session, expected_head=AuditHead(3, third.hash))
    assert result.ok and result.events_checked == 3 and result.first_bad_seq is None
    assert result.head == AuditHead(3, third.hash)


def test_empty_trail(session: Session) -> None:
    assert chain_head(session) is None
    result = verify_chain(session)
    assert result.ok and result.events_checked == 0 and result.head is None


def test_hashes_survive_the_database_round_trip(database: Database) -> None:
    # The hash is computed before the insert; re-reading the row (JSON, microsecond times) must match.
    fill(database, 5)
    with database.session() as session:
        assert verify_chain(session, batch_size=2).ok


def test_edited_event_is_detected(database: Database) -> None:
    fill(database, 5)
    raw(database, "UPDATE audit_events SET actor = 'staff:someone-else' WHERE seq = 3")
    assert problems(database) == [(3, AuditProblemReason.MODIFIED)]


def test_edited_details_are_detected(database: Database) -> None:
    fill(database, 5)
    raw(database, """UPDATE audit_events SET details = '{"kid": "kid-2", "count": 99}' WHERE seq = 2""")
    assert problems(database) == [(2, AuditProblemReason.MODIFIED)]


def test_edited_time_is_detected(database: Database) -> None:
    fill(database, 5)
    with database.session() as session:
        event = session.get(AuditEvent, 4)
        assert event is not None
        event.at = datetime(2020, 1, 1, tzinfo=UTC)
    assert problems(database) == [(4, AuditProblemReason.MODIFIED)]


def test_removed_event_is_detected(database: Database) -> None:
    fill(database, 5)
    raw(database, "DELETE FROM audit_events WHERE seq = 3")
    assert problems(database) == [(3, AuditProblemReason.MISSING)]


def test_removed_first_event_is_detected(database: Database) -> None:
    fill(database, 3)
    raw(database, "DELETE FROM audit_events WHERE seq = 1")
    assert problems(database) == [(1, AuditProblemReason.MISSING)]


def test_removed_last_event_needs_the_kept_head(database: Database) -> None:
    events = fill(database, 5)
    head = AuditHead(5, events[-1].hash)
    raw(database, "DELETE FROM audit_events WHERE seq = 5")
    assert problems(database) == []  # the chain alone cannot tell; that is what the kept head is for
    assert problems(database, expected_head=head) == [(5, AuditProblemReason.HEAD_MISMATCH)]


def test_reordered_events_are_detected(database: Database) -> None:
    fill(database, 5)
    raw(database, "UPDATE audit_events SET seq = 100 WHERE seq = 2")
    raw(database, "UPDATE audit_events SET seq = 2 WHERE seq = 3")
    raw(database, "UPDATE audit_events SET seq = 3 WHERE seq = 100")
    assert problems(database) == [(2, AuditProblemReason.REORDERED), (3, AuditProblemReason.REORDERED)]
    with database.session() as session:
        details = [problem.detail for problem in verify_chain(session).problems]
    assert details == ["recorded as event 3", "recorded as event 2"]


def test_rewritten_event_with_a_fresh_hash_breaks_the_next_link(database: Database) -> None:
    fill(database, 4)
    with database.session() as session:
        forged = session.get(AuditEvent, 2)
        assert forged is not None
        forged.actor = "staff:forger"
        # The attacker knows the (public) algorithm and recomputes this row's hash.
        forged.hash = compute_event_hash(EventRecord.of(forged))
    assert problems(database) == [(3, AuditProblemReason.UNLINKED)]


def test_a_whole_rewritten_tail_needs_the_kept_head(database: Database) -> None:
    events = fill(database, 4)
    head = AuditHead(4, events[-1].hash)
    raw(database, "DELETE FROM audit_events WHERE seq >= 3")
    with database.session() as session:
        record(session, 3, actor="staff:forger")
        record(session, 4, actor="staff:forger")
    assert problems(database) == []
    assert problems(database, expected_head=head) == [(4, AuditProblemReason.HEAD_MISMATCH)]


@pytest.mark.parametrize(
    "overrides",
    [
        {"details": {"name": "张三"}},
        {"details": {"citizen": {"id_number": "11010519491231002X"}}},
        {"details": {"PIN": "123456"}},
        {"details": {"ratio": 0.5}},
        {"details": {1: "x"}},
        {"details": {"blob": b"bytes"}},
        {"details": {"long": "x" * 5000}},
        {"action": "Rotated Keys"},
        {"action": "keys"},
        {"target_type": "Key Set"},
        {"actor": ""},
        {"actor": "staff:\nforged line"},
    ],
)
def test_invalid_events_are_refused(session: Session, overrides: dict[str, Any]) -> None:
    with pytest.raises(InvalidAuditEventError):
        record(session, 1, **overrides)
    assert chain_head(session) is None


def test_export_and_verify_offline(database: Database) -> None:
    fill(database, 6)
    start = datetime.fromtimestamp(NOW + 2, UTC)  # events 2 .. 4 (event n is at NOW + n + 0.123456)
    end = datetime.fromtimestamp(NOW + 5, UTC)
    with database.session() as session:
        exported = export_events(session, start, end)
        first = session.get(AuditEvent, 1)
        assert first is not None
        before = first.hash
    assert [event["seq"] for event in exported] == [2, 3, 4]
    assert exported[0]["at"] == "2025-06-15T15:06:42.123456Z"
    assert set(exported[0]) == {
        "seq", "at", "actor", "action", "target_type", "target_id", "details", "prev_hash", "hash",
    }  # fmt: skip
    assert verify_exported_events(exported, expected_prev_hash=before).ok
    exported[1]["details"] = {**exported[1]["details"], "count": 42}
    result = verify_exported_events(exported)
    assert [(p.seq, p.reason) for p in result.problems] == [(3, AuditProblemReason.MODIFIED)]
    with pytest.raises(ValueError):
        export_events(Session(), datetime(2025, 1, 1), end)


def test_concurrent_appends_never_fork_the_chain(database: Database) -> None:
    # Two "nodes" (threads with their own connections) append while the other is mid-transaction.
    per_thread = 25
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def append(worker: int) -> None:
        try:
            barrier.wait()
            for n in range(per_thread):
                with database.session() as session:
                    record(session, n, actor=f"node:{worker}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(worker,)) for worker in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with database.session() as session:
        result = verify_chain(session)
    assert result.ok
    assert result.events_checked == 2 * per_thread
    assert result.head is not None and result.head.seq == 2 * per_thread


def test_a_ruined_trail_reports_the_first_problems_only(sqlite_database: Database) -> None:
    fill(sqlite_database, 130)
    raw(sqlite_database, "UPDATE audit_events SET actor = 'staff:vandal'")
    with sqlite_database.session() as session:
        result = verify_chain(session, batch_size=7)
    assert result.problems_truncated and len(result.problems) == MAX_PROBLEMS
    assert result.first_bad_seq == 1
    assert {problem.reason for problem in result.problems} == {AuditProblemReason.MODIFIED}
