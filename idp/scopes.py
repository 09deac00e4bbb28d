"""Scopes and the claims they release (DESIGN.md §3), and the assurance levels.

Discovery, consent pages, client validation and the claim builder all read these constants, so what the
provider advertises cannot drift from what it does. The names themselves are wire vocabulary shared with
the relying parties and live in ``sdk.oidc`` (re-exported here); what is the provider's own is which grant
admits which scope and what the consent page says.
"""

from __future__ import annotations

from typing import Final

from sdk.oidc import (
    ACR_HIGH,
    ACR_LEVELS,
    ACR_SUBSTANTIAL,
    ADMIN,
    GATE_VERIFY,
    HALL_COUNTER,
    IDCARD,
    MASKED_ID_CLAIM,
    OFFLINE_ACCESS,
    OPENID,
    PROFILE,
    REALNAME,
    REALNAME_VERIFY,
    SCOPE_CLAIMS,
    acr_rank,
)

__all__ = [
    "ACR_HIGH",
    "ACR_LEVELS",
    "ACR_SUBSTANTIAL",
    "ADMIN",
    "ALL_SCOPES",
    "CITIZEN_SCOPES",
    "GATE_VERIFY",
    "HALL_COUNTER",
    "IDCARD",
    "MASKED_ID_CLAIM",
    "OFFLINE_ACCESS",
    "OPENID",
    "PROFILE",
    "REALNAME",
    "REALNAME_VERIFY",
    "SCOPE_CLAIMS",
    "SCOPE_DESCRIPTIONS",
    "SERVICE_SCOPES",
    "acr_rank",
]

# Scopes a citizen consents to (OIDC Core §5.4 plus OneCard's own).
CITIZEN_SCOPES: Final = (OPENID, PROFILE, REALNAME, IDCARD, OFFLINE_ACCESS)

# Scopes for client_credentials (operators, venues, registered devices, the security team).
SERVICE_SCOPES: Final = (REALNAME_VERIFY, GATE_VERIFY, HALL_COUNTER, ADMIN)

ALL_SCOPES: Final = CITIZEN_SCOPES + SERVICE_SCOPES

# What a citizen is told on the consent page, in plain words.
SCOPE_DESCRIPTIONS: Final[dict[str, str]] = {
    OPENID: "Know that it is you (an identifier only this service sees)",
    PROFILE: "Your name, gender and date of birth",
    REALNAME: "That your identity was verified with your social security card",
    IDCARD: "Your ID number",
    OFFLINE_ACCESS: "Stay signed in when you are away",
}
