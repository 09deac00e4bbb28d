"""Card login, the server's side of "onecard-card-auth/1" (DESIGN.md §4 steps 1 and 5, §8).

Step 1: ``issue_challenge`` makes a 32-byte random nonce, bound to one login transaction and its browser,
kept for 5 minutes in the shared short-lived store so any node can answer it.

Step 5: ``authenticate_card`` takes the card-auth token the page posts and
- consumes the challenge atomically (``take``: of two nodes answering it, one wins; a replay finds nothing),
- rebuilds the signed data from the IdP's *own* origin (from the issuer setting, never from the request)
  and the nonce, and verifies the token (``sdk.card_auth``): chain to a trusted card-issuer CA, validity,
  certificate ↔ card id, signature,
- checks the card in the register (known, this very certificate, active, not past its expiry) and its
  holder (active), and maps card → citizen from the register — never from anything the bridge read,
- counts failures per card and per client IP and refuses further attempts once a limit is reached.

Between the two, before the PIN is asked, ``precheck_card`` answers the page's question "can this card log
in here?" from the certificate the bridge read: the same certificate and register checks as step 5
(``verify_card_certificate`` and ``check_card_usable``), for a live challenge of this transaction, without
using it up. It answers "usable" or ``CardNotUsableError`` — one answer, whatever the reason, since it
comes before any proof that the asker holds the card. It is a convenience for the cardholder, not a
security decision: step 5 checks everything again. Pre-checks are counted per client IP, and a "not
usable" counts as a failed login would.

No Flask here: collaborators and ``now`` are parameters.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.x509.oid import NameOID
from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.audit.service import record_event
from idp.cardlogin.errors import (
    CardCancelledError,
    CardExpiredError,
    CardLostError,
    CardNotRegisteredError,
    CardNotTrustedError,
    CardNotUsableError,
    CardSuspendedError,
    ChallengeInvalidError,
    CitizenDisabledError,
    too_many_attempts,
)
from idp.cards.chain import CardCertificateVerifier
from idp.cards.issuance import certificate_fingerprint
from idp.cards.model import Card, CardStatus
from idp.citizens.model import Citizen, CitizenStatus
from idp.citizens.service import local_date
from idp.observability.metrics import count_rate_limit_refusal
from idp.ratelimit import RateLimiter
from idp.stores.base import EphemeralStore
from sdk.card_auth import (
    CardAuthFailure,
    CardAuthToken,
    InvalidCardAuthError,
    VerifiedCardAuth,
    VerifiedCardCertificate,
    certificate_der,
    decode_card_certificate,
    parse_card_auth_token,
    verify_card_signature,
)
from sdk.errors import OneCardError
from sdk.keys import b64url, b64url_decode

log = logging.getLogger(__name__)

NAMESPACE: Final = "card_challenge"
CHALLENGE_TTL: Final = 300.0  # DESIGN.md §4 step 1: a 5-minute lifetime
NONCE_LEN: Final = 32
_CHALLENGE_VALUE: Final = re.compile(r"^[A-Za-z0-9_-]{43}$")  # 32 bytes, base64url without padding
_CARD_ID_HEX: Final = re.compile(
    r"[0-9A-F]{32}"
)  # CARD_PROFILE "Certificate": the serialNumber, upper-case hex
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def origin_of(issuer: str) -> str:
    """The web origin of the issuer URL as a browser serialises it in ``Origin`` (RFC 6454): lower-case
    scheme and host, the port only when it is not the scheme's default, no path."""
    parts = urlsplit(issuer)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError("the issuer must be an http(s) URL")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is None or port == _DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


# --- step 1: the challenge ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CardChallenge:
    nonce: bytes
    transaction_id: str
    browser: str  # the login transaction's browser binding
    issued_at: float
    expires_at: float

    @property
    def value(self) -> str:
        """How the page and the bridge carry the nonce: base64url without padding."""
        return b64url(self.nonce)

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "tx": self.transaction_id,
                "browser": self.browser,
                "iat": self.issued_at,
                "exp": self.expires_at,
            },
            separators=(",", ":"),
        ).encode()


def issue_challenge(
    store: EphemeralStore, *, transaction_id: str, browser: str, now: float, ttl: float = CHALLENGE_TTL
) -> CardChallenge:
    """A fresh one-time challenge for ``transaction_id``, stored under its own value."""
    while True:
        challenge = CardChallenge(secrets.token_bytes(NONCE_LEN), transaction_id, browser, now, now + ttl)
        # ``add``: a (never expected) collision with a live challenge must not overwrite it.
        if store.add(NAMESPACE, challenge.value, challenge.to_json(), ttl=ttl, now=now):
            return challenge


