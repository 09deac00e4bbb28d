"""``onecard-bridge``: run the local API, run the card emulator against vpcd, or show status (DESIGN.md §4).

argparse, not click: click belongs to the server extra, and the bridge installs with ``onecard[bridge]``.
PC/SC is imported only by the commands that use it, so ``serve --virtual-card`` runs without pyscard.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import signal
import sys
import threading
import urllib.error
import urllib.request
import webbrowser
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reader_bridge.apdu import Protocol
from reader_bridge.channel import Terminal
from reader_bridge.emulator import CardEmulator
from reader_bridge.errors import BridgeError
from reader_bridge.kiosk import InvalidKioskCredentialsError, KioskLaunch, load_kiosk_credentials
from reader_bridge.operations import Settings
from reader_bridge.pin import DialogPinSource, PinPadPinSource, PinSource, TerminalPinSource
from reader_bridge.server import DEFAULT_PORT, BridgeConfig, create_server, parse_origins
from sdk.card_file import InvalidCardFileError, VirtualCardFile, load_card_file, save_card_file

log = logging.getLogger("onecard-bridge")

ORIGINS_ENV = "ONECARD_BRIDGE_ORIGINS"


def _emulator_for(path: Path, protocol: Protocol | None) -> CardEmulator:
    card = load_card_file(path)

    def store(updated: VirtualCardFile) -> None:
        save_card_file(path, updated)  # tries and PIN changes survive like a chip's EEPROM

    return CardEmulator(card, protocol=protocol, store=store)


def _pin_source(kind: str | None, *, kiosk: bool, open_dialog: bool) -> PinSource:
    """``--pin-source``; unset, a kiosk prefers the reader's PIN pad (issue 13), a desktop the dialog."""
    kind = kind or ("auto" if kiosk else "dialog")
    if kind == "terminal":
        return TerminalPinSource()
    if kind == "pinpad":
        return PinPadPinSource()
    return DialogPinSource(on_open=webbrowser.open if open_dialog else None, prefer_pinpad=kind == "auto")


MAX_PIN_TIMEOUT = 600.0  # ten minutes is already more than anyone needs to find a PIN letter


