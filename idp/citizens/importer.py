"""Bulk import of the real-name register from CSV (DESIGN.md §2, §8 "CSV imports are validated").

The file is UTF-8 (a byte-order mark is allowed, as spreadsheet programs write one), with a header row
naming the two columns ``name`` and ``id_number`` (either order, case and surrounding spaces ignored) and
one citizen per row. Blank lines are skipped.

All or nothing: every row is validated first — column count, name, ID number (GB 11643 length, characters,
date of birth, check digit), duplicates within the file, numbers already registered — and a file with any
bad row imports nothing. The ``ImportReport`` lists every problem with the line it starts on and a reason
code; its details are fixed texts and counts, never a cell of the file (not even a header cell: a file
without its header row has a citizen there), so it can be logged and mailed. When the file is clean, the
rows are encrypted and inserted in batches (``COPY`` on PostgreSQL, one ``executemany`` elsewhere), in
the caller's transaction:
the caller commits, or a failure halfway rolls the whole import back.

Progress goes to a callback with the stage, rows done and rows in total, so the CLI can drive a tqdm bar::

    def progress(stage, done, total):
        bar.set_description(stage); bar.total = total; bar.n = done; bar.refresh()
"""

from __future__ import annotations

import csv
import enum
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any, Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from idp.citizens.errors import CitizenExistsError, IdNumberProblem, InvalidIdNumberError, InvalidNameError
from idp.citizens.idnumber import is_valid_id_number, validate_id_number
from idp.citizens.model import Citizen
from idp.citizens.service import encrypted_citizen_values, local_date, new_citizen_id, validate_name
from idp.crypto.pii import PiiCipher, PiiField
from idp.db import utc_from_timestamp

COLUMNS = ("name", "id_number")
INSERT_BATCH_SIZE = 5000
# Bounded by the SQL parameter limits of IN (...) on every backend (SQLite allows 32766).
_LOOKUP_BATCH_SIZE = 500
_PROGRESS_EVERY = 1000


class ImportStage(enum.StrEnum):
    VALIDATE = "validate"
    CHECK_REGISTER = "check"
    INSERT = "insert"


class ImportProblemReason(enum.StrEnum):
    UNREADABLE = "unreadable"  # not UTF-8, or broken CSV quoting
    BAD_HEADER = "bad_header"  # missing, or not exactly the columns name and id_number
    WRONG_COLUMN_COUNT = "wrong_column_count"
    EMPTY_NAME = "empty_name"
    INVALID_NAME = "invalid_name"
    EMPTY_ID_NUMBER = "empty_id_number"
    BAD_LENGTH = "bad_length"
    BAD_CHARACTERS = "bad_characters"
    BAD_BIRTH_DATE = "bad_birth_date"
    BAD_CHECKSUM = "bad_checksum"
    DUPLICATE_IN_FILE = "duplicate_in_file"
    ALREADY_REGISTERED = "already_registered"


_ID_NUMBER_REASONS = {
    IdNumberProblem.LENGTH: ImportProblemReason.BAD_LENGTH,
    IdNumberProblem.CHARACTERS: ImportProblemReason.BAD_CHARACTERS,
    IdNumberProblem.BIRTH_DATE: ImportProblemReason.BAD_BIRTH_DATE,
    IdNumberProblem.CHECK_DIGIT: ImportProblemReason.BAD_CHECKSUM,
}


@dataclass(frozen=True)
class ImportProblem:
    line: int  # 1-based line of the file where the row starts
    reason: ImportProblemReason
    detail: str = ""  # fixed text and numbers only: never a cell value

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason.value}" + (f" ({self.detail})" if self.detail else "")


@dataclass(frozen=True)
class ImportReport:
    rows: int  # data rows read (blank lines not counted)
    imported: int  # rows inserted: all of them or none
    problems: tuple[ImportProblem, ...]
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if not self.ok:
            return f"nothing imported: {len(self.problems)} problem(s) in {self.rows} rows"
        if self.dry_run:
            return f"all {self.rows} rows are valid; nothing imported (dry run)"
        return f"imported {self.imported} rows"


class ImportProgress(Protocol):
    def __call__(self, stage: ImportStage, done: int, total: int) -> None: ...


def _no_progress(stage: ImportStage, done: int, total: int) -> None:
    return None