def consume_challenge(
    store: EphemeralStore,
    value: str,
    *,
    expected_transaction_id: str,
    expected_browser: str,
    now: float,
) -> CardChallenge:
    """Take the challenge out of the store (atomically, on any node) and check what it is bound to.

    ``ChallengeInvalidError`` if it is unknown, already used, expired, or belongs to another transaction or
    browser — in the last case it is used up all the same: a challenge is answered once, rightly or not.
    """
    _validate_challenge_value(value)
    return _bound_challenge(
        value,
        store.take(NAMESPACE, value, now=now),
        expected_transaction_id=expected_transaction_id,
        expected_browser=expected_browser,
        now=now,
    )


def get_live_challenge(
    store: EphemeralStore,
    value: str,
    *,
    expected_transaction_id: str,
    expected_browser: str,
    now: float,
) -> CardChallenge:
    """The live challenge ``value`` of this transaction and browser, left in the store (the pre-check);
    ``ChallengeInvalidError`` as ``consume_challenge`` would give."""
    _validate_challenge_value(value)
    return _bound_challenge(
        value,
        store.get(NAMESPACE, value, now=now),
        expected_transaction_id=expected_transaction_id,
        expected_browser=expected_browser,
        now=now,
    )


def _validate_challenge_value(value: str) -> None:
    if not isinstance(value, str) or not _CHALLENGE_VALUE.match(value):
        raise ChallengeInvalidError("challenge is not 32 bytes base64url")


def _bound_challenge(
    value: str, raw: bytes | None, *, expected_transaction_id: str, expected_browser: str, now: float
) -> CardChallenge:
    if raw is None:
        raise ChallengeInvalidError("challenge unknown, used or expired")
    data: dict[str, Any] = json.loads(raw)
    challenge = CardChallenge(
        nonce=b64url_decode(value),
        transaction_id=str(data["tx"]),
        browser=str(data["browser"]),
        issued_at=float(data["iat"]),
        expires_at=float(data["exp"]),
    )
    if not secrets.compare_digest(challenge.transaction_id, expected_transaction_id):
        raise ChallengeInvalidError("challenge belongs to another login transaction")
    if not secrets.compare_digest(challenge.browser, expected_browser):
        raise ChallengeInvalidError("challenge belongs to another browser")
    if now >= challenge.expires_at:  # the store guarantees this already; stated for the reader
        raise ChallengeInvalidError("challenge expired")
    return challenge


# --- rate limits -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CardLoginPolicy:
    """Failed verifications allowed per card and per client IP in ``window`` seconds (DESIGN.md §8; the
    card itself bounds PIN guessing to 3 tries), challenges per login transaction, and pre-checks per
    client IP in ``window`` (each login makes one; a "not usable" also counts as a failure)."""

    failures_per_card: int = 5
    failures_per_ip: int = 20
    window: float = 900.0
    challenges_per_transaction: int = 30
    prechecks_per_ip: int = 60


class FailureLimits:
    """Failure counters in the shared store; once a key reaches its limit it is blocked for the window."""

    BLOCKED_NAMESPACE: Final = "card_login_blocked"

    def __init__(self, store: EphemeralStore, policy: CardLoginPolicy) -> None:
        self.store = store
        self.policy = policy
        self._per_card = RateLimiter(store, "card_login_fail_card", policy.failures_per_card, policy.window)
        self._per_ip = RateLimiter(store, "card_login_fail_ip", policy.failures_per_ip, policy.window)

    def check_allowed(self, *, card_id: str | None, client_ip: str, now: float) -> None:
        limits = ((self._per_ip, f"ip:{client_ip}"), (self._per_card, f"card:{card_id}" if card_id else None))
        for limiter, key in limits:
            if key is not None and self.store.get(self.BLOCKED_NAMESPACE, key, now=now) is not None:
                # The refusal happens here, not in the limiter: it stopped counting when it set the block.
                count_rate_limit_refusal(limiter.namespace)
                raise too_many_attempts(f"{key.split(':')[0]} blocked", retry_after=int(self.policy.window))

    def record_failure(self, *, card_id: str | None, client_ip: str, now: float) -> None:
        checks = [(self._per_ip, f"ip:{client_ip}", client_ip)]
        if card_id:
            checks.append((self._per_card, f"card:{card_id}", card_id))
        for limiter, blocked_key, key in checks:
            decision = limiter.check(key, now)
            if decision.remaining == 0:
                self.store.put(self.BLOCKED_NAMESPACE, blocked_key, b"1", ttl=self.policy.window, now=now)

    def record_success(self, *, card_id: str) -> None:
        self._per_card.reset(card_id)


