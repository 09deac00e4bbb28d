"""Real-name verification (DESIGN.md §6): does this name + ID number, or this presented ESSC1 code, belong
to a citizen in the register — answered ``match`` or ``no_match`` with the assurance of the evidence, and
nothing else (no name, no ID number, no citizen id ever goes back).

- **Name + ID number.** The ID number must pass GB 11643 (a typing mistake is ``invalid_id_number``, not "no
  match"); the citizen is found through the blind index; the name is compared after Unicode NFC
  normalisation and trimming, in constant time. An unknown number, another name and a disabled citizen are
  all the same ``no_match``. Assurance ``high``: the register is the card register, real names checked in
  person when the card was issued.
- **A presented code.** Verified like the online gate does (docs/formats/essc1.md §3: the server's QR key set
  including pending and retired keys, the stated skew, any region this server issues for); the code's handle
  is mapped to its citizen by the handle resolver the wallet registers (idp never imports the wallet); the
  e-card must be usable now. Each code verifies once here (its ``cti`` in the shared store, apart from the
  gates' namespace, so a real-name check does not use up the citizen's gate scan). With a name and/or an ID
  number as well, they must be that citizen's too. Assurance ``substantial``: the code proves the holder has
  the e-card's bound phone, not the card and PIN.

Pure of Flask: the view parses the request, calls ``verify_realname``, audits and renders.
"""

from __future__ import annotations

import hmac
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from sqlalchemy.orm import Session

from idp.citizens.idnumber import validate_id_number
from idp.citizens.service import decrypt_profile, find_by_id_number, find_citizen, validate_name
from idp.crypto.pii import PiiCipher
from idp.keys.service import KeyRing
from idp.presented_codes import use_once, verify_presented_code
from idp.ratelimit import RateLimiter
from idp.realname.errors import CodesNotSupportedError, InvalidCodeError, InvalidPurposeError
from idp.stores.base import EphemeralStore
from sdk.errors import InvalidRequestError
from sdk.qr_token import PREFIX, QrTokenError, QrTokenReason

MAX_PURPOSE_LENGTH: Final = 200
MAX_CODE_LENGTH: Final = 1024
REALNAME_CTI_NAMESPACE: Final = "realname_cti"

Result = Literal["match", "no_match"]
Assurance = Literal["high", "substantial"]
Method = Literal["id_number", "code"]
# (session, e-card handle) → the citizen id of a usable e-card, or None (unknown, suspended, cancelled).
HandleResolver = Callable[[Session, str], "str | None"]
REQUESTS_WINDOW: Final = 60.0


@dataclass
class RealnameContext:
    """The API's per-client rate limit (its count in the shared store, so it holds across nodes) and the
    wallet's resolver of presented codes (idp never imports the wallet: it registers itself)."""

    limiter: RateLimiter
    handle_resolver: HandleResolver | None = None


def create_realname_context(store: EphemeralStore, *, per_minute: int) -> RealnameContext:
    return RealnameContext(RateLimiter(store, "realname", per_minute, REQUESTS_WINDOW))


@dataclass(frozen=True, slots=True)
class RealnameQuery:
    """A parsed request. Name and ID number stay out of the repr (it may reach a log)."""

    purpose: str
    name: str | None = None
    id_number: str | None = None
    code: str | None = None

    def __repr__(self) -> str:
        return f"RealnameQuery(method={self.method!r})"

    @property
    def method(self) -> Method:
        return "code" if self.code is not None else "id_number"


@dataclass(frozen=True, slots=True)
class RealnameVerdict:
    result: Result
    assurance: Assurance
    method: Method

    def to_json(self) -> dict[str, str]:
        return {"result": self.result, "assurance": self.assurance}


