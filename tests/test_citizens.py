"""The real-name register: service operations and the all-or-nothing CSV importer (DESIGN.md §2, §8)."""

from __future__ import annotations

import io
import os
import random
import time
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from sqlalchemy import text, update
from sqlalchemy.orm import Session

from idp.citizens.errors import (
    CitizenExistsError,
    CitizenNotFoundError,
    IdNumberProblem,
    InvalidCitizenStatusError,
    InvalidIdNumberError,
    InvalidNameError,
)
from idp.citizens.idnumber import Gender
from idp.citizens.importer import (
    ImportProblemReason,
    ImportReport,
    ImportStage,
    format_problems,
    import_citizens,
)
from idp.citizens.model import Citizen, CitizenStatus
from idp.citizens.service import (
    count_citizens,
    create_citizen,
    decrypt_profile,
    find_by_id_number,
    get_citizen,
    list_citizens,
    reencrypt_citizens,
    set_citizen_status,
)
from idp.crypto.errors import DecryptionError
from idp.crypto.pii import PiiCipher
from idp.db import Database, utc_from_timestamp
from tests.support.idnumbers import make_id_number

NOW = 1_750_000_000.0  # 2025-06-15 UTC
INDEX_KEY = os.urandom(32)
DATA_KEY = ("data-1", os.urandom(32))

ZHANG = ("张三", "11010519491231002X")
ZHAO = ("赵六", "440524188001010014")


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest) -> Database:
    return request.getfixturevalue(f"{request.param}_database")  # type: ignore[no-any-return]


@pytest.fixture
def session(database: Database) -> Iterator[Session]:
    with database.session() as session:
        yield session


@pytest.fixture
def cipher() -> PiiCipher:
    return PiiCipher([DATA_KEY], INDEX_KEY)


# Service -------------------------------------------------------------------------------------------------


def test_create_get_and_decrypt(session: Session, cipher: PiiCipher) -> None:
    citizen = create_citizen(session, cipher, " 张三 ", "11010519491231002x", now=NOW)
    assert citizen.status == CitizenStatus.ACTIVE and citizen.data_key_id == "data-1"
    assert citizen.created_at.timestamp() == NOW == citizen.updated_at.timestamp()
    assert get_citizen(session, citizen.id) is citizen
    profile = decrypt_profile(cipher, citizen)
    assert profile.citizen_id == citizen.id
    assert profile.name == "张三"
    assert profile.id_number == "11010519491231002X"
    assert profile.masked_id_number == "1101**********002X"
    assert profile.gender is Gender.FEMALE
    assert profile.birthdate == date(1949, 12, 31)
    assert "张三" not in repr(profile) and "11010519491231002X" not in repr(profile)


def test_nothing_in_clear_in_the_database(database: Database, cipher: PiiCipher) -> None:
    with database.session() as session:
        create_citizen(session, cipher, *ZHANG, now=NOW)
    with database.session() as session:
        row = session.execute(text("SELECT * FROM citizens")).one()
    raw = b"".join(value if isinstance(value, bytes) else str(value).encode() for value in row)
    assert ZHANG[0].encode() not in raw and ZHANG[1].encode() not in raw and b"1949" not in raw


def test_duplicate_id_number(session: Session, cipher: PiiCipher) -> None:
    create_citizen(session, cipher, *ZHANG, now=NOW)
    with pytest.raises(CitizenExistsError) as caught:
        create_citizen(session, cipher, "另一个人", ZHANG[1].lower(), now=NOW)
    assert caught.value.status_code == 409 and caught.value.error == "citizen_exists"


