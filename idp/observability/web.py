"""Per request: a request id, one JSON log line on ``onecard.request``, and the request metrics.

The request id is the proxy's ``X-Request-ID`` when it is a plain token (``[A-Za-z0-9._-]{1,64}``: nothing a
log reader could mistake for another field or line), else a fresh random one; either way it goes back in the
response's ``X-Request-ID``.

The log line has the URL rule template (``/login/<tx>/card``), never the path or the query string (a path
holds transaction ids, a query ``login_hint`` or ``state``), and the client id when the request
authenticated a client (``note_client``). It never has a name, an ID number, a PIN, a secret or a token.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Final, TextIO

from flask import Flask, Response, g, has_request_context, request
from werkzeug.wrappers import Response as BaseResponse

from idp.observability.metrics import SUCCESS, UNMATCHED, http_method_label, observe_request

REQUEST_LOGGER: Final = "onecard.request"
REQUEST_ID_HEADER: Final = "X-Request-ID"
_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")

request_log = logging.getLogger(REQUEST_LOGGER)


def note_client(client_id: str) -> None:
    """Record that this request authenticated ``client_id`` (client authentication or an access token), for
    the request log. Outside a request (a CLI command, a test calling a service) there is nothing to do."""
    if has_request_context():
        g.observed_client_id = client_id


def request_id_from(given: str) -> str:
    """The proxy's request id when it is a plain token, else a fresh random one."""
    return given if _REQUEST_ID.fullmatch(given) else secrets.token_hex(16)


def _inbound_request_id() -> str:
    return request_id_from(request.headers.get(REQUEST_ID_HEADER, ""))


def _begin() -> None:
    g.request_id = _inbound_request_id()
    g.request_started = time.perf_counter()
    g.request_started_wall = time.time()


def _finish(response: Response) -> Response:
    if "request_id" not in g:  # defensive: _begin runs first of all hooks, but never fail a response here
        _begin()
    rule = request.url_rule
    record_request(
        request_id=g.request_id,
        started=g.request_started,
        started_wall=g.request_started_wall,
        method=request.method,
        route=rule.rule if rule is not None else None,
        endpoint=request.endpoint if rule is not None and request.endpoint else UNMATCHED,
        status=response.status_code,
        client_id=g.get("observed_client_id"),
    )
    response.headers[REQUEST_ID_HEADER] = g.request_id
    return response


def record_request(
    *,
    request_id: str,
    started: float,
    started_wall: float,
    method: str,
    route: str | None,
    endpoint: str,
    status: int,
    client_id: str | None,
) -> None:
    """The request metrics and the log line of one answered request (``started``: its perf_counter, and
    ``started_wall``: its wall clock time); also what the lean path (idp.fastpath) records."""
    seconds = time.perf_counter() - started
    observe_request(endpoint=endpoint, method=method, status=status, seconds=seconds)
    if request_log.isEnabledFor(logging.INFO):
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(started_wall, UTC).isoformat(timespec="milliseconds"),
            "request_id": request_id,
            "method": http_method_label(method),
            "route": route,
            "endpoint": endpoint,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
        }
        if client_id:
            line["client_id"] = client_id
        request_log.info(json.dumps(line, separators=(",", ":")))


def install_request_observation(app: Flask) -> None:
    """Register the hooks first of all (before_request) and last of all (after_request, which Flask runs
    in reverse order): a request another hook refuses early is timed and logged too, and the duration
    includes the unit of work's commit."""
    app.before_request_funcs.setdefault(None, []).insert(0, _begin)
    app.after_request_funcs.setdefault(None, []).insert(0, _finish)


def oauth_result(response: BaseResponse) -> str:
    """What an OAuth endpoint told its caller: "success", or the ``error`` member of its JSON error body
    (RFC 6749 §5.2); the metric then keeps it only if it is a code that RFC defines."""
    if response.status_code < 400:
        return SUCCESS
    body = response.get_json(silent=True)
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, str) else "unknown"


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a line is written (a test runner swaps it), like the
    logging module's own last-resort handler."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


@contextmanager
def request_log_to_stderr() -> Iterator[None]:
    """While a process serves (``onecard serve``): the request log's JSON lines to stderr, each as it is
    (the message is the JSON). Undone afterwards, so a command run in-process leaves the logger as it was."""
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("%(message)s"))
    level = request_log.level
    request_log.addHandler(handler)
    request_log.setLevel(logging.INFO)
    try:
        yield
    finally:
        request_log.removeHandler(handler)
        request_log.setLevel(level)
