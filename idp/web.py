"""Request-scoped helpers shared by every blueprint: the unit of work, the browser binding, CSRF tokens,
security headers and JSON errors. Kept small: views parse, call one service, render.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import unquote

from flask import Flask, Response, current_app, g, jsonify, make_response, render_template, request
from flask_babel import gettext
from sqlalchemy.orm import Session

from idp.clients.errors import ClientAuthenticationError
from idp.keys.service import COOKIE_KEYS
from idp.services import services
from idp.text import is_storable_text
from sdk.errors import InvalidRequestError, OneCardError

BROWSER_COOKIE = "ocbr"
SESSION_COOKIE = "ocss"
MAX_FORM_BYTES = 64 * 1024
# Sent whenever the issuer is https. Not includeSubDomains: an issuer on a shared domain would force HTTPS on
# its sibling hosts for a year; an operator whose domain is OneCard's alone adds it at the proxy.
HSTS = "max-age=31536000"
# On every response, unless a view set its own (also the lean path's, idp.fastpath).
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    (
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self' http://127.0.0.1:*; frame-ancestors 'none'; form-action 'self' http: https:",
    ),
)
# Where ``current_transaction`` leaves the login transaction's ``ui_locales`` for the locale selector
# (``idp.i18n``), which must not read the store itself.
UI_LOCALES_G = "login_ui_locales"
MAX_JSON_DEPTH = 32
# A plain decimal integer parameter: at most 18 digits, so that int() stays cheap and any value fits 64 bits.
INTEGER_ARG = re.compile(r"-?[0-9]{1,18}")
LARGEST_INTEGER_ARG = 10**18 - 1


def db_session() -> Session:
    """The request's unit of work, committed after the response is built, rolled back on a crash."""
    if "db_session" not in g:
        g.db_session = services().database.sessions()
    return g.db_session  # type: ignore[no-any-return]


def cookie_secure() -> bool:
    """Whether the issuer is https: cookies are then Secure and responses carry HSTS."""
    return services().settings.is_secure_issuer


def browser_id() -> str:
    """A random id for this browser (HttpOnly cookie), set on the response if it is new.

    Only ids this server issued count: the cookie carries a MAC under the cookie keys, so a value a client
    or a page chose (a planted or guessed binding for a login transaction or a QR login) is replaced.
    """
    value = request.cookies.get(BROWSER_COOKIE, "")
    random_part, _, mac = value.partition(".")
    keys = _cookie_keys()
    # Bytes, not str: compare_digest refuses a non-ASCII str, and a planted cookie may hold anything.
    if not any(
        hmac.compare_digest(_browser_mac(key, random_part).encode(), mac.encode()) for _kid, key in keys
    ):
        if "new_browser_id" not in g:
            fresh = secrets.token_urlsafe(24)
            g.new_browser_id = f"{fresh}.{_browser_mac(keys[0][1], fresh)}"
        return g.new_browser_id  # type: ignore[no-any-return]
    return value


