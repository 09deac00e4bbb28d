"""APDU round trips and time per card login over the real virtual reader (DESIGN.md §10).

One "login" is what the bridge does for DESIGN.md §4 step 3: connect exclusively, read EF05, read the
certificate, show tries (empty VERIFY), VERIFY, INTERNAL AUTHENTICATE, disconnect with reset. It runs through
pcscd + vpcd + the card emulator, with the bridge's own pyscard transport, for T=1 and T=0.

    .venv/bin/python bench/bench_apdu.py [--logins 30]

Skips with a message when pcscd or the vpcd driver is not available. Reuses a running pcscd, otherwise
starts one and stops it by PID at the end.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reader_bridge.card import SocialSecurityCard  # noqa: E402
from reader_bridge.emulator import CardEmulator  # noqa: E402
from sdk.card_auth import signed_data  # noqa: E402
from tests.bridge.pcsc_env import PcscUnavailable, free_slot, inserted, start_pcscd  # noqa: E402
from tests.bridge.pki import make_ca, make_card  # noqa: E402

ORIGIN = "https://login.onecard.test"


def _login(terminal: object, reader: str) -> tuple[int, float]:
    started = time.perf_counter()
    with terminal.connect(reader) as session:  # type: ignore[attr-defined]
        card = SocialSecurityCard(session)
        card.read_card_info()
        card.read_certificate()
        card.pin_status()
        card.verify_pin("123456")
        card.internal_authenticate(signed_data(ORIGIN, bytes(32)))
    return card.round_trips, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--logins", type=int, default=30, help="logins per protocol (bounded run)")
    args = parser.parse_args()
    logins = max(1, min(args.logins, 1000))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            daemon = start_pcscd(Path(tmp) / "pcscd.log")
    except PcscUnavailable as exc:
        print(f"SKIP: real PC/SC stack unavailable: {exc}")
        return 0
    try:
        from reader_bridge.transport import PcscTerminal

        reader, port = free_slot()
        card = make_card(make_ca())
        print(
            f"reader {reader!r}, {logins} logins per protocol, certificate {len(card.certificate_der)} bytes"
        )
        print(
            f"{'protocol':8} {'APDUs/login':>11} {'p50 ms':>7} {'p99 ms':>7} {'ms/APDU':>8} {'logins/s':>9}"
        )
        for protocol in ("T=1", "T=0"):
            with inserted(CardEmulator(card, protocol=protocol), reader, port):
                terminal = PcscTerminal(dev_mode=True, reader_names=[reader])
                _login(terminal, reader)  # warm-up: first power-up and ATR negotiation
                results = [_login(terminal, reader) for _ in range(logins)]
            trips = results[0][0]
            times = sorted(seconds * 1000 for _, seconds in results)
            p50 = statistics.median(times)
            p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
            print(f"{protocol:8} {trips:>11} {p50:>7.1f} {p99:>7.1f} {p50 / trips:>8.2f} {1000 / p50:>9.1f}")
    except PcscUnavailable as exc:
        print(f"SKIP: {exc}")
    finally:
        daemon.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