# --- step 5: verification ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CardLogin:
    """A verified card login: the register's card and its holder."""

    card: Card
    citizen_id: str
    verified: VerifiedCardAuth


_STATUS_ERRORS: Final[dict[str, type[OneCardError]]] = {
    CardStatus.LOST.value: CardLostError,
    CardStatus.SUSPENDED.value: CardSuspendedError,
    CardStatus.CANCELLED.value: CardCancelledError,
}


def _citizen_facing(error: InvalidCardAuthError) -> OneCardError:
    """The code the citizen sees for a failed card check: an untrusted or expired card is said so; the rest
    (malformed, card mismatch, bad signature — another origin or nonce) stays opaque."""
    if error.reason is CardAuthFailure.UNTRUSTED_ISSUER:
        return CardNotTrustedError(error.reason)
    if error.reason in (CardAuthFailure.EXPIRED_CERTIFICATE, CardAuthFailure.NOT_YET_VALID):
        return CardExpiredError(error.reason)
    return error


def verify_card_token(
    token: CardAuthToken,
    *,
    challenge: CardChallenge,
    expected_origin: str,
    certificates: CardCertificateVerifier,
    now: float,
) -> VerifiedCardAuth:
    """``sdk.card_auth.verify_card_auth_token``'s checks — the certificate's through ``certificates``, which
    keeps the chain check per certificate — with its failures turned into the citizen-facing codes."""
    try:
        verified = certificates.verify(token.card_certificate, now=now)
        return verify_card_signature(
            token, verified, expected_origin=expected_origin, expected_nonce=challenge.nonce
        )
    except InvalidCardAuthError as exc:
        facing = _citizen_facing(exc)
        if facing is exc:
            raise
        raise facing from exc


def check_card_usable(session: Session, verified: VerifiedCardCertificate, *, now: float) -> Card:
    """The register's verdict on a verified card certificate: the card is known, with exactly this
    certificate, active, not past its expiry, and its holder is active. The one rule both the pre-check
    and the login apply. One round trip: the card and its holder's status together."""
    found = session.execute(
        select(Card, Citizen.status)
        .outerjoin(Citizen, Citizen.id == Card.citizen_id)
        .where(Card.card_id == verified.card_id_hex)
    ).first()
    if found is None:
        raise CardNotRegisteredError("card id not in the register")
    card, holder_status = found
    if card.certificate_fingerprint != certificate_fingerprint(certificate_der(verified.certificate)):
        raise CardNotRegisteredError("certificate is not the one issued for this card")
    status_error = _STATUS_ERRORS.get(card.status)
    if status_error is not None:
        raise status_error(f"card is {card.status}")
    if local_date(now) > card.expires_on:
        raise CardExpiredError(CardAuthFailure.EXPIRED_CERTIFICATE, "card past its expiry date")
    if holder_status != CitizenStatus.ACTIVE:
        raise CitizenDisabledError("card holder is not active")
    return card


def _refused(
    session: Session,
    limits: FailureLimits,
    error: OneCardError,
    *,
    card_id: str | None,
    client_ip: str,
    step: str,
    now: float,
) -> None:
    """Count, log and (for a card that should not be in use at all) audit a refusal."""
    limits.record_failure(card_id=card_id, client_ip=client_ip, now=now)
    reason = getattr(error, "reason", None)
    detail = reason.value if isinstance(reason, CardAuthFailure) else error.detail
    log.info("card %s refused: %s (%s)", step, error.error, detail)
    if card_id is not None and isinstance(
        error, CardLostError | CardSuspendedError | CardCancelledError | CitizenDisabledError
    ):
        # A lost or cancelled card being used is worth a line in the trail for card-service staff.
        record_event(
            session,
            actor=f"card:{card_id}",
            action="card.login_refused",
            target_type="card",
            target_id=card_id,
            details={"error": error.error, "step": step},
            now=now,
        )


