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
from idp.fastpath.routes import LeanRoutes
from idp.keys.service import KeyRing, pii_cipher_of
from idp.stores.base import EphemeralStore
from sdk.clock import Clock

if TYPE_CHECKING:
    from idp.cardlogin.context import CardLoginContext
    from idp.federation.context import FederationContext
    from idp.keys.pkcs11 import Pkcs11Backend
    from idp.keys.schedule import KeyScheduler
    from idp.login.authenticators import AuthenticatorRegistry
    from idp.oauth.server import OneCardAuthorizationServer
    from idp.openapi.contract import ApiContract
    from idp.realname.service import RealnameContext


@dataclass
class Services:
    settings: Settings
    database: Database
    store: EphemeralStore
    keks: KeyEncryptionKeys
    keyring: KeyRing
    clock: Clock
    authenticators: AuthenticatorRegistry
    authorization_server: OneCardAuthorizationServer
    card_login: CardLoginContext
    realname: RealnameContext
    api_contract: ApiContract  # the JSON APIs' OpenAPI contract; plug-ins register their fragments here
    hsm: Pkcs11Backend | None = None  # signing keys in a PKCS#11 HSM (ONECARD_PKCS11_*)
    scheduler: KeyScheduler | None = None  # started by ``start_background_work`` in a server process only
    federation: FederationContext | None = None  # OpenID Federation 1.0 (idp.federation), set by create_app
    # Plug-ins' requests answered before Flask (idp.fastpath.routes), e.g. the wallet's gate verification.
    lean_routes: LeanRoutes = field(default_factory=LeanRoutes)

    def now(self) -> float:
        return self.clock()

    def pii_cipher(self) -> PiiCipher:
        """The PII cipher over the current data keys (the active key encrypts, retired ones decrypt)."""
        return pii_cipher_of(self.keyring, now=self.now())


def services() -> Services:
    return current_app.extensions["onecard"]  # type: ignore[no-any-return]
