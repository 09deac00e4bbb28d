"""``onecard-gate``: verify an ESSC1 code at a venue gate, offline or online (DESIGN.md §5).

    onecard-gate verify (--text CODE | --image FILE)
        (--offline --jwks FILE_OR_URL --issuer CODE [--issuer CODE ...]
                   [--revoked FILE_OR_URL [--max-list-age SECONDS]] [--state-dir DIR] [--clock-skew SECONDS]
        | --online --url URL [--gate-id ID])
        [--client-id ID] [--client-secret SECRET] [--credentials FILE]
        [--now POSIX_SECONDS]

It prints exactly one line a turnstile controller can act on, and exits with its status:

    PASS handle=h2Pq9vXcT4mK8sLw issuer=420100 expires_in=42s age_over_60=true     → 0
    REJECT reason=replayed                                                        → 1
    ERROR no QR code found in photo.png                                           → 2 (usage or system)

The venue's credentials (the online API, and ``--revoked URL``: the list is for venues only) come from
``--client-id``/``--client-secret``, else from ``--credentials FILE`` (JSON ``{"client_id": …,
"client_secret": …}``; ``venue_id`` is taken for ``client_id``, so the demo's ``var/demo-venue.json``
works), else from ``ONECARD_GATE_CLIENT_ID``/``ONECARD_GATE_CLIENT_SECRET`` — a secret on the command line
is visible to other users of the machine. The secret is never printed.

Offline, a suspended-handles list that cannot be fetched is used while the server confirmed it less than
``--max-list-age`` seconds ago (default ``sdk.gate.DEFAULT_MAX_LIST_AGE``, an hour); with no list, or an
older one, every code is refused as ``revocation_list_stale``. A list file is judged by its
``generated_at``. With ``--state-dir`` the synced key set, the suspended-handles list and the replay cache
persist between runs; without it every run starts from nothing, so replays are only caught within one run
and a list URL must answer. This module is the edge: it owns the clock and the files; ``sdk.gate`` does the
work.

The pieces every gate program needs besides ``sdk.gate`` are public here, so a gate built on the SDK (such
as examples/gate) shares them rather than copying: ``load_venue_credentials``, ``read_code_from_image``,
``format_pass_line`` and ``write_json_atomically``; each reports a problem as ``GateSetupError``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from sdk.clock import system_clock
from sdk.errors import OneCardError
from sdk.gate import (
    DEFAULT_MAX_LIST_AGE,
    GateVerifier,
    HandleSource,
    KeySetSync,
    OnlineGateClient,
    ReplayCache,
    SuspendedHandlesSnapshot,
    SuspendedHandlesSync,
    VenueCredentials,
    parse_suspended_handles,
)
from sdk.keys import KeySet
from sdk.qr_token import DEFAULT_CLOCK_SKEW, PREFIX, QrTokenError

EXIT_PASS = 0
EXIT_REJECT = 1
EXIT_ERROR = 2
CLIENT_ID_ENV = "ONECARD_GATE_CLIENT_ID"
SECRET_ENV = "ONECARD_GATE_CLIENT_SECRET"  # the variable's name, not a secret
_CREDENTIALS_HELP = (
    f"--client-id and --client-secret, --credentials FILE, or {CLIENT_ID_ENV} and {SECRET_ENV}"
)


class GateSetupError(Exception):
    """A usage or system problem (credentials, an unreadable file or image): one ``ERROR`` line."""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onecard-gate", description="Verify electronic social security card QR codes."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify", help="verify one code and print PASS, REJECT or ERROR")
    source = verify.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", metavar="CODE", help="the scanned text, ESSC1:...")
    source.add_argument("--image", metavar="FILE", type=Path, help="a photo or screenshot of the QR code")
    mode = verify.add_mutually_exclusive_group(required=True)
    mode.add_argument("--offline", action="store_true", help="verify here with the synced key set")
    mode.add_argument("--online", action="store_true", help="ask the OneCard verification service")
    offline = verify.add_argument_group("offline")
    offline.add_argument("--jwks", metavar="FILE_OR_URL", help="the QR key set (JWKS) file or URL")
    offline.add_argument(
        "--issuer", metavar="CODE", action="append", default=[], help="accepted region code (repeatable)"
    )
    offline.add_argument(
        "--revoked", metavar="FILE_OR_URL", help="suspended-handles list file or URL (URL: needs credentials)"
    )
    offline.add_argument(
        "--max-list-age",
        metavar="SECONDS",
        type=_non_negative_seconds,
        default=DEFAULT_MAX_LIST_AGE,
        help="refuse every code (revocation_list_stale) when the list is older than this "
        f"(default {DEFAULT_MAX_LIST_AGE})",
    )
    offline.add_argument("--state-dir", metavar="DIR", type=Path, help="keep key cache and replay cache here")
    offline.add_argument("--clock-skew", metavar="SECONDS", type=int, default=DEFAULT_CLOCK_SKEW)
    online = verify.add_argument_group("online")
    online.add_argument("--url", metavar="URL", help="base URL of the OneCard service")
    online.add_argument("--gate-id", metavar="ID", help="this gate's label, recorded with the scan")
    credentials = verify.add_argument_group("the venue's credentials (online, and offline --revoked URL)")
    credentials.add_argument("--client-id", metavar="ID", help=f"or set {CLIENT_ID_ENV}")
    credentials.add_argument("--client-secret", metavar="SECRET", help=f"or set {SECRET_ENV}")
    credentials.add_argument(
        "--credentials",
        metavar="FILE",
        type=Path,
        help='JSON {"client_id": ..., "client_secret": ...} (the demo\'s var/demo-venue.json works)',
    )
    verify.add_argument("--now", metavar="POSIX_SECONDS", type=float, help=argparse.SUPPRESS)
    return parser


def _non_negative_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def _read_json_file(path: str, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GateSetupError(f"cannot read {what} {path}: {exc}") from exc


def _text_field(document: Mapping[str, Any], *names: str) -> str | None:
    for name in names:
        value = document.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def venue_credentials(args: argparse.Namespace, environ: Mapping[str, str]) -> VenueCredentials | None:
    """Each part from the command line, else the ``--credentials`` file, else the environment."""
    return load_venue_credentials(
        args.credentials, environ, client_id=args.client_id, client_secret=args.client_secret
    )


def load_venue_credentials(
    path: Path | None,
    environ: Mapping[str, str],
    *,
    client_id: str | None = None,
    client_secret: str | None = None,
) -> VenueCredentials | None:
    """The venue's gate credentials: each part as given, else from the JSON file at ``path`` (``client_id``
    or ``venue_id``, ``client_secret``), else from ``ONECARD_GATE_CLIENT_ID``/``ONECARD_GATE_CLIENT_SECRET``.
    ``None`` when there are none at all; ``GateSetupError`` when only one part is found."""
    saved: Mapping[str, Any] = {}
    if path is not None:
        # The file holds a secret: an error names the file and the problem, never a value read from it.
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise GateSetupError(f"cannot read credentials file {path}: {exc.strerror or exc}") from exc
        except ValueError:
            raise GateSetupError(f"credentials file {path} is not JSON") from None
        if not isinstance(document, dict):
            raise GateSetupError(f"credentials file {path} is not a JSON object")
        saved = document
    client_id = client_id or _text_field(saved, "client_id", "venue_id") or environ.get(CLIENT_ID_ENV)
    secret = client_secret or _text_field(saved, "client_secret") or environ.get(SECRET_ENV)
    if not client_id and not secret:
        return None
    if not client_id or not secret:
        missing = "client id" if not client_id else "client secret"
        raise GateSetupError(f"the venue's {missing} is missing: give {_CREDENTIALS_HELP}")
    return VenueCredentials(client_id, secret)


def read_code_from_image(path: Path) -> str:
    """The text of the QR code in an image (zxing-cpp), preferring an ESSC1 code if there are several."""
    try:
        import zxingcpp
        from PIL import Image, UnidentifiedImageError
    except ImportError as exc:
        raise GateSetupError("reading images needs the gate extra: pip install 'onecard[gate]'") from exc
    try:
        with Image.open(path) as image:
            image.load()
            results = zxingcpp.read_barcodes(
                image,
                formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode),
                text_mode=zxingcpp.TextMode.Plain,
            )
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise GateSetupError(f"cannot read image {path}: {exc}") from exc
    texts = [result.text for result in results if result.text]
    if not texts:
        raise GateSetupError(f"no QR code found in {path}")
    return next((text for text in texts if text.startswith(PREFIX)), texts[0])


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if not text or any(ch.isspace() or ch in '="' for ch in text):
        return json.dumps(text, ensure_ascii=False)
    return text


def format_pass_line(handle: str, issuer: str, expires_in: int, claims: Mapping[str, Any]) -> str:
    """The ``PASS`` verdict line: handle, issuer, seconds left, then the disclosures sorted by name (a value
    with a space, ``=`` or ``"`` in it, or an empty one, JSON-quoted so the line stays one field per word)."""
    parts = [f"PASS handle={handle}", f"issuer={issuer}", f"expires_in={expires_in}s"]
    parts += [f"{name}={_format_value(value)}" for name, value in sorted(claims.items())]
    return " ".join(parts)


def _suspended_handles(
    args: argparse.Namespace, now: float, err: TextIO, closing: contextlib.ExitStack
) -> HandleSource | None:
    state_dir: Path | None = args.state_dir
    if not args.revoked:
        err.write("warning: no suspended-handles list (--revoked): suspended e-cards are not refused\n")
        return None
    if not _is_url(args.revoked):
        try:
            document = _read_json_file(args.revoked, "suspended-handles list")
            held = parse_suspended_handles(document)
        except ValueError as exc:
            raise GateSetupError(f"unusable suspended-handles list {args.revoked}: {exc}") from exc
        return SuspendedHandlesSnapshot(held, max_list_age=args.max_list_age)
    credentials = venue_credentials(args, os.environ)
    if credentials is None:
        raise GateSetupError(f"--revoked URL needs the venue's credentials: {_CREDENTIALS_HELP}")
    synced = SuspendedHandlesSync(
        args.revoked,
        credentials=credentials,
        max_list_age=args.max_list_age,
        cache_file=state_dir / "suspended.json" if state_dir else None,
    )
    closing.callback(synced.close)
    synced.refresh_if_stale(now)
    age = synced.list_age(now)
    if synced.last_error and age is not None and age <= synced.max_list_age:
        # Still verifying with the held copy; the operator must know it is not current.
        err.write(f"warning: {synced.last_error}; using the list confirmed {age:.0f} s ago\n")
    elif synced.last_error:
        err.write(f"warning: {synced.last_error}\n")
    return synced


def _verify_offline(args: argparse.Namespace, code: str, now: float, err: TextIO) -> str:
    if not args.jwks:
        raise GateSetupError("--offline needs --jwks FILE_OR_URL")
    if not args.issuer:
        raise GateSetupError("--offline needs at least one --issuer CODE")
    state_dir: Path | None = args.state_dir
    with contextlib.ExitStack() as closing:
        keys: KeySet | KeySetSync
        if _is_url(args.jwks):
            keys = KeySetSync(args.jwks, cache_file=state_dir / "jwks.json" if state_dir else None)
            closing.callback(keys.close)
            keys.refresh_if_stale(now)
            if keys.value is None:
                raise GateSetupError(f"no key set: {keys.last_error or 'never fetched'}")
        else:
            try:
                keys = KeySet.from_jwks(_read_json_file(args.jwks, "key set"))
            except OneCardError as exc:
                raise GateSetupError(f"unusable key set {args.jwks}: {exc}") from exc
        revoked = _suspended_handles(args, now, err, closing)
        replay_file = state_dir / "replay.json" if state_dir else None
        replay = ReplayCache()
        if replay_file is not None and replay_file.exists():
            saved = _read_json_file(str(replay_file), "replay cache")
            if not isinstance(saved, dict):
                raise GateSetupError(f"unusable replay cache {replay_file}")
            replay = ReplayCache.from_json(saved, now=now)
        verifier = GateVerifier(
            keys, args.issuer, clock_skew=args.clock_skew, replay_cache=replay, revoked_handles=revoked
        )
        try:
            scan = verifier.verify(code, now)
        finally:
            if replay_file is not None:
                write_json_atomically(replay_file, replay.to_json())
    return format_pass_line(scan.handle, scan.issuer, scan.expires_in, scan.disclosures)


def write_json_atomically(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file, so a crash never leaves half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise GateSetupError(f"cannot write {path}: {exc}") from exc


def _verify_online(args: argparse.Namespace, code: str, now: float) -> str:
    credentials = venue_credentials(args, os.environ)
    if not args.url or credentials is None:
        raise GateSetupError(f"--online needs --url and the venue's credentials: {_CREDENTIALS_HELP}")
    client = OnlineGateClient(args.url, credentials.client_id, credentials.client_secret)
    try:
        scan = client.verify(code, gate_id=args.gate_id)
    finally:
        client.close()
    return format_pass_line(scan.handle, scan.issuer, scan.expires_in(now), scan.claims)


def _error(out: TextIO, message: str) -> int:
    out.write(f"ERROR {' '.join(message.split())}\n")
    return EXIT_ERROR


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        # Usage mistakes get argparse's message on stderr and its exit status 2, which is ours too.
        args = _build_parser().parse_args(argv)
    except SystemExit as exc:
        return EXIT_PASS if exc.code in (0, None) else EXIT_ERROR
    try:
        now = args.now if args.now is not None else system_clock()
        code = args.text.strip() if args.text is not None else read_code_from_image(args.image)
        line = _verify_offline(args, code, now, err) if args.offline else _verify_online(args, code, now)
    except QrTokenError as exc:
        out.write(f"REJECT reason={exc.reason.value}\n")
        return EXIT_REJECT
    except GateSetupError as exc:
        return _error(out, str(exc))
    except OneCardError as exc:
        return _error(out, exc.detail or exc.description)
    out.write(line + "\n")
    return EXIT_PASS


if __name__ == "__main__":
    sys.exit(main())