def untrusted_card_region(
    card_certificate: str, certificates: CardCertificateVerifier, *, now: float
) -> str | None:
    """The card-issuer region code of a card whose certificate's issuer this deployment does not trust, so
    the login can be handed to the card's home region (cross-region login, DESIGN.md §13); None for a card
    trusted here and for one whose region cannot be read.

    The region is the first three bytes (BCD) of the card identification code, which the certificate's
    subject serialNumber holds in hex (CARD_PROFILE.md tag 01, "Certificate"). It is read without
    verifying: it only chooses where the citizen is sent, and the home region verifies everything."""
    try:
        der = decode_card_certificate(card_certificate)
        certificates.verify(der, now=now)
    except InvalidCardAuthError as exc:
        if exc.reason is not CardAuthFailure.UNTRUSTED_ISSUER:
            return None
    else:
        return None
    try:
        serials = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    except ValueError:
        return None
    value = serials[0].value if len(serials) == 1 else ""
    if not isinstance(value, str) or not _CARD_ID_HEX.fullmatch(value):
        return None
    region = value[:6]
    return region if region.isdigit() and region != "000000" else None


def precheck_card(
    session: Session,
    store: EphemeralStore,
    limits: FailureLimits,
    prechecks: RateLimiter,
    *,
    card_certificate: str,
    challenge_value: str,
    transaction_id: str,
    browser: str,
    client_ip: str,
    certificates: CardCertificateVerifier,
    now: float,
) -> Card:
    """Whether the card of ``card_certificate`` (base64 DER, as the bridge read it) may log in here: the
    register's card if so, ``CardNotUsableError`` (reason inside) if not.

    For a live challenge of this transaction and browser, which stays usable for the login. Refused with
    ``RateLimitedError`` while the client IP or the card is blocked for card login, or once the IP has
    used its pre-checks for the window.
    """
    get_live_challenge(
        store, challenge_value, expected_transaction_id=transaction_id, expected_browser=browser, now=now
    )
    limits.check_allowed(card_id=None, client_ip=client_ip, now=now)
    decision = prechecks.check(client_ip, now)
    if not decision.allowed:
        raise too_many_attempts("too many pre-checks from this address", retry_after=decision.retry_after)
    try:
        verified = certificates.verify(decode_card_certificate(card_certificate), now=now)
    except InvalidCardAuthError as exc:
        facing = _citizen_facing(exc)
        _refused(session, limits, facing, card_id=None, client_ip=client_ip, step="precheck", now=now)
        raise CardNotUsableError(facing.error, exc.reason.value) from exc
    card_id = verified.card_id_hex
    limits.check_allowed(card_id=card_id, client_ip=client_ip, now=now)
    try:
        return check_card_usable(session, verified, now=now)
    except OneCardError as exc:
        _refused(session, limits, exc, card_id=card_id, client_ip=client_ip, step="precheck", now=now)
        raise CardNotUsableError(exc.error, exc.detail) from exc


def authenticate_card(
    session: Session,
    store: EphemeralStore,
    limits: FailureLimits,
    *,
    token: Mapping[str, Any],
    challenge_value: str,
    transaction_id: str,
    browser: str,
    client_ip: str,
    expected_origin: str,
    certificates: CardCertificateVerifier,
    now: float,
    terminal_id: str | None = None,
) -> CardLogin:
    """DESIGN.md §4 step 5 from the posted token to the register's citizen; raises a ``OneCardError``.

    A malformed token is refused before the challenge is touched, so a page bug costs no challenge.
    Every other failure has used the challenge up and counts against the card and the client IP.
    """
    try:
        parsed = parse_card_auth_token(token)
    except InvalidCardAuthError:
        limits.record_failure(card_id=None, client_ip=client_ip, now=now)
        raise
    card_id = parsed.card_id.hex().upper()
    limits.check_allowed(card_id=card_id, client_ip=client_ip, now=now)
    card: Card | None = None
    try:
        challenge = consume_challenge(
            store, challenge_value, expected_transaction_id=transaction_id, expected_browser=browser, now=now
        )
        verified = verify_card_token(
            parsed,
            challenge=challenge,
            expected_origin=expected_origin,
            certificates=certificates,
            now=now,
        )
        card = check_card_usable(session, verified, now=now)
    except OneCardError as exc:
        _refused(session, limits, exc, card_id=card_id, client_ip=client_ip, step="login", now=now)
        raise
    limits.record_success(card_id=card_id)
    record_event(
        session,
        actor=f"card:{card.card_id}",
        action="card.login",
        target_type="card",
        target_id=card.card_id,
        # At a kiosk the trail says which terminal the card was used at.
        details={"citizen_id": card.citizen_id}
        if terminal_id is None
        else {"citizen_id": card.citizen_id, "terminal_id": terminal_id},
        now=now,
    )
    return CardLogin(card, card.citizen_id, verified)
