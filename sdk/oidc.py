"""OneCard's OpenID Connect vocabulary: the names the provider (``idp``) and its relying parties
(``sdk.portal``, ``sdk.realname``, gates) put on the wire, defined once (DESIGN.md §3).

- scopes (OIDC Core §5.4, plus OneCard's own) and the claims each citizen scope releases (§5.1, §5.4);
- assurance levels: the values of ``acr`` and ``acr_values`` (OIDC Core §2, §3.1.2.1), lowest first;
- authentication method references: the values of ``amr`` (RFC 8176 §2);
- OpenID Connect for Identity Assurance 1.0 §5: the ``verified_claims`` claim, its trust framework and
  evidence;
- Back-Channel Logout 1.0 §2.4: the logout token's ``typ`` and event.

DO NOT CHANGE THESE VALUES: relying parties compare them literally, and registered clients carry the
scopes. Which grant admits which scope and what the consent page says are the provider's policy
(``idp.scopes``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

# --- scopes ---------------------------------------------------------------------------------------------

# A citizen consents to these (OIDC Core §5.4 plus OneCard's own).
OPENID: Final = "openid"
PROFILE: Final = "profile"
REALNAME: Final = "realname"
IDCARD: Final = "idcard"
OFFLINE_ACCESS: Final = "offline_access"

# client_credentials scopes of operators, venues, registered devices and the security team.
REALNAME_VERIFY: Final = "realname:verify"
GATE_VERIFY: Final = "gate:verify"
HALL_COUNTER: Final = "hall:counter"  # a service hall's counter device calling its numbers
ADMIN: Final = "admin"

# --- claims ---------------------------------------------------------------------------------------------

VERIFIED_CLAIMS: Final = "verified_claims"  # OpenID Connect for Identity Assurance 1.0 §5
ID_NUMBER_CLAIM: Final = "id_number"  # the full ID number: only to clients registered for it
MASKED_ID_CLAIM: Final = "id_number_masked"

# What each citizen scope releases; ``idcard`` releases ``id_number`` only to clients registered for it,
# and ``realname`` and ``idcard`` both release MASKED_ID_CLAIM.
SCOPE_CLAIMS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        PROFILE: ("name", "gender", "birthdate"),
        REALNAME: (VERIFIED_CLAIMS,),
        IDCARD: (ID_NUMBER_CLAIM,),
    }
)

# --- identity assurance (verified_claims.verification) ----------------------------------------------------

TRUST_FRAMEWORK: Final = "cn_social_security_card"
EVIDENCE_DOCUMENT: Final = "document"  # evidence[].type
DOCUMENT_SOCIAL_SECURITY_CARD: Final = "social_security_card"  # evidence[].document_details.type
VERIFIED_CLAIM_NAMES: Final = ("name", "birthdate")  # verified_claims.claims: what the card's evidence backs

# --- assurance levels -----------------------------------------------------------------------------------

# Lowest first (DESIGN.md §3). A portal asking for one accepts any higher one: the provider issues the acr
# actually achieved, never less than asked without saying so.
ACR_SUBSTANTIAL: Final = "urn:onecard:loa:substantial"
ACR_HIGH: Final = "urn:onecard:loa:high"
ACR_LEVELS: Final = (ACR_SUBSTANTIAL, ACR_HIGH)


def acr_rank(acr: str | None) -> int:
    """Position of ``acr`` in ACR_LEVELS, -1 for anything unknown."""
    return ACR_LEVELS.index(acr) if acr in ACR_LEVELS else -1


# --- authentication methods (RFC 8176 §2) -----------------------------------------------------------------

AMR_SMART_CARD: Final = "sc"  # the social security card's key (INTERNAL AUTHENTICATE)
AMR_PIN: Final = "pin"  # the card's PIN, verified by the card
AMR_HARDWARE_KEY: Final = "hwk"  # a passkey on the citizen's phone
AMR_MFA: Final = "mfa"

# --- back-channel logout --------------------------------------------------------------------------------

LOGOUT_TOKEN_TYPE: Final = "logout+jwt"  # the JOSE typ (Back-Channel Logout 1.0 §2.4)
BACKCHANNEL_LOGOUT_EVENT: Final = "http://schemas.openid.net/event/backchannel-logout"

# What each way of logging in proves (DESIGN.md §3), as the id_token's amr lists it.
AMR_CARD_LOGIN: Final = (AMR_SMART_CARD, AMR_PIN, AMR_MFA)  # urn:onecard:loa:high
AMR_ECARD_LOGIN: Final = (AMR_HARDWARE_KEY, AMR_MFA)  # urn:onecard:loa:substantial: passkey or QR login
