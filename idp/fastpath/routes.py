"""Lean routes that plug-ins add to the lean path (idp.fastpath), and the pieces lean answers are made of.

A plug-in registers a ``LeanRoute`` for a method and a path in ``LeanRoutes`` (``Services.lean_routes``)
before ``create_app`` wraps the application; idp never imports the plug-in (the wallet's gate API is one).
A route returns a ``LeanAnswer``, or None to hand the request to Flask unchanged — which it must do for
anything it is not sure to answer exactly as the Flask view would, as long as it has changed nothing.

Answers are in the shape of Flask's: ``json_bytes`` is ``jsonify``'s body (sorted keys, compact, ASCII,
a final newline), ``error_answer`` is ``idp.web.json_error``'s for a program that stated no language
(the English wire text; a request stating one is the route's to hand to Flask).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from sdk.errors import OneCardError

JSON: Final = "application/json"
MAX_LENGTH_DIGITS: Final = 9  # a Content-Length with more digits is far beyond any lean body limit

Headers = list[tuple[str, str]]


@dataclass(frozen=True)
class LeanAnswer:
    status: int
    headers: Headers
    body: bytes
    started: tuple[float, float]  # perf_counter and wall clock time when the request came in
    client_id: str | None = None  # the authenticated client, for the request log line


@dataclass(frozen=True)
class LeanRoute:
    endpoint: str  # the Flask endpoint it stands in for (``gate.verify``): the log line's and metrics' name
    answer: Callable[[dict[str, Any]], LeanAnswer | None]


@dataclass
class LeanRoutes:
    """(method, path) → route; filled by plug-ins at start-up, read by ``LeanPath`` on every request."""

    routes: dict[tuple[str, str], LeanRoute] = field(default_factory=dict)

    def register(self, method: str, path: str, route: LeanRoute) -> None:
        self.routes[(method, path)] = route

    def find(self, method: str, path: str) -> LeanRoute | None:
        return self.routes.get((method, path)) if self.routes else None


def started_now() -> tuple[float, float]:
    return time.perf_counter(), time.time()


def content_length(environ: dict[str, Any]) -> int | None:
    """CONTENT_LENGTH if it is a plain decimal number (``str.isdigit`` alone takes "²", which ``int``
    refuses, and ``int`` refuses more than 4,300 digits), else None."""
    length = environ.get("CONTENT_LENGTH", "")
    if not (length.isascii() and length.isdigit()) or len(length) > MAX_LENGTH_DIGITS:
        return None
    return int(length)


def read_body(environ: dict[str, Any], *, content_type: str, max_bytes: int) -> bytes | None:
    """The request body when it is of ``content_type`` (its parameters aside) and at most ``max_bytes``, in
    a plain Content-Length frame; else None, and Flask reads the request as if nothing had (the body is put
    back into ``wsgi.input``)."""
    if environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower() != content_type:
        return None
    length = content_length(environ)
    # The server frames a chunked body; a Content-Length beside it is not its length (RFC 9112 §6.3).
    if length is None or length > max_bytes or "HTTP_TRANSFER_ENCODING" in environ:
        return None
    body: bytes = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)  # whatever happens next, Flask may have to read it again
    if len(body) != length:
        return None  # the client sent less than it announced: Werkzeug refuses it (400)
    return body


def json_bytes(document: Any) -> bytes:
    """``flask.jsonify``'s body of ``document`` (Flask's default JSON provider, outside debug mode)."""
    return (json.dumps(document, ensure_ascii=True, sort_keys=True, separators=(",", ":")) + "\n").encode()


def json_answer(
    status: int,
    document: Any,
    *,
    started: tuple[float, float],
    client_id: str | None = None,
    headers: Headers | None = None,
) -> LeanAnswer:
    body = json_bytes(document)
    base = [("Content-Type", JSON), ("Content-Length", str(len(body)))]
    return LeanAnswer(status, [*base, *(headers or [])], body, started, client_id)


def error_answer(
    error: OneCardError, *, started: tuple[float, float], client_id: str | None = None
) -> LeanAnswer:
    """``json_error(error)`` as a program that stated no language gets it: the English wire text, the
    error's own headers (``Retry-After``, ``WWW-Authenticate``), ``Cache-Control: no-store``, ``Vary``."""
    headers = list(getattr(error, "headers", {}).items())
    if not any(name.lower() == "cache-control" for name, _value in headers):
        headers.append(("Cache-Control", "no-store"))
    # json_error puts the description into the reader's words, so its answer varies with them (idp.i18n).
    headers.append(("Vary", "Accept-Language, Cookie"))
    return json_answer(
        error.status_code, error.to_dict(), started=started, client_id=client_id, headers=headers
    )
