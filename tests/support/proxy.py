"""A small reverse proxy for tests: the load balancer in front of server nodes (tests/support/nodes.py).

Browsers see one origin, ``http://localhost:<port>`` — cookies ignore ports and passkeys are bound to the
origin — while a ``route`` function of each request decides which node answers it. The proxy forwards the
method, path, headers (``Host`` set to the public name, so every node sees the name the browser used;
``Cookie``, ``Origin`` and the rest unchanged) and body, and streams back the status, headers (every
``Set-Cookie``; a ``Location`` naming a node is turned into the public URL) and body. It records every
routed request, so a test can check which node answered what.

Bounded: one connection per request (HTTP/1.0 to the browser, each node connection closed after its
answer), request bodies up to ``max_body``, node answers within ``upstream_timeout``; and it stops by itself
after ``lifetime`` seconds should the test never stop it.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

# Hop-by-hop headers (RFC 9110 §7.6.1) belong to one connection and are never forwarded.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
CHUNK = 64 * 1024


@dataclass(frozen=True)
class ProxiedRequest:
    """What ``route`` sees: the method, the path with its query, and the browser's headers."""

    method: str
    path: str
    headers: Message

    @property
    def path_only(self) -> str:
        return urlsplit(self.path).path


@dataclass(frozen=True)
class Routed:
    """One forwarded request: which upstream answered it, and with what status (502: unreachable)."""

    upstream: str
    method: str
    path: str
    status: int


Route = Callable[[ProxiedRequest], str]


class ReverseProxy:
    """Listens on 127.0.0.1 at once (so ``url`` is known before the nodes start); serves once entered.

    ``route`` returns the name of an upstream given to ``set_upstreams`` (name → base URL)."""

    def __init__(
        self,
        route: Route,
        *,
        public_host: str = "localhost",
        upstream_timeout: float = 60.0,
        max_body: int = 16 * 1024 * 1024,
        lifetime: float = 600.0,
    ) -> None:
        self.route = route
        self.upstream_timeout = upstream_timeout
        self.max_body = max_body
        self.lifetime = lifetime
        self.upstreams: dict[str, str] = {}
        self.routed: list[Routed] = []
        self.errors: list[str] = []  # failures other than a browser going away
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _handler_for(self))
        self.port = int(self._server.server_address[1])
        self.public_authority = f"{public_host}:{self.port}"
        self.url = f"http://{self.public_authority}"
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None
        self._closed = False

    def set_upstreams(self, upstreams: Mapping[str, str]) -> None:
        with self._lock:
            self.upstreams = {name: url.rstrip("/") for name, url in upstreams.items()}

    def record(self, entry: Routed) -> None:
        with self._lock:
            self.routed.append(entry)

    def error(self, message: str) -> None:
        with self._lock:
            self.errors.append(message)

    def requests_to(
        self, upstream: str, predicate: Callable[[Routed], bool] = lambda _: True
    ) -> list[Routed]:
        with self._lock:
            return [entry for entry in self.routed if entry.upstream == upstream and predicate(entry)]

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="test-proxy", daemon=True)
        self._thread.start()
        self._timer = threading.Timer(self.lifetime, self.close)
        self._timer.daemon = True
        self._timer.start()

    def close(self) -> None:
        """Stop accepting requests (idempotent; also what the lifetime timer calls)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._timer is not None and self._timer is not threading.current_thread():
            self._timer.cancel()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(10)
        self._server.server_close()

    def __enter__(self) -> ReverseProxy:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a long-poll still waiting on a node does not hold up the test's end

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the handler records what matters; a browser hanging up is not an error


def _handler_for(proxy: ReverseProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = 30  # a browser that opens a connection and sends nothing

        def do_GET(self) -> None:
            self._forward()

        do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _forward(self) -> None:
            try:
                self._forward_or_fail()
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                self.close_connection = True  # the browser went away (a page closed mid long-poll)
            except Exception as exc:  # kept for the test to see, not lost in a thread
                proxy.error(f"{self.command} {self.path}: {exc!r}")
                self.close_connection = True

        def _forward_or_fail(self) -> None:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                self.send_error(411)  # browsers send a length; nothing here needs chunked uploads
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > proxy.max_body:
                self.send_error(413)
                return
            body = self.rfile.read(length) if length else None
            request = ProxiedRequest(self.command, self.path, self.headers)
            name = proxy.route(request)
            base = proxy.upstreams.get(name)
            if base is None:
                proxy.error(f"no upstream {name!r} for {self.command} {self.path}")
                self.send_error(502)
                return
            target = urlsplit(base)
            connection = http.client.HTTPConnection(
                target.hostname or "127.0.0.1", target.port, timeout=proxy.upstream_timeout
            )
            try:
                try:
                    connection.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                    connection.putheader("Host", proxy.public_authority)
                    for key, value in self.headers.items():
                        if key.lower() not in HOP_BY_HOP | {"host", "content-length"}:
                            connection.putheader(key, value)
                    forwarded = self.headers.get("X-Forwarded-For")
                    client = self.client_address[0]
                    connection.putheader("X-Forwarded-For", f"{forwarded}, {client}" if forwarded else client)
                    if body is not None:
                        connection.putheader("Content-Length", str(len(body)))
                    connection.endheaders(body)
                    response = connection.getresponse()
                except (OSError, http.client.HTTPException) as exc:
                    proxy.error(f"{name} unreachable for {self.command} {self.path}: {exc!r}")
                    proxy.record(Routed(name, self.command, self.path, 502))
                    self.send_error(502)
                    return
                proxy.record(Routed(name, self.command, self.path, response.status))
                self.send_response_only(response.status, response.reason)
                for key, value in response.getheaders():  # a list: every Set-Cookie stays
                    if key.lower() in HOP_BY_HOP:
                        continue
                    if key.lower() == "location" and value.startswith(base):
                        value = proxy.url + value[len(base) :]
                    self.send_header(key, value)
                self.send_header("Connection", "close")
                self.end_headers()
                if self.command != "HEAD":
                    while chunk := response.read(CHUNK):
                        self.wfile.write(chunk)
                self.wfile.flush()
            finally:
                connection.close()

    return Handler
