"""The card register and card issuance (issue #3 item 1): certificates per CARD_PROFILE.md, the status
lifecycle with its audit events, ``onecard cards …`` and the admin API, and the migration with data."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import inspect, select

from idp import dbadmin
from idp.app import create_app, initialise_keys
from idp.audit.model import AuditEvent
from idp.audit.service import verify_chain
from idp.cards.errors import CardExistsError, CardStatusConflictError, InvalidRegionError
from idp.cards.issuance import (
    DEFAULT_REGION,
    IssuerTrustList,
    create_issuer_ca,
    issue_card,
    issuer_ca_certificates,
    list_issuer_cas,
)
from idp.cards.model import CardStatus
from idp.cards.service import change_status, get_card, get_card_by_reference, list_cards
from idp.citizens.errors import CitizenNotFoundError
from idp.citizens.service import create_citizen
from idp.cli import cli
from idp.db import Database
from idp.keys.model import KeyState
from idp.services import Services
from reader_bridge.card import SocialSecurityCard
from reader_bridge.emulator import CardEmulator
from reader_bridge.errors import SecurityStatusError
from reader_bridge.operations import Operation, authenticate
from reader_bridge.pin import Announce, PinRequest
from reader_bridge.profile import EF05, EF05_CARD_ID, EF06
from reader_bridge.virtual import VIRTUAL_READER_NAME, VirtualTerminal
from sdk.card_auth import verify_card_auth_token
from sdk.card_file import InvalidCardFileError, load_card_file
from tests.support.live import LiveIdp

CITIZEN = ("张三", "11010519491231002X")


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Services]:
    url = f"sqlite:///{tmp_path / 'cards.sqlite3'}"
    dbadmin.upgrade(url)
    app = create_app(env="test", database_url=url, plugins=[])
    initialise_keys(app)
    services: Services = app.extensions["onecard"]
    yield services
    services.database.dispose()


@pytest.fixture
def citizen_id(svc: Services) -> str:
    with svc.database.session() as session:
        return create_citizen(session, svc.pii_cipher(), *CITIZEN, now=svc.now()).id


def actions(database: Database) -> list[tuple[str, str, str]]:
    with database.session() as session:
        assert verify_chain(session).ok
        rows = session.execute(
            select(AuditEvent.actor, AuditEvent.action, AuditEvent.target_id).order_by(AuditEvent.seq)
        )
        return [(row.actor, row.action, row.target_id) for row in rows]


# --- issuance ----------------------------------------------------------------------------------------------


def test_issued_certificate_follows_the_card_profile(svc: Services, citizen_id: str) -> None:
    with svc.database.session() as session:
        issued = issue_card(
            session, svc.keks, citizen_id=citizen_id, actor="test", now=svc.now(), pin="123456"
        )
        ca_records = list_issuer_cas(session)
        card_id = issued.card.card_id
        expires_on = issued.card.expires_on
    card_file = issued.card_file
    certificate = card_file.certificate
    assert card_id == card_file.card_id.hex().upper() and len(card_id) == 32
    assert card_file.card_id[:3] == bytes.fromhex("420100") and card_file.card_id[3:8].hex() == "d156000005"
    subject = certificate.subject
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)] == [card_id]
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == [card_file.card_number]
    assert len(card_file.card_number) == 9
    text = subject.rfc4514_string()
    assert CITIZEN[0] not in text and CITIZEN[1] not in text  # no name, no ID number
    assert certificate.not_valid_after_utc.date() <= expires_on == card_file.expiry_date
    key = certificate.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    # Issued by the region's CA, created on first issuance and kept in the key store with its certificate.
    (ca_record,) = ca_records
    assert ca_record.key_set == "card-ca-420100" and ca_record.state == KeyState.ACTIVE
    assert ca_record.certificate_pem is not None
    ca_cert = x509.load_pem_x509_certificate(ca_record.certificate_pem.encode())
    certificate.verify_directly_issued_by(ca_cert)
    assert ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert card_file.pin == "123456" and card_file.tries_left == 3 and card_file.protocol == "T=1"


def test_issued_card_file_carries_the_cardholder_records(svc: Services, citizen_id: str) -> None:
    with svc.database.session() as session:
        issued = issue_card(
            session, svc.keks, citizen_id=citizen_id, actor="t", now=svc.now(), pii=svc.pii_cipher()
        )
    holder = issued.card_file.holder
    assert holder is not None  # CARD_PROFILE "EF06"
    assert (holder.ssn, holder.name, holder.name_extension) == (CITIZEN[1], CITIZEN[0], "")
    assert (holder.gender, holder.birth_date, holder.birthplace) == ("2", dt.date(1949, 12, 31), "110105")
    assert issued.card_file.version == "3.00"


def test_a_3_00_card_keeps_ef06_and_the_card_number_closed(svc: Services, citizen_id: str) -> None:
    """What the emulator answers for an issued card (CARD_PROFILE "EF06"): EF06 exists, and its records and
    EF05 rec 07 answer 6982; the bridge's login never needs them."""
    with svc.database.session() as session:
        issued = issue_card(
            session, svc.keks, citizen_id=citizen_id, actor="t", now=svc.now(), pii=svc.pii_cipher()
        )
    card_file = issued.card_file
    terminal = VirtualTerminal(CardEmulator(card_file))
    with terminal.connect(VIRTUAL_READER_NAME) as session:
        ssc = SocialSecurityCard(session)
        ssc.select_ssse()
        ssc.select_file(EF05)
        assert ssc.read_record(EF05_CARD_ID) == card_file.card_id
        with pytest.raises(SecurityStatusError):
            ssc.read_record(7)  # the card number
        ssc.select_file(EF06)  # present: 9000
        for record in range(1, 8):
            with pytest.raises(SecurityStatusError):
                ssc.read_record(record)
    operation = Operation("op", "authenticate", "https://login.onecard.test")
    pins = _OnePin(card_file.pin)
    token = authenticate(terminal, pins, operation, origin="https://login.onecard.test", nonce=bytes(32))
    with svc.database.session() as session:
        (ca_certificate,) = issuer_ca_certificates(session, DEFAULT_REGION)
    verified = verify_card_auth_token(
        token,
        expected_origin="https://login.onecard.test",
        expected_nonce=bytes(32),
        trusted_issuers=[ca_certificate],
        now=svc.now(),
    )
    assert verified.card_id == card_file.card_id


