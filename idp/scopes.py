"""Scopes and the claims they release (DESIGN.md §3), and the assurance levels.

Discovery, consent pages, client validation and the claim builder all read these constants, so what the
provider advertises cannot drift from what it does.
"""

from __future__ import annotations

from typing import Final

# Scopes a citizen consents to (OIDC Core §5.4 plus OneCard's own).
OPENID: Final = "openid"
PROFILE: Final = "profile"
REALNAME: Final = "realname"
IDCARD: Final = "idcard"
OFFLINE_ACCESS: Final = "offline_access"
CITIZEN_SCOPES: Final = (OPENID, PROFILE, REALNAME, IDCARD, OFFLINE_ACCESS)

# Scopes for client_credentials (operators, venues, the security team).
REALNAME_VERIFY: Final = "realname:verify"
GATE_VERIFY: Final = "gate:verify"
ADMIN: Final = "admin"
SERVICE_SCOPES: Final = (REALNAME_VERIFY, GATE_VERIFY, ADMIN)

ALL_SCOPES: Final = CITIZEN_SCOPES + SERVICE_SCOPES

# Claims each citizen scope releases; `idcard` releases the full ID number only to clients registered for it.
SCOPE_CLAIMS: Final[dict[str, tuple[str, ...]]] = {
    PROFILE: ("name", "gender", "birthdate"),
    REALNAME: ("verified_claims",),
    IDCARD: ("id_number",),
}
MASKED_ID_CLAIM: Final = "id_number_masked"

# What a citizen is told on the consent page, in plain words.
SCOPE_DESCRIPTIONS: Final[dict[str, str]] = {
    OPENID: "Know that it is you (an identifier only this service sees)",
    PROFILE: "Your name, gender and date of birth",
    REALNAME: "That your identity was verified with your social security card",
    IDCARD: "Your ID number",
    OFFLINE_ACCESS: "Stay signed in when you are away",
}

# Assurance levels, lowest first (DESIGN.md §3).
ACR_SUBSTANTIAL: Final = "urn:onecard:loa:substantial"
ACR_HIGH: Final = "urn:onecard:loa:high"
ACR_LEVELS: Final = (ACR_SUBSTANTIAL, ACR_HIGH)


def acr_rank(acr: str | None) -> int:
    """Position of ``acr`` in ACR_LEVELS, -1 for anything unknown."""
    return ACR_LEVELS.index(acr) if acr in ACR_LEVELS else -1