def _pin_timeout(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(seconds) or not 1 <= seconds <= MAX_PIN_TIMEOUT:
        raise argparse.ArgumentTypeError(f"between 1 and {MAX_PIN_TIMEOUT:g} seconds")
    return seconds


def _terminal(args: argparse.Namespace) -> Terminal:
    if args.virtual_card:
        from reader_bridge.virtual import VirtualTerminal

        return VirtualTerminal(_emulator_for(Path(args.virtual_card), None), dev_mode=True)
    from reader_bridge.transport import PcscTerminal

    return PcscTerminal(dev_mode=args.dev, reader_names=args.reader or None)


def kiosk_launch(args: argparse.Namespace, origins: frozenset[str]) -> KioskLaunch | None:
    """The kiosk launch page's settings: ``--kiosk-credentials`` in the kiosk profile (``ValueError``
    without ``--kiosk``, ``InvalidKioskCredentialsError`` for a file that cannot be used)."""
    if args.kiosk_credentials is None:
        return None
    if args.kiosk is None:
        raise ValueError("--kiosk-credentials needs --kiosk ORIGIN")
    (origin,) = origins
    return KioskLaunch(origin, load_kiosk_credentials(Path(args.kiosk_credentials)))


def bridge_config(
    args: argparse.Namespace, origins: frozenset[str], launch: KioskLaunch | None = None
) -> BridgeConfig:
    """What ``serve`` runs with, from its arguments."""
    return BridgeConfig(
        allowed_origins=origins,
        terminal=_terminal(args),
        pin_source=_pin_source(
            args.pin_source, kiosk=args.kiosk is not None, open_dialog=not args.no_open_dialog
        ),
        settings=Settings(pin_timeout=args.pin_timeout),
        dev_mode=args.dev,
        kiosk=args.kiosk is not None,
        kiosk_launch=launch,
    )


def serve_origins(args: argparse.Namespace, environ: Mapping[str, str]) -> frozenset[str]:
    """The origins ``serve`` answers. In the kiosk profile (``--kiosk ORIGIN``, issue 13) exactly one: the
    OneCard kiosk pages' origin, and no ``--origin`` or ``ONECARD_BRIDGE_ORIGINS`` beside it, so a kiosk
    bridge never serves another site; ``ValueError`` otherwise."""
    if args.kiosk is None:
        return parse_origins([environ.get(ORIGINS_ENV, ""), *args.origin])
    if args.origin or environ.get(ORIGINS_ENV, "").strip():
        raise ValueError(f"--kiosk allows exactly one origin: drop --origin and {ORIGINS_ENV}")
    origins = parse_origins([args.kiosk])
    if len(origins) != 1:
        raise ValueError("--kiosk takes exactly one origin, e.g. https://login.example")
    return origins


def cmd_serve(args: argparse.Namespace) -> int:
    if args.virtual_card and not args.dev:
        print("--virtual-card needs --dev: a virtual card is a development tool.", file=sys.stderr)
        return 2
    try:
        origins = serve_origins(args, os.environ)
        launch = kiosk_launch(args, origins)
    except InvalidKioskCredentialsError as exc:
        print(f"--kiosk-credentials: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not origins:
        print(
            f"No allowed origin: set {ORIGINS_ENV} or pass --origin https://login.example.", file=sys.stderr
        )
        return 2
    config = bridge_config(args, origins, launch)
    server = create_server(config, port=args.port)
    log.info("listening on %s for %s", server.own_origin, ", ".join(sorted(origins)))
    if launch is not None:
        log.info("kiosk %s: start it at %s/kiosk", launch.credentials.client_id, server.own_origin)
    if args.dev:
        log.warning("development mode: virtual readers and development cards are accepted")
    stopper = threading.Thread(target=server.serve_forever, daemon=True)
    stopper.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    server.shutdown()
    server.server_close()
    return 0


def cmd_emulate(args: argparse.Namespace) -> int:
    from reader_bridge.vpcd import VpcdClient

    emulator = _emulator_for(Path(args.file), args.protocol)
    client = VpcdClient(emulator, host=args.host, port=args.port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    client.start()
    log.info(
        "virtual card %s (%s) on vpcd %s:%d",
        emulator.card.card_number,
        emulator.protocol,
        args.host,
        args.port,
    )
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    client.stop()
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    url = f"http://127.0.0.1:{args.port}/v1/status"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            status: dict[str, Any] = json.load(response)
        status["bridge"] = "running"
    except (urllib.error.URLError, OSError, ValueError):
        status = {"bridge": "not running"}
        try:
            from reader_bridge.transport import PcscTerminal

            readers = PcscTerminal(dev_mode=True).readers()
            status["readers"] = [
                {"name": r.name, "card_present": r.card_present, "virtual": r.virtual} for r in readers
            ]
        except ImportError:
            status["readers_error"] = "pyscard is not installed (pip install onecard[bridge])"
        except BridgeError as exc:
            status["readers_error"] = exc.description
    print(json.dumps(status, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="onecard-bridge", description="OneCard card reader bridge")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the local API on 127.0.0.1")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve.add_argument(
        "--origin", action="append", default=[], help=f"allowed web origin (also {ORIGINS_ENV})"
    )
    serve.add_argument(
        "--kiosk",
        metavar="ORIGIN",
        default=None,
        help="kiosk profile: serve only the OneCard kiosk pages at ORIGIN (no other --origin)",
    )
    serve.add_argument(
        "--kiosk-credentials",
        metavar="FILE",
        default=None,
        help="with --kiosk: the terminal's credentials JSON (client_id, kid, private_key_pem, issuer); "
        "GET /kiosk on the bridge then starts the kiosk pages",
    )
    serve.add_argument(
        "--pin-source",
        choices=("dialog", "terminal", "pinpad", "auto"),
        default=None,
        help="where the PIN is typed; auto: the reader's PIN pad if it has one, else the dialog "
        "(default: auto with --kiosk, else dialog)",
    )
    serve.add_argument(
        "--no-open-dialog", action="store_true", help="do not open the PIN dialog in a browser"
    )
    serve.add_argument(
        "--pin-timeout",
        type=_pin_timeout,
        default=Settings().pin_timeout,
        metavar="SECONDS",
        help="how long the PIN dialog or PIN pad waits for the PIN (default %(default)g)",
    )
    serve.add_argument("--dev", action="store_true", help="accept virtual readers and development cards")
    serve.add_argument("--virtual-card", metavar="FILE", help="use an in-process virtual card (needs --dev)")
    serve.add_argument("--reader", action="append", default=[], help="only use this reader (repeatable)")
    serve.set_defaults(func=cmd_serve)

    emulate = sub.add_parser("emulate", help="connect a virtual card file to vpcd (tests and demos)")
    emulate.add_argument("file")
    emulate.add_argument("--host", default="127.0.0.1")
    emulate.add_argument("--port", type=int, default=35963)
    emulate.add_argument("--protocol", choices=("T=0", "T=1"), default=None)
    emulate.set_defaults(func=cmd_emulate)

    status = sub.add_parser("status", help="show the bridge and the readers")
    status.add_argument("--port", type=int, default=DEFAULT_PORT)
    status.set_defaults(func=cmd_status)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s"
    )
    try:
        return int(args.func(args))
    except InvalidCardFileError as exc:
        print(f"{exc.description} ({exc.detail})", file=sys.stderr)
        return 2
    except BridgeError as exc:
        print(exc.description, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
