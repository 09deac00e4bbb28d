"""Citizen ID numbers (公民身份号码) per GB 11643-1999, which is also the social security number.

Eighteen characters: a 6-digit administrative division code (GB/T 2260) of the place of first registration,
the date of birth as YYYYMMDD, a 3-digit sequence code whose parity is the holder's sex (odd: male, even:
female), and a check character computed with ISO 7064 MOD 11-2 over the first 17 digits — weights
2**(18-i) mod 11 for positions i = 1…17, and the check value ``c`` makes ``sum + c ≡ 1 (mod 11)``, with 10
written as ``X``. DESIGN.md §8 requires every ID number from outside to pass this check.

``validate_id_number`` returns the normalised form (ASCII, upper-case ``X``) used for storage and for the
blind index, or raises ``InvalidIdNumberError`` whose ``reason`` says which rule failed. Nothing here logs
or puts the number itself into an error.
"""

from __future__ import annotations

import enum
import operator
from datetime import date

from idp.citizens.errors import IdNumberProblem, InvalidIdNumberError

ID_NUMBER_LENGTH = 18
# Position i (1-based) has weight 2**(18-i) mod 11.
_WEIGHTS = tuple(pow(2, 17 - index, 11) for index in range(17))
_CHECK_CHARACTERS = "10X98765432"  # indexed by (weighted sum mod 11)
_DIGITS = frozenset("0123456789")
# Numbers typed on Chinese keyboards often arrive in full-width forms (０-９, Ｘ, ｘ) or with an
# ideographic space around them; those are the same number, anything else is a wrong character.
_FULL_WIDTH = str.maketrans("０１２３４５６７８９Ｘｘx", "0123456789XXX")
_MIN_BIRTH_YEAR = 1800  # the format has room for it; the standard's own examples include 1880


class Gender(enum.StrEnum):
    """The OpenID Connect ``gender`` claim values (OIDC Core §5.1)."""

    FEMALE = "female"
    MALE = "male"


def check_character(first17: str) -> str:
    """The GB 11643 check character for 17 digits."""
    if len(first17) != ID_NUMBER_LENGTH - 1:
        raise ValueError("17 digits expected")
    # map/operator rather than a generator: this runs once per row of a register import.
    return _CHECK_CHARACTERS[sum(map(operator.mul, map(int, first17), _WEIGHTS)) % 11]


def validate_id_number(text: str, *, today: date | None = None) -> str:
    """The normalised ID number, or ``InvalidIdNumberError`` naming the first rule it breaks.

    With ``today`` (the local date where the number is used) a date of birth after it is refused too.
    """
    number = text.strip(" \t\r\n\u3000").translate(_FULL_WIDTH)
    if len(number) != ID_NUMBER_LENGTH:
        raise InvalidIdNumberError(IdNumberProblem.LENGTH, f"{len(number)} characters")
    if not set(number[:17]) <= _DIGITS or not (number[17] in _DIGITS or number[17] == "X"):
        raise InvalidIdNumberError(IdNumberProblem.CHARACTERS)
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise InvalidIdNumberError(IdNumberProblem.BIRTH_DATE, "not a calendar date") from None
    if born.year < _MIN_BIRTH_YEAR:
        raise InvalidIdNumberError(IdNumberProblem.BIRTH_DATE, f"year before {_MIN_BIRTH_YEAR}")
    if today is not None and born > today:
        raise InvalidIdNumberError(IdNumberProblem.BIRTH_DATE, "date of birth in the future")
    if check_character(number[:17]) != number[17]:
        raise InvalidIdNumberError(IdNumberProblem.CHECK_DIGIT)
    return number


def is_valid_id_number(text: str) -> bool:
    try:
        validate_id_number(text)
    except InvalidIdNumberError:
        return False
    return True


def mask_id_number(id_number: str) -> str:
    """``4201**********123X``: the first four and last four characters, the rest starred.

    Works on any string, valid or not, so it is safe for showing rejected input; a string too short to
    keep eight characters is starred completely.
    """
    text = id_number.strip().upper()
    if len(text) <= 8:
        return "*" * len(text)
    return text[:4] + "*" * (len(text) - 8) + text[-4:]


def birthdate_of(id_number: str) -> date:
    number = validate_id_number(id_number)
    return date(int(number[6:10]), int(number[10:12]), int(number[12:14]))


def gender_of(id_number: str) -> Gender:
    """From the parity of the sequence code's last digit (the 17th character)."""
    number = validate_id_number(id_number)
    return Gender.MALE if int(number[16]) % 2 else Gender.FEMALE


def region_of(id_number: str) -> str:
    """The 6-digit administrative division code (GB/T 2260) of the place the number was issued."""
    return validate_id_number(id_number)[:6]
