"""Subjects and claims (OIDC Core §5, §8; OpenID Connect for Identity Assurance 1.0).

Subjects are pairwise per sector by default (OIDC Core §8.1): two portals of different sectors cannot link
a citizen by ``sub``. Claims come from the server's register, never from anything a browser sent.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from idp.citizens.facts import citizen_facts
from idp.citizens.service import CitizenProfile
from idp.scopes import ACR_HIGH, IDCARD, MASKED_ID_CLAIM, PROFILE, REALNAME, SCOPE_CLAIMS
from sdk.oidc import (
    DOCUMENT_SOCIAL_SECURITY_CARD,
    EVIDENCE_DOCUMENT,
    ID_NUMBER_CLAIM,
    TRUST_FRAMEWORK,
    VERIFIED_CLAIM_NAMES,
    VERIFIED_CLAIMS,
)


class SubjectClient(Protocol):
    client_id: str
    subject_type: str

    @property
    def sector(self) -> str: ...


def subject_for(client: SubjectClient, citizen_id: str, *, salt: str) -> str:
    """The ``sub`` this client sees for this citizen."""
    if client.subject_type == "public":
        return citizen_id
    message = f"{client.sector}\x00{citizen_id}".encode()
    return hmac.new(salt.encode(), message, hashlib.sha256).hexdigest()


def _requested(claims_request: Mapping[str, Any] | None, target: str) -> set[str]:
    """Names asked for individually with the ``claims`` parameter (OIDC Core §5.5) for ``target``."""
    if not claims_request:
        return set()
    section = claims_request.get(target)
    return set(section) if isinstance(section, Mapping) else set()


def build_claims(
    profile: CitizenProfile,
    *,
    scopes: set[str],
    acr: str,
    auth_time: float,
    id_number_allowed: bool,
    only: set[str] | None = None,
) -> dict[str, Any]:
    """The claims the scopes release; ``only`` narrows them (the id_token gets just what it asked for)."""
    facts = citizen_facts(profile, now=auth_time)
    released: dict[str, Any] = {}
    if PROFILE in scopes:
        released.update({name: facts[name] for name in SCOPE_CLAIMS[PROFILE]})
    if REALNAME in scopes:
        released[VERIFIED_CLAIMS] = {
            "verification": {
                "trust_framework": TRUST_FRAMEWORK,
                "assurance_level": "high" if acr == ACR_HIGH else "substantial",
                "time": _iso(auth_time),
                "evidence": [
                    {"type": EVIDENCE_DOCUMENT, "document_details": {"type": DOCUMENT_SOCIAL_SECURITY_CARD}}
                ],
            },
            "claims": {name: facts[name] for name in VERIFIED_CLAIM_NAMES},
        }
        released[MASKED_ID_CLAIM] = facts[MASKED_ID_CLAIM]
    if IDCARD in scopes:
        if id_number_allowed:
            released[ID_NUMBER_CLAIM] = facts[ID_NUMBER_CLAIM]
        released[MASKED_ID_CLAIM] = facts[MASKED_ID_CLAIM]
    if only is not None:
        released = {name: value for name, value in released.items() if name in only}
    return released


def build_federated_claims(
    home_claims: Mapping[str, Any],
    *,
    home_name: str,
    home_entity_id: str,
    home_sid: str | None,
    scopes: set[str],
    acr: str,
    only: set[str] | None = None,
) -> dict[str, Any]:
    """The claims the scopes release for a citizen of another region (docs/federation.md "Cross-region
    login"): taken from what their home region sent in this login (``home_claims``, as
    ``idp.federation.rp.releasable_home_claims`` kept them), never from a register entry here.

    ``verified_claims`` (OpenID Connect for Identity Assurance 1.0 §5): the home region verified the
    identity, so it is named as the verifier of the evidence — ``organization`` its name, ``txn`` its login
    session (the home ``sid``, which the home region's audit can trace) — and ``verification_process`` is
    the home region's entity id; the trust framework and time are the home region's. ``idcard`` gives the
    masked ID number at most: this deployment never holds the full one."""
    released: dict[str, Any] = {}
    if PROFILE in scopes:
        released.update({name: home_claims[name] for name in SCOPE_CLAIMS[PROFILE] if name in home_claims})
    verified = home_claims.get(VERIFIED_CLAIMS)
    if REALNAME in scopes and isinstance(verified, Mapping):
        home_verification = verified.get("verification") or {}
        evidence = {
            "type": EVIDENCE_DOCUMENT,
            "verifier": {"organization": home_name, **({"txn": home_sid} if home_sid else {})},
            "document_details": {"type": DOCUMENT_SOCIAL_SECURITY_CARD},
        }
        released[VERIFIED_CLAIMS] = {
            "verification": {
                "trust_framework": home_verification.get("trust_framework", TRUST_FRAMEWORK),
                "assurance_level": "high" if acr == ACR_HIGH else "substantial",
                **({"time": home_verification["time"]} if "time" in home_verification else {}),
                "verification_process": home_entity_id,
                "evidence": [evidence],
            },
            "claims": dict(verified.get("claims") or {}),
        }
    if (REALNAME in scopes or IDCARD in scopes) and MASKED_ID_CLAIM in home_claims:
        released[MASKED_ID_CLAIM] = home_claims[MASKED_ID_CLAIM]
    if only is not None:
        released = {name: value for name, value in released.items() if name in only}
    return released


def id_token_claim_names(claims_request: Mapping[str, Any] | None, scopes: set[str]) -> set[str]:
    """Scope claims go to userinfo; the id_token carries only those asked for by name (OIDC Core §5.4)."""
    allowed = {name for scope in scopes for name in SCOPE_CLAIMS.get(scope, ())}
    allowed.add(MASKED_ID_CLAIM)
    return _requested(claims_request, "id_token") & allowed


class ClaimsRequestError(ValueError):
    """A claims parameter that is not shaped as OIDC Core §5.5 says; the message is safe to send."""


CLAIMS_REQUEST_SECTIONS = ("userinfo", "id_token")


def validate_claims_request(claims_request: Any) -> None:
    """OIDC Core §5.5: an object of sections, each mapping claim names to null or to an object whose
    ``essential`` is a boolean and whose ``values`` is a list; raises ``ClaimsRequestError``."""
    if not isinstance(claims_request, dict):
        raise ClaimsRequestError("The claims parameter must be a JSON object.")
    for section_name, section in claims_request.items():
        if section_name not in CLAIMS_REQUEST_SECTIONS:
            continue  # unknown members are ignored (OIDC Core §5.5)
        if not isinstance(section, dict):
            raise ClaimsRequestError(f"claims.{section_name} must be an object.")
        for request in section.values():
            if request is None:
                continue
            if not isinstance(request, dict):
                raise ClaimsRequestError("Each requested claim must be null or an object.")
            if "essential" in request and not isinstance(request["essential"], bool):
                raise ClaimsRequestError("essential must be true or false.")
            if "values" in request and not isinstance(request["values"], list):
                raise ClaimsRequestError("values must be a list.")


def requested_acr(claims_request: Mapping[str, Any] | None) -> list[str]:
    """acr values asked for as an essential/valued claim in the claims parameter (OIDC Core §5.5.1.1)."""
    if not claims_request:
        return []
    section = claims_request.get("id_token")
    if not isinstance(section, Mapping):
        return []
    acr = section.get("acr")
    if not isinstance(acr, Mapping):
        return []
    values = acr.get("values") or ([acr["value"]] if "value" in acr else [])
    return [v for v in values if isinstance(v, str)]


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(int(timestamp), UTC).isoformat().replace("+00:00", "Z")
