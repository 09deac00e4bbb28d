"""The bridge's pyscard transport against a real PC/SC stack: pcscd + vpcd + the card emulator (DESIGN §9)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from reader_bridge.card import SocialSecurityCard
from reader_bridge.emulator import CardEmulator
from reader_bridge.errors import (
    CardRemovedError,
    NoCardError,
    NoReaderError,
    PinBlockedError,
    PinCancelledError,
    ReaderBusyError,
    SecurityStatusError,
    VirtualReaderRefusedError,
    WrongPinError,
)
from reader_bridge.operations import Operation, Settings, authenticate, find_card
from reader_bridge.pin import PinRequest
from sdk.card_auth import create_card_auth_token, signed_data, verify_card_auth_token
from sdk.card_file import VirtualCardFile, load_card_file, save_card_file
from tests.bridge.faulty_cards import PulledMidCommand, StickyPinCard
from tests.bridge.pcsc_env import inserted
from tests.bridge.pki import NOW, TestCA

pytestmark = pytest.mark.pcsc

ORIGIN = "https://login.onecard.test"
NONCE = bytes(range(32, 64))


def _emulator(path: Path, protocol: str | None = None) -> CardEmulator:
    def store(card: VirtualCardFile) -> None:
        save_card_file(path, card)

    return CardEmulator(load_card_file(path), protocol=protocol, store=store)  # type: ignore[arg-type]


def _terminal(reader: str, *, dev_mode: bool = True):  # type: ignore[no-untyped-def]
    from reader_bridge.transport import PcscTerminal

    return PcscTerminal(dev_mode=dev_mode, reader_names=[reader])


@pytest.mark.parametrize("protocol", ["T=1", "T=0"])
def test_login_over_pcsc(card_path: Path, ca: TestCA, slot: tuple[str, int], protocol: str) -> None:
    reader, port = slot
    with inserted(_emulator(card_path, protocol), reader, port):
        terminal = _terminal(reader)
        (state,) = terminal.readers()
        assert state.card_present and state.virtual and b"ONECARD-SSC3" in state.atr
        with terminal.connect(reader) as session:
            assert session.protocol == protocol  # pcscd negotiated what the ATR offers
            card = SocialSecurityCard(session)
            info = card.read_card_info()
            certificate = card.read_certificate()
            assert certificate == load_card_file(card_path).certificate_der
            card.select_acse()
            assert card.pin_status().tries_left == 3
            for expected in (2, 1):
                with pytest.raises(WrongPinError) as wrong:
                    card.verify_pin("999999")
                assert wrong.value.tries_left == expected
            assert load_card_file(card_path).tries_left == 1  # persisted like EEPROM
            card.verify_pin("123456")
            signature = card.internal_authenticate(signed_data(ORIGIN, NONCE))
        token = create_card_auth_token(
            card_certificate_der=certificate, signature=signature, card_id=info.card_id
        )
        verified = verify_card_auth_token(
            token, expected_origin=ORIGIN, expected_nonce=NONCE, trusted_issuers=[ca.certificate], now=NOW
        )
        assert verified.card_id == info.card_id
        # The bridge reset the card on disconnect: the verified PIN did not survive the operation.
        with terminal.connect(reader) as session:
            card = SocialSecurityCard(session)
            card.select_acse()
            status = card.pin_status()
            assert not status.verified and status.tries_left == 3


def test_blocked_pin_over_pcsc(card_path: Path, slot: tuple[str, int]) -> None:
    reader, port = slot
    with inserted(_emulator(card_path), reader, port), _terminal(reader).connect(reader) as session:
        card = SocialSecurityCard(session)
        card.select_ssse()
        for expected in (2, 1, 0):
            with pytest.raises(WrongPinError) as wrong:
                card.verify_pin("000000")
            assert wrong.value.tries_left == expected
        with pytest.raises(PinBlockedError) as blocked:
            card.verify_pin("123456")
        assert blocked.value.sw == 0x6983
        assert "service counter" in blocked.value.description
    assert load_card_file(card_path).tries_left == 0


def test_card_removed_mid_operation(card_path: Path, slot: tuple[str, int]) -> None:
    reader, port = slot
    with inserted(_emulator(card_path), reader, port) as client:
        with pytest.raises(CardRemovedError) as removed, _terminal(reader).connect(reader) as session:
            card = SocialSecurityCard(session)
            card.read_card_info()
            client.stop()  # pull the card
            card.read_certificate()
        assert removed.value.error == "card_removed"
        assert "Insert the card" in removed.value.description
        client.start()  # put it back so the fixture's removal check sees the same card leave


def test_no_card_and_no_reader(slot: tuple[str, int]) -> None:
    reader, _port = slot
    terminal = _terminal(reader)
    (state,) = terminal.readers()
    assert not state.card_present
    with pytest.raises(NoCardError), terminal.connect(reader):
        pass
    operation = Operation("op", "authenticate", ORIGIN)
    with pytest.raises(NoCardError):
        find_card(terminal, operation, timeout=0.3, clock=_fake_clock())
    assert [event.type for event in operation.events_after(0, 0)] == ["insert_card"]

    nothing = _terminal("No Such Reader 00 00")
    assert nothing.readers() == []
    operation = Operation("op2", "authenticate", ORIGIN)
    with pytest.raises(NoReaderError):
        find_card(nothing, operation, timeout=0.3, clock=_fake_clock())
    assert [event.type for event in operation.events_after(0, 0)] == ["no_reader"]


def test_virtual_reader_refused_without_dev_mode(card_path: Path, slot: tuple[str, int]) -> None:
    reader, port = slot
    with inserted(_emulator(card_path), reader, port):
        with pytest.raises(VirtualReaderRefusedError), _terminal(reader, dev_mode=False).connect(reader):
            pass
        assert load_card_file(card_path).tries_left == 3  # refused before any APDU


def test_exclusive_access_and_no_pinpad(card_path: Path, slot: tuple[str, int]) -> None:
    reader, port = slot
    with inserted(_emulator(card_path), reader, port):
        terminal = _terminal(reader)
        with terminal.connect(reader) as session:
            assert session.pinpad() is None  # vpcd offers no PC/SC part 10 features
            with pytest.raises(ReaderBusyError), terminal.connect(reader):
                pass


class _ScriptedPins:
    """A PIN source answering from a list (what a cardholder would type)."""

    kind = "scripted"

    def __init__(self, *pins: str) -> None:
        self.pins = list(pins)
        self.asked: list[int] = []

    def ask_pin(self, request: PinRequest, announce: object) -> str:
        assert callable(announce)
        announce({})
        self.asked.append(request.tries_left)
        if not self.pins:
            raise PinCancelledError("the cardholder cancelled")
        return self.pins.pop(0)

    def ask_pin_change(self, request: PinRequest, announce: object) -> tuple[str, str]:
        raise NotImplementedError


def _fake_clock() -> Callable[[], float]:
    ticks = iter(float(i) for i in range(1000))
    return lambda: next(ticks)


def test_authenticate_operation_over_pcsc(card_path: Path, ca: TestCA, slot: tuple[str, int]) -> None:
    reader, port = slot
    with inserted(_emulator(card_path, "T=0"), reader, port):
        operation = Operation("op", "authenticate", ORIGIN)
        pins = _ScriptedPins("111111", "123456")
        token = authenticate(
            _terminal(reader), pins, operation, origin=ORIGIN, nonce=NONCE, settings=Settings(card_timeout=5)
        )
    events = [(event.type, event.data.get("tries_left")) for event in operation.events_after(0, 0)]
    assert events == [("reading_card", None), ("enter_pin", 3), ("pin_wrong", 2), ("enter_pin", 2)]
    assert pins.asked == [3, 2]
    verify_card_auth_token(
        token, expected_origin=ORIGIN, expected_nonce=NONCE, trusted_issuers=[ca.certificate], now=NOW
    )


def test_card_pulled_during_a_command(card_path: Path, slot: tuple[str, int]) -> None:
    """Pulled while the card works on READ BINARY: pcscd's transmit "succeeds" with no bytes at all."""
    reader, port = slot
    emulator = PulledMidCommand(load_card_file(card_path), ins=0xB0)
    with inserted(emulator, reader, port) as client:
        emulator.pull = client.stop
        with pytest.raises(CardRemovedError) as removed, _terminal(reader).connect(reader) as session:
            card = SocialSecurityCard(session)
            card.read_card_info()
            card.read_certificate()
        assert removed.value.error == "card_removed"
        client.start()  # put it back so the fixture's removal check sees the same card leave


