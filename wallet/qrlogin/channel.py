"""The QR login channel as a pure state machine (DESIGN.md §6 "Scan-to-login").

A channel links one login transaction in a desktop browser to one phone::

    waiting ──scan──▶ scanned ──match + passkey──▶ approved ──collect──▶ (gone)
       │                 │ ──deny / wrong code──▶ denied
       └────────── 2 minutes ──────────▶ expired

Two records make a channel, so that every one-time step is a single atomic store operation (service.py):

- ``Channel``: what the desktop started (transaction, browser, hash of the collection secret, match code)
  plus the phone's progress (which phone, code matched, passkey ceremony). Rewritten as the phone moves on.
- ``Decision``: the outcome, written once with ``add`` (the first of approve / deny / wrong code wins) and
  consumed once with ``take`` when the desktop collects it.

``expired`` is never stored: a channel without a decision is expired from ``expires_at`` on, whatever the
store still holds. Everything here takes ``now`` and raises the wire errors of ``errors.py``; no store, no
Flask.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any, Final

from wallet.qrlogin.errors import (
    CeremonyMismatchError,
    ChannelClosedError,
    ChannelDeniedError,
    ChannelExpiredError,
    ChannelNotApprovedError,
    ChannelTakenError,
    ForeignBrowserError,
    MatchRequiredError,
)

CHANNEL_TTL: Final = 120.0  # DESIGN.md §6: channels expire in 2 minutes
# An approval given just before expiry can still be collected for this long (the page polls at once).
COLLECT_GRACE: Final = 30.0
CHOICES: Final = 3  # the phone offers the match code among this many
CHANNEL_ID_BYTES: Final = 24  # → 32 base64url characters
SECRET_BYTES: Final = 32


class ChannelState(enum.StrEnum):
    WAITING = "waiting"
    SCANNED = "scanned"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"


class DenyReason(enum.StrEnum):
    DECLINED = "declined"  # the citizen pressed "deny"
    WRONG_CODE = "wrong_code"  # the citizen picked a number not shown on the computer


def hash_secret(secret: str) -> str:
    return hashlib.sha256(b"onecard-qrlogin-secret\x00" + secret.encode()).hexdigest()


def generate_match_code() -> str:
    return f"{secrets.randbelow(100):02d}"


def generate_choices(match_code: str, count: int = CHOICES) -> tuple[str, ...]:
    """``match_code`` among ``count - 1`` other distinct two-digit numbers, in random order."""
    choices = {match_code}
    while len(choices) < count:
        choices.add(generate_match_code())
    ordered = sorted(choices)
    for i in range(len(ordered) - 1, 0, -1):  # Fisher–Yates with the CSPRNG
        j = secrets.randbelow(i + 1)
        ordered[i], ordered[j] = ordered[j], ordered[i]
    return tuple(ordered)


@dataclass(frozen=True)
class Requester:
    """What the phone shows about the asking browser and portal (DESIGN.md §6)."""

    client_id: str
    client_name: str
    scopes: tuple[str, ...]
    ip: str
    user_agent: str


@dataclass(frozen=True)
class Channel:
    id: str
    transaction_id: str
    browser: str  # the login transaction's browser binding (hash of its ``ocbr`` cookie)
    secret_hash: str  # hash of the collection secret held in the desktop's HttpOnly cookie
    match_code: str
    choices: tuple[str, ...]
    requester: Requester
    created_at: float
    expires_at: float
    phone: str | None = None  # browser binding of the phone that scanned first
    matched: bool = False
    ceremony_id: str | None = None  # the passkey ceremony started for this channel

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Channel:
        data: dict[str, Any] = json.loads(raw)
        data["choices"] = tuple(data["choices"])
        requester = data["requester"]
        requester["scopes"] = tuple(requester["scopes"])
        data["requester"] = Requester(**requester)
        return cls(**data)

    @property
    def store_ttl(self) -> float:
        """How long the store keeps the records: the channel's life plus the collection grace."""
        return self.expires_at + COLLECT_GRACE - self.created_at


@dataclass(frozen=True)
class Decision:
    state: ChannelState  # APPROVED or DENIED
    decided_at: float
    citizen_id: str | None = None
    device_id: str | None = None
    reason: DenyReason | None = None

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Decision:
        data: dict[str, Any] = json.loads(raw)
        data["state"] = ChannelState(data["state"])
        data["reason"] = DenyReason(data["reason"]) if data.get("reason") else None
        return cls(**data)


def open_channel(
    *, transaction_id: str, browser: str, requester: Requester, now: float, ttl: float = CHANNEL_TTL
) -> tuple[Channel, str]:
    """A new channel and its collection secret (for the desktop's cookie; only its hash is kept)."""
    secret = secrets.token_urlsafe(SECRET_BYTES)
    code = generate_match_code()
    channel = Channel(
        id=secrets.token_urlsafe(CHANNEL_ID_BYTES),
        transaction_id=transaction_id,
        browser=browser,
        secret_hash=hash_secret(secret),
        match_code=code,
        choices=generate_choices(code),
        requester=requester,
        created_at=now,
        expires_at=now + ttl,
    )
    return channel, secret


