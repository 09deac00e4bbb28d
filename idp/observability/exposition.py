"""One scrape: the registry it reads, the text it answers, and the separate metrics listener.

In multiprocess mode (``onecard serve`` under gunicorn) a scrape reads every worker's files
(``MultiProcessCollector``), whichever process answers it; otherwise it reads this process's default
registry. Either way the key gauges are computed then (``idp.observability.keys``).

The listener (``ONECARD_METRICS_BIND``) is a small threaded WSGI server of its own, in the gunicorn master or
the development server's process, for a private interface: it asks for no token.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any, Final
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from idp.observability.keys import KeyScheduleCollector
from idp.observability.metrics import multiprocess_directory

if TYPE_CHECKING:
    from idp.config import Settings
    from idp.db import Database
    from sdk.clock import Clock

# The classic text format: every Prometheus reads it, and answering one format needs no Accept parsing.
CONTENT_TYPE: Final = CONTENT_TYPE_PLAIN_0_0_4
METRICS_PATH: Final = "/metrics"


class _ThisProcess:
    """The default registry, as one collector of a scrape's registry."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def scrape_registry(database: Database, settings: Settings, clock: Clock) -> CollectorRegistry:
    """What one scrape reads: every worker's metrics (or this process's), and the key gauges of
    ``database``'s key table."""
    registry = CollectorRegistry(auto_describe=False)
    directory = multiprocess_directory()
    collectors: Iterable[Collector] = (
        (MultiProcessCollector(None, path=directory) if directory else _ThisProcess()),  # type: ignore[no-untyped-call]
        KeyScheduleCollector(database, settings, clock),
    )
    for collector in collectors:
        registry.register(collector)
    return registry


def render_metrics(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _IPv6ThreadingServer(_ThreadingServer):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # scrapes every few seconds are not worth a line each


class MetricsListener:
    """``GET /metrics`` and nothing else on ``host:port``, served from a daemon thread until ``stop``."""

    def __init__(self, host: str, port: int, render: Callable[[], bytes]) -> None:
        self._render = render
        server_class = _IPv6ThreadingServer if ":" in host else _ThreadingServer
        self._server = make_server(
            host, port, self._app, server_class=server_class, handler_class=_QuietHandler
        )
        self.port: int = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="onecard-metrics", daemon=True
        )

    def start(self) -> MetricsListener:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ.get("PATH_INFO") != METRICS_PATH:
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"not found: the metrics are at /metrics\n"]
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD")])
            return [b""]
        body = self._render()
        start_response("200 OK", [("Content-Type", CONTENT_TYPE), ("Cache-Control", "no-store")])
        return [body] if environ["REQUEST_METHOD"] == "GET" else [b""]