def test_a_card_claiming_a_verified_pin_gets_the_typed_pin_over_pcsc(
    card_path: Path, slot: tuple[str, int]
) -> None:
    reader, port = slot
    emulator = StickyPinCard(load_card_file(card_path))
    with inserted(emulator, reader, port):
        terminal = _terminal(reader)
        first = Operation("op1", "authenticate", ORIGIN)
        authenticate(terminal, _ScriptedPins("123456"), first, origin=ORIGIN, nonce=NONCE)
        resets = emulator.resets
        with terminal.connect(reader) as session:
            assert emulator.resets > resets  # the bridge reset the card before its first command
            card = SocialSecurityCard(session)
            card.select_acse()
            assert card.pin_status().verified  # ...and the faulty card kept its PIN state all the same
        pins = _ScriptedPins()  # the cardholder types nothing
        second = Operation("op2", "authenticate", ORIGIN)
        with pytest.raises(PinCancelledError):
            authenticate(terminal, pins, second, origin=ORIGIN, nonce=NONCE)
        assert pins.asked == [3]
        assert "enter_pin" in [event.type for event in second.events_after(0, 0)]


def test_a_pin_another_program_left_verified_is_forgotten(card_path: Path, slot: tuple[str, int]) -> None:
    """Another program verifies the PIN in a shared connection and leaves the card as it is (no reset):
    the bridge's session starts from a reset card all the same."""
    from smartcard import scard

    reader, port = slot
    with inserted(_emulator(card_path), reader, port):
        hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        assert hresult == scard.SCARD_S_SUCCESS
        try:
            hresult, handle, _protocol = scard.SCardConnect(
                context, reader, scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T1
            )
            assert hresult == scard.SCARD_S_SUCCESS
            pci = scard.SCARD_PCI_T1
            for apdu in ("00A4040009D15600000541435345", "0020000003123456"):
                hresult, response = scard.SCardTransmit(handle, pci, list(bytes.fromhex(apdu)))
                assert hresult == scard.SCARD_S_SUCCESS and bytes(response) == b"\x90\x00"
            scard.SCardDisconnect(handle, scard.SCARD_LEAVE_CARD)
        finally:
            scard.SCardReleaseContext(context)
        with _terminal(reader).connect(reader) as session:
            card = SocialSecurityCard(session)
            card.select_acse()
            with pytest.raises(SecurityStatusError):
                card.internal_authenticate(signed_data(ORIGIN, NONCE))
