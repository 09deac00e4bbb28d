"""Every table of the server, imported in one place so Alembic and tests see the whole schema.

Plug-ins (the wallet) add their models through the ``onecard.models`` entry point group.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from idp.audit.model import AuditEvent
from idp.cards.model import Card
from idp.citizens.model import Citizen
from idp.clients.model import Client
from idp.consents.model import Consent
from idp.db import Base
from idp.federation.login_model import FederatedSession, FederatedSubject
from idp.federation.model import Subordinate
from idp.grants.model import Grant, RefreshToken
from idp.keys.model import KeyRecord
from idp.sessions.model import SsoSession, SsoSessionClient
from idp.stores.sql import EphemeralEntry

__all__ = [
    "AuditEvent",
    "Base",
    "Card",
    "Citizen",
    "Client",
    "Consent",
    "EphemeralEntry",
    "FederatedSession",
    "FederatedSubject",
    "Grant",
    "KeyRecord",
    "RefreshToken",
    "SsoSession",
    "SsoSessionClient",
    "Subordinate",
    "load_plugin_models",
]


def load_plugin_models() -> None:
    for entry in entry_points(group="onecard.models"):
        entry.load()


load_plugin_models()