def validate_purpose(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidPurposeError("missing or not a string")
    purpose = unicodedata.normalize("NFC", value).strip()
    if not purpose or len(purpose) > MAX_PURPOSE_LENGTH:
        raise InvalidPurposeError(f"{len(purpose)} characters")
    if any(unicodedata.category(char).startswith("C") for char in purpose):
        raise InvalidPurposeError("control or format character")
    return purpose


def parse_realname_request(data: Mapping[str, Any]) -> RealnameQuery:
    """``{"purpose", "name", "id_number"}`` or ``{"purpose", "code"[, "name"][, "id_number"]}``; strict."""
    unknown = set(data) - {"purpose", "name", "id_number", "code"}
    if unknown:
        raise InvalidRequestError("unknown fields", description=f"Unknown field {sorted(unknown)[0]!r}.")
    purpose = validate_purpose(data.get("purpose"))
    fields: dict[str, str | None] = {}
    for field_name in ("name", "id_number", "code"):
        value = data.get(field_name)
        if value is not None and not isinstance(value, str):
            raise InvalidRequestError(field_name, description=f"{field_name} must be a string.")
        fields[field_name] = value
    name, id_number, code = fields["name"], fields["id_number"], fields["code"]
    if code is None and (name is None or id_number is None):
        raise InvalidRequestError(
            "what to verify", description="Send name and id_number, or a presented code."
        )
    clean_name = validate_name(name) if name is not None else None
    clean_number = validate_id_number(id_number) if id_number is not None else None
    if code is not None and (len(code) > MAX_CODE_LENGTH or not code.startswith(PREFIX)):
        raise InvalidCodeError(QrTokenReason.MALFORMED)
    return RealnameQuery(purpose, clean_name, clean_number, code)


def names_match(registered: str, given: str) -> bool:
    """Equal after NFC normalisation and trimming (both sides), compared in constant time."""
    a = unicodedata.normalize("NFC", registered).strip().encode()
    b = unicodedata.normalize("NFC", given).strip().encode()
    return hmac.compare_digest(a, b)


def verify_realname(
    session: Session,
    query: RealnameQuery,
    *,
    cipher_factory: Callable[[], PiiCipher],
    keyring: KeyRing,
    store: EphemeralStore,
    handle_resolver: HandleResolver | None,
    now: float,
) -> RealnameVerdict:
    """Decide one query (``InvalidCodeError`` for a code that cannot be used)."""
    if query.code is not None:
        citizen_id = _citizen_of_code(
            session, query.code, keyring=keyring, store=store, resolver=handle_resolver, now=now
        )
        if citizen_id is None:
            return RealnameVerdict("no_match", "substantial", "code")
        if query.name is None and query.id_number is None:
            citizen = find_citizen(session, citizen_id)
            ok = citizen is not None and citizen.is_active
            return RealnameVerdict("match" if ok else "no_match", "substantial", "code")
        return RealnameVerdict(
            "match" if _matches(session, cipher_factory, citizen_id, query) else "no_match",
            "substantial",
            "code",
        )
    assert query.id_number is not None and query.name is not None
    citizen = find_by_id_number(session, cipher_factory(), query.id_number)
    if citizen is None or not citizen.is_active:
        return RealnameVerdict("no_match", "high", "id_number")
    profile = decrypt_profile(cipher_factory(), citizen)
    return RealnameVerdict(
        "match" if names_match(profile.name, query.name) else "no_match", "high", "id_number"
    )


def _matches(
    session: Session, cipher_factory: Callable[[], PiiCipher], citizen_id: str, query: RealnameQuery
) -> bool:
    citizen = find_citizen(session, citizen_id)
    if citizen is None or not citizen.is_active:
        return False
    profile = decrypt_profile(cipher_factory(), citizen)
    if query.name is not None and not names_match(profile.name, query.name):
        return False
    return query.id_number is None or hmac.compare_digest(profile.id_number, query.id_number)


def _citizen_of_code(
    session: Session,
    code: str,
    *,
    keyring: KeyRing,
    store: EphemeralStore,
    resolver: HandleResolver | None,
    now: float,
) -> str | None:
    if resolver is None:
        raise CodesNotSupportedError("no handle resolver registered")
    try:
        token = verify_presented_code(code, keyring=keyring, now=now)
    except QrTokenError as exc:
        raise InvalidCodeError(exc.reason) from exc
    citizen_id = resolver(session, token.handle)
    if citizen_id is None:
        return None  # unknown, suspended or cancelled e-card: the code does not identify anyone now
    if not use_once(store, REALNAME_CTI_NAMESPACE, token, now=now):
        raise InvalidCodeError(QrTokenReason.REPLAYED)
    return citizen_id