def test_unique_index_decides_a_race(
    database: Database, cipher: PiiCipher, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two nodes both pass the "already registered?" check; the unique blind index stops the second.
    with database.session() as first:
        create_citizen(first, cipher, *ZHANG, now=NOW)
    with pytest.raises(CitizenExistsError), database.session() as second:
        monkeypatch.setattr(second, "scalar", lambda *args, **kwargs: None)  # its check ran before the commit
        create_citizen(second, cipher, "另一个人", ZHANG[1], now=NOW)
    with database.session() as session:
        assert count_citizens(session) == 1


def test_find_by_id_number(session: Session, cipher: PiiCipher) -> None:
    citizen = create_citizen(session, cipher, *ZHANG, now=NOW)
    assert find_by_id_number(session, cipher, "１１０１０５１９４９１２３１００２ｘ") is citizen
    assert find_by_id_number(session, cipher, ZHAO[1]) is None
    with pytest.raises(InvalidIdNumberError):
        find_by_id_number(session, cipher, "110105194912310021")


def test_get_missing(session: Session) -> None:
    with pytest.raises(CitizenNotFoundError) as caught:
        get_citizen(session, "no-such-id")
    assert caught.value.status_code == 404


@pytest.mark.parametrize("name", ["", "   ", "张\x00三", "张\u200b三", "x" * 101])
def test_invalid_names(session: Session, cipher: PiiCipher, name: str) -> None:
    with pytest.raises(InvalidNameError):
        create_citizen(session, cipher, name, ZHANG[1], now=NOW)
    assert count_citizens(session) == 0


def test_birth_date_after_today_in_china(session: Session, cipher: PiiCipher) -> None:
    # NOW is 2025-06-15 00:53 in Beijing (UTC+8): someone born on the 15th exists, on the 16th not yet.
    now = 1_749_948_780.0  # 2025-06-14T16:53:00Z
    born_today = make_id_number("420106", date(2025, 6, 15), 101)
    born_tomorrow = make_id_number("420106", date(2025, 6, 16), 101)
    create_citizen(session, cipher, "婴儿", born_today, now=now)
    with pytest.raises(InvalidIdNumberError) as caught:
        create_citizen(session, cipher, "未出生", born_tomorrow, now=now)
    assert caught.value.reason is IdNumberProblem.BIRTH_DATE


def test_list_and_count(session: Session, cipher: PiiCipher) -> None:
    numbers = [make_id_number("420106", date(1980, 1, 1) + timedelta(days=day), 1) for day in range(7)]
    created = [create_citizen(session, cipher, f"公民{i}", n, now=NOW + i) for i, n in enumerate(numbers)]
    assert count_citizens(session) == 7
    pages = [list_citizens(session, offset=offset, limit=3) for offset in (0, 3, 6)]
    assert [len(page) for page in pages] == [3, 3, 1]
    assert [c.id for page in pages for c in page] == [c.id for c in created]
    with pytest.raises(ValueError):
        list_citizens(session, limit=0)
    with pytest.raises(ValueError):
        list_citizens(session, offset=-1)


def test_status(session: Session, cipher: PiiCipher) -> None:
    citizen = create_citizen(session, cipher, *ZHANG, now=NOW)
    set_citizen_status(session, citizen.id, "disabled", now=NOW + 60)
    assert citizen.status == "disabled" and not citizen.is_active
    assert citizen.updated_at.timestamp() == NOW + 60
    with pytest.raises(InvalidCitizenStatusError):
        set_citizen_status(session, citizen.id, "deceased", now=NOW)
    with pytest.raises(CitizenNotFoundError):
        set_citizen_status(session, "nobody", "active", now=NOW)


def test_swapped_ciphertexts_do_not_decrypt(session: Session, cipher: PiiCipher) -> None:
    # Someone with write access to the table copies one citizen's ID number onto another row.
    first = create_citizen(session, cipher, *ZHANG, now=NOW)
    second = create_citizen(session, cipher, *ZHAO, now=NOW)
    session.execute(update(Citizen).where(Citizen.id == second.id).values(id_number_ct=first.id_number_ct))
    session.expire_all()
    with pytest.raises(DecryptionError):
        decrypt_profile(cipher, get_citizen(session, second.id))


def test_data_key_rotation(session: Session, cipher: PiiCipher) -> None:
    numbers = [make_id_number("420106", date(1990, 1, 1) + timedelta(days=day), 3) for day in range(5)]
    for i, number in enumerate(numbers):
        create_citizen(session, cipher, f"公民{i}", number, now=NOW)
    new_key = ("data-2", os.urandom(32))
    rotated = PiiCipher([new_key, DATA_KEY], INDEX_KEY)
    assert reencrypt_citizens(session, rotated, now=NOW + 1, batch_size=2) == 2
    assert reencrypt_citizens(session, rotated, now=NOW + 1, batch_size=2) == 2
    assert reencrypt_citizens(session, rotated, now=NOW + 1, batch_size=2) == 1
    assert reencrypt_citizens(session, rotated, now=NOW + 1) == 0
    only_new = PiiCipher([new_key], INDEX_KEY)
    names = sorted(decrypt_profile(only_new, c).name for c in list_citizens(session))
    assert names == [f"公民{i}" for i in range(5)]
    assert find_by_id_number(session, only_new, numbers[0]) is not None  # the blind index did not move


# Importer ------------------------------------------------------------------------------------------------


def csv_bytes(*lines: str, bom: bool = False) -> bytes:
    return ("\ufeff" if bom else "").encode() + "\r\n".join(lines).encode() + b"\r\n"


def valid_rows(count: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    seen: set[str] = set()
    rows: list[str] = []
    while len(rows) < count:
        number = make_id_number(
            f"{rng.randint(110000, 659999)}",
            date(1930, 1, 1) + timedelta(days=rng.randint(0, 30000)),
            rng.randint(0, 999),
        )
        if number not in seen:
            seen.add(number)
            rows.append(f"公民{len(rows)},{number}")
    return rows


def test_import_happy_path_with_bom_and_progress(session: Session, cipher: PiiCipher) -> None:
    calls: list[tuple[ImportStage, int, int]] = []
    data = csv_bytes("name,id_number", *valid_rows(2500), "", bom=True)
    report = import_citizens(
        session, cipher, data, now=NOW, progress=lambda stage, done, total: calls.append((stage, done, total))
    )
    assert report.ok and report.rows == 2500 and report.imported == 2500
    assert report.summary() == "imported 2500 rows"
    assert count_citizens(session) == 2500
    assert calls[-1] == (ImportStage.INSERT, 2500, 2500)
    assert {stage for stage, _, _ in calls} == set(ImportStage)
    assert all(done <= total for _, done, total in calls)
    first = list_citizens(session, limit=1)[0]
    assert decrypt_profile(cipher, first).name.startswith("公民")


def test_imported_rows_read_back_like_rows_the_orm_wrote(database: Database, cipher: PiiCipher) -> None:
    # The importer writes through the driver (COPY, executemany): the stored form must be the ORM's own.
    with database.session() as session:
        made = create_citizen(session, cipher, *ZHANG, now=NOW)
        made_id = made.id
        assert import_citizens(
            session, cipher, csv_bytes("name,id_number", f"{ZHAO[0]},{ZHAO[1]}"), now=NOW
        ).ok
    with database.session() as session:
        imported = find_by_id_number(session, cipher, ZHAO[1])
        made = get_citizen(session, made_id)
        assert imported is not None and imported.is_active
        assert imported.created_at == imported.updated_at == made.created_at == utc_from_timestamp(NOW)
        assert imported.data_key_id == made.data_key_id
        assert decrypt_profile(cipher, imported).name == ZHAO[0]
        stored = session.execute(
            text("SELECT created_at FROM citizens WHERE id IN (:a, :b)"), {"a": made_id, "b": imported.id}
        ).scalars()
        assert len(set(stored)) == 1  # the same text or timestamp in the column, not just equal after parsing


def test_import_reversed_header_blank_lines_and_file_object(session: Session, cipher: PiiCipher) -> None:
    data = csv_bytes(" ID_Number , Name ", "", f"{ZHANG[1]},{ZHANG[0]}", "   ", f'{ZHAO[1]},"{ZHAO[0]}"')
    report = import_citizens(session, cipher, io.BytesIO(data), now=NOW)
    assert report.ok and report.imported == 2
    assert decrypt_profile(cipher, find_by_id_number(session, cipher, ZHAO[1])).name == ZHAO[0]  # type: ignore[arg-type]


def test_import_is_all_or_nothing_with_a_report(session: Session, cipher: PiiCipher) -> None:
    create_citizen(session, cipher, *ZHAO, now=NOW)
    good = valid_rows(3, seed=7)
    bad_checksum = ZHANG[1][:-1] + "1"
    lines = [
        "name,id_number",  # line 1
        good[0],  # 2
        f"王五,{bad_checksum}",  # 3
        f",{good[1].split(',')[1]}",  # 4: empty name
        "孤单",  # 5: one column
        f"张三,{ZHANG[1]},extra",  # 6: three columns
        f"张三,{ZHANG[1]}",  # 7
        f"张三丰,{ZHANG[1].lower()}",  # 8: same number as line 7
        f"赵六,{ZHAO[1]}",  # 9: registered already
        "李四,1101051949",  # 10: too short
        "李四,110105194902300025",  # 11: 30 February
        "钱七,",  # 12: no ID number
        '"孙\n八",11010519491231002X',  # 13-14: quoted newline in the name (and a duplicate)
        good[2],  # 15
    ]
    report = import_citizens(session, cipher, csv_bytes(*lines), now=NOW)
    assert not report.ok and report.imported == 0 and report.rows == 13
    found = [(problem.line, problem.reason) for problem in report.problems]
    assert found == [
        (3, ImportProblemReason.BAD_CHECKSUM),
        (4, ImportProblemReason.EMPTY_NAME),
        (5, ImportProblemReason.WRONG_COLUMN_COUNT),
        (6, ImportProblemReason.WRONG_COLUMN_COUNT),
        (8, ImportProblemReason.DUPLICATE_IN_FILE),
        (9, ImportProblemReason.ALREADY_REGISTERED),
        (10, ImportProblemReason.BAD_LENGTH),
        (11, ImportProblemReason.BAD_BIRTH_DATE),
        (12, ImportProblemReason.EMPTY_ID_NUMBER),
        (13, ImportProblemReason.INVALID_NAME),
        (13, ImportProblemReason.DUPLICATE_IN_FILE),
    ]
    assert [p.detail for p in report.problems if p.reason is ImportProblemReason.DUPLICATE_IN_FILE] == [
        "same ID number as line 7",
        "same ID number as line 7",
    ]
    assert count_citizens(session) == 1  # only the one created before
    text_of_report = "\n".join([report.summary(), *format_problems(report.problems)])
    for secret in ("张三", "王五", ZHANG[1], bad_checksum, ZHAO[1], "赵六"):
        assert secret not in text_of_report
    assert format_problems(report.problems, limit=2)[-1] == "… and 9 more"


@pytest.mark.parametrize(
    ("data", "line", "reason"),
    [
        (b"", 1, ImportProblemReason.BAD_HEADER),
        (csv_bytes(f"张三,{ZHANG[1]}"), 1, ImportProblemReason.BAD_HEADER),
        (csv_bytes("name,id_number,phone", f"张三,{ZHANG[1]},1"), 1, ImportProblemReason.BAD_HEADER),
        (
            csv_bytes("name,id_number", "张三,x").replace("张".encode(), b"\xd5\xc5"),
            2,
            ImportProblemReason.UNREADABLE,
        ),
        (
            csv_bytes("name,id_number", f"张三,{ZHANG[1]}", '"unterminated,x'),
            3,
            ImportProblemReason.UNREADABLE,
        ),
    ],
)
def test_unreadable_files(
    session: Session, cipher: PiiCipher, data: bytes, line: int, reason: ImportProblemReason
) -> None:
    report = import_citizens(session, cipher, data, now=NOW)
    assert [(p.line, p.reason) for p in report.problems] == [(line, reason)]
    assert report.imported == 0 and count_citizens(session) == 0


def test_dry_run_inserts_nothing(session: Session, cipher: PiiCipher) -> None:
    report = import_citizens(
        session, cipher, csv_bytes("name,id_number", *valid_rows(10)), now=NOW, dry_run=True
    )
    assert report.ok and report.imported == 0 and report.dry_run
    assert count_citizens(session) == 0


def test_failed_insert_rolls_back_every_batch(database: Database, cipher: PiiCipher) -> None:
    rows = valid_rows(30, seed=3)
    last_number = rows[-1].split(",")[1]
    with pytest.raises(CitizenExistsError), database.session() as unit:

        def register_behind_its_back(stage: ImportStage, done: int, total: int) -> None:
            # Another node registers the last row's number after the importer's check, once two batches
            # are in: the 3rd batch fails on the unique blind index.
            if stage is ImportStage.INSERT and done == 20:
                create_citizen(unit, cipher, "抢先", last_number, now=NOW)

        import_citizens(
            unit,
            cipher,
            csv_bytes("name,id_number", *rows),
            now=NOW,
            batch_size=10,
            progress=register_behind_its_back,
        )
    with database.session() as session:
        assert count_citizens(session) == 0


def test_large_import(sqlite_database: Database, cipher: PiiCipher) -> None:
    rows = valid_rows(20_000, seed=42)
    started = time.perf_counter()
    with sqlite_database.session() as session:
        report: ImportReport = import_citizens(session, cipher, csv_bytes("name,id_number", *rows), now=NOW)
    elapsed = time.perf_counter() - started
    assert report.imported == 20_000
    with sqlite_database.session() as session:
        assert count_citizens(session) == 20_000
    # Generous: about 1 s on a laptop; row-by-row ORM inserts would take several times longer.
    assert elapsed < 30


def _fragments(name: str, number: str) -> list[str]:
    """What of a citizen must not appear in a report: the name and the number, or telling parts of it."""
    return [name, number, number[:-1], number[:6] + number[6:14], number[6:14] + number[14:17]]


@pytest.mark.parametrize(
    ("lines", "expected_detail"),
    [
        # No header row: the first citizen stands where the header should be.
        ([f"{ZHANG[0]},{ZHANG[1]}", f"{ZHAO[0]},{ZHAO[1]}"], "header row is probably missing"),
        ([f"{ZHANG[1]},{ZHANG[0]}"], "header row is probably missing"),
        # A header in other words, or with a third column: its cells are not repeated either.
        ([f"{ZHANG[0]},{ZHANG[1]},13800138000", f"{ZHAO[0]},{ZHAO[1]},1"], "3 column(s)"),
        ([f"{ZHANG[0]},{ZHANG[1][:-1]}0"], "2 column(s) with other names"),  # a bad check digit
    ],
)
def test_a_bad_header_row_is_reported_without_its_cells(
    session: Session, cipher: PiiCipher, lines: list[str], expected_detail: str
) -> None:
    report = import_citizens(session, cipher, csv_bytes(*lines), now=NOW)
    text_of_report = "\n".join(
        [report.summary(), *format_problems(report.problems), *(p.detail for p in report.problems)]
    )
    for fragment in [*_fragments(*ZHANG), *_fragments(*ZHAO), "13800138000"]:
        assert fragment not in text_of_report
    assert [(p.line, p.reason) for p in report.problems] == [(1, ImportProblemReason.BAD_HEADER)]
    assert expected_detail in report.problems[0].detail
    assert count_citizens(session) == 0


def test_a_broken_row_is_reported_without_its_cells(session: Session, cipher: PiiCipher) -> None:
    secret_name = "欧阳修"
    data = csv_bytes("name,id_number", f'"{secret_name},{ZHANG[1]}', f"{ZHAO[0]},{ZHAO[1]}")
    report = import_citizens(session, cipher, data, now=NOW)
    assert [(p.line, p.reason) for p in report.problems] == [(2, ImportProblemReason.UNREADABLE)]
    text_of_report = "\n".join([report.summary(), *format_problems(report.problems)])
    for fragment in [secret_name, *_fragments(*ZHANG), *_fragments(*ZHAO)]:
        assert fragment not in text_of_report
