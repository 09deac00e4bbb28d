"""``LeanPath``: the WSGI middleware that answers the hot requests before Flask (see idp.fastpath)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from authlib.common.security import is_secure_transport
from werkzeug.http import HTTP_STATUS_CODES, http_date, is_resource_modified
from werkzeug.wsgi import get_current_url

from idp.config import Settings
from idp.fastpath.published import Document, PublishedJwks, prepare_document
from idp.fastpath.routes import Headers, LeanAnswer, LeanRoute, read_body
from idp.fastpath.token import (
    MAX_BODY_BYTES,
    Registrations,
    grant_scope,
    issue_token,
    parse_token_request,
)
from idp.oauth.discovery import provider_metadata
from idp.observability.metrics import SUCCESS, count_token_grant
from idp.observability.web import REQUEST_ID_HEADER, record_request, request_id_from
from idp.services import Services
from idp.web import HSTS, SECURITY_HEADERS

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
FORM = "application/x-www-form-urlencoded"
# The Flask routes the lean path stands in for: their rule and endpoint name go in the log and metrics.
TOKEN_ROUTE = ("/token", "oidc.token")
JWKS_ROUTE = ("/jwks.json", "oidc.jwks")
DISCOVERY_PATHS = frozenset({"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"})

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Issued:
    body: bytes
    client_id: str
    started: tuple[float, float]  # perf_counter and wall clock time when the request came in


@lru_cache(maxsize=256)
def _secure_origin(scheme: str, host: str | None, server_name: str, server_port: str) -> bool:
    """Authlib's insecure_transport check of the request's URL (https, or http to a loopback host), which
    depends on the scheme and host alone: cached, since building and parsing the URL costs tens of µs."""
    environ = {"wsgi.url_scheme": scheme, "SERVER_NAME": server_name, "SERVER_PORT": server_port}
    if host is not None:
        environ["HTTP_HOST"] = host
    return is_secure_transport(get_current_url(environ, host_only=True))  # type: ignore[no-any-return]


def _secure_transport(environ: dict[str, Any]) -> bool:
    return _secure_origin(
        environ.get("wsgi.url_scheme", "http"),
        environ.get("HTTP_HOST"),
        environ.get("SERVER_NAME", ""),
        environ.get("SERVER_PORT", ""),
    )


def _status_line(status: int) -> str:
    return f"{status} {HTTP_STATUS_CODES[status].upper()}"  # as Werkzeug's Response writes it


class LeanPath:
    """Answers plain client_credentials token requests, discovery, the JWKS and the plug-ins' lean routes
    (``Services.lean_routes``); passes the rest to ``app``."""

    def __init__(self, app: WsgiApp, svc: Services) -> None:
        self.app = app
        self.svc = svc
        settings = svc.settings
        self.jwks = PublishedJwks(svc.keyring, settings.jwks_max_age)
        self.registrations = Registrations(svc.database.engine)
        self._discovery: tuple[Settings, Document] | None = None
        self.common_headers: Headers = list(SECURITY_HEADERS)
        if settings.is_secure_issuer:
            self.common_headers.append(("Strict-Transport-Security", HSTS))
        self.routes = svc.lean_routes
        self.served = 0  # requests answered here (tests check the lean path really served theirs)

    def discovery(self) -> Document:
        """The discovery document's bytes, for the settings in force: built once per settings object (the
        application's settings are replaced whole, never edited, so an identity check is the whole test)."""
        settings = self.svc.settings
        if self._discovery is None or self._discovery[0] is not settings:
            metadata = provider_metadata(settings.issuer, require_par=settings.require_par)
            self._discovery = (settings, prepare_document(metadata, settings.jwks_max_age))
        return self._discovery[1]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD")
        path = environ.get("PATH_INFO", "")
        query = environ.get("QUERY_STRING")
        # A failed If-Match is 412 in Werkzeug's make_conditional (the Flask view's), not 304: left to it.
        if method == "GET" and not query and "HTTP_IF_MATCH" not in environ:
            if path in DISCOVERY_PATHS:
                return self._document(environ, start_response, self.discovery(), (path, "oidc.discovery"))
            if path == JWKS_ROUTE[0]:
                try:
                    document = self.jwks.current(now=self.svc.now())
                except Exception:
                    # Flask's view meets the same failure and answers it as every 500 is answered.
                    log.exception("lean path: the JWKS failed; the full path answers")
                else:
                    return self._document(environ, start_response, document, JWKS_ROUTE)
        elif method == "POST" and not query and (route := self.routes.find(method, path)):
            answer = self._route(route, environ)
            if answer is not None:
                return self._answer(
                    environ, start_response, answer.status, answer.headers, answer.body,
                    (path, route.endpoint), answer.started, client_id=answer.client_id,
                )  # fmt: skip
        elif method == "POST" and path == TOKEN_ROUTE[0] and not query:
            try:
                issued = self._token(environ)
            except Exception:
                # Before start_response, so the full path can still answer: with its refusal, or with the JSON
                # 500, request id and log line of Flask's error handler. Never the data in the log.
                log.exception("lean path: a token request failed; the full path answers")
                issued = None
            if issued is not None:
                headers = [
                    ("Content-Type", "application/json"),
                    ("Cache-Control", "no-store"),
                    ("Pragma", "no-cache"),
                    ("Content-Length", str(len(issued.body))),
                ]
                count_token_grant("client_credentials", SUCCESS)
                return self._answer(
                    environ, start_response, 200, headers, issued.body, TOKEN_ROUTE, issued.started,
                    client_id=issued.client_id,
                )  # fmt: skip
        return self.app(environ, start_response)

    @staticmethod
    def _route(route: LeanRoute, environ: dict[str, Any]) -> LeanAnswer | None:
        try:
            return route.answer(environ)
        except Exception:
            # A route raises only before it has changed anything (idp.fastpath.routes): Flask answers.
            log.exception("lean path: %s failed; the full path answers", route.endpoint)
            return None

    def _token(self, environ: dict[str, Any]) -> _Issued | None:
        started, started_wall = time.perf_counter(), time.time()
        # Authlib's OAuth2Request refuses plain http to a host that is not loopback (insecure_transport).
        if "HTTP_DPOP" in environ or not _secure_transport(environ):
            return None
        body = read_body(environ, content_type=FORM, max_bytes=MAX_BODY_BYTES)
        if body is None:
            return None
        request = parse_token_request(body, authorization=environ.get("HTTP_AUTHORIZATION"))
        if request is None:
            return None
        now = self.svc.now()
        scope = grant_scope(self.registrations, request, now=now)
        if scope is None:
            return None
        settings = self.svc.settings
        issued = issue_token(
            request,
            scope,
            keyring=self.svc.keyring,
            issuer=settings.issuer,
            ttl=settings.access_token_ttl,
            now=now,
        )
        return _Issued(issued.body, issued.client_id, (started, started_wall))

    def _document(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        document: Document,
        route: tuple[str, str],
    ) -> Iterable[bytes]:
        started = time.perf_counter(), time.time()
        validators = [("Cache-Control", document.cache_control), ("ETag", document.etag)]
        validators.append(("Date", http_date(started[1])))
        # Werkzeug's make_conditional, as the Flask view answers (idp.web.conditional_json).
        if not is_resource_modified(environ, etag=document.etag, ignore_if_range=True):
            return self._answer(environ, start_response, 304, validators, b"", route, started)
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(document.body))),
            *validators,
        ]
        return self._answer(environ, start_response, 200, headers, document.body, route, started)

    def _answer(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        status: int,
        headers: Headers,
        body: bytes,
        route: tuple[str, str],
        started: tuple[float, float],
        *,
        client_id: str | None = None,
    ) -> Iterable[bytes]:
        request_id = request_id_from(environ.get("HTTP_X_REQUEST_ID", ""))
        start_response(
            _status_line(status), [*headers, *self.common_headers, (REQUEST_ID_HEADER, request_id)]
        )
        self.served += 1
        record_request(
            request_id=request_id,
            started=started[0],
            started_wall=started[1],
            method=environ["REQUEST_METHOD"],
            route=route[0],
            endpoint=route[1],
            status=status,
            client_id=client_id,
        )
        return [body]
