"""Every per-person lookup on a hot path is an index lookup on PostgreSQL (issue 16 item 5: 10 M citizens).

The statements are not written out here: each lookup runs through the real service function, its SQL and
parameters are captured as the driver received them, and PostgreSQL's ``EXPLAIN`` of exactly that is
checked. Sequential scans are priced out (``enable_seqscan = off``) because the test tables hold a few
rows, where a scan is what the planner rightly prefers; what the test asserts is that an index *can*
answer the lookup — with 10 M rows the planner takes it by itself (``bench/bench_scale.py`` measures that).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from idp.cardlogin.challenge import check_card_usable
from idp.cards.issuance import certificate_fingerprint
from idp.cards.model import Card
from idp.cards.service import find_card_by_number
from idp.citizens.service import create_citizen, find_by_id_number
from idp.crypto.pii import PiiCipher
from idp.db import Database, utc_from_timestamp
from sdk.card_auth import VerifiedCardCertificate
from tests.bridge.pki import make_ca, make_card
from wallet.ecards.model import ECard
from wallet.ecards.service import activate_ecard, get_current_ecard, status_by_handle
from wallet.venues.model import Venue
from wallet.venues.service import find_venue

NOW = 1_750_000_000.0
ID_NUMBER = "11010519491231002X"
INDEX_SCANS = ("Index Scan", "Index Only Scan", "Bitmap Index Scan")


@pytest.fixture
def database(postgres_database: Database) -> Database:
    return postgres_database


@pytest.fixture
def seeded(database: Database) -> dict[str, Any]:
    cipher = PiiCipher([("k1", os.urandom(32))], os.urandom(32))
    at = utc_from_timestamp(NOW)
    ca = make_ca()
    card_file = make_card(ca)
    with database.session() as session:
        citizen = create_citizen(session, cipher, "张三", ID_NUMBER, now=NOW)
        card = Card(
            card_id=card_file.card_id.hex().upper(),
            card_number="A00000001",
            citizen_id=citizen.id,
            region="420100",
            status="active",
            issuer_kid="test",
            certificate_serial="01",
            certificate_fingerprint=certificate_fingerprint(card_file.certificate_der),
            issued_on=at.date(),
            expires_on=at.date() + dt.timedelta(days=3650),
            created_at=at,
            updated_at=at,
        )
        session.add(card)
        session.flush()
        ecard = activate_ecard(session, citizen_id=citizen.id, card_id=card.card_id, now=NOW)
        venue = Venue(id="vn_test", name="Museum", category="museum", claims=[], regions=[], created_at=at)
        session.add(venue)
        values = {
            "verified": VerifiedCardCertificate(
                card_file.card_id, None, card_file.certificate, ca.certificate
            ),
            "cipher": cipher,
            "citizen_id": citizen.id,
            "card_id": card.card_id,
            "card_number": card.card_number,
            "fingerprint": card.certificate_fingerprint,
            "ecard_id": ecard.id,
            "handle": ecard.handle,
            "venue_id": venue.id,
        }
    return values


def plans_of(database: Database, lookup: Callable[[Session], object]) -> list[tuple[str, str]]:
    """(statement, plan) for each SELECT the lookup sent, explained with the parameters it was sent with."""
    sent: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, parameters))

    event.listen(database.engine, "before_cursor_execute", capture)
    try:
        with database.session() as session:
            lookup(session)
    finally:
        event.remove(database.engine, "before_cursor_execute", capture)
    assert sent, "the lookup sent no SELECT"
    plans = []
    raw = database.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("SET enable_seqscan = off")
        for statement, parameters in sent:
            cursor.execute("EXPLAIN " + statement, parameters)
            plans.append((statement, "\n".join(row[0] for row in cursor.fetchall())))
    finally:
        raw.close()
    return plans


def assert_index_lookups(plans: list[tuple[str, str]], *indexes: str) -> None:
    for statement, plan in plans:
        assert "Seq Scan" not in plan, f"{statement}\n{plan}"
        assert any(scan in plan for scan in INDEX_SCANS), f"{statement}\n{plan}"
    text = "\n".join(plan for _, plan in plans)
    for index in indexes:
        assert index in text, f"expected {index} in\n{text}"


def test_citizen_by_blind_index(database: Database, seeded: dict[str, Any]) -> None:
    plans = plans_of(database, lambda session: find_by_id_number(session, seeded["cipher"], ID_NUMBER))
    assert_index_lookups(plans, "uq_citizens_id_number_index")


def test_card_and_holder_at_card_login(database: Database, seeded: dict[str, Any]) -> None:
    def lookup(session: Session) -> None:
        assert check_card_usable(session, seeded["verified"], now=NOW).card_id == seeded["card_id"]

    assert_index_lookups(plans_of(database, lookup), "pk_cards", "pk_citizens")


def test_card_by_number_and_by_certificate(database: Database, seeded: dict[str, Any]) -> None:
    def lookup(session: Session) -> None:
        find_card_by_number(session, seeded["card_number"])
        session.scalar(select(Card).where(Card.certificate_fingerprint == seeded["fingerprint"]))

    assert_index_lookups(
        plans_of(database, lookup), "uq_cards_card_number", "uq_cards_certificate_fingerprint"
    )


def test_ecard_by_handle_at_the_gate_and_by_id(database: Database, seeded: dict[str, Any]) -> None:
    def lookup(session: Session) -> None:
        assert status_by_handle(session, seeded["handle"]) is not None
        session.get(ECard, seeded["ecard_id"])
        get_current_ecard(session, seeded["citizen_id"])

    assert_index_lookups(plans_of(database, lookup), "uq_wallet_ecards_handle", "pk_wallet_ecards")


def test_venue_by_id(database: Database, seeded: dict[str, Any]) -> None:
    assert_index_lookups(
        plans_of(database, lambda session: find_venue(session, seeded["venue_id"])), "pk_wallet_venues"
    )