def _browser_mac(key: bytes, random_part: str) -> str:
    digest = hmac.new(key, f"browser\x00{random_part}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def browser_binding() -> str:
    """What login transactions store: a hash of the browser id, so the store never holds the cookie."""
    return hashlib.sha256(browser_id().encode()).hexdigest()


def _cookie_keys() -> tuple[tuple[str, bytes], ...]:
    svc = services()
    return svc.keyring.secrets(COOKIE_KEYS.name, now=svc.now())


def _csrf_mac(key: bytes, purpose: str) -> str:
    return hmac.new(key, f"csrf\x00{purpose}\x00{browser_id()}".encode(), hashlib.sha256).hexdigest()


def csrf_token(purpose: str) -> str:
    """A token bound to this browser and a purpose (e.g. a transaction id); forms post it back."""
    return _csrf_mac(_cookie_keys()[0][1], purpose)


def check_csrf(purpose: str, token: str | None) -> bool:
    """Any cookie key still accepted may have made it (keys rotate while forms are open)."""
    if not token or len(token) != 64:
        return False
    given = token.encode()  # bytes: compare_digest refuses a non-ASCII str
    return any(hmac.compare_digest(_csrf_mac(key, purpose).encode(), given) for _kid, key in _cookie_keys())


def client_ip() -> str:
    """The caller's address, what rate limits key on. Behind ``trusted_proxy_count`` proxies it is the
    address those proxies put into X-Forwarded-For: ProxyFix (``idp.app._trust_proxies``) has already made it
    ``remote_addr``."""
    return request.remote_addr or ""


def cacheable_json(document: Any, max_age: int) -> Response:
    """Public JSON with Cache-Control and an ETag, 304 to a matching If-None-Match.

    Published key sets (/jwks.json, the QR key set) use it with ``jwks_max_age``; the key lifecycle's
    pre-publication and retention periods derive from that same number (idp.keys.lifecycle).
    """
    body = json.dumps(document, separators=(",", ":"), sort_keys=True)
    return conditional_json(body, cache_control=f"public, max-age={max_age}")


def conditional_json(body: str, *, cache_control: str, etag_of: bytes | None = None) -> Response:
    """JSON whose ETag is a hash of ``etag_of`` (the body by default), answered by Werkzeug's conditional
    response: 304 without a body when the caller's If-None-Match still matches."""
    response = Response(body, mimetype="application/json")
    response.headers["Cache-Control"] = cache_control
    response.set_etag(hashlib.sha256(etag_of if etag_of is not None else body.encode()).hexdigest()[:32])
    response.make_conditional(request)  # changes the response in place
    return response


def json_error(error: OneCardError) -> Response:
    """The one JSON error shape, ``{"error", "error_description"}``, with any headers the error names
    (a 401's ``WWW-Authenticate``). The description is in the reader's language when the request states one
    (a page's script sends its own; ``idp.i18n``), else the English wire text; the code never changes."""
    body = error.to_dict()
    if "babel" in current_app.extensions and isinstance(body.get("error_description"), str):
        body["error_description"] = gettext(body["error_description"])
    response = jsonify(body)
    response.status_code = error.status_code
    response.headers.update(getattr(error, "headers", {}))
    response.headers.setdefault("Cache-Control", "no-store")  # an error is never for a cache (RFC 6749 §5.1)
    return response


def error_page(
    title: str, message: str, status: int = 400, *, headers: dict[str, str] | None = None
) -> Response:
    response = make_response(render_template("error.html", title=title, message=message), status)
    response.headers.update(headers or {})
    return response


def wants_page() -> bool:
    """Whether the caller is a person's browser (it prefers HTML) rather than a program (JSON)."""
    return request.accept_mimetypes.best_match(("application/json", "text/html")) == "text/html"


def int_arg(name: str, default: int, low: int, high: int) -> int:
    """A query parameter that must be a plain decimal integer (no "²", "1_0" or " 1"), clamped to a range."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not INTEGER_ARG.fullmatch(raw):
        raise InvalidRequestError(name, description=f"{name} must be an integer.")
    return max(low, min(high, int(raw)))


def validate_text(values: Iterable[str]) -> None:
    """Refuse text no field can hold (``idp.text``) with an ``InvalidRequestError``."""
    for value in values:
        if not is_storable_text(value):
            raise InvalidRequestError(
                "unacceptable text", description="The request contains characters that are not allowed."
            )


def _json_strings(document: Any, depth: int = 0) -> Iterator[str]:
    if depth > MAX_JSON_DEPTH:
        raise InvalidRequestError("json depth", description="The JSON body is nested too deeply.")
    if isinstance(document, str):
        yield document
    elif isinstance(document, dict):
        for key, value in document.items():
            yield key
            yield from _json_strings(value, depth + 1)
    elif isinstance(document, list):
        for value in document:
            yield from _json_strings(value, depth + 1)


def json_body(*, check_text: bool = True) -> dict[str, Any]:
    """The request's JSON object, or an ``InvalidRequestError``: not JSON, not an object, nested deeper than
    ``MAX_JSON_DEPTH``, or (unless an API checks every field itself and names the field in its error:
    ``check_text=False``) holding text no field can hold."""
    if not request.is_json:
        raise InvalidRequestError(
            "not json", description="The body must be JSON (Content-Type: application/json)."
        )
    try:
        data = json.loads(request.get_data(cache=True))
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
        data = None
    if not isinstance(data, dict):
        raise InvalidRequestError("bad json", description="The body must be a JSON object.")
    strings = list(_json_strings(data))  # walked in any case: the depth limit holds for every caller
    if check_text:
        validate_text(strings)
    return data


def _request_text() -> Iterator[str]:
    """Every piece of text a view may read from the request: path parts, query, form and Basic credentials."""
    yield from (request.view_args or {}).values()
    for key, value in request.args.items(multi=True):
        yield key
        yield value
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        for key, value in request.form.items(multi=True):
            yield key
            yield value
    yield from _basic_credentials()


def _basic_credentials() -> Iterator[str]:
    yield from basic_credentials(request.headers.get("Authorization", ""))


def basic_credentials(authorization: str) -> tuple[str, ...]:
    """HTTP Basic credentials as Authlib reads them (RFC 6749 §2.3.1: base64 of UTF-8, each part
    percent-encoded), so that a NUL sent as %00 is seen here too: (user, password), or () for another
    scheme. Strict base64, unlike Authlib's parser: ``ClientAuthenticationError`` for anything else."""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic":
        return ()
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ClientAuthenticationError("Basic credentials not base64-encoded UTF-8") from None
    user, _, password = decoded.partition(":")
    return unquote(user), unquote(password)


def _validate_request_text() -> Response | None:
    """Refused once, here, before any view reads it: a person's browser gets a page, a program the JSON error
    every OneCard and OAuth endpoint answers with (``{"error": "invalid_request", ...}``)."""
    try:
        validate_text(_request_text())
    except (InvalidRequestError, ClientAuthenticationError) as error:
        if wants_page():
            return error_page(
                "This link is not valid", "The address contains characters that are not allowed."
            )
        return json_error(error)
    return None


def install_request_hooks(app: Flask) -> None:
    app.before_request(_validate_request_text)

    @app.after_request
    def _finish(response: Response) -> Response:
        session = g.pop("db_session", None)
        if session is not None:
            try:
                if response.status_code >= 500:
                    # A request that failed changes nothing, whatever it wrote before it failed.
                    session.rollback()
                else:
                    # Committed for 4xx too: a refused request may record something on purpose (a reused
                    # refresh token revokes its family). Handlers validate before they write.
                    session.commit()
            finally:
                session.close()
        new_browser = g.pop("new_browser_id", None)
        if new_browser is not None:
            response.set_cookie(
                BROWSER_COOKIE,
                new_browser,
                max_age=400 * 86400,
                secure=cookie_secure(),
                httponly=True,
                samesite="Lax",
            )
        headers = response.headers
        for name, value in SECURITY_HEADERS:
            headers.setdefault(name, value)
        if cookie_secure():
            # Browsers then refuse plain HTTP to this host for a year (RFC 6797).
            headers.setdefault("Strict-Transport-Security", HSTS)
        return response

    @app.teardown_request
    def _rollback(_exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.rollback()
            session.close()
