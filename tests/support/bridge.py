"""The reader bridge's own local API server in a thread, and a client that talks to it the way the card
login page does: ``Origin`` header set, long-polled events, the PIN typed into the bridge's PIN dialog."""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from reader_bridge.channel import Terminal
from reader_bridge.kiosk import KioskLaunch
from reader_bridge.operations import Settings
from reader_bridge.pin import DialogPinSource
from reader_bridge.server import BridgeConfig, BridgeHTTPServer, create_server, parse_origins


@dataclass
class Outcome:
    """How one bridge operation went: its events and the result (token) or error."""

    events: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    @property
    def types(self) -> list[str]:
        return [event["type"] for event in self.events]


class BridgeClient:
    def __init__(self, server: BridgeHTTPServer, origin: str) -> None:
        self.server = server
        self.origin = origin
        self.url = server.own_origin

    def request(
        self, method: str, path: str, *, origin: str | None = None, body: Any = None, form: Any = None
    ) -> tuple[int, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=60)
        headers = {"Origin": origin or self.origin}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if form is not None:
            payload = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        content_type = response.getheader("Content-Type") or ""
        return response.status, json.loads(data) if content_type.startswith("application/json") else data

    def start(self, path: str, body: dict[str, Any], *, origin: str | None = None) -> tuple[int, Any]:
        return self.request("POST", path, body=body, origin=origin)

    def submit_pin(self, pin_url: str, **form: str) -> int:
        path = urllib.parse.urlsplit(pin_url).path
        status, _page = self.request("GET", path, origin=self.url)
        assert status == 200
        status, _ = self.request("POST", path, origin=self.url, form={"action": "submit", **form})
        return status

    def run(
        self,
        path: str,
        body: dict[str, Any],
        pins: Sequence[dict[str, str]] = (),
        *,
        on_event: Any = None,
        on_start: Any = None,
    ) -> Outcome:
        """Start an operation and follow it to its end, typing ``pins`` into the PIN dialog one by one.
        ``on_start`` gets the operation id, ``on_event`` every event as it comes."""
        status, started = self.start(path, body)
        assert status == 202, started
        operation_id = started["operation_id"]
        if on_start is not None:
            on_start(operation_id)
        outcome = Outcome()
        queue = list(pins)
        while True:
            status, answer = self.request(
                "GET", f"/v1/operations/{operation_id}/events?after={len(outcome.events)}&wait=20"
            )
            assert status == 200, answer
            for event in answer["events"]:
                outcome.events.append(event)
                if on_event is not None:
                    on_event(event)
                if event["type"] == "done":
                    outcome.result = event["result"]
                    return outcome
                if event["type"] == "error":
                    outcome.error = event
                    return outcome
                if event["type"] == "enter_pin" and event.get("pin_url"):
                    assert queue, f"the bridge asked for a PIN nobody has: {outcome.types}"
                    self.submit_pin(event["pin_url"], **queue.pop(0))


@contextmanager
def running_bridge(
    terminal: Terminal,
    origins: Sequence[str],
    *,
    settings: Settings | None = None,
    port: int = 0,
    kiosk: bool = False,
    kiosk_launch: KioskLaunch | None = None,
) -> Iterator[BridgeClient]:
    config = BridgeConfig(
        allowed_origins=parse_origins(origins),
        terminal=terminal,
        pin_source=DialogPinSource(),
        settings=settings or Settings(card_timeout=5, pin_timeout=30, card_check_timeout=10),
        dev_mode=True,
        kiosk=kiosk or kiosk_launch is not None,
        kiosk_launch=kiosk_launch,
    )
    server = create_server(config, port=port)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield BridgeClient(server, origins[0])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