class _OnePin:
    kind = "terminal"

    def __init__(self, pin: str) -> None:
        self.pin = pin

    def ask_pin(self, request: PinRequest, announce: Announce) -> str:
        announce({})
        return self.pin

    def ask_pin_change(self, request: PinRequest, announce: Announce) -> tuple[str, str]:
        raise AssertionError("not asked here")


@pytest.mark.parametrize(
    ("name", "expected_name", "expected_extension"),
    [
        # 15 two-byte GBK characters fill tag 09; the rest goes to the name extension, cut between characters.
        pytest.param("阿卜杜热合曼·买买提依明·艾则孜", "阿卜杜热合曼·买买提依明·艾则", "孜", id="long"),
        pytest.param("张𠮷", "张?", "", id="not-in-gbk"),
        pytest.param("Li Wei", "Li Wei", "", id="latin"),
    ],
)
def test_names_are_written_as_ef06_can_hold_them(
    svc: Services, name: str, expected_name: str, expected_extension: str
) -> None:
    with svc.database.session() as session:
        citizen = create_citizen(session, svc.pii_cipher(), name, "420106198001010015", now=svc.now())
        issued = issue_card(
            session, svc.keks, citizen_id=citizen.id, actor="t", now=svc.now(), pii=svc.pii_cipher()
        )
    holder = issued.card_file.holder
    assert holder is not None
    assert (holder.name, holder.name_extension) == (expected_name, expected_extension)
    assert holder.gender == "1"


def test_several_regions_are_trusted_at_once(svc: Services, citizen_id: str) -> None:
    with svc.database.session() as session:
        first = create_issuer_ca(session, svc.keks, "420100", actor="test", now=svc.now())
        second = create_issuer_ca(session, svc.keks, "420100", actor="test", now=svc.now())
        other = create_issuer_ca(session, svc.keks, "440300", actor="test", now=svc.now())
        states = (first.state, second.state, other.state)
    assert states == ("active", "pending", "active")  # a region's next CA waits, published, until activated
    trust = IssuerTrustList(svc.database, svc.keyring)
    names = {
        c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        for c in trust.certificates(now=svc.now())
    }
    assert names == {"OneCard Card Issuer CA 420100", "OneCard Card Issuer CA 440300"}
    assert len(trust.certificates(now=svc.now())) == 3


