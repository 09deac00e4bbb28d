"""QR scan-to-login on the shared short-lived store (DESIGN.md §2, §6, §8).

The state machine is ``channel.py``; this module keeps its records where every node sees them and makes
each one-time step one atomic store operation:

- the first phone to open a channel claims it with ``add`` (``qrlogin_phone``);
- the outcome is written once with ``add`` (``qrlogin_decision``): of an approval, a denial and a wrong
  code racing on two nodes, exactly one wins;
- collection is a ``take`` of that outcome: a replay, or a second node collecting at the same moment,
  finds nothing.

The approval is a fresh WebAuthn assertion with user verification (``wallet.devices.service``), from a
ceremony started for this channel by the phone that claimed it, by a citizen whose e-card is usable.
No Flask here; the store, the database session and ``now`` are parameters.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from flask_babel import gettext
from sqlalchemy.orm import Session

from idp.audit.service import record_event
from idp.stores.base import EphemeralStore
from wallet.devices.service import (
    Ceremony,
    RelyingParty,
    create_authentication_options,
    verify_authentication,
)
from wallet.ecards.service import require_usable_ecard
from wallet.qrlogin.channel import (
    CHANNEL_TTL,
    COLLECT_GRACE,
    Channel,
    ChannelState,
    Decision,
    Requester,
    approve,
    begin_approval,
    check_approval,
    check_collectable,
    check_collector,
    choose_code,
    deny,
    open_channel,
    scan,
    state_of,
)
from wallet.qrlogin.errors import (
    ChannelClosedError,
    ChannelNotFoundError,
    WrongMatchCodeError,
)

CHANNEL_NAMESPACE: Final = "qrlogin_channel"
PHONE_NAMESPACE: Final = "qrlogin_phone"
DECISION_NAMESPACE: Final = "qrlogin_decision"
_CHANNEL_ID: Final = re.compile(r"^[A-Za-z0-9_-]{32}$")
TERMINAL: Final = frozenset({ChannelState.APPROVED, ChannelState.DENIED, ChannelState.EXPIRED})


@dataclass(frozen=True)
class ChannelView:
    channel: Channel
    decision: Decision | None
    state: ChannelState


def _ttl(channel: Channel, now: float) -> float:
    return max(1.0, channel.expires_at + COLLECT_GRACE - now)


def create_channel(
    store: EphemeralStore,
    *,
    transaction_id: str,
    browser: str,
    requester: Requester,
    now: float,
    ttl: float = CHANNEL_TTL,
) -> tuple[Channel, str]:
    """A new channel in the store, and the collection secret for the desktop's cookie."""
    while True:
        channel, secret = open_channel(
            transaction_id=transaction_id, browser=browser, requester=requester, now=now, ttl=ttl
        )
        # ``add``: a (never expected) id collision must not overwrite a live channel.
        if store.add(CHANNEL_NAMESPACE, channel.id, channel.to_json(), ttl=channel.store_ttl, now=now):
            return channel, secret


def load_channel(store: EphemeralStore, channel_id: str, *, now: float) -> tuple[Channel, Decision | None]:
    """The channel with its claiming phone and its outcome; ``ChannelNotFoundError`` if the store has none."""
    if not isinstance(channel_id, str) or not _CHANNEL_ID.match(channel_id):
        raise ChannelNotFoundError("malformed channel id")
    raw = store.get(CHANNEL_NAMESPACE, channel_id, now=now)
    if raw is None:
        raise ChannelNotFoundError("unknown, collected or forgotten channel")
    channel = Channel.from_json(raw)
    phone = store.get(PHONE_NAMESPACE, channel_id, now=now)
    channel = dataclasses.replace(channel, phone=phone.decode() if phone is not None else None)
    decided = store.get(DECISION_NAMESPACE, channel_id, now=now)
    return channel, Decision.from_json(decided) if decided is not None else None


def view_channel(store: EphemeralStore, channel_id: str, *, now: float) -> ChannelView:
    channel, decision = load_channel(store, channel_id, now=now)
    return ChannelView(channel, decision, state_of(channel, decision, now=now))


def _save(store: EphemeralStore, channel: Channel, *, now: float) -> None:
    store.put(CHANNEL_NAMESPACE, channel.id, channel.to_json(), ttl=_ttl(channel, now), now=now)


def _decide(store: EphemeralStore, channel: Channel, decision: Decision, *, now: float) -> None:
    if not store.add(DECISION_NAMESPACE, channel.id, decision.to_json(), ttl=_ttl(channel, now), now=now):
        raise ChannelClosedError("another decision came first")


# --- the phone's side --------------------------------------------------------------------------------------


def scan_channel(store: EphemeralStore, channel_id: str, *, phone: str, now: float) -> ChannelView:
    """The phone opened the channel's URL: the first phone claims it (waiting → scanned)."""
    channel, decision = load_channel(store, channel_id, now=now)
    if channel.phone is None:
        scan(channel, decision, phone=phone, now=now)  # open? (raises expired / closed)
        store.add(PHONE_NAMESPACE, channel.id, phone.encode(), ttl=_ttl(channel, now), now=now)
        channel, decision = load_channel(store, channel_id, now=now)  # whoever won the claim
    channel = scan(channel, decision, phone=phone, now=now)
    return ChannelView(channel, decision, state_of(channel, decision, now=now))


def match_code(store: EphemeralStore, channel_id: str, *, phone: str, code: str, now: float) -> Channel:
    """The citizen picked ``code``; a wrong pick denies the channel and raises ``WrongMatchCodeError``."""
    channel, decision = load_channel(store, channel_id, now=now)
    outcome = choose_code(channel, decision, phone=phone, code=code, now=now)
    if isinstance(outcome, Decision):
        _decide(store, channel, outcome, now=now)
        raise WrongMatchCodeError("picked a number not shown on the computer")
    if outcome is not channel:
        _save(store, outcome, now=now)
    return outcome


