"""The bridge's card protocol (reader_bridge.card) over the in-process virtual transport, T=1 and T=0."""

from __future__ import annotations

import dataclasses

import pytest
from cryptography import x509

from reader_bridge.apdu import CommandAPDU, Protocol, ResponseAPDU, check_status, error_for_status
from reader_bridge.card import SocialSecurityCard, encode_pin
from reader_bridge.emulator import CardEmulator
from reader_bridge.errors import (
    ApplicationLockedError,
    CardRemovedError,
    CardResponseError,
    ConditionsNotSatisfiedError,
    InvalidPinFormatError,
    PinBlockedError,
    SecurityStatusError,
    UnexpectedStatusError,
    UnsupportedCardError,
    WrongPinError,
)
from reader_bridge.virtual import VIRTUAL_READER_NAME, VirtualTerminal
from sdk.card_auth import create_card_auth_token, signed_data, verify_card_auth_token
from sdk.card_file import VirtualCardFile
from tests.bridge.faulty_cards import CardWithoutAcse
from tests.bridge.pki import NOW, TestCA

ORIGIN = "https://login.onecard.test"
NONCE = bytes(range(32))


@pytest.fixture(params=["T=1", "T=0"])
def protocol(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _session_card(card: VirtualCardFile, protocol: str) -> tuple[VirtualTerminal, CardEmulator]:
    emulator = CardEmulator(card, protocol=protocol)  # type: ignore[arg-type]
    return VirtualTerminal(emulator), emulator


def test_full_login_sequence(card: VirtualCardFile, ca: TestCA, protocol: str) -> None:
    terminal, _ = _session_card(card, protocol)
    with terminal.connect(VIRTUAL_READER_NAME) as session:
        assert session.protocol == protocol
        ssc = SocialSecurityCard(session)
        info = ssc.read_card_info()
        assert (
            info.card_id == card.card_id and info.expiry_date == card.expiry_date and info.version == "3.00"
        )
        certificate = ssc.read_certificate()
        assert certificate == card.certificate_der
        assert ssc.pin_status().tries_left == 3
        ssc.verify_pin("123456")
        assert ssc.pin_status().verified
        signature = ssc.internal_authenticate(signed_data(ORIGIN, NONCE))
    token = create_card_auth_token(
        card_certificate_der=certificate, signature=signature, card_id=info.card_id
    )
    verified = verify_card_auth_token(
        token, expected_origin=ORIGIN, expected_nonce=NONCE, trusted_issuers=[ca.certificate], now=NOW
    )
    assert verified.card_id == card.card_id and verified.card_number == "X00000019"
    # T=0 costs extra round trips (6Cxx and 61xx), T=1 none.
    assert ssc.round_trips == (24 if protocol == "T=0" else 13)


def test_wrong_pins_then_blocked(card: VirtualCardFile, protocol: str) -> None:
    terminal, _ = _session_card(card, protocol)
    with terminal.connect(VIRTUAL_READER_NAME) as session:
        ssc = SocialSecurityCard(session)
        ssc.select_acse()
        for expected in (2, 1, 0):
            with pytest.raises(WrongPinError) as wrong:
                ssc.verify_pin("000000")
            assert wrong.value.tries_left == expected
        assert ssc.pin_status().blocked
        with pytest.raises(PinBlockedError) as blocked:
            ssc.verify_pin("123456")
        assert blocked.value.sw == 0x6983
        with pytest.raises(SecurityStatusError):
            ssc.internal_authenticate(bytes(64))


def test_session_end_resets_pin_state(card: VirtualCardFile, protocol: str) -> None:
    terminal, _ = _session_card(card, protocol)
    with terminal.connect(VIRTUAL_READER_NAME) as session:
        ssc = SocialSecurityCard(session)
        ssc.select_acse()
        ssc.verify_pin("123456")
    with terminal.connect(VIRTUAL_READER_NAME) as session:
        ssc = SocialSecurityCard(session)
        with pytest.raises(ConditionsNotSatisfiedError):
            ssc.internal_authenticate(bytes(64))  # nothing selected after the reset
        ssc.select_acse()
        with pytest.raises(SecurityStatusError):
            ssc.internal_authenticate(bytes(64))


def test_change_pin(card: VirtualCardFile, protocol: str) -> None:
    terminal, emulator = _session_card(card, protocol)
    with terminal.connect(VIRTUAL_READER_NAME) as session:
        ssc = SocialSecurityCard(session)
        ssc.select_ssse()
        ssc.change_pin("123456", "654321")
        assert ssc.pin_status().verified
    assert emulator.card.pin == "654321"


def test_certificate_of_many_chunks(ca: TestCA, card: VirtualCardFile) -> None:
    """A certificate longer than 0xFF bytes per chunk still reads whole (several READ BINARYs)."""
    terminal, _ = _session_card(card, "T=1")
    with terminal.connect(VIRTUAL_READER_NAME) as session:
        ssc = SocialSecurityCard(session)
        assert x509.load_der_x509_certificate(ssc.read_certificate()).subject == card.certificate.subject


def test_pin_encoding_is_checked_before_the_card() -> None:
    assert encode_pin("012345") == bytes.fromhex("012345")
    for bad in ("12345", "1234567", "12a456", "١٢٣٤٥٦"):
        with pytest.raises(InvalidPinFormatError):
            encode_pin(bad)


def test_status_word_table() -> None:
    assert isinstance(error_for_status(0x63C2), WrongPinError)
    assert error_for_status(0x63C2).tries_left == 2  # type: ignore[attr-defined]
    assert isinstance(error_for_status(0x9303), ApplicationLockedError)
    assert isinstance(error_for_status(0x6F00), UnexpectedStatusError)
    assert check_status(ResponseAPDU(b"\x01", 0x9000)).data == b"\x01"


def test_apdu_rendering_per_protocol() -> None:
    command = CommandAPDU(0x00, 0x88, 0x00, 0x01, bytes(64), le=256)
    assert command.to_bytes("T=1")[-1] == 0x00 and len(command.to_bytes("T=1")) == 70
    assert len(command.to_bytes("T=0")) == 69  # case 4 travels without Le in T=0
    assert CommandAPDU.parse(command.to_bytes("T=1")) == command


def test_expired_card_date_is_reported(ca: TestCA, card: VirtualCardFile) -> None:
    older = dataclasses.replace(card, version="2.00")
    terminal, _ = _session_card(older, "T=1")
    with terminal.connect(VIRTUAL_READER_NAME) as session:
        assert SocialSecurityCard(session).read_card_info().version == "2.00"


class _AnsweringChannel:
    """A reader that hands back ``answer`` for every command, whatever the card would have said."""

    protocol: Protocol = "T=1"

    def __init__(self, answer: bytes) -> None:
        self.answer = answer

    def transmit(self, apdu: bytes) -> bytes:
        return self.answer


def test_no_answer_at_all_means_the_card_was_removed() -> None:
    # pcscd's SCardTransmit "succeeds" with zero bytes when the card is pulled mid-command (see test_pcsc).
    with pytest.raises(CardRemovedError) as removed:
        SocialSecurityCard(_AnsweringChannel(b"")).select_ssse()
    assert removed.value.error == "card_removed"
    # Less than a status word, but something: a card that answers wrongly, not a missing one.
    with pytest.raises(CardResponseError):
        SocialSecurityCard(_AnsweringChannel(b"\x90")).select_ssse()


def test_select_acse_not_found_is_an_unsupported_card(card: VirtualCardFile) -> None:
    terminal = VirtualTerminal(CardWithoutAcse(dataclasses.replace(card, version="2.00")))
    with terminal.connect(VIRTUAL_READER_NAME) as session:
        ssc = SocialSecurityCard(session)
        assert ssc.read_card_info().version == "2.00"
        with pytest.raises(UnsupportedCardError) as unsupported:
            ssc.read_certificate()
    assert unsupported.value.to_dict()["error"] == "unsupported_card"
    assert "does not support online login" in unsupported.value.description
