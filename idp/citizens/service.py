"""Register operations: create, find, list, disable, decrypt, re-encrypt (DESIGN.md §2, §8).

Functions take a SQLAlchemy ``Session`` (and a ``PiiCipher`` where PII is read or written) and never
commit: the caller's unit of work does, and rolls back on any error raised here. Names and ID numbers are
validated before anything is stored; they are never logged or put into error messages.
"""

from __future__ import annotations

import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from idp.citizens.errors import (
    CitizenExistsError,
    CitizenNotFoundError,
    InvalidCitizenStatusError,
    InvalidNameError,
)
from idp.citizens.idnumber import Gender, birthdate_of, gender_of, mask_id_number, validate_id_number
from idp.citizens.model import Citizen, CitizenStatus
from idp.crypto.pii import PiiCipher, PiiField
from idp.db import utc_from_timestamp

MAX_NAME_LENGTH = 100
MAX_PAGE_SIZE = 1000
# Dates of birth in ID numbers are dates in China (UTC+8 all year, no daylight saving time).
CHINA_TIME = timezone(timedelta(hours=8), "Asia/Shanghai")


def local_date(now: float) -> date:
    """Today's date in China at ``now``: the bound for a date of birth."""
    return datetime.fromtimestamp(now, CHINA_TIME).date()


def validate_name(text: str) -> str:
    """The normalised name (NFC, trimmed), or ``InvalidNameError``.

    Names are as the card shows them — Chinese, minority names with a middle dot (阿卜杜拉·买买提),
    Latin names with spaces — so the rule is only: not empty, not too long, no control or format
    characters (which can hide text or break the CSV and the pages that show it).
    """
    name = unicodedata.normalize("NFC", text).strip()
    if not name:
        raise InvalidNameError("empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidNameError(f"{len(name)} characters, more than {MAX_NAME_LENGTH}")
    if any(unicodedata.category(char).startswith("C") for char in name):
        raise InvalidNameError("control or format character")
    return name


def new_citizen_id() -> str:
    return str(uuid.uuid4())


def encrypted_citizen_values(
    cipher: PiiCipher, *, citizen_id: str, name: str, id_number: str, id_number_index: bytes, at: datetime
) -> dict[str, Any]:
    """Column values of a new row from already-validated input (shared with the bulk importer)."""
    return {
        "id": citizen_id,
        "name_ct": cipher.encrypt(PiiField.CITIZEN_NAME, name, record_id=citizen_id),
        "id_number_ct": cipher.encrypt(PiiField.CITIZEN_ID_NUMBER, id_number, record_id=citizen_id),
        "id_number_index": id_number_index,
        "data_key_id": cipher.current_key_id,
        "status": CitizenStatus.ACTIVE.value,
        "created_at": at,
        "updated_at": at,
    }


def create_citizen(session: Session, cipher: PiiCipher, name: str, id_number: str, *, now: float) -> Citizen:
    """Register a citizen; ``CitizenExistsError`` if the ID number is registered already."""
    clean_name = validate_name(name)
    number = validate_id_number(id_number, today=local_date(now))
    index = cipher.blind_index(PiiField.CITIZEN_ID_NUMBER, number)
    if session.scalar(select(Citizen.id).where(Citizen.id_number_index == index)) is not None:
        raise CitizenExistsError()
    citizen_id = new_citizen_id()
    citizen = Citizen(
        **encrypted_citizen_values(
            cipher,
            citizen_id=citizen_id,
            name=clean_name,
            id_number=number,
            id_number_index=index,
            at=utc_from_timestamp(now),
        )
    )
    session.add(citizen)
    try:
        session.flush()
    except IntegrityError as exc:
        # Another node registered the same number between our check and our insert; the unique blind
        # index is what decides. The caller's unit of work rolls the session back.
        raise CitizenExistsError("registered concurrently") from exc
    return citizen


def find_by_id_number(session: Session, cipher: PiiCipher, id_number: str) -> Citizen | None:
    """The citizen with this ID number, or None. A malformed number raises ``InvalidIdNumberError``."""
    index = cipher.blind_index(PiiField.CITIZEN_ID_NUMBER, validate_id_number(id_number))
    return session.scalar(select(Citizen).where(Citizen.id_number_index == index))


def find_citizen(session: Session, citizen_id: str) -> Citizen | None:
    return session.get(Citizen, citizen_id)


def get_citizen(session: Session, citizen_id: str) -> Citizen:
    citizen = session.get(Citizen, citizen_id)
    if citizen is None:
        raise CitizenNotFoundError()
    return citizen


def list_citizens(session: Session, *, offset: int = 0, limit: int = 100) -> list[Citizen]:
    """A page of the register, oldest first (ties broken by id so pages never overlap)."""
    if offset < 0 or not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"offset must be >= 0 and limit between 1 and {MAX_PAGE_SIZE}")
    query = select(Citizen).order_by(Citizen.created_at, Citizen.id).offset(offset).limit(limit)
    return list(session.scalars(query))


def count_citizens(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Citizen)) or 0


def set_citizen_status(session: Session, citizen_id: str, status: str, *, now: float) -> Citizen:
    try:
        new_status = CitizenStatus(status)
    except ValueError:
        raise InvalidCitizenStatusError(f"unknown status {status!r}") from None
    citizen = get_citizen(session, citizen_id)
    if citizen.status != new_status:
        citizen.status = new_status.value
        citizen.updated_at = utc_from_timestamp(now)
        session.flush()
    return citizen


@dataclass(frozen=True)
class CitizenProfile:
    """A citizen's decrypted identity. Name and full ID number stay out of the repr (logs, tracebacks)."""

    citizen_id: str
    name: str = field(repr=False)
    id_number: str = field(repr=False)
    masked_id_number: str
    gender: Gender
    birthdate: date


def decrypt_profile(cipher: PiiCipher, citizen: Citizen) -> CitizenProfile:
    """Decrypt a row; ``DecryptionError`` if it was tampered with or its data key is gone."""
    name = cipher.decrypt(PiiField.CITIZEN_NAME, citizen.name_ct, record_id=citizen.id)
    id_number = cipher.decrypt(PiiField.CITIZEN_ID_NUMBER, citizen.id_number_ct, record_id=citizen.id)
    return CitizenProfile(
        citizen_id=citizen.id,
        name=name,
        id_number=id_number,
        masked_id_number=mask_id_number(id_number),
        gender=gender_of(id_number),
        birthdate=birthdate_of(id_number),
    )


def reencrypt_citizens(session: Session, cipher: PiiCipher, *, now: float, batch_size: int = 500) -> int:
    """Re-encrypt up to ``batch_size`` rows still under an older data key; returns how many.

    Call it until it returns 0 (each call in its own unit of work keeps transactions short), then the old
    data key can be retired. Rows are found by ``data_key_id`` alone, without decrypting the table.
    """
    rows = session.scalars(
        select(Citizen)
        .where(Citizen.data_key_id != cipher.current_key_id)
        .order_by(Citizen.id)
        .limit(batch_size)
    ).all()
    at = utc_from_timestamp(now)
    for citizen in rows:
        citizen.name_ct = cipher.reencrypt(PiiField.CITIZEN_NAME, citizen.name_ct, record_id=citizen.id)
        citizen.id_number_ct = cipher.reencrypt(
            PiiField.CITIZEN_ID_NUMBER, citizen.id_number_ct, record_id=citizen.id
        )
        citizen.data_key_id = cipher.current_key_id
        citizen.updated_at = at
    session.flush()
    return len(rows)