def state_of(channel: Channel, decision: Decision | None, *, now: float) -> ChannelState:
    if decision is not None:
        return decision.state
    if now >= channel.expires_at:
        return ChannelState.EXPIRED
    return ChannelState.SCANNED if channel.phone is not None else ChannelState.WAITING


def _require_open(channel: Channel, decision: Decision | None, *, now: float) -> None:
    state = state_of(channel, decision, now=now)
    if state is ChannelState.EXPIRED:
        raise ChannelExpiredError("channel expired")
    if state in (ChannelState.APPROVED, ChannelState.DENIED):
        raise ChannelClosedError(f"channel {state.value}")


def _require_phone(channel: Channel, phone: str) -> None:
    if channel.phone is None or not secrets.compare_digest(channel.phone, phone):
        raise ChannelTakenError("not the phone that scanned")


# --- the phone's side --------------------------------------------------------------------------------------


def scan(channel: Channel, decision: Decision | None, *, phone: str, now: float) -> Channel:
    """The phone opened the channel. The service claims the channel for the first phone atomically and
    passes the winner here as ``channel.phone``; another phone gets ``ChannelTakenError``."""
    _require_open(channel, decision, now=now)
    if channel.phone is None:
        return dataclasses.replace(channel, phone=phone)
    _require_phone(channel, phone)
    return channel


def choose_code(
    channel: Channel, decision: Decision | None, *, phone: str, code: str, now: float
) -> Channel | Decision:
    """The citizen picked ``code``: the channel, matched, or a ``Decision`` denying it (a wrong pick burns
    the channel — someone may be relaying the code, and a second guess must not be offered)."""
    _require_open(channel, decision, now=now)
    _require_phone(channel, phone)
    if channel.matched:
        return channel
    if isinstance(code, str) and secrets.compare_digest(code.encode(), channel.match_code.encode()):
        return dataclasses.replace(channel, matched=True)
    return Decision(ChannelState.DENIED, decided_at=now, reason=DenyReason.WRONG_CODE)


def begin_approval(
    channel: Channel, decision: Decision | None, *, phone: str, ceremony_id: str, now: float
) -> Channel:
    """A passkey ceremony starts for this channel; only its answer can approve it."""
    _require_open(channel, decision, now=now)
    _require_phone(channel, phone)
    if not channel.matched:
        raise MatchRequiredError("code not matched yet")
    return dataclasses.replace(channel, ceremony_id=ceremony_id)


def check_approval(
    channel: Channel, decision: Decision | None, *, phone: str, ceremony_id: str, now: float
) -> None:
    """May the passkey answer of ``ceremony_id`` approve this channel? (Checked before it is verified.)"""
    _require_open(channel, decision, now=now)
    _require_phone(channel, phone)
    if not channel.matched:
        raise MatchRequiredError("code not matched yet")
    if channel.ceremony_id is None or not secrets.compare_digest(
        channel.ceremony_id.encode(), str(ceremony_id).encode()
    ):
        raise CeremonyMismatchError("ceremony not started for this channel")


def approve(*, citizen_id: str, device_id: str, now: float) -> Decision:
    return Decision(ChannelState.APPROVED, decided_at=now, citizen_id=citizen_id, device_id=device_id)


def deny(channel: Channel, decision: Decision | None, *, phone: str, now: float) -> Decision:
    _require_open(channel, decision, now=now)
    _require_phone(channel, phone)
    return Decision(ChannelState.DENIED, decided_at=now, reason=DenyReason.DECLINED)


# --- the desktop's side ------------------------------------------------------------------------------------


def check_collector(
    channel: Channel,
    *,
    secret: str | None,
    expected_browser: str,
    expected_transaction_id: str,
) -> None:
    """Is this the browser that opened the channel, in its own login transaction?"""
    ok = (
        bool(secret)
        and secrets.compare_digest(channel.secret_hash, hash_secret(str(secret)))
        and secrets.compare_digest(channel.browser, expected_browser)
        and secrets.compare_digest(channel.transaction_id, expected_transaction_id)
    )
    if not ok:
        raise ForeignBrowserError("secret, browser or transaction does not match")


def check_collectable(channel: Channel, decision: Decision | None, *, now: float) -> Decision:
    """The approval to hand to ``complete_login``; raises for any other state."""
    state = state_of(channel, decision, now=now)
    if state is ChannelState.APPROVED:
        assert decision is not None
        if now >= channel.expires_at + COLLECT_GRACE or decision.decided_at >= channel.expires_at:
            raise ChannelExpiredError("approval not collected in time")
        return decision
    if state is ChannelState.DENIED:
        raise ChannelDeniedError("channel denied")
    if state is ChannelState.EXPIRED:
        raise ChannelExpiredError("channel expired")
    raise ChannelNotApprovedError(f"channel {state.value}")
