"""What the authorization endpoint does with a valid request (OIDC Core §3.1.2): log the citizen in,
step up, ask consent, answer ``prompt=none`` errors, or issue the code. Pure logic: no Flask, no database.

Rules (DESIGN.md §3):
- The required acr is the highest known one asked for in ``acr_values`` or an ``acr`` claims request; a
  session with a lower acr triggers step-up, never a silent downgrade.
- ``prompt=login`` and an exceeded ``max_age`` force a fresh login, which a just-completed login satisfies.
- ``prompt=none`` never shows a page: ``login_required`` or ``consent_required`` instead.
- Consent is asked once per client and scope set; first-party clients skip it unless ``prompt=consent``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from authlib.oauth2.rfc6749 import InvalidRequestError, InvalidScopeError
from authlib.oidc.core.errors import ConsentRequiredError, LoginRequiredError

from idp.oauth.claims import ClaimsRequestError, requested_acr, validate_claims_request
from idp.scopes import ACR_LEVELS, ACR_SUBSTANTIAL, CITIZEN_SCOPES, acr_rank

# Discovery advertises exactly these (idp.oauth.discovery). A citizen has one account, so select_account
# means "let me choose how to log in again": it forces the login page like prompt=login.
PROMPT_VALUES = ("none", "login", "consent", "select_account")
FRESH_LOGIN_PROMPTS = frozenset({"login", "select_account"})
RESPONSE_MODES = ("query",)
MAX_CLAIMS_REQUEST = 4096
_MAX_AGE = re.compile(r"[0-9]{1,9}")
_JWK_THUMBPRINT = re.compile(r"[A-Za-z0-9_-]{43}")  # base64url of a SHA-256 digest


@dataclass(frozen=True)
class AuthorizationOptions:
    """The OIDC parameters Authlib does not interpret for us."""

    prompt: frozenset[str]
    max_age: int | None
    required_acr: str
    claims: dict[str, Any] | None
    nonce: str | None
    login_hint: str | None


def parse_authorization_options(params: Mapping[str, str]) -> AuthorizationOptions:
    """Validate prompt, response_mode, max_age, acr_values, claims, nonce; raises Authlib's
    ``InvalidRequestError``."""
    prompt = frozenset((params.get("prompt") or "").split())
    if not prompt <= set(PROMPT_VALUES):
        raise InvalidRequestError("Unknown prompt value.")
    if "none" in prompt and len(prompt) > 1:
        raise InvalidRequestError("prompt=none cannot be combined with other values.")
    if params.get("response_mode") and params["response_mode"] not in RESPONSE_MODES:
        raise InvalidRequestError("Only response_mode=query is supported.")
    max_age = None
    if params.get("max_age") not in (None, ""):
        raw = params["max_age"]
        if not _MAX_AGE.fullmatch(raw):  # ASCII digits only: "²".isdigit() is true
            raise InvalidRequestError("max_age must be a non-negative integer.")
        max_age = int(raw)
    claims = None
    if params.get("claims"):
        if len(params["claims"]) > MAX_CLAIMS_REQUEST:
            raise InvalidRequestError("The claims parameter is too long.")
        try:
            claims = json.loads(params["claims"])
        except ValueError:
            raise InvalidRequestError("The claims parameter is not valid JSON.") from None
        try:
            validate_claims_request(claims)
        except ClaimsRequestError as error:
            raise InvalidRequestError(str(error)) from None
    nonce = params.get("nonce") or None
    if nonce is not None and len(nonce) > 255:
        raise InvalidRequestError("nonce is too long.")
    login_hint = params.get("login_hint") or None
    if login_hint is not None and len(login_hint) > 255:
        raise InvalidRequestError("login_hint is too long.")
    if params.get("dpop_jkt") and not _JWK_THUMBPRINT.fullmatch(params["dpop_jkt"]):
        # RFC 9449 §10: the code is bound to this key; the exchange must prove it (idp.oauth.dpop_grants).
        raise InvalidRequestError("dpop_jkt must be a JWK SHA-256 thumbprint (RFC 7638).")
    wanted = (params.get("acr_values") or "").split() + requested_acr(claims)
    known = [acr for acr in wanted if acr in ACR_LEVELS]
    required = max(known, key=acr_rank) if known else ACR_SUBSTANTIAL
    return AuthorizationOptions(prompt, max_age, required, claims, nonce, login_hint)


def check_authorization_request(params: Mapping[str, str], allowed_scopes: set[str]) -> AuthorizationOptions:
    """What the authorization endpoint checks beyond Authlib, also run on a pushed request when it is pushed
    (RFC 9126 §2.1): the OIDC options, and only citizen scopes the client is registered for."""
    options = parse_authorization_options(params)
    scopes = set((params.get("scope") or "").split())
    if not scopes <= (allowed_scopes & set(CITIZEN_SCOPES)):
        raise InvalidScopeError("The client may not ask for these scopes.")
    return options


@dataclass(frozen=True)
class CurrentLogin:
    """The browser's SSO session as far as the decision needs it."""

    citizen_id: str
    acr: str
    auth_time: float
    fresh: bool  # authenticated within this very authorization request
    # A citizen of another region whose home login brought fewer scopes than this request needs: they
    # log in at home again (idp.federation.home_session), as for a weaker acr.
    home_scopes_short: bool = False


class Step(StrEnum):
    LOGIN = "login"
    CONSENT = "consent"
    ISSUE = "issue"


def decide(
    options: AuthorizationOptions,
    login: CurrentLogin | None,
    *,
    has_consent: bool,
    first_party: bool,
    now: float,
    fresh_consent: bool = False,
) -> Step:
    """The next step, or Authlib's ``LoginRequiredError``/``ConsentRequiredError`` for ``prompt=none``
    requests that would need a page."""
    needs_login = (
        login is None
        or acr_rank(login.acr) < acr_rank(options.required_acr)
        or (bool(options.prompt & FRESH_LOGIN_PROMPTS) and not login.fresh)
        or (options.max_age is not None and not login.fresh and now - login.auth_time > options.max_age)
        or (login.home_scopes_short and not login.fresh)
    )
    if needs_login:
        if "none" in options.prompt:
            raise LoginRequiredError("The citizen must log in.")
        return Step.LOGIN
    needs_consent = not fresh_consent and ("consent" in options.prompt or not (has_consent or first_party))
    if needs_consent:
        if "none" in options.prompt:
            raise ConsentRequiredError("The citizen must consent.")
        return Step.CONSENT
    return Step.ISSUE