def test_issue_refuses_bad_input_and_changes_nothing(svc: Services, citizen_id: str) -> None:
    with svc.database.session() as session:
        with pytest.raises(CitizenNotFoundError):
            issue_card(session, svc.keks, citizen_id="no-such-citizen", actor="t", now=svc.now())
        with pytest.raises(InvalidRegionError):
            issue_card(session, svc.keks, citizen_id=citizen_id, actor="t", now=svc.now(), region="42")
        with pytest.raises(InvalidCardFileError):
            issue_card(session, svc.keks, citizen_id=citizen_id, actor="t", now=svc.now(), pin="12ab56")
    with svc.database.session() as session:
        assert list_cards(session)[0] == 0
        assert list_issuer_cas(session) == []


def test_one_live_card_per_citizen_and_replacement(svc: Services, citizen_id: str) -> None:
    with svc.database.session() as session:
        first = issue_card(session, svc.keks, citizen_id=citizen_id, actor="t", now=svc.now()).card
        with pytest.raises(CardExistsError):
            issue_card(session, svc.keks, citizen_id=citizen_id, actor="t", now=svc.now())
        second = issue_card(
            session, svc.keks, citizen_id=citizen_id, actor="t", now=svc.now(), replace=True
        ).card
        assert first.status == "cancelled" and second.status == "active"
        assert first.card_number != second.card_number


# --- status lifecycle --------------------------------------------------------------------------------------


def test_status_changes_are_audited_and_cancel_is_final(svc: Services, citizen_id: str) -> None:
    with svc.database.session() as session:
        card = issue_card(session, svc.keks, citizen_id=citizen_id, actor="staff:1", now=svc.now()).card
        card_id = card.card_id
        for status in (
            CardStatus.LOST,
            CardStatus.ACTIVE,
            CardStatus.SUSPENDED,
            CardStatus.ACTIVE,
            CardStatus.CANCELLED,
        ):
            change_status(session, card, status, actor="staff:1", now=svc.now())
    with svc.database.session() as session:
        card = get_card(session, card_id)
        for status in CardStatus:
            with pytest.raises(CardStatusConflictError):
                change_status(session, card, status, actor="staff:1", now=svc.now())
        assert get_card_by_reference(session, card.card_number).card_id == card_id
    card_actions = [action for actor, action, target in actions(svc.database) if target == card_id]
    assert card_actions == [
        "card.issued",
        "card.lost",
        "card.restored",
        "card.suspended",
        "card.restored",
        "card.cancelled",
    ]


def test_same_status_twice_is_a_conflict(svc: Services, citizen_id: str) -> None:
    with svc.database.session() as session:
        card = issue_card(session, svc.keks, citizen_id=citizen_id, actor="t", now=svc.now()).card
        change_status(session, card, CardStatus.LOST, actor="t", now=svc.now())
        with pytest.raises(CardStatusConflictError) as caught:
            change_status(session, card, CardStatus.LOST, actor="t", now=svc.now())
        assert caught.value.description == "The card is already lost."


# --- onecard cards … ---------------------------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    for key in list(os.environ):
        if key.startswith("ONECARD_") and not key.startswith("ONECARD_TEST_"):
            monkeypatch.delenv(key)
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    monkeypatch.setenv("ONECARD_DATABASE_URL", url)
    monkeypatch.setenv("ONECARD_ENV", "test")
    dbadmin.upgrade(url)
    return url


def run(*args: str, input: str | None = None) -> Result:
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


def _cli_citizen() -> str:
    result = run("citizens", "add", "--name", CITIZEN[0], "--id-number", CITIZEN[1])
    assert result.exit_code == 0, result.output
    return result.output.split()[2]


def test_cli_issue_show_list_lost_restore_cancel(cli_env: str, tmp_path: Path) -> None:
    citizen = _cli_citizen()
    out = tmp_path / "card.json"
    result = run(
        "cards", "issue", "--citizen", citizen, "--out", str(out), "--pin", "123456", "--protocol", "T=0"
    )
    assert result.exit_code == 0, result.output
    assert "123456" not in result.output and CITIZEN[1] not in result.output
    card_file = load_card_file(out)
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    assert card_file.protocol == "T=0" and card_file.pin == "123456"
    card_id = card_file.card_id.hex().upper()

    shown = json.loads(run("cards", "show", card_id, "--json").output)
    assert shown["status"] == "active" and shown["citizen_id"] == citizen and shown["region"] == "420100"
    assert json.loads(run("cards", "list", "--json").output)["total"] == 1
    assert run("cards", "lost", card_file.card_number).output.strip().endswith("is now lost")
    assert json.loads(run("cards", "list", "--status", "lost", "--json").output)["total"] == 1
    assert run("cards", "restore", card_id).exit_code == 0
    assert run("cards", "cancel", card_id, input="n\n").exit_code == 1
    assert run("cards", "cancel", card_id, "--yes").exit_code == 0
    refused = run("cards", "restore", card_id)
    assert refused.exit_code == 1 and "cancelled" in refused.output and len(refused.output.splitlines()) == 1
    ca_list = json.loads(run("cards", "ca", "list", "--json").output)
    assert [row["key_set"] for row in ca_list] == ["card-ca-420100"]
    database = Database(cli_env)
    try:
        assert [a for _, a, t in actions(database) if t == card_id] == [
            "card.issued",
            "card.lost",
            "card.restored",
            "card.cancelled",
        ]
        assert all(actor.startswith("cli:") for actor, _, _ in actions(database))
    finally:
        database.dispose()


