"""The bridge's local API over real HTTP, for the tests of reader_bridge.server and of its kiosk profile: a
small client speaking to a bridge served on a free port in this process."""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from reader_bridge.server import BridgeConfig, BridgeHTTPServer, create_server
from sdk.keys import b64url

ORIGIN = "https://login.onecard.test"
EVIL = "https://evil.example"
NONCE = bytes(range(100, 132))


class Client:
    def __init__(self, server: BridgeHTTPServer) -> None:
        self.server = server

    def request(
        self,
        method: str,
        path: str,
        *,
        origin: str | None = ORIGIN,
        body: Any = None,
        headers: dict[str, str] | None = None,
        form: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        all_headers = dict(headers or {})
        if origin is not None:
            all_headers["Origin"] = origin
        payload: bytes | None = None
        if body is not None:
            payload = json.dumps(body).encode()
            all_headers.setdefault("Content-Type", "application/json")
        if form is not None:
            payload = urllib.parse.urlencode(form).encode()
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, body=payload, headers=all_headers)
        response = connection.getresponse()
        data = response.read()
        result = response.status, {k.lower(): v for k, v in response.getheaders()}, data
        connection.close()
        return result

    def json(self, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, str], Any]:
        status, headers, data = self.request(method, path, **kwargs)
        assert headers["content-type"] == "application/json"
        return status, headers, json.loads(data)

    def start_authenticate(self) -> str:
        status, _, body = self.json("POST", "/v1/authenticate", body={"nonce": b64url(NONCE)})
        assert status == 202, body
        return str(body["operation_id"])

    def next_event(self, operation_id: str, seen: list[dict[str, Any]]) -> dict[str, Any]:
        while True:
            status, _, body = self.json(
                "GET", f"/v1/operations/{operation_id}/events?after={len(seen)}&wait=10"
            )
            assert status == 200
            if body["events"]:
                seen.append(body["events"][0])
                event: dict[str, Any] = body["events"][0]
                return event

    def submit_pin(self, url: str, *, language: str = "en", **form: str) -> tuple[int, bytes]:
        """Open the PIN window as a browser preferring ``language`` would, then post ``form`` to it."""
        path = urllib.parse.urlsplit(url).path
        headers = {"Accept-Language": language}
        status, answer, page = self.request("GET", path, origin=None, headers=headers)
        assert status == 200 and answer["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in answer["content-security-policy"]
        status, _, _data = self.request(
            "POST", path, origin=self.server.own_origin, form=form, headers=headers
        )
        return status, page


@contextmanager
def serving(config: BridgeConfig) -> Iterator[Client]:
    server = create_server(config, port=0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Client(server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
