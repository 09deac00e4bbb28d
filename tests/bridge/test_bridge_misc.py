"""Layering, PIN sources (PIN pad structure, terminal prompt) and the CLI of the bridge."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from reader_bridge.apdu import Protocol
from reader_bridge.card import SocialSecurityCard
from reader_bridge.cli import _pin_source, build_parser, main
from reader_bridge.emulator import CardEmulator
from reader_bridge.errors import PinCancelledError, PinPadUnavailableError
from reader_bridge.operations import Operation, Settings, authenticate
from reader_bridge.pin import (
    VERIFY_TEMPLATE,
    Announce,
    DialogPinSource,
    PinPadPinSource,
    PinRequest,
    TerminalPinSource,
    build_verify_pin_structure,
)
from reader_bridge.virtual import VIRTUAL_READER_NAME, VirtualTerminal
from sdk.card_file import VirtualCardFile, load_card_file

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_bridge_loads_no_pyscard_and_no_server_framework() -> None:
    code = (
        "import sys, reader_bridge, reader_bridge.server, reader_bridge.cli, reader_bridge.operations, "
        "reader_bridge.virtual, reader_bridge.vpcd, reader_bridge.emulator, sdk.card_auth, sdk.card_file\n"
        "bad = [m for m in ('smartcard', 'flask', 'sqlalchemy', 'idp', 'wallet') if m in sys.modules]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_only_transport_imports_smartcard() -> None:
    offenders = [
        path.name
        for path in (ROOT / "reader_bridge").glob("*.py")
        if path.name != "transport.py"
        and ("import smartcard" in path.read_text() or "from smartcard" in path.read_text())
    ]
    assert offenders == []


def test_verify_pin_structure_layout() -> None:
    structure = build_verify_pin_structure(VERIFY_TEMPLATE, timeout_s=30)
    assert structure == bytes.fromhex("1E1E81030006060201090400000000080000000020000003000000")


class _PinPad:
    """A reader keypad: types ``pin`` into the template and sends it to the card."""

    def __init__(self, emulator: CardEmulator, pin: str) -> None:
        self.emulator, self.pin = emulator, pin
        self.templates: list[bytes] = []
        self.timeouts: list[int] = []

    def verify_pin(self, command_template: bytes, *, timeout_s: int) -> bytes:
        self.templates.append(command_template)
        self.timeouts.append(timeout_s)
        return self.emulator.process(command_template[:5] + bytes.fromhex(self.pin))


class _PinPadSession:
    def __init__(self, emulator: CardEmulator, pinpad: _PinPad | None) -> None:
        self._emulator, self._pinpad = emulator, pinpad

    @property
    def protocol(self) -> Protocol:
        return self._emulator.protocol

    reader = "PIN pad reader"
    atr = b""

    def transmit(self, apdu: bytes) -> bytes:
        return self._emulator.process(apdu)

    def pinpad(self) -> _PinPad | None:
        return self._pinpad


class _PinPadTerminal(VirtualTerminal):
    def __init__(self, emulator: CardEmulator, pinpad: _PinPad | None) -> None:
        super().__init__(emulator)
        self._pinpad = pinpad

    @contextmanager
    def connect(self, reader: str) -> Iterator[_PinPadSession]:  # type: ignore[override]
        assert self.emulator is not None
        self.emulator.power_on()
        yield _PinPadSession(self.emulator, self._pinpad)


def test_secure_pin_entry_on_a_pinpad(card: VirtualCardFile) -> None:
    emulator = CardEmulator(card)
    pinpad = _PinPad(emulator, "123456")
    operation = Operation("op", "authenticate", "https://login.onecard.test")
    token = authenticate(
        _PinPadTerminal(emulator, pinpad),
        PinPadPinSource(),
        operation,
        origin="https://login.onecard.test",
        nonce=bytes(32),
        settings=Settings(card_timeout=1),
    )
    assert token["card_id"] == card.card_id.hex().upper()
    assert pinpad.templates == [VERIFY_TEMPLATE]
    assert pinpad.timeouts == [int(Settings().pin_timeout)]  # the reader waits as long as the dialog would
    assert [e.type for e in operation.events_after(0, 0)] == ["reading_card", "enter_pin"]
    assert operation.events_after(0, 0)[1].data == {"tries_left": 3, "pinpad": True}


def test_pinpad_source_without_a_pinpad(card: VirtualCardFile) -> None:
    emulator = CardEmulator(card)
    operation = Operation("op", "authenticate", "https://login.onecard.test")
    with pytest.raises(PinPadUnavailableError):
        authenticate(
            _PinPadTerminal(emulator, None),
            PinPadPinSource(),
            operation,
            origin="https://login.onecard.test",
            nonce=bytes(32),
            settings=Settings(card_timeout=1),
        )


def test_a_kiosk_prefers_the_pinpad_and_falls_back_to_its_dialog(card: VirtualCardFile) -> None:
    """``--pin-source auto`` (the kiosk profile's default): the reader's keypad where there is one; without
    one, the dialog asks, as it would have anyway."""
    emulator = CardEmulator(card)
    pinpad = _PinPad(emulator, "123456")
    operation = Operation("op", "authenticate", "https://login.onecard.test")
    source = DialogPinSource(prefer_pinpad=True)
    authenticate(
        _PinPadTerminal(emulator, pinpad),
        source,
        operation,
        origin="https://login.onecard.test",
        nonce=bytes(32),
        settings=Settings(card_timeout=1),
    )
    assert pinpad.templates == [VERIFY_TEMPLATE]
    assert operation.events_after(0, 0)[1].data == {"tries_left": 3, "pinpad": True}

    asked: list[PinRequest] = []

    class _Asked(DialogPinSource):
        def ask_pin(self, request: PinRequest, announce: Announce) -> str:
            asked.append(request)
            announce({"pin_url": "http://127.0.0.1:47400/pin/x"})
            return "123456"

    operation = Operation("op2", "authenticate", "https://login.onecard.test")
    authenticate(
        _PinPadTerminal(emulator, None),
        _Asked(prefer_pinpad=True),
        operation,
        origin="https://login.onecard.test",
        nonce=bytes(32),
        settings=Settings(card_timeout=1),
    )
    assert len(asked) == 1 and "pinpad" not in operation.events_after(0, 0)[1].data


@pytest.mark.parametrize(
    ("argv", "kind"),
    [
        (["serve", "--kiosk", "https://login.example"], "pinpad-or-dialog"),
        (["serve", "--kiosk", "https://login.example", "--pin-source", "dialog"], "dialog"),
        (["serve"], "dialog"),
        (["serve", "--pin-source", "auto"], "pinpad-or-dialog"),
        (["serve", "--pin-source", "pinpad"], "pinpad"),
    ],
)
def test_the_kiosk_profile_prefers_a_pinpad_unless_told(argv: list[str], kind: str) -> None:
    args = build_parser().parse_args([*argv, "--no-open-dialog"])
    assert _pin_source(args.pin_source, kiosk=args.kiosk is not None, open_dialog=False).kind == kind


def test_terminal_pin_source_reprompts_and_cancels() -> None:
    answers = iter(["12", "123456"])
    source = TerminalPinSource(prompt=lambda _: next(answers))
    announced: list[object] = []
    assert source.ask_pin(PinRequest("verify", 3, 10), announced.append) == "123456"
    assert announced == [{}]

    def interrupted(_: str) -> str:
        raise KeyboardInterrupt

    with pytest.raises(PinCancelledError):
        TerminalPinSource(prompt=interrupted).ask_pin(PinRequest("verify", 3, 10), announced.append)


def test_in_process_virtual_card_needs_dev_mode(card: VirtualCardFile) -> None:
    from reader_bridge.errors import VirtualReaderRefusedError

    terminal = VirtualTerminal(CardEmulator(card), dev_mode=False)
    with pytest.raises(VirtualReaderRefusedError), terminal.connect(VIRTUAL_READER_NAME):
        pass


def test_cli_arguments(card_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(
        [
            "serve",
            "--origin",
            "https://login.onecard.test",
            "--dev",
            "--virtual-card",
            str(card_path),
            "--pin-source",
            "terminal",
        ]
    )
    assert (args.port, args.pin_source, args.dev) == (47400, "terminal", True)
    assert main(["serve", "--virtual-card", str(card_path), "--origin", "https://x.example"]) == 2
    assert "--dev" in capsys.readouterr().err
    args = build_parser().parse_args(["emulate", str(card_path), "--protocol", "T=0"])
    assert (args.port, args.protocol) == (35963, "T=0")


def test_cli_pin_timeout(card_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from reader_bridge.cli import bridge_config

    base = ["serve", "--origin", "https://login.onecard.test", "--dev", "--virtual-card", str(card_path)]
    args = build_parser().parse_args(base)
    assert bridge_config(args, frozenset()).settings.pin_timeout == Settings().pin_timeout == 60
    args = build_parser().parse_args([*base, "--pin-timeout", "45"])
    assert bridge_config(args, frozenset()).settings.pin_timeout == 45
    for bad in ("nan", "inf", "0", "-5", "601", "soon"):
        with pytest.raises(SystemExit):
            build_parser().parse_args([*base, "--pin-timeout", bad])
    assert "--pin-timeout" in capsys.readouterr().err


def test_cli_status_without_a_bridge(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--port", "1"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["bridge"] == "not running"


def test_emulate_writes_tries_back_to_the_file(card_path: Path) -> None:
    from reader_bridge.cli import _emulator_for

    emulator = _emulator_for(card_path, "T=0")
    SocialSecurityCard(_PinPadSession(emulator, None)).select_acse()
    emulator.process(bytes.fromhex("0020000003000000"))
    assert load_card_file(card_path).tries_left == 2
