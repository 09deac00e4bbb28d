"""Kiosk terminal sessions and citizen visits, kept in the shared short-lived store (any node answers).

A terminal session starts when the kiosk device proves its key (a ``private_key_jwt`` client assertion of a
client of kind ``kiosk``): the browser on the device then holds an opaque cookie naming it. A citizen's
visit is the card login made on that terminal; it lives ``idle`` seconds after the last input and is
touched by every kiosk page request and the "More time" button. No Flask here: store and ``now`` passed in.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Final

from idp.stores.base import EphemeralStore

TERMINAL_NAMESPACE: Final = "kiosk_terminal"
VISIT_NAMESPACE: Final = "kiosk_visit"
BEGUN_NAMESPACE: Final = "kiosk_visit_begun"
_BEGUN_TTL: Final = 86400.0  # longer than any SSO session: a session's visit begins once
TERMINAL_COOKIE: Final = "ockiosk"
_TOKEN_LENGTH: Final = 43  # token_urlsafe(32)


@dataclass(frozen=True)
class KioskTerminal:
    terminal_id: str  # the terminal's client id
    hall_id: str  # the hall it is registered to (halls.register.service.find_kiosk)
    started_at: float
    bridge_url: str | None = None  # its own reader bridge, if not on the deployment's card_bridge_url


def start_terminal(
    store: EphemeralStore,
    *,
    terminal_id: str,
    hall_id: str,
    ttl: float,
    now: float,
    bridge_url: str | None = None,
) -> tuple[str, KioskTerminal]:
    """A new terminal session; returns the cookie value and the session."""
    token = secrets.token_urlsafe(32)
    terminal = KioskTerminal(terminal_id, hall_id, now, bridge_url)
    raw = json.dumps(
        {"terminal_id": terminal_id, "hall_id": hall_id, "started_at": now, "bridge_url": bridge_url}
    ).encode()
    store.put(TERMINAL_NAMESPACE, token, raw, ttl=ttl, now=now)
    return token, terminal


def find_terminal(store: EphemeralStore, token: str | None, *, now: float) -> KioskTerminal | None:
    if not isinstance(token, str) or len(token) != _TOKEN_LENGTH:
        return None
    raw = store.get(TERMINAL_NAMESPACE, token, now=now)
    if raw is None:
        return None
    data = json.loads(raw)
    bridge_url = data.get("bridge_url")  # absent in a session started before terminals had their own
    return KioskTerminal(
        str(data["terminal_id"]),
        str(data["hall_id"]),
        float(data["started_at"]),
        str(bridge_url) if bridge_url else None,
    )


def begin_visit(store: EphemeralStore, sid: str, *, idle: float, now: float) -> bool:
    """The visit of the session ``sid`` starts, once (``add``: of two nodes, one wins); False if it had
    begun before — a lapsed visit never begins again."""
    if not store.add(BEGUN_NAMESPACE, sid, b"1", ttl=_BEGUN_TTL, now=now):
        return False
    store.put(VISIT_NAMESPACE, sid, b"1", ttl=idle, now=now)
    return True


def touch_visit(store: EphemeralStore, sid: str, *, idle: float, now: float) -> bool:
    """The citizen did something: the visit lives ``idle`` seconds more. False if it had already lapsed."""
    return store.touch(VISIT_NAMESPACE, sid, ttl=idle, now=now)


def end_visit(store: EphemeralStore, sid: str, *, now: float) -> None:
    store.take(VISIT_NAMESPACE, sid, now=now)
