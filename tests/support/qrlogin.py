"""QR scan-to-login helpers shared by the live, browser and multi-node tests: the PKCE pair of the tests'
portal, and a citizen with an e-card and a bound passkey put straight into the register (for servers that
are not a ``LiveWallet``, such as the gunicorn nodes)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from typing import Any

from tests.support.wallet import SoftAuthenticator

VERIFIER = "qr-login-test-verifier-" + "x" * 30
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=").decode()


def seed_citizen_with_ecard(svc: Any, *, name: str = "张三", id_number: str = "11010519491231002X") -> str:
    """A citizen with an active card and its e-card, straight into the register; returns the citizen id."""
    import datetime as dt

    from idp.cards.model import Card, CardStatus
    from idp.citizens.service import create_citizen
    from idp.db import utc_from_timestamp
    from wallet.ecards.service import activate_ecard

    now = svc.now()
    at = utc_from_timestamp(now)
    with svc.database.session() as session:
        citizen = create_citizen(session, svc.pii_cipher(), name, id_number, now=now)
        card_id = secrets.token_hex(16).upper()
        session.add(
            Card(
                card_id=card_id,
                card_number="Q" + secrets.token_hex(4).upper(),
                citizen_id=citizen.id,
                region="420100",
                status=CardStatus.ACTIVE.value,
                issuer_kid="test-ca",
                certificate_serial="01",
                certificate_fingerprint=secrets.token_hex(32),
                issued_on=at.date(),
                expires_on=at.date() + dt.timedelta(days=3650),
                created_at=at,
                updated_at=at,
            )
        )
        session.flush()
        activate_ecard(session, citizen_id=citizen.id, card_id=card_id, now=now)
        return str(citizen.id)


def bind_soft_passkey(svc: Any, citizen_id: str, authenticator: SoftAuthenticator, issuer: str) -> None:
    """Bind ``authenticator`` to the citizen through the wallet's own registration ceremony."""
    from wallet.devices.service import RelyingParty, create_registration_options, verify_registration

    rp = RelyingParty.for_issuer(issuer)
    with svc.database.session() as session:
        ceremony = create_registration_options(
            session,
            svc.store,
            rp=rp,
            citizen_id=citizen_id,
            user_name="OneCard test",
            browser="seed",
            now=svc.now(),
        )
        verify_registration(
            session,
            svc.store,
            rp=rp,
            ceremony_id=ceremony.id,
            credential_json=authenticator.create(json.loads(ceremony.options_json)),
            citizen_id=citizen_id,
            browser="seed",
            name="Test phone",
            now=svc.now(),
        )
