"""The bridge's local API: JSON over HTTP on loopback (DESIGN.md §4 "Bridge local API").

- Bound to 127.0.0.1 only, and the ``Host`` header must name it (a DNS-rebinding page gets 421).
- The web origin comes from the browser's ``Origin`` header, never from the body; only origins on the
  allow-list (``ONECARD_BRIDGE_ORIGINS`` / ``--origin``) get CORS headers, including the Private Network
  Access preflight answer (``Access-Control-Allow-Private-Network: true``). Others get 403 and no CORS
  headers, so their script cannot even read the refusal.
- POSTs that start an operation must be ``application/json``, which forces a preflight for every
  cross-origin caller. ``…/continue`` and ``…/cancel`` need no body: the ``Origin`` check still applies
  (browsers send it with every cross-origin POST) and they only act on an operation of that origin, named
  by its unguessable id.
- One operation at a time (busy → 409); the page follows it with ``GET /v1/operations/<id>/events``
  (long poll, ``wait`` seconds capped at ``max_wait``), lets a paused authentication go on to the PIN with
  ``POST …/continue`` and may cancel it with ``POST …/cancel`` — a simple request, so a page can send it
  with ``fetch(…, {keepalive: true})`` while it is being left. Cancel answers once the operation has
  ended, so the next one can start at once.
- In the kiosk profile (``serve --kiosk ORIGIN``, issue 13) ``GET /v1/kiosk/card?present=…&wait=…`` tells
  the kiosk page whether a card is in the reader, waiting (long poll on the terminal's ``wait_for_change``)
  until that differs from what the page last saw: a card pulled mid-visit ends the visit. Outside the
  kiosk profile the route does not exist, so an ordinary desktop bridge tells no site when cards come and go.
- With the kiosk's credentials (``serve --kiosk ORIGIN --kiosk-credentials FILE``) ``GET /kiosk`` is the
  kiosk device's start page (``reader_bridge.kiosk``): a self-submitting form posting a fresh client
  assertion to ``ORIGIN/kiosk/start``, for a top-level navigation only (403 with an ``Origin`` header or
  ``Sec-Fetch-Site`` other than ``none``).
- The PIN dialog (``/pin/<id>``) is a page of the bridge's *own* origin; its form is accepted only from that
  origin, and it may not be framed.

The standard library's ``ThreadingHTTPServer`` is enough for one local user and keeps the bridge free of
web frameworks (DESIGN.md §1). Errors are JSON ``{error, error_description}``; tracebacks go to the log only.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from reader_bridge import operations
from reader_bridge.channel import Terminal
from reader_bridge.errors import (
    BadRequestError,
    BridgeError,
    NotFoundError,
    OriginNotAllowedError,
)
from reader_bridge.kiosk import KIOSK_LAUNCH_PATH, KioskLaunch, launch_allowed, launch_headers, launch_page
from reader_bridge.operations import Operation, OperationManager, Settings
from reader_bridge.pin import DialogPinSource, PinSource
from sdk.keys import b64url_decode

log = logging.getLogger(__name__)

DEFAULT_PORT: Final = 47400
VERSION: Final = "1"
MAX_BODY: Final = 8192
MAX_WAIT: Final = 25.0  # long-poll cap, below common proxy and fetch timeouts
_B64URL: Final = re.compile(r"^[A-Za-z0-9_-]{43}$")  # 32 bytes, unpadded
_OPERATION_PATH: Final = re.compile(r"^/v1/operations/([A-Za-z0-9_-]{1,64})(/events|/cancel|/continue)?$")
_OPERATION_ACTIONS: Final = ("/cancel", "/continue")  # POST only
KIOSK_CARD_PATH: Final = "/v1/kiosk/card"
_PIN_PATH: Final = re.compile(r"^/pin/([A-Za-z0-9_-]{1,64})$")
_DIALOG_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    # same-origin, not no-referrer: with no-referrer the dialog's own form POST carries "Origin: null"
    # and the bridge (which takes the PIN only from its own origin) would refuse it.
    "Referrer-Policy": "same-origin",
}
LOOPBACK_HOSTS: Final = ("127.0.0.1", "::1")


def parse_origins(values: Iterable[str]) -> frozenset[str]:
    """Normalise an allow-list: ``scheme://host[:port]`` without path or trailing slash."""
    origins = set()
    for value in values:
        for item in value.split(","):
            item = item.strip().rstrip("/")
            if not item:
                continue
            parts = urlsplit(item)
            if parts.scheme not in ("https", "http") or not parts.netloc or parts.path or parts.query:
                raise ValueError(f"not an origin: {item!r} (use scheme://host[:port])")
            origins.add(f"{parts.scheme}://{parts.netloc}".lower())
    return frozenset(origins)


