"""Login transactions: an authorization request parked while the citizen logs in or consents.

Kept in the short-lived store (any node can continue it), bound to the browser that started it by a hash
of that browser's ``ocbr`` cookie, so a transaction link sent to someone else leads nowhere.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from dataclasses import dataclass
from typing import Any

from idp.stores.base import EphemeralStore

NAMESPACE = "login_tx"


@dataclass(frozen=True)
class LoginTransaction:
    id: str
    params: dict[str, str]  # the authorization request as received
    client_id: str
    required_acr: str
    browser: str  # hash of the browser-binding cookie
    created_at: float
    expires_at: float
    login_hint: str | None = None
    authenticated_sid: str | None = None  # set when a login completed within this transaction
    consented: bool = False
    # A login parked by the kiosk pages (halls/kiosk), not by an authorization request: the terminal it
    # runs at, the page the finished login goes on to instead of resuming an authorization request, and the
    # terminal's own reader bridge (None: the deployment's card_bridge_url).
    terminal_id: str | None = None
    resume_to: str | None = None
    bridge_url: str | None = None

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> LoginTransaction:
        data: dict[str, Any] = json.loads(raw)
        return cls(**data)


def create_transaction(
    store: EphemeralStore,
    *,
    params: dict[str, str],
    client_id: str,
    required_acr: str,
    browser: str,
    login_hint: str | None,
    ttl: int,
    now: float,
    terminal_id: str | None = None,
    resume_to: str | None = None,
    bridge_url: str | None = None,
) -> LoginTransaction:
    tx = LoginTransaction(
        id=secrets.token_urlsafe(24),
        params=params,
        client_id=client_id,
        required_acr=required_acr,
        browser=browser,
        created_at=now,
        expires_at=now + ttl,
        login_hint=login_hint,
        terminal_id=terminal_id,
        resume_to=resume_to,
        bridge_url=bridge_url,
    )
    store.put(NAMESPACE, tx.id, tx.to_json(), ttl=ttl, now=now)
    return tx


def find_transaction(
    store: EphemeralStore, tx_id: str, *, browser: str, now: float
) -> LoginTransaction | None:
    """The live transaction, if it belongs to this browser."""
    if not isinstance(tx_id, str) or not 16 <= len(tx_id) <= 64:
        return None
    entry = store.get_with_expiry(NAMESPACE, tx_id, now=now)
    if entry is None:
        return None
    raw, expires_at = entry
    # The store's expiry is the deadline: "More time" (extend_transaction) changes only that, not the value.
    tx = dataclasses.replace(LoginTransaction.from_json(raw), expires_at=expires_at)
    if not secrets.compare_digest(tx.browser, browser):
        return None
    return tx


def update_transaction(
    store: EphemeralStore, tx: LoginTransaction, *, now: float, **changes: Any
) -> LoginTransaction:
    """The transaction with ``changes``, stored only while it is live (``replace``): an update racing the
    ``end_transaction`` of a finished login never brings it back, so the login's next step finds it gone."""
    updated = dataclasses.replace(tx, **changes)
    store.replace(NAMESPACE, tx.id, updated.to_json(), now=now)
    return updated


def extend_transaction(
    store: EphemeralStore, tx: LoginTransaction, *, ttl: float, longest: float, now: float
) -> LoginTransaction | None:
    """The "More time" button (WCAG 2.2.1): the transaction lives ``ttl`` seconds from now again, but never
    more than ``longest`` seconds after it was created. None if it is gone (ended or expired) by now.

    Only the store's expiry changes (``touch``): rewriting the value would bring back a transaction that
    ``end_transaction`` took meanwhile, or undo a concurrent ``update_transaction``."""
    expires_at = max(tx.expires_at, min(now + ttl, tx.created_at + longest))
    if not store.touch(NAMESPACE, tx.id, ttl=max(1.0, expires_at - now), now=now):
        return None
    return dataclasses.replace(tx, expires_at=max(expires_at, now + 1.0))


def end_transaction(store: EphemeralStore, tx: LoginTransaction, *, now: float) -> bool:
    """Consume the transaction; False if another request consumed it first."""
    return store.take(NAMESPACE, tx.id, now=now) is not None