def test_cli_issue_writes_ef06_from_the_register(cli_env: str, tmp_path: Path) -> None:
    citizen = _cli_citizen()
    out = tmp_path / "card.json"
    assert run("cards", "issue", "--citizen", citizen, "--out", str(out)).exit_code == 0
    holder = load_card_file(out).holder
    assert holder is not None and holder.ssn == CITIZEN[1] and holder.name == CITIZEN[0]


def test_cli_ca_writes_the_region_s_ca_certificate(cli_env: str, tmp_path: Path) -> None:
    citizen = _cli_citizen()
    card_path = tmp_path / "card.json"
    assert run("cards", "issue", "--citizen", citizen, "--out", str(card_path)).exit_code == 0
    result = run("cards", "ca", "420100")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("-----BEGIN CERTIFICATE-----")
    (ca_certificate,) = x509.load_pem_x509_certificates(result.stdout.encode())
    load_card_file(card_path).certificate.verify_directly_issued_by(ca_certificate)
    assert "PRIVATE" not in result.stdout

    pem_path = tmp_path / "ca.pem"
    written = run("cards", "ca", "420100", "--out", str(pem_path))
    assert written.exit_code == 0 and written.stdout == ""
    assert pem_path.read_text() == result.stdout
    assert run("cards", "ca", "--out", str(pem_path), "420100").exit_code == 0
    assert run("cards", "ca", "cert", "420100").stdout == result.stdout

    # While the region's CA is rotated, verifiers get both: the active one first.
    assert run("cards", "ca", "create", "--region", "420100").output.startswith("created pending CA")
    both = x509.load_pem_x509_certificates(run("cards", "ca", "420100").stdout.encode())
    assert both[0] == ca_certificate and len(both) == 2

    for region, message in (("440300", "has no card-issuer CA"), ("ABC", "6-digit")):
        refused = run("cards", "ca", region)
        assert refused.exit_code == 1 and message in refused.output, refused.output
        assert refused.output.startswith("Error: ") and len(refused.output.strip().splitlines()) == 1
    missing_dir = run("cards", "ca", "420100", "--out", str(tmp_path / "no" / "ca.pem"))
    assert missing_dir.exit_code == 1 and "no such directory" in missing_dir.output


def test_cli_errors_are_one_line(cli_env: str, tmp_path: Path) -> None:
    citizen = _cli_citizen()
    out = tmp_path / "card.json"
    for args in (
        ("cards", "show", "0" * 32),
        ("cards", "show", "nonsense"),
        ("cards", "lost", "X00000000"),
        ("cards", "issue", "--citizen", "nobody", "--out", str(out)),
        ("cards", "issue", "--citizen", citizen, "--out", str(out), "--region", "ABC"),
        ("cards", "issue", "--citizen", citizen, "--out", str(out), "--pin", "12"),
        ("cards", "issue", "--citizen", citizen, "--out", str(tmp_path / "no" / "dir.json")),
        ("cards", "ca", "create", "--region", "0"),
    ):
        result = run(*args)
        assert result.exit_code == 1, (args, result.output)
        assert result.output.startswith("Error: ") and len(result.output.strip().splitlines()) == 1
    assert not out.exists()
    assert json.loads(run("cards", "list", "--json").output)["total"] == 0
    assert run("cards", "issue", "--citizen", citizen, "--out", str(out)).exit_code == 0
    again = run("cards", "issue", "--citizen", citizen, "--out", str(out))
    assert again.exit_code == 1 and "--force" in again.output
    assert run("cards", "ca", "create", "--region", "440300").output.startswith("created active CA")
    assert run("cards", "ca", "create", "--region", "440300").output.startswith("created pending CA")


