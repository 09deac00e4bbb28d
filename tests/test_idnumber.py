"""GB 11643-1999 ID numbers: validation reasons, normalisation, masking and the derived fields.

The check characters used here come from the standard's own examples and from an independent
implementation in tests/support/idnumbers.py (the recursive form of ISO 7064 MOD 11-2), not from the code
under test.
"""

from __future__ import annotations

from datetime import date

import pytest

from idp.citizens.errors import IdNumberProblem, InvalidIdNumberError
from idp.citizens.idnumber import (
    Gender,
    birthdate_of,
    gender_of,
    is_valid_id_number,
    mask_id_number,
    region_of,
    validate_id_number,
)
from tests.support.idnumbers import iso7064_mod11_2, make_id_number, random_id_numbers

# (number, region, birth date, gender): the first two are the examples printed in GB 11643-1999 itself,
# the others were completed with iso7064_mod11_2.
KNOWN_GOOD = [
    ("11010519491231002X", "110105", date(1949, 12, 31), Gender.FEMALE),
    ("440524188001010014", "440524", date(1880, 1, 1), Gender.MALE),
    ("420106198803150730", "420106", date(1988, 3, 15), Gender.MALE),
    ("310115200002290048", "310115", date(2000, 2, 29), Gender.FEMALE),
]


def test_independent_check_agrees_with_the_standards_examples() -> None:
    assert iso7064_mod11_2("11010519491231002") == "X"
    assert iso7064_mod11_2("44052418800101001") == "4"


@pytest.mark.parametrize(("number", "region", "born", "gender"), KNOWN_GOOD)
def test_known_good_numbers(number: str, region: str, born: date, gender: Gender) -> None:
    assert iso7064_mod11_2(number[:17]) == number[17]
    assert validate_id_number(number) == number
    assert region_of(number) == region
    assert birthdate_of(number) == born
    assert gender_of(number) is gender


def test_generated_numbers_validate_and_decode() -> None:
    for number, region, born, sequence in random_id_numbers(2000):
        assert validate_id_number(number) == number
        assert region_of(number) == region
        assert birthdate_of(number) == born
        assert gender_of(number) is (Gender.MALE if sequence % 2 else Gender.FEMALE)


def test_normalisation() -> None:
    assert validate_id_number("  11010519491231002x\n") == "11010519491231002X"
    assert validate_id_number("１１０１０５１９４９１２３１００２Ｘ") == "11010519491231002X"
    assert validate_id_number("\u300011010519491231002ｘ\u3000") == "11010519491231002X"


def problem_of(text: str, **kwargs: date) -> IdNumberProblem:
    with pytest.raises(InvalidIdNumberError) as caught:
        validate_id_number(text, **kwargs)
    assert caught.value.error == "invalid_id_number"
    assert caught.value.status_code == 400
    return caught.value.reason


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", IdNumberProblem.LENGTH),
        ("11010519491231002", IdNumberProblem.LENGTH),
        ("11010519491231002X1", IdNumberProblem.LENGTH),
        ("110105491231002", IdNumberProblem.LENGTH),  # the old 15-digit form is not accepted
        ("1101051949123100XX", IdNumberProblem.CHARACTERS),
        ("11010519491231002Y", IdNumberProblem.CHARACTERS),
        ("11010519491231-02X", IdNumberProblem.CHARACTERS),
        ("1101051949123100٢X", IdNumberProblem.CHARACTERS),  # an Arabic-Indic digit is not a digit here
        (make_id_number("110105", date(2001, 1, 1), 2)[:10] + "0230" + "0021", IdNumberProblem.BIRTH_DATE),
        ("110105194913310027", IdNumberProblem.BIRTH_DATE),
        ("110105190002290020", IdNumberProblem.BIRTH_DATE),  # 1900 was not a leap year
        (make_id_number("110105", date(1799, 12, 31), 2), IdNumberProblem.BIRTH_DATE),
        ("110105194912310021", IdNumberProblem.CHECK_DIGIT),
        ("440524188001010015", IdNumberProblem.CHECK_DIGIT),
    ],
)
def test_reasons(text: str, reason: IdNumberProblem) -> None:
    assert problem_of(text) is reason


def test_future_birth_date_only_with_today() -> None:
    number = make_id_number("420106", date(2030, 5, 1), 11)
    assert validate_id_number(number) == number
    assert problem_of(number, today=date(2030, 4, 30)) is IdNumberProblem.BIRTH_DATE
    assert validate_id_number(number, today=date(2030, 5, 1)) == number


def test_every_single_substitution_and_adjacent_swap_is_caught() -> None:
    # MOD 11-2 detects every single-character error and every transposition of adjacent characters.
    number = "420106198803150730"
    for position in [*range(0, 6), *range(14, 18)]:  # outside the date, so the date stays valid
        for replacement in "0123456789X":
            if replacement == number[position] or (replacement == "X" and position != 17):
                continue
            changed = number[:position] + replacement + number[position + 1 :]
            assert problem_of(changed) is IdNumberProblem.CHECK_DIGIT, changed
    for position in [*range(0, 5), *range(14, 17)]:
        if number[position] != number[position + 1]:
            swapped = number[:position] + number[position + 1] + number[position] + number[position + 2 :]
            assert not is_valid_id_number(swapped)


def test_errors_never_carry_the_number() -> None:
    number = "110105194912310021"
    with pytest.raises(InvalidIdNumberError) as caught:
        validate_id_number(number)
    assert number not in str(caught.value)
    assert number not in caught.value.description
    assert "1101051949" not in repr(caught.value)


def test_mask() -> None:
    assert mask_id_number("42010619880315123X") == "4201**********123X"
    assert mask_id_number("42010619880315123x") == "4201**********123X"
    assert mask_id_number("11010519491231002X") == "1101**********002X"
    assert mask_id_number("12345678") == "********"
    assert mask_id_number("") == ""
    assert mask_id_number("123456789") == "1234*6789"


def test_derived_fields_validate_first() -> None:
    with pytest.raises(InvalidIdNumberError):
        gender_of("110105194912310021")
    with pytest.raises(InvalidIdNumberError):
        birthdate_of("not a number")
    with pytest.raises(InvalidIdNumberError):
        region_of("")
