"""An example venue gate: verifies scanned e-card codes offline with ``sdk.gate`` (docs/venues.md §3).

The script a gate vendor starts from. At start it syncs the QR key set and the suspended-handles list from
OneCard with the venue's gate credentials (kept in ``--state-dir``, so a gate restarted without network
still verifies with its last copies); then it verifies each scanned code on the spot and prints one verdict
line per code, as ``onecard-gate`` does:

    PASS handle=h2Pq9vXcT4mK8sLw issuer=420100 expires_in=42s age_over_60=true
    REJECT reason=replayed

While it runs, the key set and the list are refetched when their ``Cache-Control`` max-age has passed (the
list: 60 s). It fails closed: with no list, or one the server last confirmed more than ``--max-list-age``
seconds ago, every code is refused as ``revocation_list_stale``. One-time use is per gate (the replay cache,
also kept in ``--state-dir``); one-time use across gates needs the online API (``sdk.gate.OnlineGateClient``).

    pip install 'onecard[gate]'
    python -m examples.gate --url https://idp.example --credentials /etc/onecard/venue.json \\
        [--region 420100 ...] [--state-dir DIR] [--max-list-age 3600] [IMAGE ...]

Codes come from the images named (photos or screenshots, decoded with zxing-cpp), else from standard input,
one per line — what a scanner in keyboard (HID) mode types. The credentials file is JSON ``{"client_id": …,
"client_secret": …}`` (``venue_id`` is taken for ``client_id``, so the demo's ``var/demo-venue.json``
works), or set ``ONECARD_GATE_CLIENT_ID`` and ``ONECARD_GATE_CLIENT_SECRET``.

Exit status: 0 when every code passed, 1 when any was refused (or an image held no readable code), 2 when
the gate could not start.

Reading credentials and images, the verdict line and the state files are ``sdk.gate_cli``'s public helpers,
the same ones ``onecard-gate`` uses; this file is only what a gate of your own would arrange differently.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from sdk.clock import Clock, system_clock
from sdk.gate import (
    DEFAULT_MAX_LIST_AGE,
    GateVerifier,
    KeySetSync,
    ReplayCache,
    SuspendedHandlesSync,
    VenueCredentials,
)
from sdk.gate_cli import (
    CLIENT_ID_ENV,
    SECRET_ENV,
    GateSetupError,
    format_pass_line,
    load_venue_credentials,
    read_code_from_image,
    write_json_atomically,
)
from sdk.qr_token import QrTokenError

QR_KEYS_PATH = "/.well-known/onecard-qr-keys.json"
SUSPENDED_HANDLES_PATH = "/api/v1/gate/suspended-handles"
DEFAULT_REGIONS = ("420100",)
EXIT_ALL_PASSED, EXIT_REFUSED, EXIT_CANNOT_START = 0, 1, 2


@dataclass
class Gate:
    """What a running gate holds: the synced key set and list, the verifier over them, its replay cache."""

    keys: KeySetSync
    suspended: SuspendedHandlesSync
    replay: ReplayCache
    verifier: GateVerifier
    state_dir: Path

    def check(self, text: str, now: float) -> tuple[bool, str]:
        """Verify one scanned code: (passed, the verdict line)."""
        try:
            scan = self.verifier.verify(text.strip(), now)
        except QrTokenError as refused:
            return False, f"REJECT reason={refused.reason.value}"
        return True, format_pass_line(scan.handle, scan.issuer, scan.expires_in, scan.disclosures)

    def close(self) -> None:
        """Keep the replay cache for the next start (a code accepted once stays used after a restart)."""
        write_json_atomically(self.state_dir / "replay.json", self.replay.to_json())
        self.keys.close()
        self.suspended.close()


def open_gate(
    url: str,
    credentials: VenueCredentials,
    regions: Sequence[str],
    *,
    state_dir: Path,
    max_list_age: float,
    now: float,
    warnings: TextIO,
) -> Gate:
    """Sync the key set and the suspended-handles list (a starting gate asks at once, with ``ETag``s), and
    build the verifier over them. Both keep their last good copy when the server cannot be reached."""
    state_dir.mkdir(parents=True, exist_ok=True)
    base = url.rstrip("/")
    keys = KeySetSync(base + QR_KEYS_PATH, cache_file=state_dir / "jwks.json")
    suspended = SuspendedHandlesSync(
        base + SUSPENDED_HANDLES_PATH,
        credentials=credentials,
        cache_file=state_dir / "suspended.json",
        max_list_age=max_list_age,
    )
    keys.refresh(now)
    suspended.refresh(now)
    if keys.value is None:
        raise GateSetupError(f"no QR key set: {keys.last_error or 'never fetched'}")
    if suspended.last_error:
        # Not fatal: the held copy serves while it is young enough, after that every code is refused.
        warnings.write(f"warning: {suspended.last_error}\n")
    replay = ReplayCache()
    saved = state_dir / "replay.json"
    if saved.exists():
        try:
            held = json.loads(saved.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise GateSetupError(f"unusable replay cache {saved}: {exc}") from exc
        if isinstance(held, dict):
            replay = ReplayCache.from_json(held, now=now)
    verifier = GateVerifier(keys, regions, replay_cache=replay, revoked_handles=suspended)
    return Gate(keys, suspended, replay, verifier, state_dir)


def scanned(images: Sequence[Path], stdin: TextIO) -> Iterable[str | Path]:
    """What to check: the images named, else the codes on standard input, one per line."""
    return images or (line.strip() for line in stdin if line.strip())


def run(gate: Gate, sources: Iterable[str | Path], out: TextIO, clock: Clock = system_clock) -> int:
    """Check each code (or image of one) as it comes; the exit status."""
    status = EXIT_ALL_PASSED
    for source in sources:
        try:
            code = read_code_from_image(source) if isinstance(source, Path) else source
        except GateSetupError as unreadable:  # not an image, no QR code in it, or no zxing-cpp
            passed, line = False, f"ERROR {unreadable}"
        else:
            passed, line = gate.check(code, clock())
        out.write(line + "\n")
        out.flush()  # a turnstile controller reads each verdict as it is printed
        if not passed:
            status = EXIT_REFUSED
    return status


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.gate", description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="the OneCard service, e.g. https://idp.example")
    parser.add_argument("--credentials", type=Path, help="the venue's gate credentials (JSON)")
    parser.add_argument(
        "--region",
        action="append",
        help=f"accepted issuing region (repeatable; default {DEFAULT_REGIONS[0]})",
    )
    parser.add_argument("--state-dir", type=Path, default=Path("gate-state"), help="synced copies, replays")
    parser.add_argument("--max-list-age", type=float, default=DEFAULT_MAX_LIST_AGE, help="seconds")
    parser.add_argument("images", nargs="*", type=Path, help="photos of codes (default: read stdin)")
    args = parser.parse_args(argv)
    try:
        credentials = load_venue_credentials(args.credentials, os.environ)
        if credentials is None:
            raise GateSetupError(
                f"no gate credentials: give --credentials FILE or set {CLIENT_ID_ENV}, {SECRET_ENV}"
            )
        gate = open_gate(
            args.url,
            credentials,
            args.region or DEFAULT_REGIONS,
            state_dir=args.state_dir,
            max_list_age=args.max_list_age,
            now=system_clock(),
            warnings=sys.stderr,
        )
    except (GateSetupError, ValueError) as exc:
        print(f"ERROR {exc}")
        return EXIT_CANNOT_START
    try:
        return run(gate, scanned(args.images, sys.stdin), sys.stdout)
    finally:
        gate.close()
