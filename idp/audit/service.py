"""Recording, verifying and exporting the hash-chained audit trail (DESIGN.md §7, §8).

Each event's hash is ``SHA-256("onecard/audit/v1" NUL canonical-JSON)`` where the canonical JSON holds
every column — seq, time (integer microseconds since the epoch), actor, action, target, details and the
previous event's hash — with sorted keys, no whitespace and ASCII escapes, so any implementation can
recompute it from an export (``export_events``; ``verify_export_lines`` checks an exported file, naming the
line of each problem; the format is in docs/runbook.md "The exported audit file"). Editing a row breaks its
own hash; removing one leaves a gap in ``seq``;
moving one makes its hash fit another position. What the chain alone cannot show is a rewrite of the
whole tail with fresh hashes, or a deleted last event: for that operators keep ``chain_head`` somewhere
else (a ticket, a signed report) and pass it to ``verify_chain`` as ``expected_head``.

Appending from several nodes: the event is written in the caller's transaction (so it commits together
with the change it records), and its seq and prev_hash come from the last event. Two nodes reading the same
last event would fork the chain, so appends are serialised for the rest of the transaction before the last
event is read — on PostgreSQL with a transaction-scoped advisory lock (released at commit or rollback; in
READ COMMITTED the read after the wait sees the other node's committed event), on SQLite by taking the
database's single write lock with a write that changes nothing. The primary key on ``seq`` is the backstop:
if the lock is ever missing (another backend, a stricter isolation level with a stale snapshot) the second
insert fails with ``AuditAppendConflictError`` and the caller retries; the chain never forks. A retry
inside this function would need a savepoint, which pysqlite turns into a commit when it opens the
transaction, so we do not.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from idp.audit.errors import AuditAppendConflictError, InvalidAuditEventError
from idp.audit.model import AuditEvent
from idp.db import lock_transaction, utc_from_timestamp

GENESIS_HASH = "0" * 64
# DO NOT CHANGE: part of every stored hash.
_HASH_DOMAIN = b"onecard/audit/v1\x00"
# DO NOT CHANGE: every node must take the same PostgreSQL advisory lock ("ONEAUDIT" in ASCII).
_PG_APPEND_LOCK = 0x4F4E4541_55444954
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

_ACTION = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
_TARGET_TYPE = re.compile(r"[a-z][a-z0-9_]*")
MAX_DETAILS_BYTES = 4096
MAX_PROBLEMS = 100
# Keys that name PII or secrets; details carry ids and counts, never these (DESIGN.md §2).
_FORBIDDEN_DETAIL_KEYS = frozenset(
    {"name", "id_number", "idnumber", "idcard", "id_card", "pin", "password", "secret", "phone", "token"}
)


# Recording -------------------------------------------------------------------------------------------


def record_event(
    session: Session,
    *,
    actor: str,
    action: str,
    target_type: str,
    target_id: str,
    details: Mapping[str, Any] | None = None,
    now: float,
) -> AuditEvent:
    """Append an event chained to the last one, in the caller's transaction (which commits it).

    ``actor`` is who acted (``staff:<id>``, ``client:<id>``, ``system``); ``action`` a dotted verb such as
    ``keys.rotated``; ``details`` a small JSON object of ids and counts, never PII or secrets.
    """
    _validate_text(actor, "actor", 128, allow_empty=False)
    if len(action) > 64 or not _ACTION.fullmatch(action):
        raise InvalidAuditEventError(f"action {action!r} is not a dotted lower-case name")
    if len(target_type) > 32 or not _TARGET_TYPE.fullmatch(target_type):
        raise InvalidAuditEventError(f"target_type {target_type!r} is not a lower-case name")
    _validate_text(target_id, "target_id", 128, allow_empty=True)
    clean_details = _clean_details(details or {})
    at = utc_from_timestamp(now)

    _lock_chain(session)
    last = session.execute(
        select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    seq, prev_hash = (last.seq + 1, last.hash) if last is not None else (1, GENESIS_HASH)
    event = AuditEvent(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        details=clean_details,
        prev_hash=prev_hash,
    )
    event.hash = compute_event_hash(EventRecord.of(event))
    session.add(event)
    try:
        session.flush()
    except IntegrityError as exc:
        raise AuditAppendConflictError(f"seq {seq} was appended concurrently") from exc
    return event


def _lock_chain(session: Session) -> None:
    lock_transaction(session, _PG_APPEND_LOCK, AuditEvent.seq)


def _validate_text(value: str, what: str, max_length: int, *, allow_empty: bool) -> None:
    if (not value and not allow_empty) or len(value) > max_length or not value.isprintable():
        raise InvalidAuditEventError(f"{what} must be printable text of at most {max_length} characters")


def _clean_details(details: Mapping[str, Any]) -> dict[str, Any]:
    """Details as they will read back from the JSON column, so the hash computed now still matches later."""
    _check_detail_value(details, depth=0)
    encoded = _canonical_json(details)
    if len(encoded) > MAX_DETAILS_BYTES:
        raise InvalidAuditEventError(f"details take {len(encoded)} bytes, more than {MAX_DETAILS_BYTES}")
    cleaned: dict[str, Any] = json.loads(encoded)
    return cleaned


def _check_detail_value(value: Any, *, depth: int) -> None:
    if depth > 4:
        raise InvalidAuditEventError("details are nested too deeply")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidAuditEventError("details keys must be strings")
            if key.lower() in _FORBIDDEN_DETAIL_KEYS:
                raise InvalidAuditEventError(f"details must not carry {key!r} (PII or a secret)")
            _check_detail_value(item, depth=depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_detail_value(item, depth=depth + 1)
    elif value is not None and not isinstance(value, str | int | bool):
        # No floats: their text form differs between languages, and an export must verify anywhere.
        raise InvalidAuditEventError(f"details cannot hold a {type(value).__name__}")


# Hashing ---------------------------------------------------------------------------------------------


def _canonical_json(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode()


@dataclass(frozen=True)
class EventRecord:
    """The hashed fields of one event, from a row or from an export."""

    seq: int
    at_us: int
    actor: str
    action: str
    target_type: str
    target_id: str
    details: Any
    prev_hash: str
    hash: str

    @classmethod
    def from_export(cls, event: Mapping[str, Any]) -> EventRecord:
        """From one exported event (``export_events``); raises ValueError, KeyError or TypeError."""
        at = datetime.fromisoformat(str(event["at"]).replace("Z", "+00:00"))
        return cls(
            seq=int(event["seq"]),
            at_us=(at - _EPOCH) // _MICROSECOND,
            actor=event["actor"],
            action=event["action"],
            target_type=event["target_type"],
            target_id=event["target_id"],
            details=event["details"],
            prev_hash=event["prev_hash"],
            hash=event["hash"],
        )

    @classmethod
    def of(cls, row: Any) -> EventRecord:
        return cls(
            seq=row.seq,
            at_us=(row.at - _EPOCH) // _MICROSECOND,
            actor=row.actor,
            action=row.action,
            target_type=row.target_type,
            target_id=row.target_id,
            details=row.details,
            prev_hash=row.prev_hash,
            hash=getattr(row, "hash", "") or "",
        )


def compute_event_hash(record: EventRecord, *, seq: int | None = None) -> str:
    """The hash of an event; ``seq`` overrides the record's own (to test where a moved event came from)."""
    document = {
        "seq": record.seq if seq is None else seq,
        "at_us": record.at_us,
        "actor": record.actor,
        "action": record.action,
        "target_type": record.target_type,
        "target_id": record.target_id,
        "details": record.details,
        "prev_hash": record.prev_hash,
    }
    return hashlib.sha256(_HASH_DOMAIN + _canonical_json(document)).hexdigest()