def start_approval(
    store: EphemeralStore, channel_id: str, *, rp: RelyingParty, phone: str, now: float
) -> Ceremony:
    """A passkey ceremony for this channel (user verification required); its id is pinned on the channel."""
    channel, decision = load_channel(store, channel_id, now=now)
    begin_approval(channel, decision, phone=phone, ceremony_id="-", now=now)  # may it start?
    ceremony = create_authentication_options(store, rp=rp, browser=phone, now=now)
    _save(store, begin_approval(channel, decision, phone=phone, ceremony_id=ceremony.id, now=now), now=now)
    return ceremony


def approve_channel(
    session: Session,
    store: EphemeralStore,
    channel_id: str,
    *,
    rp: RelyingParty,
    phone: str,
    ceremony_id: str,
    credential_json: str,
    now: float,
) -> Decision:
    """Verify the passkey answer of this channel's ceremony and approve (scanned → approved).

    Raises ``PasskeyError`` for an assertion py_webauthn or the device register refuses, and the errors of
    ``channel.py`` for a channel in the wrong state.
    """
    channel, decision = load_channel(store, channel_id, now=now)
    check_approval(channel, decision, phone=phone, ceremony_id=ceremony_id, now=now)
    verified = verify_authentication(
        session,
        store,
        rp=rp,
        ceremony_id=ceremony_id,
        credential_json=credential_json,
        browser=phone,
        now=now,
    )
    require_usable_ecard(session, verified.citizen_id)
    approval = approve(citizen_id=verified.citizen_id, device_id=verified.device_id, now=now)
    _decide(store, channel, approval, now=now)
    record_event(
        session,
        actor=f"citizen:{verified.citizen_id}",
        action="qrlogin.approve",
        target_type="client",
        target_id=channel.requester.client_id,
        details={"device_id": verified.device_id},
        now=now,
    )
    return approval


def deny_channel(store: EphemeralStore, channel_id: str, *, phone: str, now: float) -> Decision:
    channel, decision = load_channel(store, channel_id, now=now)
    refusal = deny(channel, decision, phone=phone, now=now)
    _decide(store, channel, refusal, now=now)
    return refusal


# --- the desktop's side ------------------------------------------------------------------------------------


def watch_channel(
    store: EphemeralStore,
    channel_id: str,
    *,
    secret: str | None,
    expected_browser: str,
    expected_transaction_id: str,
    known: str,
    clock: Callable[[], float],
    monotonic: Callable[[], float],
    sleep: Callable[[float], None],
    timeout: float,
    interval: float = 0.25,
) -> ChannelView:
    """Long-poll: the channel's view once its state differs from ``known`` (or at ``timeout``).

    Re-reads the shared store every ``interval`` seconds, so a change made at any node is seen here.
    """
    deadline = monotonic() + timeout
    while True:
        channel, decision = load_channel(store, channel_id, now=clock())
        check_collector(
            channel,
            secret=secret,
            expected_browser=expected_browser,
            expected_transaction_id=expected_transaction_id,
        )
        view = ChannelView(channel, decision, state_of(channel, decision, now=clock()))
        if view.state.value != known or view.state in TERMINAL or monotonic() >= deadline:
            return view
        sleep(interval)


def collect_channel(
    store: EphemeralStore,
    channel_id: str,
    *,
    secret: str | None,
    expected_browser: str,
    expected_transaction_id: str,
    now: float,
) -> Decision:
    """The approval, taken out of the store once; the caller hands it to ``complete_login``."""
    channel, decision = load_channel(store, channel_id, now=now)
    check_collector(
        channel,
        secret=secret,
        expected_browser=expected_browser,
        expected_transaction_id=expected_transaction_id,
    )
    check_collectable(channel, decision, now=now)
    taken = store.take(DECISION_NAMESPACE, channel.id, now=now)
    if taken is None:
        raise ChannelNotFoundError("collected concurrently")
    approval = check_collectable(channel, Decision.from_json(taken), now=now)
    store.delete(CHANNEL_NAMESPACE, channel.id)
    store.delete(PHONE_NAMESPACE, channel.id)
    return approval


# --- what the phone shows about the asking browser ---------------------------------------------------------

Locator = Callable[[str], "str | None"]


def describe_network(ip: str, locator: Locator | None = None) -> str:
    """Where the asking browser is, as well as the IdP can say: a locator's answer (a GeoIP lookup a
    deployment plugs in), else the kind of network its address belongs to."""
    if locator is not None:
        place = locator(ip)
        if place:
            return place
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return str(gettext("Unknown"))
    if address.is_loopback:
        return str(gettext("This same computer (a local address)"))
    if address.is_private or address.is_link_local:
        return str(gettext("A private network (home, office or company)"))
    return str(gettext("The internet (location not known)"))


_BROWSERS: Final = (("Edg/", "Edge"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"), ("Safari/", "Safari"))
_SYSTEMS: Final = (
    ("Android", "Android"),
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Windows", "Windows"),
    ("Mac OS X", "Mac"),
    ("Linux", "Linux"),
)


def describe_browser(user_agent: str) -> str:
    """ "Chrome on Windows" from a User-Agent header; "A web browser" when it says nothing we know. In the
    reader's language (names of browsers and systems stay as they are)."""
    browser = next((name for mark, name in _BROWSERS if mark in user_agent), None)
    system = next((name for mark, name in _SYSTEMS if mark in user_agent), None)
    if browser and system:
        return str(gettext("%(browser)s on %(system)s", browser=browser, system=system))
    if browser:
        return browser
    return str(gettext("A web browser on %(system)s", system=system) if system else gettext("A web browser"))
