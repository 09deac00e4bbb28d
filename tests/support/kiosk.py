"""A kiosk terminal for the tests: a keyed device registered to a hall (``halls.register.service``)."""

from __future__ import annotations

from halls.register.service import get_hall, register_kiosk
from tests.support.fapi import KeyedClient
from tests.support.live import LiveIdp


def register_test_kiosk(idp: LiveIdp, device: KeyedClient, hall_id: str, *, name: str = "自助机1") -> None:
    """Register ``device``'s key as a kiosk of the hall; from then on the device signs as that kiosk (its
    ``client_id`` becomes the kiosk's)."""
    with idp.services.database.session() as session:
        registered = register_kiosk(
            session,
            get_hall(session, hall_id),
            name=name,
            jwks={"keys": [device.jwk]},
            issuer=idp.base_url,
            actor="test",
            now=idp.clock(),
        )
        device.client_id = registered.client_id
