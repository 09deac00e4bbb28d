"""The kiosk profile's card-presence route (issue 13 item 1: the visit ends when the card is pulled):
``GET /v1/kiosk/card`` over real HTTP with the in-process virtual card."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from reader_bridge.cli import bridge_config, build_parser
from reader_bridge.emulator import CardEmulator
from reader_bridge.operations import Settings
from reader_bridge.pin import DialogPinSource
from reader_bridge.server import BridgeConfig, parse_origins
from reader_bridge.virtual import VirtualTerminal
from sdk.card_file import VirtualCardFile
from tests.bridge.local_api import EVIL, ORIGIN, Client, serving

PATH = "/v1/kiosk/card"


@pytest.fixture
def terminal(card: VirtualCardFile) -> VirtualTerminal:
    return VirtualTerminal(CardEmulator(card))


def _config(terminal: VirtualTerminal, *, kiosk: bool) -> BridgeConfig:
    return BridgeConfig(
        allowed_origins=parse_origins([ORIGIN]),
        terminal=terminal,
        pin_source=DialogPinSource(),
        settings=Settings(card_timeout=5, pin_timeout=10),
        dev_mode=True,
        kiosk=kiosk,
    )


@pytest.fixture
def kiosk(terminal: VirtualTerminal) -> Iterator[Client]:
    with serving(_config(terminal, kiosk=True)) as client:
        yield client


def test_answers_at_once_without_present(kiosk: Client) -> None:
    status, headers, body = kiosk.json("GET", PATH)
    assert status == 200 and body == {"card_present": True}
    assert headers["access-control-allow-origin"] == ORIGIN
    assert headers["cache-control"] == "no-store"


def test_long_poll_answers_when_the_card_is_pulled(kiosk: Client, terminal: VirtualTerminal) -> None:
    puller = threading.Timer(0.3, terminal.remove)
    puller.start()
    started = time.monotonic()
    try:
        status, _, body = kiosk.json("GET", f"{PATH}?present=true&wait=10")
    finally:
        puller.join()
    assert status == 200 and body == {"card_present": False}
    assert 0.2 < time.monotonic() - started < 5


def test_long_poll_answers_when_a_card_comes(
    kiosk: Client, terminal: VirtualTerminal, card: VirtualCardFile
) -> None:
    terminal.remove()
    assert kiosk.json("GET", f"{PATH}?present=true&wait=10")[2] == {"card_present": False}  # differs: at once
    inserter = threading.Timer(0.3, terminal.insert, [CardEmulator(card)])
    inserter.start()
    try:
        body = kiosk.json("GET", f"{PATH}?present=false&wait=10")[2]
    finally:
        inserter.join()
    assert body == {"card_present": True}


def test_long_poll_times_out_with_the_same_answer(kiosk: Client) -> None:
    started = time.monotonic()
    status, _, body = kiosk.json("GET", f"{PATH}?present=true&wait=0.3")
    assert status == 200 and body == {"card_present": True}
    assert 0.25 < time.monotonic() - started < 5


def test_a_missing_reader_is_no_card(kiosk: Client, terminal: VirtualTerminal) -> None:
    terminal.reader_attached = False
    assert kiosk.json("GET", f"{PATH}?present=true&wait=5")[2] == {"card_present": False}


def test_only_the_kiosk_origin(kiosk: Client) -> None:
    status, headers, body = kiosk.json("GET", PATH, origin=EVIL)
    assert status == 403 and body["error"] == "origin_not_allowed"
    assert not any(name.startswith("access-control-") for name in headers)
    # Not even a local client without Origin: card presence is for the kiosk page alone.
    assert kiosk.json("GET", PATH, origin=None)[0] == 403


@pytest.mark.parametrize("query", ["present=yes", "present=true&wait=nan", "present=true&wait=-1"])
def test_bad_queries(kiosk: Client, query: str) -> None:
    status, _, body = kiosk.json("GET", f"{PATH}?{query}")
    assert status == 400 and body["error"] == "invalid_request", body


def test_no_such_route_outside_the_kiosk_profile(terminal: VirtualTerminal) -> None:
    with serving(_config(terminal, kiosk=False)) as desktop:
        status, _, body = desktop.json("GET", PATH)
    assert status == 404 and body["error"] == "not_found", body


def test_serve_kiosk_turns_the_profile_on() -> None:
    parser = build_parser()
    kiosk = parser.parse_args(["serve", "--kiosk", ORIGIN, "--no-open-dialog"])
    desktop = parser.parse_args(["serve", "--origin", ORIGIN, "--no-open-dialog"])
    assert bridge_config(kiosk, parse_origins([ORIGIN])).kiosk is True
    assert bridge_config(desktop, parse_origins([ORIGIN])).kiosk is False


@pytest.mark.pcsc
def test_the_card_pulled_from_a_real_reader_answers_the_long_poll(
    card: VirtualCardFile, slot: tuple[str, int]
) -> None:
    """On pcscd + vpcd: the long poll waits in ``SCardGetStatusChange`` and wakes when the emulator leaves."""
    from reader_bridge.transport import PcscTerminal
    from reader_bridge.vpcd import VpcdClient
    from tests.bridge.pcsc_env import wait_card

    reader, port = slot
    config = _config(VirtualTerminal(None), kiosk=True)
    config.terminal = PcscTerminal(dev_mode=True, reader_names=[reader])
    vpcd = VpcdClient(CardEmulator(card), port=port)
    vpcd.start()
    try:
        wait_card(reader, True)
        with serving(config) as kiosk:
            assert kiosk.json("GET", f"{PATH}?present=false&wait=5")[2] == {"card_present": True}
            puller = threading.Timer(0.5, vpcd.stop)
            puller.start()
            started = time.monotonic()
            try:
                body = kiosk.json("GET", f"{PATH}?present=true&wait=20")[2]
            finally:
                puller.join()
            assert body == {"card_present": False} and time.monotonic() - started < 10
    finally:
        vpcd.stop()
        wait_card(reader, False)