# Verifying -------------------------------------------------------------------------------------------


class AuditProblemReason(enum.StrEnum):
    """Why verification failed at an event."""

    MODIFIED = "modified"  # the event's fields do not match its hash
    MISSING = "missing"  # events with these numbers were removed
    REORDERED = "reordered"  # the event is intact but was recorded at another position
    UNLINKED = "unlinked"  # the event's prev_hash is not the previous event's hash (rewritten chain)
    HEAD_MISMATCH = "head_mismatch"  # the chain does not reach the externally kept head
    MALFORMED = "malformed"  # an exported line that is not an event, or repeats another's seq


@dataclass(frozen=True)
class AuditHead:
    """The last event's number and hash: kept outside the database to detect truncation or a rewrite."""

    seq: int
    hash: str


@dataclass(frozen=True)
class AuditProblem:
    seq: int
    reason: AuditProblemReason
    detail: str = ""


@dataclass(frozen=True)
class AuditVerification:
    events_checked: int
    head: AuditHead | None
    problems: tuple[AuditProblem, ...]
    problems_truncated: bool = False  # more than MAX_PROBLEMS; only the first ones are listed

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad_seq(self) -> int | None:
        return min((problem.seq for problem in self.problems), default=None)


def chain_head(session: Session) -> AuditHead | None:
    last = session.execute(
        select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    return AuditHead(last.seq, last.hash) if last is not None else None


_COLUMNS = (
    AuditEvent.seq,
    AuditEvent.at,
    AuditEvent.actor,
    AuditEvent.action,
    AuditEvent.target_type,
    AuditEvent.target_id,
    AuditEvent.details,
    AuditEvent.prev_hash,
    AuditEvent.hash,
)


def verify_chain(
    session: Session, *, expected_head: AuditHead | None = None, batch_size: int = 1000
) -> AuditVerification:
    """Recompute every hash and link from event 1 on; report each modified, missing or moved event.

    Streams the table in ``seq`` order, so memory stays flat for millions of events.
    """

    def stream() -> Iterator[EventRecord]:
        rows = session.execute(
            select(*_COLUMNS).order_by(AuditEvent.seq).execution_options(yield_per=batch_size)
        )
        try:
            for row in rows:
                yield EventRecord.of(row)
        finally:
            rows.close()

    def find_by_hash(value: str) -> EventRecord | None:
        row = session.execute(select(*_COLUMNS).where(AuditEvent.hash == value)).first()
        return EventRecord.of(row) if row is not None else None

    return _verify(
        stream(), find_by_hash, first_seq=1, first_prev_hash=GENESIS_HASH, expected_head=expected_head
    )


def verify_exported_events(
    events: Iterable[Mapping[str, Any]],
    *,
    expected_prev_hash: str | None = None,
    expected_head: AuditHead | None = None,
) -> AuditVerification:
    """Verify an ``export_events`` slice on its own (an auditor's copy, no database needed).

    A slice starts mid-chain; pass the hash of the event before it as ``expected_prev_hash`` to check its
    first link too.
    """
    return _verify_slice(
        [EventRecord.from_export(event) for event in events],
        expected_prev_hash=expected_prev_hash,
        expected_head=expected_head,
    )


def _verify_slice(
    records: list[EventRecord], *, expected_prev_hash: str | None, expected_head: AuditHead | None
) -> AuditVerification:
    by_hash = {record.hash: record for record in records}
    if not records:
        problems: tuple[AuditProblem, ...] = ()
        if expected_head is not None:
            problems = (AuditProblem(expected_head.seq, AuditProblemReason.HEAD_MISMATCH, "no events"),)
        return AuditVerification(events_checked=0, head=None, problems=problems)
    if expected_prev_hash is None and records[0].seq == 1:
        expected_prev_hash = GENESIS_HASH
    return _verify(
        iter(records),
        by_hash.get,
        first_seq=records[0].seq,
        first_prev_hash=expected_prev_hash,
        expected_head=expected_head,
    )


@dataclass(frozen=True)
class ExportProblem:
    """A problem in an exported file, at the line an auditor can open."""

    line: int  # 1-based line of the file
    seq: int | None  # the event's seq; None for a line that is not an event
    reason: AuditProblemReason
    detail: str = ""


@dataclass(frozen=True)
class ExportVerification:
    events_checked: int
    head: AuditHead | None  # the file's last event
    problems: tuple[ExportProblem, ...]
    problems_truncated: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad_line(self) -> int | None:
        return min((problem.line for problem in self.problems), default=None)


def verify_export_lines(
    lines: Iterable[str], *, expected_head: AuditHead | None = None
) -> ExportVerification:
    """Verify an exported file (JSON lines as ``onecard audit export`` writes them), naming each bad line.

    Every event's hash is recomputed from its fields and every link to the previous line's event checked;
    a line that is not an event, or repeats a seq, is ``malformed``. A removed event is reported at the
    line where the gap shows (the next event). The first event's link points outside a file that does not
    start at seq 1, so it is not checked; ``expected_head`` also checks that the file reaches a kept head.
    """
    records: list[EventRecord] = []
    line_of: dict[int, int] = {}
    unreadable: list[ExportProblem] = []
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            event = json.loads(text)
            record = EventRecord.from_export(event)
        except (ValueError, KeyError, TypeError, AttributeError):
            unreadable.append(ExportProblem(number, None, AuditProblemReason.MALFORMED, "not an audit event"))
            continue
        if record.seq in line_of:
            unreadable.append(
                ExportProblem(
                    number,
                    record.seq,
                    AuditProblemReason.MALFORMED,
                    f"seq {record.seq} again (first on line {line_of[record.seq]})",
                )
            )
            continue
        line_of[record.seq] = number
        records.append(record)
    result = _verify_slice(records, expected_prev_hash=None, expected_head=expected_head)
    last_line = max(line_of.values(), default=0)

    def line_for(problem: AuditProblem) -> int:
        if problem.seq in line_of:
            return line_of[problem.seq]
        # A missing event shows at the next one still in the file; a missing head after the last line.
        later = [line_of[seq] for seq in line_of if seq > problem.seq]
        return min(later) if later else last_line + 1

    problems = sorted(
        [
            *unreadable,
            *(ExportProblem(line_for(p), p.seq, p.reason, p.detail) for p in result.problems),
        ],
        key=lambda problem: problem.line,
    )
    return ExportVerification(
        events_checked=result.events_checked,
        head=result.head,
        problems=tuple(problems[:MAX_PROBLEMS]),
        problems_truncated=result.problems_truncated or len(problems) > MAX_PROBLEMS,
    )


def _verify(
    records: Iterator[EventRecord],
    find_by_hash: Callable[[str], EventRecord | None],
    *,
    first_seq: int,
    first_prev_hash: str | None,
    expected_head: AuditHead | None,
) -> AuditVerification:
    problems: list[AuditProblem] = []
    suspects: list[EventRecord] = []  # hash mismatches, classified once the stream is closed
    expected_seq, prev_hash = first_seq, first_prev_hash
    checked = 0
    last: EventRecord | None = None
    head_seen = False
    for record in records:
        checked += 1
        gap = record.seq != expected_seq
        if gap:
            problems.append(
                AuditProblem(
                    expected_seq,
                    AuditProblemReason.MISSING,
                    f"events {expected_seq} to {record.seq - 1} are gone",
                )
            )
        suspect = compute_event_hash(record) != record.hash
        if suspect:
            suspects.append(record)
        elif not gap and prev_hash is not None and record.prev_hash != prev_hash:
            problems.append(
                AuditProblem(
                    record.seq, AuditProblemReason.UNLINKED, f"does not chain to event {record.seq - 1}"
                )
            )
        if expected_head is not None and record.seq == expected_head.seq:
            head_seen = True
            if record.hash != expected_head.hash:
                problems.append(
                    AuditProblem(record.seq, AuditProblemReason.HEAD_MISMATCH, "differs from the kept head")
                )
        # A suspect's stored hash proves nothing, so the next event's link to it is not checked: a moved
        # event would otherwise be reported twice, once as moved and once as its successor's broken link.
        expected_seq, prev_hash, last = record.seq + 1, None if suspect else record.hash, record
        if len(problems) + len(suspects) > MAX_PROBLEMS:
            break
    close = getattr(records, "close", None)
    if close is not None:
        close()  # end a database stream before classifying, which queries again
    for record in suspects:
        moved_from = _recorded_seq(record, find_by_hash)
        if (
            moved_from is not None
            and moved_from != record.seq
            and compute_event_hash(record, seq=moved_from) == record.hash
        ):
            problems.append(
                AuditProblem(record.seq, AuditProblemReason.REORDERED, f"recorded as event {moved_from}")
            )
        else:
            problems.append(AuditProblem(record.seq, AuditProblemReason.MODIFIED))
    if expected_head is not None and not head_seen:
        problems.append(
            AuditProblem(expected_head.seq, AuditProblemReason.HEAD_MISMATCH, "the kept head event is gone")
        )
    problems.sort(key=lambda problem: problem.seq)
    truncated = len(problems) > MAX_PROBLEMS
    return AuditVerification(
        events_checked=checked,
        head=AuditHead(last.seq, last.hash) if last is not None else None,
        problems=tuple(problems[:MAX_PROBLEMS]),
        problems_truncated=truncated,
    )


def _recorded_seq(
    record: EventRecord, find_by_hash: Callable[[str], EventRecord | None], *, max_steps: int = 64
) -> int | None:
    """Where an event was recorded, from its prev_hash links back to an event still in its place."""
    link, steps = record.prev_hash, 1
    for _ in range(max_steps):
        if link == GENESIS_HASH:
            return steps
        predecessor = find_by_hash(link)
        if predecessor is None:
            return None
        if compute_event_hash(predecessor) == predecessor.hash:
            return predecessor.seq + steps
        link, steps = predecessor.prev_hash, steps + 1
    return None


# Exporting -------------------------------------------------------------------------------------------


def export_events(session: Session, start: datetime, end: datetime | None = None) -> list[dict[str, Any]]:
    """Events with ``start <= at < end`` (no end: up to the last event) in seq order, with everything
    needed to re-verify them."""
    if start.tzinfo is None or (end is not None and end.tzinfo is None):
        raise ValueError("export_events needs aware datetimes")
    query = select(*_COLUMNS).where(AuditEvent.at >= start)
    if end is not None:
        query = query.where(AuditEvent.at < end)
    rows = session.execute(query.order_by(AuditEvent.seq))
    return [
        {
            "seq": row.seq,
            "at": row.at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "actor": row.actor,
            "action": row.action,
            "target_type": row.target_type,
            "target_id": row.target_id,
            "details": row.details,
            "prev_hash": row.prev_hash,
            "hash": row.hash,
        }
        for row in rows
    ]