@dataclass(frozen=True)
class _Row:
    line: int
    name: str
    id_number: str
    index: bytes


def import_citizens(
    session: Session,
    cipher: PiiCipher,
    source: bytes | IO[bytes],
    *,
    now: float,
    progress: ImportProgress | None = None,
    dry_run: bool = False,
    batch_size: int = INSERT_BATCH_SIZE,
) -> ImportReport:
    """Validate the whole file, then insert every row or none. Does not commit."""
    report_progress = progress or _no_progress
    data = source if isinstance(source, bytes) else source.read()
    records, problems = _read_records(data)
    if problems:
        return ImportReport(rows=len(records), imported=0, problems=tuple(problems))

    rows, problems = _validate_rows(records, cipher, now=now, progress=report_progress)
    problems += _check_register(session, rows, progress=report_progress)
    problems.sort(key=lambda problem: problem.line)
    if problems or dry_run:
        return ImportReport(rows=len(records), imported=0, problems=tuple(problems), dry_run=dry_run)

    at = utc_from_timestamp(now)
    writer = _RowWriter(session, at)
    done = 0
    for batch in _batches(rows, batch_size):
        values = [
            encrypted_citizen_values(
                cipher,
                citizen_id=new_citizen_id(),
                name=row.name,
                id_number=row.id_number,
                id_number_index=row.index,
                at=at,
            )
            for row in batch
        ]
        try:
            writer.write(values)
        except (IntegrityError, writer.integrity_error) as exc:
            # A number registered by another node since the check: the caller's rollback undoes the batches
            # already inserted, so the file still imports all or nothing.
            raise CitizenExistsError("registered concurrently during import") from exc
        done += len(batch)
        report_progress(ImportStage.INSERT, done, len(rows))
    return ImportReport(rows=len(records), imported=len(rows), problems=())


class _RowWriter:
    """Writes validated rows into ``citizens`` in the session's transaction, by the fastest path the driver
    has: ``COPY … FROM STDIN`` on PostgreSQL, one ``executemany`` elsewhere. The ORM's bulk insert costs
    more than the encryption (a bind processor per value per row); here every row's values are already
    what the driver takes, and the one timestamp of the import is converted once, by the column's own
    type, so the stored form is exactly what the ORM writes."""

    _COLUMNS = tuple(column.name for column in Citizen.__table__.columns)
    _TIMES = frozenset({"created_at", "updated_at"})

    def __init__(self, session: Session, at: datetime) -> None:
        self.connection = session.connection()
        dialect = self.connection.dialect
        self.postgres = dialect.name == "postgresql"
        self.integrity_error: type[Exception] = getattr(dialect.dbapi, "IntegrityError", IntegrityError)
        # The column type as this dialect binds it (UTCDateTime over the dialect's DateTime).
        process = Citizen.__table__.c.created_at.type.dialect_impl(dialect).bind_processor(dialect)
        self.at = process(at) if process else at
        names = ", ".join(self._COLUMNS)
        if self.postgres:
            self.sql = f"COPY {Citizen.__tablename__} ({names}) FROM STDIN"
        else:  # SQLite, the other supported database: qmark parameters
            marks = ", ".join("?" for _ in self._COLUMNS)
            self.sql = f"INSERT INTO {Citizen.__tablename__} ({names}) VALUES ({marks})"  # noqa: S608

    def write(self, values: list[dict[str, Any]]) -> None:
        rows = [
            tuple(self.at if name in self._TIMES else row[name] for name in self._COLUMNS) for row in values
        ]
        cursor = self.connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        if self.postgres:
            with cursor.copy(self.sql) as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            cursor.executemany(self.sql, rows)


