"""Who changes keys, why, and with what; and the one way each change is audited (DESIGN.md §7).

Every key operation (``idp.keys.lifecycle``, ``idp.keys.reencrypt``) takes a ``KeyActor``: the actor
(``cli:<user>``, ``client:<id>``, ``scheduler``), the reason, the KEKs and the HSM it works with. The
reason goes into every event the same way (``record_key_event``), whichever command or API call made the
change; it is checked when the actor is made, before anything changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from idp.audit.service import record_event
from idp.config import Settings
from idp.crypto.kek import KeyEncryptionKeys
from idp.keys.pkcs11 import Pkcs11Backend
from idp.keys.policy import KeySetPolicy, policy_for
from idp.keys.service import KEY_RING_CACHE_SECONDS
from sdk.errors import InvalidRequestError

MAX_REASON_LENGTH = 200


def validate_reason(reason: str) -> str:
    """The reason with its whitespace collapsed; printable text of at most ``MAX_REASON_LENGTH``."""
    reason = " ".join(reason.split())
    if len(reason) > MAX_REASON_LENGTH or not reason.isprintable():
        raise InvalidRequestError(
            "reason",
            description=f"The reason must be printable text of at most {MAX_REASON_LENGTH} characters.",
        )
    return reason


@dataclass(frozen=True)
class KeyActor:
    """Who changes keys (``cli:<user>``, ``client:<id>``, ``scheduler``), why, and with what.

    ``reason`` is validated here, so a bad one stops a change before it starts (a re-encryption commits
    batch by batch and must not fail at its closing audit event).
    """

    settings: Settings
    keks: KeyEncryptionKeys
    actor: str
    reason: str = ""
    hsm: Pkcs11Backend | None = None
    cache_seconds: float = KEY_RING_CACHE_SECONDS

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", validate_reason(self.reason))

    def policy(self, name: str) -> KeySetPolicy:
        return policy_for(self.settings, name, cache_seconds=self.cache_seconds)


def record_key_event(
    session: Session,
    who: KeyActor,
    *,
    action: str,
    target_type: str,
    target_id: str,
    details: dict[str, Any],
    now: float,
) -> None:
    """The audit event of a key change, naming the actor and, if given, the reason: every change, one way."""
    record_event(
        session,
        actor=who.actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        details={**details, **({"reason": who.reason} if who.reason else {})},
        now=now,
    )
