"""The application's services, built once by the app factory and reached from views via ``services()``.

Everything a request needs that outlives it — settings, database, short-lived store, key ring, clock,
login methods — hangs here, so protocol code gets its collaborators passed in and tests swap any of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flask import current_app

from idp.config import Settings
from idp.crypto.kek import KeyEncryptionKeys
from idp.crypto.pii import PiiCipher
from idp.db import Database
from idp.keys.service import DATA_KEYS, INDEX_KEYS, KeyRing
from idp.stores.base import EphemeralStore
from sdk.clock import Clock

if TYPE_CHECKING:
    from idp.login.authenticators import AuthenticatorRegistry


@dataclass
class Services:
    settings: Settings
    database: Database
    store: EphemeralStore
    keks: KeyEncryptionKeys
    keyring: KeyRing
    clock: Clock
    authenticators: AuthenticatorRegistry
    extras: dict[str, object] = field(default_factory=dict)

    def now(self) -> float:
        return self.clock()

    def pii_cipher(self) -> PiiCipher:
        """The PII cipher over the current data keys (the active key encrypts, retired ones decrypt)."""
        now = self.now()
        data_keys = self.keyring.secrets(DATA_KEYS.name, now=now)
        index_keys = self.keyring.secrets(INDEX_KEYS.name, now=now)
        return PiiCipher(data_keys, index_keys[0][1])


def services() -> Services:
    return current_app.extensions["onecard"]  # type: ignore[no-any-return]