def _read_records(data: bytes) -> tuple[list[tuple[int, list[str]]], list[ImportProblem]]:
    """(line, cells) for each data row after the header, or the problem that stops reading the file."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return [], [ImportProblem(line, ImportProblemReason.UNREADABLE, "not UTF-8")]
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records: list[tuple[int, list[str]]] = []
    header: list[str] | None = None
    header_line = 1
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error:
            # The csv module's message is not ours to vouch for: it could quote the line one day.
            return records, [ImportProblem(start, ImportProblemReason.UNREADABLE, _CSV_SYNTAX)]
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue  # a blank line; a line of empty cells ("," ) is a row and gets reported
        if header is None:
            header, header_line = [cell.strip().lower() for cell in cells], start
            continue
        records.append((start, cells))
    if header is None:
        return [], [ImportProblem(1, ImportProblemReason.BAD_HEADER, "the file is empty")]
    if sorted(header) != sorted(COLUMNS):
        return records, [ImportProblem(header_line, ImportProblemReason.BAD_HEADER, _header_detail(header))]
    if header != list(COLUMNS):
        records = [(line, cells[::-1] if len(cells) == 2 else cells) for line, cells in records]
    return records, []


_CSV_SYNTAX = "CSV syntax (quoting, a NUL character or an over-long field)"
_EXPECTED_HEADER = "the first row must be the header name,id_number (either order)"


def _header_detail(cells: list[str]) -> str:
    """Why the first row is not the header, without repeating any of it: the row may be a citizen."""
    if len(cells) == len(COLUMNS) and any(is_valid_id_number(cell) for cell in cells):
        return f"{_EXPECTED_HEADER}; it looks like a citizen, so the header row is probably missing"
    return f"{_EXPECTED_HEADER}; it has {len(cells)} column(s) with other names"


def _validate_rows(
    records: list[tuple[int, list[str]]], cipher: PiiCipher, *, now: float, progress: ImportProgress
) -> tuple[list[_Row], list[ImportProblem]]:
    today = local_date(now)
    rows: list[_Row] = []
    problems: list[ImportProblem] = []
    first_line_of: dict[bytes, int] = {}
    for done, (line, cells) in enumerate(records, start=1):
        if done % _PROGRESS_EVERY == 0:
            progress(ImportStage.VALIDATE, done, len(records))
        if len(cells) != len(COLUMNS):
            problems.append(
                ImportProblem(line, ImportProblemReason.WRONG_COLUMN_COUNT, f"{len(cells)} columns, not 2")
            )
            continue
        raw_name, raw_number = cells
        row_problems: list[ImportProblem] = []
        name = ""
        if not raw_name.strip():
            row_problems.append(ImportProblem(line, ImportProblemReason.EMPTY_NAME))
        else:
            try:
                name = validate_name(raw_name)
            except InvalidNameError as exc:
                row_problems.append(ImportProblem(line, ImportProblemReason.INVALID_NAME, exc.detail))
        number = ""
        if not raw_number.strip():
            row_problems.append(ImportProblem(line, ImportProblemReason.EMPTY_ID_NUMBER))
        else:
            try:
                number = validate_id_number(raw_number, today=today)
            except InvalidIdNumberError as exc:
                row_problems.append(ImportProblem(line, _ID_NUMBER_REASONS[exc.reason], exc.detail))
        if number:
            index = cipher.blind_index(PiiField.CITIZEN_ID_NUMBER, number)
            first = first_line_of.setdefault(index, line)
            if first != line:
                row_problems.append(
                    ImportProblem(
                        line, ImportProblemReason.DUPLICATE_IN_FILE, f"same ID number as line {first}"
                    )
                )
            elif not row_problems:
                rows.append(_Row(line, name, number, index))
        problems += row_problems
    progress(ImportStage.VALIDATE, len(records), len(records))
    return rows, problems


def _check_register(session: Session, rows: list[_Row], *, progress: ImportProgress) -> list[ImportProblem]:
    problems: list[ImportProblem] = []
    done = 0
    for batch in _batches(rows, _LOOKUP_BATCH_SIZE):
        by_index = {row.index: row.line for row in batch}
        registered = session.scalars(
            select(Citizen.id_number_index).where(Citizen.id_number_index.in_(list(by_index)))
        )
        problems += [
            ImportProblem(by_index[index], ImportProblemReason.ALREADY_REGISTERED) for index in registered
        ]
        done += len(batch)
        progress(ImportStage.CHECK_REGISTER, done, len(rows))
    return problems


def _batches(rows: list[_Row], size: int) -> Iterator[list[_Row]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def format_problems(problems: Iterable[ImportProblem], *, limit: int = 50) -> list[str]:
    """Problem lines for a terminal, at most ``limit`` of them plus a count of the rest."""
    listed = list(problems)
    lines = [str(problem) for problem in listed[:limit]]
    if len(listed) > limit:
        lines.append(f"… and {len(listed) - limit} more")
    return lines
