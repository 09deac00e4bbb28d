"""What can be said about a citizen, computed in one place from the register: the OIDC claims a portal's
scopes release (idp.oauth.claims), what a venue's policy lets a gate learn (wallet.scans), and the age facts
a citizen may choose to show in the e-card code (wallet.ecards). Ages are on China's date at ``now``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any, Final

from idp.citizens.service import CitizenProfile, local_date

# "Age over N" facts, by name: the only age statements OneCard makes (never the birthdate itself).
AGE_FACTS: Final[Mapping[str, int]] = {"age_over_18": 18, "age_over_60": 60, "age_over_65": 65}
# Facts that need the register decrypted; everything a venue or a portal may learn comes from these.
PROFILE_FACTS: Final = frozenset({"name", "gender", "birthdate", "id_number", "id_number_masked", *AGE_FACTS})


def age_on(birthdate: date, today: date) -> int:
    years = today.year - birthdate.year
    return years - ((today.month, today.day) < (birthdate.month, birthdate.day))


def age_facts(birthdate: date, *, now: float) -> dict[str, bool]:
    age = age_on(birthdate, local_date(now))
    return {name: age >= years for name, years in AGE_FACTS.items()}


def citizen_facts(profile: CitizenProfile, *, now: float) -> dict[str, Any]:
    """Every fact in ``PROFILE_FACTS``; callers release the ones their rules allow."""
    return {
        "name": profile.name,
        "gender": profile.gender.value,
        "birthdate": profile.birthdate.isoformat(),
        "id_number": profile.id_number,
        "id_number_masked": profile.masked_id_number,
        **age_facts(profile.birthdate, now=now),
    }
