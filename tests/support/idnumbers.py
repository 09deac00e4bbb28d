"""GB 11643-1999 ID numbers made independently of the code under test: the check character by the
recursive form of ISO 7064 MOD 11-2, whole numbers from a region, a birth date and a sequence number."""

from __future__ import annotations

import random
from datetime import date, timedelta


def iso7064_mod11_2(digits: str) -> str:
    """Check character by ISO 7064's recursive method: P = 2(P + a) mod 11, then P + c ≡ 1 (mod 11)."""
    p = 0
    for digit in digits:
        p = (p + int(digit)) * 2 % 11
    c = (1 - p) % 11
    return "X" if c == 10 else str(c)


def make_id_number(region: str, born: date, sequence: int) -> str:
    body = f"{region}{born:%Y%m%d}{sequence:03d}"
    return body + iso7064_mod11_2(body)


def random_id_numbers(count: int, seed: int = 11643) -> list[tuple[str, str, date, int]]:
    """``count`` valid numbers with their parts (number, region, birth date, sequence), same every run."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        region = f"{rng.randint(110000, 829999):06d}"
        born = date(1900, 1, 1) + timedelta(days=rng.randint(0, 45000))
        sequence = rng.randint(0, 999)
        out.append((make_id_number(region, born, sequence), region, born, sequence))
    return out