@dataclass
class BridgeConfig:
    allowed_origins: frozenset[str]
    terminal: Terminal
    pin_source: PinSource
    settings: Settings = field(default_factory=Settings)
    dev_mode: bool = False
    max_wait: float = MAX_WAIT
    kiosk: bool = False  # the kiosk profile: one origin (cli.serve_origins) and the card-presence route
    kiosk_launch: KioskLaunch | None = None  # the kiosk profile with the terminal's key: GET /kiosk


class BridgeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, config: BridgeConfig, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
        if host not in LOOPBACK_HOSTS:
            raise ValueError("the bridge listens on loopback only")
        super().__init__((host, port), _Handler)
        self.config = config
        self.manager = OperationManager()
        bound = self.server_address[1]
        self.own_origin = f"http://127.0.0.1:{bound}"
        self.allowed_hosts = frozenset({f"127.0.0.1:{bound}", f"localhost:{bound}", f"[::1]:{bound}"})
        if isinstance(config.pin_source, DialogPinSource):
            config.pin_source.base_url = self.own_origin

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _Handler(BaseHTTPRequestHandler):
    server: BridgeHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "onecard-bridge"
    sys_version = ""

    # --- plumbing ----------------------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _origin(self) -> str | None:
        origin = self.headers.get("Origin")
        return origin.lower() if origin is not None else None

    def _allowed(self, origin: str | None) -> bool:
        return origin is not None and origin in self.server.config.allowed_origins

    def _send(self, status: int, body: bytes, content_type: str, headers: Mapping[str, str] = {}) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _cors(self, origin: str | None) -> dict[str, str]:
        if not self._allowed(origin):
            return {}
        assert origin is not None
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}

    def _json(self, status: int, obj: Mapping[str, Any], origin: str | None) -> None:
        body = json.dumps(obj, separators=(",", ":")).encode()
        self._send(status, body, "application/json", self._cors(origin))

    def _error(self, error: BridgeError, origin: str | None) -> None:
        self._json(error.status_code, error.to_dict(), origin)

    def _host_ok(self) -> bool:
        if (self.headers.get("Host") or "").lower() in self.server.allowed_hosts:
            return True
        self._send(HTTPStatus.MISDIRECTED_REQUEST, b'{"error":"bad_host"}', "application/json")
        return False

    def _read_body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError as exc:
            raise BadRequestError("bad Content-Length") from exc
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            raise BadRequestError("body too large")
        return self.rfile.read(length)

    def _json_body(self) -> dict[str, Any]:
        if (self.headers.get("Content-Type") or "").split(";")[0].strip().lower() != "application/json":
            raise BadRequestError("Content-Type must be application/json")
        raw = self._read_body()
        try:
            obj = json.loads(raw or b"{}")
        except ValueError as exc:
            raise BadRequestError("body is not JSON") from exc
        if not isinstance(obj, dict):
            raise BadRequestError("body must be a JSON object")
        return obj

    def _dispatch(self, handler: Any) -> None:
        if not self._host_ok():
            return
        origin = self._origin()
        try:
            handler(origin)
        except BridgeError as exc:
            self._error(exc, origin)
        except Exception:
            log.exception("request %s %s failed", self.command, self.path)
            self._error(BridgeError("internal error"), origin)

    # --- verbs -------------------------------------------------------------------------------------------

    def do_OPTIONS(self) -> None:
        self._dispatch(self._preflight)

    def do_GET(self) -> None:
        self._dispatch(self._get)

    def do_POST(self) -> None:
        self._dispatch(self._post)

    # --- routes ------------------------------------------------------------------------------------------

    def _require_origin(self, origin: str | None, *, optional: bool = False) -> None:
        if origin is None and optional:
            return  # a local non-browser client (onecard-bridge status); browsers always send Origin here
        if not self._allowed(origin):
            raise OriginNotAllowedError(f"origin {origin!r} not on the allow-list")

    def _preflight(self, origin: str | None) -> None:
        if not self._allowed(origin) or not urlsplit(self.path).path.startswith("/v1/"):
            self._send(HTTPStatus.FORBIDDEN, b"", "text/plain")
            return
        headers = {
            **self._cors(origin),
            "Access-Control-Allow-Methods": "GET, POST",
            "Access-Control-Allow-Headers": "Content-Type",
            "Access-Control-Max-Age": "600",
        }
        if (self.headers.get("Access-Control-Request-Private-Network") or "").lower() == "true":
            # Private Network Access: a public site may reach this loopback server only with this consent.
            headers["Access-Control-Allow-Private-Network"] = "true"
        self._send(HTTPStatus.NO_CONTENT, b"", "text/plain", headers)

    def _operation_for(self, operation_id: str, origin: str | None) -> Operation:
        operation = self.server.manager.get(operation_id)
        # Another origin's operation does not exist for this caller.
        if operation is None or operation.origin != origin:
            raise NotFoundError(f"operation {operation_id}")
        return operation

    def _get(self, origin: str | None) -> None:
        url = urlsplit(self.path)
        pin = _PIN_PATH.match(url.path)
        if pin:
            self._pin_page(pin.group(1))
            return
        if url.path == "/v1/status":
            self._require_origin(origin, optional=True)
            self._json(HTTPStatus.OK, self._status(), origin)
            return
        launch = self.server.config.kiosk_launch
        if url.path == KIOSK_LAUNCH_PATH and launch is not None:
            self._kiosk_launch(launch)
            return
        if url.path == KIOSK_CARD_PATH and self.server.config.kiosk:
            self._require_origin(origin)
            self._json(HTTPStatus.OK, self._kiosk_card(parse_qs(url.query)), origin)
            return
        match = _OPERATION_PATH.match(url.path)
        if match and match.group(2) not in _OPERATION_ACTIONS:
            self._require_origin(origin)
            operation = self._operation_for(match.group(1), origin)
            if match.group(2) == "/events":
                query = parse_qs(url.query)
                after = _parse_after(query.get("after", ["0"])[0])
                wait = _parse_wait(query.get("wait", ["20"])[0], cap=self.server.config.max_wait)
                events = operation.events_after(after, wait)
                body = {"state": operation.state, "events": [event.to_json() for event in events]}
                self._json(HTTPStatus.OK, body, origin)
            else:
                self._json(HTTPStatus.OK, operation.to_json(), origin)
            return
        raise NotFoundError(url.path)

    def _kiosk_launch(self, launch: KioskLaunch) -> None:
        if not launch_allowed(
            origin=self.headers.get("Origin"), fetch_site=self.headers.get("Sec-Fetch-Site")
        ):
            raise OriginNotAllowedError("the kiosk launch page is for a top-level navigation only")
        page = launch_page(launch, now=time.time())  # the server checks assertions against the wall clock
        self._send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8", launch_headers(launch))

    def _kiosk_card(self, query: Mapping[str, list[str]]) -> dict[str, bool]:
        """Whether a card is in a reader, answered once it differs from ``present`` (what the page saw
        last) or after ``wait`` seconds. Without ``present`` it answers at once."""
        seen = query.get("present", [""])[0]
        if seen not in ("", "true", "false"):
            raise BadRequestError("present must be true or false")
        wait = _parse_wait(query.get("wait", ["20"])[0], cap=self.server.config.max_wait)
        terminal = self.server.config.terminal
        present = card_present(terminal)
        deadline = time.monotonic() + wait
        while seen and present == (seen == "true"):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                # Short slices, so a reader plugged in meanwhile is looked at too.
                terminal.wait_for_change(min(left, 1.0))
            except BridgeError:
                return {"card_present": False}  # PC/SC failed: as in card_present, no card
            present = card_present(terminal)
        return {"card_present": present}

    def _status(self) -> dict[str, Any]:
        config = self.server.config
        current = self.server.manager.current
        try:
            readers = [
                {"name": reader.name, "card_present": reader.card_present, "virtual": reader.virtual}
                for reader in config.terminal.readers()
            ]
            pcsc_error = None
        except BridgeError as exc:
            readers, pcsc_error = [], exc.to_dict()
        return {
            "version": VERSION,
            "dev_mode": config.dev_mode,
            "pin_source": config.pin_source.kind,
            "busy": current is not None,
            "readers": readers,
            **({"reader_error": pcsc_error} if pcsc_error else {}),
        }

    def _post(self, origin: str | None) -> None:
        url = urlsplit(self.path)
        pin = _PIN_PATH.match(url.path)
        if pin:
            self._pin_submit(pin.group(1), origin)
            return
        self._require_origin(origin)
        assert origin is not None
        config, manager = self.server.config, self.server.manager
        if url.path == "/v1/authenticate":
            body = self._json_body()
            nonce_text = body.get("nonce")
            if not isinstance(nonce_text, str) or not _B64URL.match(nonce_text):
                raise BadRequestError("nonce must be 32 bytes, base64url without padding")
            card_check = body.get("card_check", False)
            if not isinstance(card_check, bool):
                raise BadRequestError("card_check must be true or false")
            nonce = b64url_decode(nonce_text)
            operation = manager.start(
                "authenticate",
                origin,
                lambda op: operations.authenticate(
                    config.terminal,
                    config.pin_source,
                    op,
                    origin=origin,
                    nonce=nonce,
                    card_check=card_check,
                    settings=config.settings,
                ),
            )
        elif url.path == "/v1/change-pin":
            self._json_body()
            operation = manager.start(
                "change_pin",
                origin,
                lambda op: operations.change_pin(
                    config.terminal, config.pin_source, op, settings=config.settings
                ),
            )
        else:
            match = _OPERATION_PATH.match(url.path)
            if not match or match.group(2) not in _OPERATION_ACTIONS:
                raise NotFoundError(url.path)
            self._read_body()  # whatever it holds: the path says it all
            operation = self._operation_for(match.group(1), origin)
            if match.group(2) == "/cancel":
                manager.cancel(operation)
            else:
                operation.allow_continue()
            self._json(HTTPStatus.OK, operation.to_json(), origin)
            return
        body_out = {
            **operation.to_json(),
            "events_url": f"/v1/operations/{operation.id}/events",
        }
        self._json(HTTPStatus.ACCEPTED, body_out, origin)

    # --- PIN dialog --------------------------------------------------------------------------------------

    def _dialog(self) -> DialogPinSource:
        source = self.server.config.pin_source
        if not isinstance(source, DialogPinSource):
            raise NotFoundError("the PIN dialog is not in use")
        return source

    def _page_language(self) -> dict[str, str]:
        """The PIN window's language: the ``lang`` the login page put into its link, else Accept-Language."""
        lang = parse_qs(urlsplit(self.path).query).get("lang", [""])[0][:35]
        return {"lang": lang, "accept_language": (self.headers.get("Accept-Language") or "")[:200]}

    def _pin_page(self, dialog_id: str) -> None:
        outcome = self._dialog().page(dialog_id, **self._page_language())
        self._send(outcome.status, outcome.html.encode(), "text/html; charset=utf-8", _DIALOG_HEADERS)

    def _pin_submit(self, dialog_id: str, origin: str | None) -> None:
        # Only the dialog page itself may submit: a page elsewhere could otherwise spend the card's tries.
        if origin is not None and origin != self.server.own_origin:
            raise OriginNotAllowedError(f"PIN submitted from {origin!r}")
        if (self.headers.get("Content-Type") or "").split(";")[
            0
        ].strip() != "application/x-www-form-urlencoded":
            raise BadRequestError("the PIN form is form-encoded")
        try:
            fields = parse_qs(self._read_body().decode("ascii"), max_num_fields=8)
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadRequestError("malformed form") from exc
        form = {name: values[0] for name, values in fields.items()}
        outcome = self._dialog().submit(dialog_id, form, **self._page_language())
        self._send(outcome.status, outcome.html.encode(), "text/html; charset=utf-8", _DIALOG_HEADERS)


def card_present(terminal: Terminal) -> bool:
    """A card in any of the bridge's readers; a PC/SC failure (reader gone, pcscd stopped) counts as none,
    so a kiosk whose reader broke ends its visit rather than keep it open."""
    try:
        return any(reader.card_present for reader in terminal.readers())
    except BridgeError:
        return False


def _parse_after(text: str) -> int:
    try:
        after = int(text)
    except ValueError as exc:
        raise BadRequestError("after must be an event sequence number") from exc
    return max(after, 0)


def _parse_wait(text: str, *, cap: float) -> float:
    """The long poll's ``wait``: seconds, finite and not negative, at most ``cap``. NaN must be refused
    by name: it compares false with everything, so ``min(nan, cap)`` is NaN and would skip the cap."""
    try:
        wait = float(text)
    except ValueError as exc:
        raise BadRequestError("wait must be a number of seconds") from exc
    if not math.isfinite(wait) or wait < 0:
        raise BadRequestError(
            "wait must be a finite, non-negative number of seconds",
            description="The wait parameter must be a number of seconds, 0 or more.",
        )
    return min(wait, cap)


def create_server(
    config: BridgeConfig, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT
) -> BridgeHTTPServer:
    return BridgeHTTPServer(config, host, port)