# --- admin API ---------------------------------------------------------------------------------------------


def _admin_token(idp: LiveIdp, scope: str = "admin") -> dict[str, str]:
    client_id, secret = idp.register_client(name="Card service desk", kind="operator", scope=scope)
    assert secret
    token = requests.post(
        f"{idp.base_url}/token",
        auth=(client_id, secret),
        data={"grant_type": "client_credentials", "scope": scope},
        timeout=5,
    ).json()
    return {"Authorization": f"Bearer {token['access_token']}"}


def test_admin_api(idp: LiveIdp) -> None:
    svc = idp.services
    with svc.database.session() as session:
        card = issue_card(
            session, svc.keks, citizen_id=idp.citizens["zhang"], actor="t", now=idp.clock()
        ).card
        card_id, number = card.card_id, card.card_number
    headers = _admin_token(idp)
    base = f"{idp.base_url}/api/v1/admin/cards"
    listing = requests.get(base, headers=headers, timeout=5).json()
    assert listing["total"] == 1 and listing["cards"][0]["card_id"] == card_id
    assert requests.get(f"{base}/{number}", headers=headers, timeout=5).json()["card_id"] == card_id
    lost = requests.post(f"{base}/{card_id}/lost", headers=headers, timeout=5)
    assert lost.status_code == 200 and lost.json()["status"] == "lost"
    again = requests.post(f"{base}/{card_id}/lost", headers=headers, timeout=5)
    assert again.status_code == 409 and again.json()["error"] == "card_status_conflict"
    assert requests.get(f"{base}?status=lost", headers=headers, timeout=5).json()["total"] == 1
    assert requests.post(f"{base}/{card_id}/restore", headers=headers, timeout=5).json()["status"] == "active"
    assert (
        requests.post(f"{base}/{card_id}/suspend", headers=headers, timeout=5).json()["status"] == "suspended"
    )
    assert (
        requests.post(f"{base}/{card_id}/cancel", headers=headers, timeout=5).json()["status"] == "cancelled"
    )
    for method, url, status, error in (
        ("POST", f"{base}/{card_id}/explode", 400, "invalid_request"),
        ("GET", f"{base}/{'F' * 32}", 404, "card_not_found"),
        ("GET", f"{base}?status=gone", 400, "invalid_card_status"),
        ("GET", f"{base}?limit=x", 400, "invalid_request"),
    ):
        response = requests.request(method, url, headers=headers, timeout=5)
        assert (response.status_code, response.json()["error"]) == (status, error)
    assert requests.get(base, timeout=5).status_code == 401
    other = _admin_token(idp, scope="realname:verify")
    assert requests.post(f"{base}/{card_id}/restore", headers=other, timeout=5).status_code == 403
    with svc.database.session() as session:
        assert get_card(session, card_id).status == "cancelled"
        rows = session.execute(
            select(AuditEvent.actor, AuditEvent.action)
            .where(AuditEvent.target_id == card_id)
            .order_by(AuditEvent.seq)
        ).all()
    assert [action for _, action in rows] == [
        "card.issued",
        "card.lost",
        "card.restored",
        "card.suspended",
        "card.cancelled",
    ]
    assert all(actor.startswith("client:") for actor, action in rows if action != "card.issued")


# --- migration ---------------------------------------------------------------------------------------------


def test_cards_migration_up_and_down_with_data(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'migrate.sqlite3'}"
    dbadmin.upgrade(url)
    dbadmin.check(url)
    app = create_app(env="test", database_url=url, plugins=[])
    initialise_keys(app)
    svc: Services = app.extensions["onecard"]
    with svc.database.session() as session:
        citizen = create_citizen(session, svc.pii_cipher(), *CITIZEN, now=svc.now())
        card_id = issue_card(session, svc.keks, citizen_id=citizen.id, actor="t", now=svc.now()).card.card_id
    svc.database.dispose()
    dbadmin.downgrade(url, "0001")
    database = Database(url)
    try:
        assert "cards" not in inspect(database.engine).get_table_names()
        assert "citizens" in inspect(database.engine).get_table_names()
    finally:
        database.dispose()
    dbadmin.upgrade(url)
    with svc.database.session() as session:
        assert list_cards(session)[0] == 0
    assert len(card_id) == 32


def test_date_helpers() -> None:
    from idp.cards.issuance import _add_years

    assert _add_years(dt.date(2024, 2, 29), 10) == dt.date(2034, 2, 28)
